"""Datasets that ship inside the package, so that cfexp works offline."""
