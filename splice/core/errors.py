"""Errors a user can cause. The CLI prints them as one line and exits non-zero.

Anything raised as a :class:`UserError` must carry a message that names the file or
setting at fault and says how to fix it; no traceback is shown for these.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input or environment, reported as one line."""

    exit_code = 2

    def __init__(self, message: str):
        # One line, always: a message with newlines would be cut by log readers.
        super().__init__(" ".join(str(message).split()))


class ImageError(UserError):
    """An image that is missing, unreadable, or unusable (too small, too large)."""


class WeightsError(UserError):
    """Model weights that are missing or do not fit the architecture."""


class ManifestError(UserError):
    """A bad row or file in a data-set manifest."""


class ConfigError(UserError):
    """An unknown preset, option or value."""
