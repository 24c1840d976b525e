"""Exceptions fxlic reports to users (one line, non-zero exit, no traceback)."""


class CliError(Exception):
    """An error caused by the user's input, reported as one line."""
