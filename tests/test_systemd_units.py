"""The systemd units (docs/install.md#systemd): rated below 4.0 by ``systemd-analyze security``, accepted by
``systemd-analyze verify``; and what a unit relies on from the daemon: journald-friendly stderr, ``STATUS=``
after each run, the numerical stack working without writable-and-executable memory."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from skyline_analyzer import synthetic
from skyline_analyzer.harness import seed_redis, stop
from tests.support import CLI, NO_ALERTS, REPO, SCRIPT, NotifyReceiver, settings_env, wait_until

UNITS = sorted((REPO / "etc" / "systemd").glob("*.service"))
#: The exposure score the issue asks each unit to stay below (0 = fully locked down, 10 = unprotected).
MAX_EXPOSURE = 4.0
#: prctl(2) PR_SET_MDWE with PR_MDWE_REFUSE_EXEC_GAIN: the kernel's MemoryDenyWriteExecute (Linux 6.3+).
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
#: Runs argv[1:] with writable-and-executable memory refused, as MemoryDenyWriteExecute=yes does.
MDWE_WRAPPER = f"""
import ctypes, os, sys
if ctypes.CDLL(None, use_errno=True).prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) != 0:
    sys.exit(f"PR_SET_MDWE failed: errno {{ctypes.get_errno()}}")
os.execv(sys.argv[1], sys.argv[1:])
"""
ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


def test_every_daemon_has_a_unit() -> None:
    assert [unit.stem for unit in UNITS] == ["analyzer", "dask-scheduler", "dask-worker", "horizon", "webapp"]


@needs_systemd_analyze
@pytest.mark.parametrize("unit", UNITS, ids=lambda unit: unit.name)
def test_security_exposure_is_below_four(unit: Path) -> None:
    result = subprocess.run([ANALYZE, "security", "--offline=true", "--no-pager", str(unit)],
                            capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match is not None, result.stdout[-2000:] + result.stderr
    assert float(match.group(1)) < MAX_EXPOSURE, result.stdout


@needs_systemd_analyze
def test_units_verify(tmp_path: Path) -> None:
    """``systemd-analyze verify`` on copies whose ExecStart is this checkout's console script (verify
    requires the program to exist); every other line of the units is checked as shipped."""
    copies = []
    for unit in UNITS:
        text = unit.read_text()
        # The Dask units run the venv's interpreter (docs/scale-out.md#deploy), the others its console script.
        assert re.search(r"^ExecStart=/opt/skyline-analyzer/\.venv/bin/(skyline-analyzer|python -m dask) ", text,
                         re.MULTILINE)
        copy = tmp_path / unit.name
        copy.write_text(text.replace("/opt/skyline-analyzer/.venv/bin/skyline-analyzer", str(SCRIPT))
                        .replace("/opt/skyline-analyzer/.venv/bin/python", sys.executable))
        copies.append(copy)
    result = subprocess.run([ANALYZE, "verify", "--no-pager", *map(str, copies)],
                            capture_output=True, text=True, timeout=120)
    about_ours = [line for line in (result.stdout + result.stderr).splitlines() if str(tmp_path) in line]
    assert result.returncode == 0 and about_ours == [], result.stdout + result.stderr


def _mdwe_supported() -> bool:
    """Whether this kernel has PR_SET_MDWE (checked in a child: the setting cannot be undone)."""
    probe = "import ctypes, sys; sys.exit(ctypes.CDLL(None).prctl(66, 0, 0, 0, 0) < 0)"  # PR_GET_MDWE
    return subprocess.run([sys.executable, "-c", probe], timeout=30).returncode == 0


@pytest.fixture
def seeded(redis_conn: redis.Redis) -> dict:
    metrics = synthetic.make_metrics(12, int(time.time()), anomalous=2, points=300)
    seed_redis(redis_conn, metrics, "metrics.")
    return metrics


def test_run_under_the_journal_logs_to_stderr_and_reports_its_status(
        make_settings: Callable[..., Path], seeded: dict, tmp_path: Path) -> None:
    """Under a unit: stderr is the journal stream (JOURNAL_STREAM names it), so records go there with a
    priority and no time stamp, the log file is not created, and STATUS= carries the run's figures.
    The run happens without writable-and-executable memory, as MemoryDenyWriteExecute=yes imposes."""
    if not _mdwe_supported():
        pytest.skip("the kernel has no PR_SET_MDWE")
    settings_path = make_settings(**NO_ALERTS, ANALYZER_PROCESSES=2)
    stderr_path = tmp_path / "journal"
    with stderr_path.open("w") as stderr, NotifyReceiver() as notify:
        stat = os.fstat(stderr.fileno())
        env = settings_env(settings_path, NOTIFY_SOCKET=notify.path, JOURNAL_STREAM=f"{stat.st_dev}:{stat.st_ino}")
        env.pop("SKYLINE_SETTINGS")
        result = subprocess.run(
            [sys.executable, "-c", MDWE_WRAPPER, sys.executable, *CLI[1:], "run", "--max-runs", "1",
             "--settings", str(settings_path)],
            env=env, stdout=subprocess.PIPE, stderr=stderr, text=True, timeout=120)
        statuses = [m for m in notify.messages() if m.startswith("STATUS=")]
    journal = stderr_path.read_text()
    assert result.returncode == 0, journal
    assert "<6>" in journal
    lines = journal.splitlines()
    assert lines and all(re.match(r"<[2-7]>\d+ :: |    \| ", line) for line in lines), journal
    assert f"analyzer :: settings from {settings_path}" in journal
    assert not (tmp_path / "log" / "analyzer.log").exists()
    assert len(statuses) == 1
    assert re.fullmatch(r"STATUS=last run: 12 metrics, 2 anomalies, \d+\.\d\d s", statuses[0]), statuses


def test_matplotlib_renders_without_writable_executable_memory(tmp_path: Path) -> None:
    """The alert plot's stack (matplotlib's Agg backend) under MemoryDenyWriteExecute's kernel equivalent."""
    if not _mdwe_supported():
        pytest.skip("the kernel has no PR_SET_MDWE")
    script = ("import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt\n"
              f"plt.plot([1, 3, 2]); plt.savefig({str(tmp_path / 'plot.png')!r})\n")
    result = subprocess.run([sys.executable, "-c", MDWE_WRAPPER, sys.executable, "-c", script],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "plot.png").read_bytes().startswith(b"\x89PNG")


