"""The cfexp command line: a thin door to data, train, sweep, evaluate, report, recommend, serve and ui."""

from cfexp.cli.main import main

__all__ = ["main"]
