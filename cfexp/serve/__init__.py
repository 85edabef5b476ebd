"""Using a logged model: the MLflow pyfunc cfexp logs, recommendations from it, and MLflow's model server."""
