"""The one exception type for mistakes a user can make.

Anything a user can get wrong (a path, an encoding, an option value, a checkpoint that
does not match) raises :class:`TextRNNError` with a message that says what was wrong and
what to do. The CLI prints that message on one line and exits with status 2. Bugs still
raise ordinary exceptions.
"""


class TextRNNError(Exception):
    """A user error: bad input, bad option, unusable checkpoint. The message is for people."""


class SharedError(TextRNNError):
    """An input error that every process of a distributed job raised together: only rank 0
    reports it."""
