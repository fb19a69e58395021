"""The seed walk-through (../shared/seed/ecommerce-testing-guide.md) as a program: `make demo`."""
