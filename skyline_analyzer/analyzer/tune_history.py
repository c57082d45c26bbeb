"""Reading the Analyzer's tune records back from Redis, bounded and validated (docs/analyzer-optimizations.md#tune).

What is in Redis is untrusted: anyone who can write to it can put anything in ``keys.ANALYZER_TUNE``. So
the list is read newest first in pages (a server-side script leaves out, unsent, every element longer than
:data:`MAX_RECORD_BYTES`), at most ``TUNE_HISTORY_RUNS × ANALYZER_PROCESSES`` records (and
never more than :data:`MAX_RECORDS`); a record longer than :data:`MAX_RECORD_BYTES`, not JSON, or not of the
format :mod:`skyline_analyzer.analyzer.tune_record` writes (every field typed and within range, every list
as long as the algorithms) is skipped and counted, its reason logged once per kind, bounded and escaped.
Records of another set of algorithms than the settings' are counted apart: their vectors cannot be used.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from skyline_analyzer import keys
from skyline_analyzer.analyzer.tune_record import RECORD_VERSION, VOTE_CODES
from skyline_analyzer.defaults import ALGORITHM_NAMES, ENGINES
from skyline_analyzer.excerpt import escape

log = logging.getLogger(__name__)

#: Records read at most, whatever the settings say.
MAX_RECORDS = 200_000
#: Records fetched per LRANGE.
PAGE = 500
#: Longest record accepted: a full sample (1,000 vectors of nine votes) is about 12 kB.
MAX_RECORD_BYTES = 64 << 10
#: Largest count accepted in a record (runs, votes, series).
MAX_COUNT = 10**12
#: Largest number of seconds accepted in a record.
MAX_SECONDS = 1e9
#: Latest run time accepted (epoch seconds).
MAX_EPOCH = 1e11
#: Most sampled vectors one record may carry (TUNE_SAMPLE_SIZE's upper bound).
MAX_SAMPLE = 1000


@dataclass(frozen=True)
class Record:
    """One worker's run, validated, its columns in the record's own ``algorithms`` order."""

    run: float
    engine: str
    algorithms: tuple[str, ...]
    consensus: int
    early_exit: bool
    analysed: int
    runs: tuple[int, ...]
    true: tuple[int, ...]
    none: tuple[int, ...]
    timed_runs: tuple[int, ...]
    seconds: tuple[float, ...]
    sample: tuple[str, ...]
    record_seconds: float


@dataclass
class History:
    """The usable records of the newest runs, and the count of what was left out and why."""

    records: list[Record] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    other_algorithms: int = 0
    read: int = 0


def _count(value: Any, what: str, high: int = MAX_COUNT, low: int = 0) -> int:
    if type(value) is not int or not low <= value <= high:
        raise ValueError(f"{what} is not a whole number from {low} to {high}")
    return value


def _seconds(value: Any, what: str, high: float = MAX_SECONDS) -> float:
    if type(value) not in (int, float) or not math.isfinite(value) or not 0 <= value <= high:
        raise ValueError(f"{what} is not a number of seconds from 0 to {high:g}")
    return float(value)


def _column(record: dict, name: str, width: int, item: Any) -> tuple:
    values = record.get(name)
    if type(values) is not list or len(values) != width:
        raise ValueError(f"{name} is not a list of {width}")
    return tuple(item(value, name) for value in values)


def parse_record(raw: bytes) -> Record:
    """A record from its stored bytes; ValueError saying what is wrong."""
    if len(raw) > MAX_RECORD_BYTES:
        raise ValueError(f"longer than {MAX_RECORD_BYTES} bytes")
    try:
        record = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError("not JSON") from exc
    if type(record) is not dict:
        raise ValueError("not a JSON object")
    if record.get("version") != RECORD_VERSION:
        raise ValueError(f"not version {RECORD_VERSION}")
    algorithms = record.get("algorithms")
    if (type(algorithms) is not list or not 0 < len(algorithms) <= len(ALGORITHM_NAMES)
            or not all(type(a) is str and a in ALGORITHM_NAMES for a in algorithms)
            or len(set(algorithms)) != len(algorithms)):
        raise ValueError("algorithms are not distinct known algorithm names")
    width = len(algorithms)
    if record.get("engine") not in ENGINES:
        raise ValueError("unknown engine")
    if type(record.get("early_exit")) is not bool:
        raise ValueError("early_exit is not a boolean")
    sample = record.get("sample")
    codes = set(VOTE_CODES.values())
    if (type(sample) is not list or len(sample) > MAX_SAMPLE
            or not all(type(v) is str and len(v) == width and set(v) <= codes for v in sample)):
        raise ValueError(f"sample is not a list of at most {MAX_SAMPLE} vote strings of {width} votes")
    parsed = Record(
        run=_seconds(record.get("run"), "run", MAX_EPOCH), engine=record["engine"], algorithms=tuple(algorithms),
        consensus=_count(record.get("consensus"), "consensus", width, 1),
        early_exit=record["early_exit"], analysed=_count(record.get("analysed"), "analysed"),
        runs=_column(record, "runs", width, _count), true=_column(record, "true", width, _count),
        none=_column(record, "none", width, _count), timed_runs=_column(record, "timed_runs", width, _count),
        seconds=_column(record, "seconds", width, _seconds), sample=tuple(sample),
        record_seconds=_seconds(record.get("record_seconds"), "record_seconds"),
    )
    if any(t + n > r or r > parsed.analysed for t, n, r in zip(parsed.true, parsed.none, parsed.runs, strict=True)):
        raise ValueError("more votes than runs, or more runs than series analysed")
    if len(sample) > parsed.analysed:
        raise ValueError("more sampled series than series analysed")
    return parsed


#: LRANGE of one page in which every element longer than ARGV[3] bytes is replaced by nil, so that a
#: hostile element is never sent (a Redis string may be 512 MB).
_PAGE_SCRIPT = """
local items = redis.call('LRANGE', KEYS[1], ARGV[1], ARGV[2])
for i = 1, #items do
  if string.len(items[i]) > tonumber(ARGV[3]) then items[i] = false end
