"""The sdist: the whole package and the operator's files, and no test suite (see MANIFEST.in for why)."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path, PurePosixPath

from tests.support import REPO

#: Repository folders the sdist must leave out whole: they only work from a clone.
LEFT_OUT = ("tests", "benchmarks", "examples")


def build_sdist(outdir: Path) -> set[str]:
    """Build the sdist and return its members, without the top folder.

    With the installed backend (no network); ``build`` checks it meets ``build-system.requires`` (the test
    extras install it), because older setuptools leave ``tests/`` out by themselves.
    """
    subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", str(outdir), str(REPO)],
        check=True, capture_output=True, text=True, timeout=120,
    )
    (archive,) = outdir.glob("*.tar.gz")
    with tarfile.open(archive) as tar:
        return {str(PurePosixPath(*PurePosixPath(m.name).parts[1:])) for m in tar.getmembers() if m.isfile()}


def test_sdist_ships_the_package_and_the_operator_files_but_no_tests(tmp_path: Path) -> None:
    members = build_sdist(tmp_path)

    package = {str(path.relative_to(REPO)) for path in (REPO / "skyline_analyzer").rglob("*.py")
               if "__pycache__" not in path.parts}
    assert package - members == set(), "every module of the package (a sub-package needs its __init__.py)"

    operator = {"README.md", "pyproject.toml", "settings.py", "bin/analyzer.d", "bin/horizon.d",
                "etc/systemd/analyzer.service", "etc/systemd/horizon.service"}
    docs = {str(path.relative_to(REPO)) for path in (REPO / "docs").glob("*.md")}
    assert (operator | docs) - members == set()

    shipped_from_left_out = sorted(m for m in members if m.split("/", 1)[0] in LEFT_OUT)
    assert shipped_from_left_out == []
