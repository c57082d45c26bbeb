"""Every exception the package defines, and the kinds under which a run counts the metrics it did not analyse.

A run reports ``exceptions.<kind>`` counts to Graphite and in its ``exception stats`` log line
(docs/analyzer.md); :class:`ExceptionKind` holds the spelling of every kind, so no module writes them as
loose strings.
"""

from __future__ import annotations

from enum import StrEnum


class ExceptionKind(StrEnum):
    """Why a metric of a run has no verdict: the key of its count."""

    #: Fewer than ``MIN_TOLERABLE_LENGTH`` datapoints.
    TOO_SHORT = "TooShort"
    #: The last datapoint is more than ``STALE_PERIOD`` seconds old.
    STALE = "Stale"
    #: The last ``MAX_TOLERABLE_BOREDOM`` values hold exactly ``BOREDOM_SET_SIZE`` distinct values.
    BORING = "Boring"
    #: The key vanished between SMEMBERS and MGET (Roomba or an operator deleted it).
    DELETED_BY_ROOMBA = "DeletedByRoomba"
    #: A member of ``metrics.unique_metrics`` that is not UTF-8: it cannot name a metric (docs/analyzer.md).
    UNDECODABLE_NAME = "UndecodableName"
    #: A corrupt or truncated value, a non-numeric or non-finite datapoint, or an unexpected error.
    OTHER = "Other"


class SeriesException(Exception):
    """A series the verdict declines to analyse; :attr:`kind` is its exception-count key."""

    kind: ExceptionKind


class TooShort(SeriesException):
    """Fewer than ``MIN_TOLERABLE_LENGTH`` datapoints."""

    kind = ExceptionKind.TOO_SHORT


class Stale(SeriesException):
    """The last datapoint is more than ``STALE_PERIOD`` seconds old."""

    kind = ExceptionKind.STALE


class Boring(SeriesException):
    """The last ``MAX_TOLERABLE_BOREDOM`` values hold exactly ``BOREDOM_SET_SIZE`` distinct values."""

    kind = ExceptionKind.BORING


class SettingsError(Exception):
    """One or more settings are invalid; ``problems`` lists one message per bad setting."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid settings:\n" + "\n".join(f"  {p}" for p in problems))


class SeriesFormatError(ValueError):
    """A series could not be decoded or is not analysable; the message names the series and position."""


class UnsafeDirectoryError(Exception):
    """``SKYLINE_TMP_DIR`` is not private to the daemon's user, or cannot be made so; the message says why."""
