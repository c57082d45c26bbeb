"""Query-string parameters, checked: a missing, repeated or malformed one is a 400 with a clear message.

The query string's length is bounded before it is parsed (:mod:`skyline_analyzer.webapp.guard`).
"""

from __future__ import annotations

import math

from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException

#: Most points a downsampled series may ask for.
MAX_POINTS = 10000


def text(params: QueryParams, name: str, *, required: bool = True) -> str | None:
    """A parameter given at most once, free of control characters."""
    values = params.getlist(name)
    if len(values) > 1:
        raise HTTPException(400, f"'{name}' is given {len(values)} times: give it once")
    if not values or values[0] == "":
        if required:
            raise HTTPException(400, f"'{name}' is required")
        return None
    value = values[0]
    if not value.isprintable():
        raise HTTPException(400, f"'{name}' contains control characters")
    return value


def integer(params: QueryParams, name: str, low: int, high: int) -> int | None:
    """An optional whole number from ``low`` to ``high``."""
    value = text(params, name, required=False)
    if value is None:
        return None
    if not (value.isdigit() and len(value) <= 9) or not low <= int(value) <= high:
        raise HTTPException(400, f"'{name}' must be a whole number from {low} to {high}")
    return int(value)


def number(params: QueryParams, name: str) -> float | None:
    """An optional finite number (an epoch time)."""
    value = text(params, name, required=False)
    if value is None:
        return None
    try:
        parsed = float(value) if len(value) <= 32 else math.nan
    except ValueError:
        parsed = math.nan
    if not math.isfinite(parsed):
        raise HTTPException(400, f"'{name}' must be a finite number")
    return parsed