def test_log_to_stderr_shows_an_unreachable_redis(make_settings: Callable[..., Path], tmp_path: Path) -> None:
    """``--log-to stderr`` outside systemd: no time stamp, no priority; a Redis that cannot be reached is
    said at once, and the log file is not created."""
    settings_path = make_settings(REDIS_SOCKET_PATH=str(tmp_path / "nothing.sock"))
    env = settings_env(settings_path)
    env.pop("JOURNAL_STREAM", None)
    stderr_path = tmp_path / "stderr"
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen([*CLI, "run", "--log-to", "stderr"], env=env, stderr=stderr,
                                   stdout=subprocess.DEVNULL)
        try:
            assert wait_until(lambda: "Redis is not answering" in stderr_path.read_text(), 60)
        finally:
            stop(process, 30)
    lines = stderr_path.read_text().splitlines()
    assert any(re.fullmatch(rf"{process.pid} :: error :: Redis is not answering; reconnecting in .*", line)
               for line in lines), lines
    assert not (tmp_path / "log" / "analyzer.log").exists()


def test_mdwe_wrapper_really_refuses(tmp_path: Path) -> None:
    """The wrapper the two tests above rely on does impose the restriction (else they prove nothing)."""
    if not _mdwe_supported():
        pytest.skip("the kernel has no PR_SET_MDWE")
    probe = ("import mmap\nmmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)\n")
    assert subprocess.run([sys.executable, "-c", probe], timeout=30).returncode == 0
    refused = subprocess.run([sys.executable, "-c", MDWE_WRAPPER, sys.executable, "-c", probe],
                             capture_output=True, text=True, timeout=30)
    assert refused.returncode != 0 and "PermissionError" in refused.stderr
