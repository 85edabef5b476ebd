"""One experiment read across the settings it was swept under: the matrix of studies × settings from the stores,
ranks, Friedman's test and the critical-difference diagram, each conclusion counted where it holds and where it
is significant, and the cross-setting report with its MLflow run."""
