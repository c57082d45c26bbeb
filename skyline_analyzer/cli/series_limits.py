"""The bounds ``check`` puts on its input, and the register of series names that enforces the per-name ones.

Every bound is a command-line option (see docs/check.md): the datapoints of one series, the length of a
name, the number of series. A JSON element or CSV line is refused before it is decoded when its text
exceeds what these allow, so no single item of the input costs more than its bound.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from skyline_analyzer.cli.datapoints import quote_name
from skyline_analyzer.exceptions import SeriesFormatError

#: Default most datapoints of one series (FULL_DURATION at one point a second is 86,400).
MAX_POINTS = 1_000_000
#: Default longest series name, in characters.
MAX_NAME = 1024
#: Default most series in one input (the register of names costs about 100 bytes a series).
MAX_SERIES = 1_000_000
#: Characters of JSON text allowed per datapoint: ``[1700000000, -1.2345678901234567e-300], `` with room.
CHARS_PER_POINT = 64
#: Characters of a JSON string escape (``\\uXXXX``) per character of a name.
CHARS_PER_NAME_CHAR = 6
#: CSV line characters beyond the name: a time, a value, separators and quotes.
LINE_EXTRA = 256


@dataclass(frozen=True)
class Limits:
    """Bounds on one input; the derived character limits follow from the three options."""

    max_points: int = MAX_POINTS
    max_name: int = MAX_NAME
    max_series: int = MAX_SERIES

    @property
    def name_chars(self) -> int:
        """Longest JSON text of a name: every character escaped, plus the quotes."""
        return self.max_name * CHARS_PER_NAME_CHAR + 2

    @property
    def element_chars(self) -> int:
        """Longest JSON text of one series (a Graphite element carries its name and a few keys too)."""
        return self.max_points * CHARS_PER_POINT + self.name_chars + 4096

    @property
    def line_chars(self) -> int:
        """Longest CSV line, its newline included (a quoted name may double its quotes)."""
        return 2 * self.max_name + LINE_EXTRA


class NameRegister:
    """The names seen so far (as 16-byte digests): refuses a name twice, too long a name, too many series."""

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._seen: set[bytes] = set()

    def add(self, name: str, location: str) -> None:
        """Register ``name``, found at ``location`` (``input: line L``), which prefixes the messages."""
        if len(name) > self._limits.max_name:
            raise SeriesFormatError(f"{location}: a series name of {len(name)} characters, more than the limit of"
                        f" {self._limits.max_name} (--max-name): {quote_name(name)}")
        if len(self._seen) >= self._limits.max_series:
            raise SeriesFormatError(f"{location}: more than {self._limits.max_series} series (--max-series)")
        digest = hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        if digest in self._seen:
            raise SeriesFormatError(f"{location}: series {quote_name(name)} appears a second time")
        self._seen.add(digest)
