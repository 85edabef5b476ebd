"""Research reports: a finished sweep read back from the MLflow and Optuna stores, as Markdown and HTML."""

from cfexp.report.build import build_report

__all__ = ["build_report"]
