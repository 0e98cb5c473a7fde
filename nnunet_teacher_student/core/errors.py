"""The one error type for bad user input (the CLI prints its message and exits 1)."""


class InputError(ValueError):
    """Bad user input: the message names the file and the problem."""
