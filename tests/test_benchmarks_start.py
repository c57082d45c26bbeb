"""Every benchmark with a command line starts: its imports of the package and of its sibling benchmarks hold.

Benchmarks are not run by the suite (they take minutes and measure speed); this catches the breakage a
refactoring of one benchmark causes in another that imports it, which otherwise shows only when someone
next runs it.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support import REPO

COMMANDS = sorted(path for path in (REPO / "benchmarks").glob("*.py") if "argparse" in path.read_text())


@pytest.mark.parametrize("path", COMMANDS, ids=[path.name for path in COMMANDS])
def test_the_benchmark_starts(path) -> None:
    done = subprocess.run([sys.executable, str(path), "--help"], capture_output=True, text=True, timeout=120,
                          cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("usage:")
