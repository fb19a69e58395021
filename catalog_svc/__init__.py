"""catalog_svc: the product catalog in MongoDB; every change and its product event commit together."""
