"""The command line's one kind of error: a problem with the input, reported as one line."""

from __future__ import annotations

__all__ = ["CommandError"]


class CommandError(Exception):
    """A problem with the command's input, reported as one line; ``status`` is the exit status."""

    def __init__(self, message: str, status: int = 2):
        super().__init__(message)
        self.status = status
