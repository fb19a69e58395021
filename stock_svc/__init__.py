"""stock_svc: the inventory of every product, reservations that never oversell, and the saga's stock commands."""
