"""Errors that reach the user as one line and an exit code.

Exit codes follow the CLI contract: 2 for bad usage or bad input (an unknown recipe,
a bad ``--set``, missing or corrupt data, a wrongly shaped input, an existing export
version), 1 for a failure at run time (training diverged, no TPU found).
"""

from __future__ import annotations


class KerasappsError(Exception):
    """Base class: ``str(error)`` is the one line shown to the user."""

    exit_code = 1


class UsageError(KerasappsError, ValueError):
    """Bad usage or bad input: exit code 2."""

    exit_code = 2


class ConfigError(UsageError):
    """An unknown configuration key, or a value of the wrong type."""


class RecipeNotFound(UsageError, KeyError):
    """No recipe of that name is registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0] if self.args else ""


class DataError(UsageError):
    """Data missing from the data directory, or unreadable."""


class RunError(KerasappsError):
    """A failure at run time (training diverged, a device is missing): exit code 1."""
