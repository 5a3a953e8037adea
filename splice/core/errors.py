"""Errors a user can cause. The CLI prints them as one line and exits non-zero.

Anything raised as a :class:`UserError` must carry a message that names the file or
setting at fault and says how to fix it; no traceback is shown for these.
"""

from __future__ import annotations

from typing import Iterable


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


def near_names(name: object, known: Iterable[object], n: int = 1) -> list[str]:
    """The names of ``known`` a user most likely meant by ``name``, for a "did you mean" hint: those that start
    like it (its first four characters; ``lpipz`` -> ``lpips_vgg``) before those :mod:`difflib` finds close
    (``smoek`` -> ``smoke``); at most ``n``."""
    import difflib

    name, known = str(name), list(dict.fromkeys(str(k) for k in known))
    head = name[:4]
    prefix = [k for k in known if len(head) >= 3 and k != name and k.startswith(head)]
    return list(dict.fromkeys(prefix + difflib.get_close_matches(name, known, n=n)))[:n]
