"""The one exception type that means "the user gave us something wrong"."""


class UserError(Exception):
    """A bad input: the CLI prints its message as one line and exits non-zero, without a traceback."""
