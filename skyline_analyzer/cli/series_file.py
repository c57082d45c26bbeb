"""Reading series for ad-hoc analysis: a JSON object of series (optionally gzipped) or a one-series CSV.

JSON: ``{"name": [[timestamp, value], ...], ...}``. CSV: ``timestamp,value`` lines, an optional header,
the series named after the file. Every malformed input raises :class:`SeriesFormatError` naming the
series and the position: bad JSON, a non-pair, a non-numeric or non-finite number, a timestamp that
does not increase (unsorted or duplicate).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path

from skyline_analyzer.detection.series import Series, check_ordered
from skyline_analyzer.exceptions import SeriesFormatError

_GZIP_MAGIC = b"\x1f\x8b"


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    if raw.startswith(_GZIP_MAGIC):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise SeriesFormatError(f"{path}: corrupt gzip: {exc}") from exc
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SeriesFormatError(f"{path}: not UTF-8 text at byte {exc.start}") from exc


def _parse_number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


def _read_csv(path: Path, text: str) -> dict[str, Series]:
    name = path.name.split(".")[0]
    pairs = []
    for line_number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != 2:
            raise SeriesFormatError(f"{name}: line {line_number}: expected 'timestamp,value', got {row!r}")
        try:
            pairs.append([_parse_number(row[0].strip()), _parse_number(row[1].strip())])
        except ValueError:
            if not pairs and line_number == 1:
                continue  # a header line
            raise SeriesFormatError(f"{name}: line {line_number}: non-numeric datapoint {row!r}") from None
    return {name: _series(name, pairs)}


def _series(name: str, pairs: object) -> Series:
    if not isinstance(pairs, list):
        raise SeriesFormatError(f"{name}: expected a list of [timestamp, value] pairs, got {type(pairs).__name__}")
    series = Series.from_pairs(pairs, name)
    check_ordered(name, series.timestamps)
    return series


def read_series_file(path: Path) -> dict[str, Series]:
    """Every series in the file, by name, validated."""
    text = _read_text(path)
    if text.lstrip()[:1] not in ("{", "["):
        return _read_csv(path, text)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SeriesFormatError(f"{path}: bad JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    if not isinstance(document, dict):
        raise SeriesFormatError(f"{path}: expected a JSON object of series")
    return {str(name): _series(str(name), pairs) for name, pairs in document.items()}
