"""The base of every error seqrl raises for bad input: the message says what, where, and what to do."""


class SeqRLError(ValueError):
    """Bad user input (data, config, policy folder, arguments). The CLIs print these without a traceback."""
