"""Stand-in detectron2 for the tests (see ../README.md). ``CALLS`` records what the suite asked for."""

__version__ = "0.0-stand-in"
CALLS: list[tuple] = []
