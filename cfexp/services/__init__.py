"""Shared stores for sweeps on several machines: a PostgreSQL cluster and an mlflow server on it."""
