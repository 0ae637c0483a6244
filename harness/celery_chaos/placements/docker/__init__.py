"""The docker placement: broker, ledger and workers in containers."""
