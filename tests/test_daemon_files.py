"""The daemons' own files: a bad ``LOG_PATH`` stops start-up with one message, ``SKYLINE_TMP_DIR`` is private
and no symbolic link in it is ever followed. Real processes, real directories, real links."""

from __future__ import annotations

import ast
import os
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from skyline_analyzer import synthetic, tmpdir
from skyline_analyzer.analyzer.run_metrics import (
    count_path,
    error_path,
    record_algorithm_error,
    take_algorithm_errors,
    timings_path,
)
from skyline_analyzer.defaults import DEFAULTS
from skyline_analyzer.exceptions import UnsafeDirectoryError
from skyline_analyzer.harness import free_ports, seed_redis
from tests.support import NO_ALERTS, REPO, SCRIPT, settings_env

#: Root without the capabilities that let it write anywhere: a read-only directory is read-only for it too.
WITHOUT_DAC_OVERRIDE = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]


def command_settings(make_settings, command: str, **overrides) -> Path:
    if command == "horizon":
        overrides = {"HORIZON_IP": "127.0.0.1", **free_ports(), **overrides}
    return make_settings(**NO_ALERTS, **overrides)


def start(settings: Path, command: str, prefix: list[str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*(prefix or []), str(SCRIPT), command], env=settings_env(settings),
                          capture_output=True, text=True, timeout=60)


# --- LOG_PATH -----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["run", "horizon"])
@pytest.mark.parametrize(("case", "problem"), [
    ("missing", "does not exist"),
    ("a file", "must be a directory (it names an existing file)"),
    ("under a file", "must be creatable"),
    ("read-only", "is not writable"),
])
def test_a_bad_log_path_is_one_message_naming_it(make_settings, command, case, problem):
    # A short directory: the message quotes the path within a bound, and pytest's own temporary paths
    # (longer under xdist) could exceed it.
    tmp_path = Path(tempfile.mkdtemp(prefix="lp", dir="/tmp"))
    try:
        _check_bad_log_path(make_settings, tmp_path, command, case, problem)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def _check_bad_log_path(make_settings, tmp_path, command, case, problem):
    prefix = []
    log_path = tmp_path / "logs"
    if case == "a file":
        log_path.write_text("not a directory\n")
    elif case == "under a file":
        (tmp_path / "file").write_text("")
        log_path = tmp_path / "file" / "logs"
    elif case == "read-only":
        if shutil.which("setpriv") is None:
            pytest.skip("setpriv (util-linux) is needed to drop root's DAC override")
        log_path.mkdir(mode=0o555)
        log_path.chmod(0o555)
        prefix = WITHOUT_DAC_OVERRIDE
    done = start(command_settings(make_settings, command, LOG_PATH=str(log_path)), command, prefix)
    assert done.returncode == 1, done.stdout + done.stderr
    # A path the settings checks can judge (an existing file) is refused with them, the rest at start-up:
    # either way one line names LOG_PATH, the path and the problem.
    [line] = [line for line in done.stderr.splitlines() if "LOG_PATH" in line]
    assert str(log_path) in line and problem in line
    assert "Traceback" not in done.stdout + done.stderr
    if case == "read-only":
        assert list(log_path.iterdir()) == []


# --- SKYLINE_TMP_DIR ----------------------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_the_tmp_dir_is_created_0700_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        tmpdir.ensure_private(tmp_path / "parent" / "tmp")
    finally:
        os.umask(old)
    assert mode(tmp_path / "parent" / "tmp") == 0o700
    assert (tmp_path / "parent").is_dir()


def test_an_existing_tmp_dir_of_ours_readable_by_others_is_made_0700(tmp_path):
    path = tmp_path / "tmp"
    path.mkdir()
    path.chmod(0o755)
    tmpdir.ensure_private(path)
    assert mode(path) == 0o700


