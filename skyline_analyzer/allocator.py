"""glibc allocator tuning for processes that run the fast engine (a process-wide effect, so the process's
entry point asks for it: the Analyzer's workers, the ``check`` command, the benchmarks)."""

from __future__ import annotations

import ctypes

#: glibc ``mallopt`` parameters (malloc.h) and the values set.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 32 << 20
_TRIM_THRESHOLD = 128 << 20


def tune_allocator() -> None:
    """Let glibc reuse freed block-sized buffers instead of mapping fresh, zeroed pages for each one.

    A fast-engine block's arrays and temporaries are a few MB; glibc serves such requests with ``mmap`` and
    returns them on ``free``, so every temporary costs page faults, which measured as the largest single
    cost of a batch (a fresh 2-D array costs 3-6x the arithmetic done on it). Raising the mmap and trim
    thresholds keeps that memory in the heap for reuse. Idempotent; a no-op where glibc's ``mallopt`` is
    not available.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
        libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    except (OSError, AttributeError):
        return
