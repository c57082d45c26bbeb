"""The wheel stands alone (docs/install.md): built from this checkout, installed into a fresh virtualenv
outside it, and run from an empty directory as an operator would: ``settings init``, edit the Redis path,
``run --max-runs 1`` analyses a seeded Redis and writes its dump where the docs say, ``alert-test`` exits 0
and nothing is written into the installed package.

The fresh virtualenv has no pip of its own and gets the wheel with ``--no-deps``; the dependencies come from
this interpreter's site-packages through a ``.pth`` file (whose own ``.pth`` files, such as the checkout's
editable install, are not processed), so that no network and no download is needed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest
import redis

from skyline_analyzer import synthetic
from skyline_analyzer.harness import seed_redis
from tests.alert_receivers import SmtpReceiver, SyslogReceiver
from tests.redis_server import RedisServer
from tests.support import REPO

#: What the wheel is built from: the package and its metadata (a copy, so that the build writes nothing
#: into the checkout).
WHEEL_SOURCES = ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in", "skyline_analyzer")


def build_wheel(outdir: Path) -> Path:
    source = outdir / "source"
    source.mkdir(parents=True)
    for name in WHEEL_SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, source / name)
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(outdir), str(source)],
                   check=True, capture_output=True, text=True, timeout=120)
    (wheel,) = outdir.glob("*.whl")
    return wheel


def fresh_venv(directory: Path, wheel: Path) -> Path:
    """A virtualenv with the wheel installed and this interpreter's dependencies on a .pth; its bin/."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(directory)], check=True, timeout=60)
    python = directory / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                    "--quiet", "--disable-pip-version-check", str(wheel)], check=True, timeout=120)
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    deps = [path for path in sys.path if path.endswith("site-packages")] + sorted(ours)
    (Path(purelib) / "skyline-test-deps.pth").write_text("".join(f"{path}\n" for path in dict.fromkeys(deps)))
    return directory / "bin"


def files_under(directory: Path) -> set[Path]:
    return {path for path in directory.rglob("*") if "__pycache__" not in path.parts}


@pytest.mark.slow
def test_the_wheel_installed_in_a_fresh_venv_runs_from_an_empty_directory(
        tmp_path: Path, redis_server: RedisServer, redis_conn: redis.Redis) -> None:
    started = time.monotonic()
    venv_bin = fresh_venv(tmp_path / "venv", build_wheel(tmp_path / "dist"))
    program = str(venv_bin / "skyline-analyzer")
    work = tmp_path / "empty"
    work.mkdir()
    env = {key: value for key, value in os.environ.items()
           if key not in ("SKYLINE_SETTINGS", "PYTHONPATH", "JOURNAL_STREAM", "NOTIFY_SOCKET")}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([program, *args], cwd=work, env=env, capture_output=True, text=True, timeout=120)

    where = cli("--settings", "x", "--help")
    assert "SKYLINE_SETTINGS" in where.stdout
    located = subprocess.run([str(venv_bin / "python"), "-c", "import skyline_analyzer as p; print(p.__file__)"],
                             cwd=work, env=env, capture_output=True, text=True, check=True).stdout
    package = Path(located.strip()).parent
    assert tmp_path / "venv" in package.parents, "the wheel's package, not the checkout's"
    package_files = files_under(package)

    refused = cli("run", "--max-runs", "1")
    assert refused.returncode == 1 and "no settings file" in refused.stderr

    init = cli("settings", "init", "settings.py")
    assert init.returncode == 0, init.stderr
    template = (work / "settings.py").read_text()
    assert template == (REPO / "settings.py").read_text()

    seed_redis(redis_conn, synthetic.make_metrics(20, int(time.time()), anomalous=3, points=300), "metrics.")
    for name in ("log", "pid", "tmp"):
        (work / name).mkdir()
    # The Redis path, and the three deployment directories this test may not use (/var/..., /run/...).
    socket_path = redis_server.socket_path
    edited = (template.replace("REDIS_SOCKET_PATH = '/tmp/redis.sock'", f"REDIS_SOCKET_PATH = {socket_path!r}")
              .replace("LOG_PATH = '/var/log/skyline'", f"LOG_PATH = {str(work / 'log')!r}")
              .replace("PID_PATH = '/run/skyline'", f"PID_PATH = {str(work / 'pid')!r}")
              .replace("SKYLINE_TMP_DIR = '/var/lib/skyline/tmp'", f"SKYLINE_TMP_DIR = {str(work / 'tmp')!r}")
              # v1.2.8's relative form: the docs say it is resolved against the settings file's directory.
              .replace("ANOMALY_DUMP = '/var/lib/skyline/webapp/anomalies.json'",
                       "ANOMALY_DUMP = 'webapp/static/dump/anomalies.json'")
              .replace("GRAPHITE_HOST = 'YOUR_GRAPHITE_HOST.example.com'", "GRAPHITE_HOST = ''"))
    assert edited.count(str(work)) == 3 and redis_server.socket_path in edited
    (work / "settings.py").write_text(edited)

    run = cli("--settings", "settings.py", "run", "--max-runs", "1")
    assert run.returncode == 0, run.stderr + (work / "log" / "analyzer.log").read_text()
    dump = json.loads((work / "webapp" / "static" / "dump" / "anomalies.json").read_text())
    assert sorted(name for _, name, _ in dump) == [f"synthetic.{kind}.{n:05d}" for n, kind in
                                                    enumerate(synthetic.KINDS[:3])]
    log = (work / "log" / "analyzer.log").read_text()
    assert f"analyzer :: settings from {work / 'settings.py'}" in log

    # The shipped ALERTS and alerter switches; only where mail and syslog lines go is this test's.
    with SmtpReceiver() as smtp, SyslogReceiver() as syslog:
        (work / "settings.py").write_text(edited.replace("SMTP_PORT = 25", f"SMTP_PORT = {smtp.port}").replace(
            "'address': '/dev/log'", f"'address': {syslog.address!r}"))
        alert = cli("alert-test", "--settings", str(work / "settings.py"))
        assert alert.returncode == 0, alert.stdout + alert.stderr
        results = {line.split()[0]: line.lower() for line in alert.stdout.splitlines()}
        assert "disabled" in results["pagerduty"] and "sent" in results["smtp"], alert.stdout
        assert smtp.wait_for(2) and syslog.lines()
    assert files_under(package) == package_files, "nothing is written into the installed package"
    assert time.monotonic() - started < 120
