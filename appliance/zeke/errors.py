"""One error type for everything a user can fix.

Every failure a user can act on is raised as a ``ZekeError`` carrying a one-line message, an
optional hint (what to do) and the process exit code. The CLI prints it without a traceback.
"""

from __future__ import annotations


class ZekeError(Exception):
    """A failure with a one-line message, an actionable hint and an exit code."""

    exit_code: int = 1

    def __init__(self, message: str, hint: str | None = None, exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class UsageError(ZekeError):
    """Bad arguments or options."""

    exit_code = 2


class InputError(ZekeError):
    """An input file or stream that cannot be used."""

    exit_code = 3


class ModelError(ZekeError):
    """A model file that is missing, tampered with or unusable."""

    exit_code = 4


class ConfigError(ZekeError):
    """A configuration file that is missing, unreadable or invalid."""

    exit_code = 5
