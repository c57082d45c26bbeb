"""Every exception the package defines, the kinds under which a run counts the metrics it did not analyse,
and the reasons Horizon refuses an input for (docs/horizon.md, "Hostile input").

A run reports ``exceptions.<kind>`` counts to Graphite and in its ``exception stats`` log line
(docs/analyzer.md); :class:`ExceptionKind` holds the spelling of every kind, so no module writes them as
loose strings.
"""

from __future__ import annotations

import pickle
from enum import StrEnum
from typing import Any

from skyline_analyzer.excerpt import describe


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


class Rejection(StrEnum):
    """Why Horizon refused an input; each is counted as ``listen.rejected.<value>`` (docs/horizon.md)."""

    FRAME_TOO_LONG = "frame_too_long"
    FRAME_TRUNCATED = "frame_truncated"
    PICKLE_UNSAFE = "pickle_unsafe"
    PICKLE_UNREADABLE = "pickle_unreadable"
    NOT_A_LIST = "not_a_list"
    MSGPACK_UNREADABLE = "msgpack_unreadable"
    LINE_TOO_LONG = "line_too_long"
    LINE_FIELDS = "line_fields"
    NOT_A_DATAPOINT = "not_a_datapoint"
    NAME_NOT_TEXT = "name_not_text"
    NAME_NOT_UTF8 = "name_not_utf8"
    NAME_TOO_LONG = "name_too_long"
    NAME_CHARACTERS = "name_characters"
    NOT_A_NUMBER = "not_a_number"
    NOT_FINITE = "not_finite"
    OUT_OF_RANGE = "out_of_range"
    #: Anything else raised while one input was handled: a defect, caught at that input's boundary.
    UNEXPECTED = "unexpected_error"


_NO_VALUE = object()


class BadInput(ValueError):
    """A frame, datagram, line or datapoint that cannot be stored: the only error decoding one may raise.

    The message is rendered only when asked for (``str``), and then with the offending value bounded and
    escaped (:func:`skyline_analyzer.excerpt.describe`): a listener may refuse thousands of inputs a second
    and log only a few of them.
    """

    def __init__(self, reason: Rejection, message: str, value: Any = _NO_VALUE) -> None:
        super().__init__(reason, message)
        self.reason = reason
        self.message = message
        self.value = value
        #: For ``UNEXPECTED``: the defect's traceback, already formatted (it names code, never input).
        self.trace = ""

    def __str__(self) -> str:
        return self.message if self.value is _NO_VALUE else f"{self.message}: {describe(self.value)}"


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for a global or a persistent object: refused before it was resolved."""


class UnsafeDirectoryError(Exception):
    """``SKYLINE_TMP_DIR`` is not private to the daemon's user, or cannot be made so; the message says why."""
