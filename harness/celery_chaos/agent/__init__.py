"""The in-worker agent: records attempts, checkpoints, side effects and locks into the ledger."""
