"""Exceptions raised by the engine and the daemon."""

from __future__ import annotations


class SeriesException(Exception):
    """A series the verdict declines to analyse; the class name is the exception-count key."""


class TooShort(SeriesException):
    """Fewer than ``MIN_TOLERABLE_LENGTH`` datapoints."""


class Stale(SeriesException):
    """The last datapoint is more than ``STALE_PERIOD`` seconds old."""


class Boring(SeriesException):
    """The last ``MAX_TOLERABLE_BOREDOM`` values hold exactly ``BOREDOM_SET_SIZE`` distinct values."""


class SettingsError(Exception):
    """One or more settings are invalid; ``problems`` lists one message per bad setting."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid settings:\n" + "\n".join(f"  {p}" for p in problems))


class SeriesFormatError(ValueError):
    """A series could not be decoded or is not analysable; the message names the series and position."""