@pytest.mark.parametrize(("setup", "message"), [
    (lambda p: (p.mkdir(), p.chmod(0o770)), "can be written by its group or by others (mode 0770)"),
    (lambda p: (p.mkdir(), p.chmod(0o1777)), "can be written by its group or by others (mode 1777)"),
    (lambda p: (p.mkdir(mode=0o700), os.chown(p, 65534, 65534)), "is owned by uid 65534, not by this daemon's uid"),
    (lambda p: ((p.parent / "real").mkdir(mode=0o700), p.symlink_to(p.parent / "real")), "is a symbolic link"),
    (lambda p: p.write_text(""), "is not a directory"),
])
def test_a_tmp_dir_that_is_not_private_is_refused(tmp_path, setup, message):
    path = tmp_path / "tmp"
    setup(path)
    before = os.lstat(path)
    with pytest.raises(UnsafeDirectoryError, match="SKYLINE_TMP_DIR") as caught:
        tmpdir.ensure_private(path)
    assert message in str(caught.value) and str(path) in str(caught.value)
    assert os.lstat(path).st_mode == before.st_mode and os.lstat(path).st_uid == before.st_uid


@pytest.mark.parametrize(("setup", "message"), [
    (lambda p: p.chmod(0o777), "can be written by its group or by others (mode 0777)"),
    (lambda p: os.chown(p, 65534, 65534), "is owned by uid 65534"),
])
def test_the_analyzer_refuses_to_start_with_a_shared_tmp_dir(make_settings, tmp_path, setup, message):
    settings = make_settings(**NO_ALERTS)
    path = tmp_path / "tmp"
    setup(path)
    done = start(settings, "run")
    assert done.returncode == 1
    assert done.stderr.startswith(f"error :: SKYLINE_TMP_DIR {path} ") and message in done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_a_link_planted_in_the_tmp_dir_is_never_followed(make_settings, redis_conn, tmp_path):
    """Links where the run-metric files belong, to a file outside: a run leaves the target as it was."""
    seed_redis(redis_conn, synthetic.make_metrics(20, int(time.time()), anomalous=1, points=300), "metrics.")
    settings = make_settings(**NO_ALERTS)
    tmp = tmp_path / "tmp"
    target = tmp_path / "precious"
    target.write_text("precious\n")
    planted = [count_path(tmp, "grubbs"), timings_path(tmp, "grubbs"), count_path(tmp, "ks_test")]
    for link in planted:
        link.symlink_to(target)
    done = subprocess.run([str(SCRIPT), "run", "--max-runs", "1"], env=settings_env(settings),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert target.read_text() == "precious\n"
    for link in planted:
        assert stat.S_ISREG(os.lstat(link).st_mode)
    assert count_path(tmp, "grubbs").read_text().count("1\n") > 0
    log = (tmp_path / "log" / "analyzer.log").read_text()
    assert log.count("is not a regular file (a symbolic link?): removing it, not its target") == 3
    assert mode(tmp) == 0o700


def test_algorithm_error_files_are_never_written_or_read_through_a_link(tmp_path):
    tmp = tmp_path / "tmp"
    tmpdir.ensure_private(tmp)
    secret = tmp_path / "secret"
    secret.write_text("do not log me\n")
    error_path(tmp, os.getpid(), "grubbs").symlink_to(secret)
    assert record_algorithm_error(tmp, "grubbs", "Traceback ...") is False
    assert secret.read_text() == "do not log me\n"
    error_path(tmp, 4242, "ks_test").symlink_to(secret)
    os.mkfifo(error_path(tmp, 4243, "ks_test"))
    assert take_algorithm_errors(tmp, [4242, 4243], ["ks_test"]) == []


def test_the_default_tmp_dir_is_not_a_shared_directory():
    [operators] = [ast.literal_eval(node.value) for node in ast.parse((REPO / "settings.py").read_text()).body
                   if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "SKYLINE_TMP_DIR"]
    assert operators == DEFAULTS["SKYLINE_TMP_DIR"]
    path = Path(operators)
    assert path.is_absolute()
    assert not any(path.is_relative_to(shared) for shared in ("/tmp", "/var/tmp", "/dev/shm"))
