"""Everything Optuna: studies, trials claimed from a shared budget, pruning, recovery, reconciliation, final fits."""
