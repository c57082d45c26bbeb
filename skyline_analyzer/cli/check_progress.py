"""The progress bar of ``check`` on stderr: bytes of the input read (of the file's size when known) and
series analysed, updated after each chunk.

Shown when asked for (``--progress``), or by default when stderr is a terminal, and then only once the
run has lasted :data:`AUTO_DELAY` seconds, so a small input prints nothing but its summary.
"""

from __future__ import annotations

import os
import sys
from types import TracebackType

from tqdm import tqdm

from skyline_analyzer.cli.series_input import Source

#: Seconds a run lasts before the default bar appears.
AUTO_DELAY = 1.0
#: Columns and lines assumed when stderr does not tell its size.
DEFAULT_SIZE = (80, 24)


class Progress:
    """A context manager around an optional tqdm bar; :meth:`update` is a no-op when it is off."""

    def __init__(self, source: Source, bar: tqdm | None) -> None:
        self._source = source
        self._bar = bar

    @classmethod
    def for_stream(cls, source: Source, wanted: bool | None) -> Progress:
        """A bar for ``source``: ``wanted`` True or False decides, None means when stderr is a terminal."""
        if wanted is False or (wanted is None and not sys.stderr.isatty()):
            return cls(source, None)
        try:
            size = os.get_terminal_size(sys.stderr.fileno())
        except OSError:
            size = os.terminal_size((0, 0))
        # tqdm shows nothing on a terminal that reports no size (a bare pseudo-terminal): give it one.
        shape = {} if size.columns and size.lines else {"ncols": DEFAULT_SIZE[0], "nrows": DEFAULT_SIZE[1]}
        bar = tqdm(total=source.size, unit="B", unit_scale=True, unit_divisor=1024, desc="check", file=sys.stderr,
                   delay=0 if wanted else AUTO_DELAY, leave=True, **shape)
        return cls(source, bar)

    def update(self, series: int) -> None:
        """``series`` series are analysed so far."""
        if self._bar is None:
            return
        self._bar.set_postfix_str(f"{series} series", refresh=False)
        self._bar.update(self._source.bytes_read - self._bar.n)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.close()
