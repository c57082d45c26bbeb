"""The bytes ``check`` reads: a file or standard input (``-``), gunzipped when it starts with the gzip magic,
decoded as UTF-8 (a leading BOM is dropped), newlines normalised to ``\\n``.

:class:`Source` is read in pieces of a bounded size (:meth:`Source.read`), counts the bytes taken from the
file (compressed bytes for gzip, so the progress bar can compare them with the file size) and turns every
decoding failure into a :class:`SeriesFormatError` naming the input.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import sys
import zlib
from pathlib import Path
from typing import Any, BinaryIO

from skyline_analyzer.exceptions import SeriesFormatError

_GZIP_MAGIC = b"\x1f\x8b"
#: What ``-`` is called in messages.
STDIN_LABEL = "<stdin>"
_DECODE_ERRORS = (OSError, EOFError, zlib.error, UnicodeDecodeError)


class _CountingReader(io.RawIOBase):
    """The raw input, with bytes already peeked served first and every byte handed out counted."""

    def __init__(self, raw: BinaryIO, head: bytes) -> None:
        self._raw = raw
        self._head = head
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            size = min(len(buffer), len(self._head))
            buffer[:size] = self._head[:size]
            self._head = self._head[size:]
        else:
            data = self._raw.read(len(buffer))
            size = len(data)
            buffer[:size] = data
        self.count += size
        return size


class Source:
    """Decoded text of one input, read in bounded pieces; see the module docstring."""

    def __init__(self, raw: BinaryIO, label: str, size: int | None) -> None:
        self.label = label
        #: Bytes in the input file when known (a regular file), for a progress bar's total.
        self.size = size
        self._raw = raw
        head = raw.read(len(_GZIP_MAGIC))
        self._counter = _CountingReader(raw, head)
        buffered: io.BufferedIOBase = io.BufferedReader(self._counter, buffer_size=1 << 16)
        self.compressed = head == _GZIP_MAGIC
        if self.compressed:
            buffered = gzip.GzipFile(fileobj=buffered, mode="rb")
        self._text = io.TextIOWrapper(buffered, encoding="utf-8-sig", errors="strict")
        self._pushed = ""

    @property
    def bytes_read(self) -> int:
        """Bytes taken from the file so far (read ahead into buffers included)."""
        return self._counter.count

    def read(self, size: int) -> str:
        """Up to ``size`` characters; ``""`` at the end of the input."""
        if self._pushed:
            text, self._pushed = self._pushed[:size], self._pushed[size:]
            return text
        try:
            return self._text.read(size)
        except _DECODE_ERRORS as exc:
            raise self._decoding_error(exc) from None

    def unread(self, text: str) -> None:
        """Put ``text`` back in front of what is left (format detection looks ahead)."""
        self._pushed = text + self._pushed

    def close(self) -> None:
        self._text.close()
        self._raw.close()

    def _decoding_error(self, exc: BaseException) -> SeriesFormatError:
        if isinstance(exc, UnicodeDecodeError):
            what = "not UTF-8 text"
        elif self.compressed:
            what = f"corrupt gzip ({type(exc).__name__}: {exc})"
        else:
            what = f"cannot be read ({type(exc).__name__}: {exc})"
        return SeriesFormatError(f"{self.label}: {what}, near byte {self._counter.count} of the file")


def open_source(name: str) -> Source:
    """The input ``name``: a path, or ``-`` for standard input. Raises OSError when it cannot be opened."""
    if name == "-":
        return Source(sys.stdin.buffer, STDIN_LABEL, None)
    path = Path(name)
    raw = path.open("rb")
    try:
        status = os.fstat(raw.fileno())
        return Source(raw, str(path), status.st_size if stat.S_ISREG(status.st_mode) else None)
    except OSError:
        raw.close()
        raise
