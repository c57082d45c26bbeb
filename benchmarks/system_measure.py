"""What ``benchmarks/system.py`` measures, and how: CPU and memory per component from /proc, the daemons' logs,
the series' bytes and the exact count of what Redis holds.

CPU seconds of a component are those of its process tree: a process's own user + system time, plus, for a
parent, what its reaped children used (``cutime``/``cstime``). That is how a fork-per-pass or fork-per-run
child (Roomba's vacuum processes, the Analyzer's workers) is still counted once it has exited. Memory is
the proportional set size (``Pss`` of ``/proc/<pid>/smaps_rollup``) summed over the tree, so pages a fork
shares with its parent are not counted twice.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

TICK = os.sysconf("SC_CLK_TCK")
#: The record Horizon APPENDs for an integer timestamp below 2**32 and a float value:
#: ``packb((ts, value))`` is fixarray(2), uint32, float64. Roomba rewrites the same bytes per datapoint.
RECORD = np.dtype([("array", "u1"), ("ts_type", "u1"), ("ts", ">u4"), ("value_type", "u1"), ("value", ">f8")])


def encode_block(timestamps: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Rows of records: row ``i`` is, byte for byte, what Horizon's APPENDs of series ``i`` leave in Redis."""
    records = np.empty(values.shape, dtype=RECORD)
    records["array"], records["ts_type"], records["value_type"] = 0x92, 0xCE, 0xCB
    records["ts"] = np.broadcast_to(timestamps.astype(np.uint32), values.shape)
    records["value"] = values
    return records


def timestamps_of(raw: bytes) -> np.ndarray | None:
    """The timestamps of a value made only of :data:`RECORD` s, in stored order; None for anything else."""
    if len(raw) % RECORD.itemsize:
        return None
    records = np.frombuffer(raw, dtype=RECORD)
    if not (np.all(records["array"] == 0x92) and np.all(records["ts_type"] == 0xCE)
            and np.all(records["value_type"] == 0xCB)):
        return None
    return records["ts"].astype(np.int64)


# --- /proc -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stat:
    """The fields of ``/proc/<pid>/stat`` used here; times in seconds."""

    pid: int
    ppid: int
    own: float
    children: float
    started: float


def read_stat(pid: int | str) -> Stat | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may itself hold spaces or parentheses.
    fields = text[text.rindex(")") + 2:].split()
    return Stat(int(pid), int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK,
                (int(fields[13]) + int(fields[14])) / TICK, int(fields[19]) / TICK)


def all_stats() -> dict[int, Stat]:
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := read_stat(entry)) is not None:
            stats[stat.pid] = stat
    return stats


def descendants(root: int, stats: dict[int, Stat]) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in stats.values():
        children.setdefault(stat.ppid, []).append(stat.pid)
    found, stack = [], list(children.get(root, []))
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def pss_mib(pids: Iterable[int]) -> float:
    total = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        match = re.search(r"^Pss:\s+(\d+) kB", text, re.MULTILINE)
        total += int(match.group(1)) if match else 0
    return total / 1024


@dataclass
class Components:
    """The pids of the parts of the system; ``ingest`` are Horizon's listeners and workers."""

    redis: int
    horizon: int
    analyzer: int
    sender: int
    ingest: set[int] = field(default_factory=set)

    def sample(self) -> tuple[dict[str, float], dict[str, float], float]:
        """CPU seconds so far and PSS in MiB now, per component (see the module's notes), and the age of
        the oldest vacuum process (0 when Roomba is between passes)."""
        horizon = read_stat(self.horizon)
        analyzer = read_stat(self.analyzer)
        stats = all_stats()
        horizon_tree = descendants(self.horizon, stats)
        vacuums = [pid for pid in horizon_tree if pid not in self.ingest]
        analyzer_tree = descendants(self.analyzer, stats)

        def own(pid: int) -> float:
            return stats[pid].own if pid in stats else 0.0

        def whole(pid: int) -> float:
            return stats[pid].own + stats[pid].children if pid in stats else 0.0

        cpu = {
            "horizon": (horizon.own if horizon else 0.0) + sum(own(pid) for pid in self.ingest),
            # Reaped vacuum processes are in the agent's children time: nothing else it starts exits.
            "roomba": (horizon.children if horizon else 0.0) + sum(whole(pid) for pid in vacuums),
            "analyzer": (analyzer.own + analyzer.children if analyzer else 0.0)
                        + sum(whole(pid) for pid in analyzer_tree),
            "redis": own(self.redis),
            "sender": own(self.sender),
            "bench": own(os.getpid()),
        }
        rss = {
            "horizon": pss_mib([self.horizon, *self.ingest]),
            "roomba": pss_mib(vacuums),
            "analyzer": pss_mib([self.analyzer, *analyzer_tree]),
            "redis": pss_mib([self.redis]),
            "sender": pss_mib([self.sender]),
            "bench": pss_mib([os.getpid()]),
        }
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        pass_age = max((uptime - stats[pid].started for pid in vacuums if pid in stats), default=0.0)
        return cpu, rss, pass_age


# --- the daemons' logs -------------------------------------------------------------------------------------

_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(?:,(\d{3}))? :: (\d+) :: (.*)$")
_VACUUM = re.compile(r"horizon\.roomba :: vacuum \d+ of \S+: operated on (\d+) keys of (\d+) in ([\d.]+)s")