end
return items
"""


def _stored(conn: Any, limit: int) -> Iterator[Any]:
    """The list's elements, newest first, at most ``limit`` of them, a page at a time; None stands for an
    element longer than :data:`MAX_RECORD_BYTES`."""
    for start in range(0, limit, PAGE):
        page = conn.eval(_PAGE_SCRIPT, 1, keys.ANALYZER_TUNE, start, min(start + PAGE, limit) - 1, MAX_RECORD_BYTES)
        yield from page
        if len(page) < PAGE:
            return


def read_history(conn: Any, algorithms: Sequence[str], runs: int, limit: int) -> History:
    """The records of the newest ``runs`` runs whose algorithms are the set ``algorithms``.

    At most ``limit`` (and :data:`MAX_RECORDS`) list elements are read. Redis errors propagate.
    """
    history = History()
    wanted, seen_runs = set(algorithms), set()
    for raw in _stored(conn, min(limit, MAX_RECORDS)):
        history.read += 1
        try:
            if raw is None:
                raise ValueError(f"longer than {MAX_RECORD_BYTES} bytes")
            record = parse_record(raw)
        except ValueError as exc:
            reason = str(exc)
            if not history.skipped[reason]:
                log.warning("tune :: skipping a record of %s: %s", keys.ANALYZER_TUNE, escape(reason))
            history.skipped[reason] += 1
            continue
        if set(record.algorithms) != wanted:
            history.other_algorithms += 1
            continue
        if record.run not in seen_runs:
            if len(seen_runs) >= runs:
                break
            seen_runs.add(record.run)
        history.records.append(record)
    return history
