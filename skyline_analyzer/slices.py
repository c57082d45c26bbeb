"""How a list of keys is shared between N processes: the Analyzer's workers and Roomba's vacuums alike."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def assigned_slice(items: Sequence[T], i: int, processes: int) -> Sequence[T]:
    """Process ``i``'s (1-based) share: ``ceil(len/processes)`` items each, the last taking the remainder.

    v1.2.8's slicing (docs/run.md#step-10-spawn-the-workers): ``lo = (i-1)*per``, ``hi = min(len, i*per)``
    except for the last process. Every item is assigned once; trailing processes may get nothing.
    """
    count = len(items)
    per = math.ceil(count / processes)
    hi = count if i == processes else min(count, i * per)
    return items[(i - 1) * per : hi]