def log_lines(path: Path) -> list[tuple[float, int, str]]:
    """``(epoch seconds, pid, message)`` per line of a daemon log (asctime is local time)."""
    if not path.exists():
        return []
    lines = []
    for line in path.read_text(errors="replace").splitlines():
        if match := _LINE.match(line):
            stamp = time.mktime(datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").timetuple())
            lines.append((stamp + int(match.group(2) or 0) / 1000, int(match.group(3)), match.group(4)))
    return lines


@dataclass(frozen=True)
class Span:
    """A finished Analyzer run or Roomba pass: when it ended and how long it took (``killed``: timed out)."""

    end: float
    seconds: float
    detail: str = ""
    killed: bool = False


def analyzer_runs(path: Path) -> list[Span]:
    """Every run's ``seconds to run``, with the ``total unprocessed`` logged just after it."""
    runs: list[Span] = []
    for stamp, _, message in log_lines(path):
        if message.startswith("seconds to run"):
            runs.append(Span(stamp, float(message.rsplit("::", 1)[1])))
        elif message.startswith("total unprocessed") and runs:
            runs[-1] = Span(runs[-1].end, runs[-1].seconds, f"unprocessed {message.rsplit('::', 1)[1].strip()}")
    return runs


def roomba_passes(path: Path, timeout: float) -> list[Span]:
    """Passes from the vacuum processes' summary lines: those starting within 5 s of each other are one pass."""
    vacuums = []
    passes = []
    for stamp, _, message in log_lines(path):
        if match := _VACUUM.search(message):
            vacuums.append((stamp - float(match.group(3)), stamp, int(match.group(1))))
        elif "horizon.roomba :: timed out" in message:
            passes.append(Span(stamp, timeout, "killed", killed=True))
    vacuums.sort()
    group: list[tuple[float, float, int]] = []
    for vacuum in [*vacuums, None]:
        if group and (vacuum is None or vacuum[0] - group[0][0] > 5):
            start, end = min(v[0] for v in group), max(v[1] for v in group)
            passes.append(Span(end, end - start, f"{sum(v[2] for v in group)} keys"))
            group = []
        if vacuum is not None:
            group.append(vacuum)
    return sorted(passes, key=lambda span: span.end)


def ingest_pids(path: Path) -> set[int]:
    """Horizon's listeners and workers, from their start-up lines."""
    return {pid for _, pid, message in log_lines(path)
            if "listener serving" in message or re.search(r"horizon\.worker :: worker \d+ started", message)}


def horizon_counters(path: Path) -> dict[str, float]:
    """Every counter of Horizon's reports, summed."""
    totals: dict[str, float] = {}
    for _, _, message in log_lines(path):
        if message.startswith("horizon :: listen."):
            for name, value in re.findall(r"([a-z_.]+) ([0-9.]+)", message.split(" :: ", 1)[1]):
                totals[name] = totals.get(name, 0) + float(value)
    return totals


# --- what Redis holds ----------------------------------------------------------------------------------


@dataclass
class Holdings:
    """The exact count over every key: live datapoints found per minute, and what else was found."""

    live_found: np.ndarray
    backfill_expected: int = 0
    backfill_missing: int = 0
    duplicates: int = 0
    missing_keys: int = 0
    other_format: int = 0


def count_holdings(conn, full_keys: Sequence[str], live: np.ndarray, backfill: np.ndarray,
                   step: int, chunk: int = 500) -> Holdings:
    """Read every key (MGET in chunks) and count, exactly, which datapoints it holds.

    ``live`` are the timestamps of the minutes sent through Horizon, ``backfill`` those seeded that Roomba
    must still keep (inside ``FULL_DURATION``, well within its window); both are ``step`` apart. Each
    timestamp held becomes a slot of a keys x slots table, so a chunk of keys is counted in a few numpy
    operations. A value in another format (none is expected: the sender sends integer timestamps and float
    values) is counted and its datapoints as absent.
    """
    held = Holdings(live_found=np.zeros(len(live), dtype=np.int64))
    base = int(min(backfill.min(initial=live.min()), live.min()))
    slots = (int(live.max()) - base) // step + 1
    live_slots, kept_slots = (live - base) // step, (backfill - base) // step
    for start in range(0, len(full_keys), chunk):
        values = conn.mget(full_keys[start:start + chunk])
        stamps, rows = [], []
        for row, raw in enumerate(values):
            found = timestamps_of(raw) if raw is not None else None
            held.missing_keys += raw is None
            held.other_format += raw is not None and found is None
            if found is not None:
                stamps.append(found)
                rows.append(np.full(len(found), row))
        present = np.zeros((len(values), slots), dtype=bool)
        if stamps:
            ts, row = np.concatenate(stamps), np.concatenate(rows)
            inside = (ts >= base) & (ts <= int(live.max())) & ((ts - base) % step == 0)
            present[row[inside], (ts[inside] - base) // step] = True
            held.duplicates += int(np.count_nonzero(inside)) - int(present.sum())
        held.live_found += present[:, live_slots].sum(axis=0)
        held.backfill_expected += len(values) * len(kept_slots)
        held.backfill_missing += int(np.count_nonzero(~present[:, kept_slots]))
    return held
