"""The docker backend: broker, ledger and workers in containers."""
