"""Scores of fitted models: top-N ranking metrics by full ranking, and the statistics of per-fold scores."""
