"""order_svc: orders and their status, a read model of catalog prices, and the saga's verdicts on orders."""
