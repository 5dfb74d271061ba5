"""`genops serve`: the ledger as a read-only HTTP service (health, readiness, Prometheus metrics, JSON)."""
