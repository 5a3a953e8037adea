"""Helpers of the tests (not tests): synthetic images, dummy methods, run-store factories, tiny models.

``PROJECT`` is the checkout, ``SHARED`` the ``../shared`` folder beside it (absent on a clone elsewhere).
"""

from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
SHARED = PROJECT.parent / "shared"
PAPER_DATA = SHARED / "data" / "paper"
