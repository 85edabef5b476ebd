"""cfexp: a research harness for collaborative-filtering experiments."""

__version__ = "0.1.0"
