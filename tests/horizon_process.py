"""A real Horizon (``skyline-analyzer horizon``) as a child process of a test, and what tests read of it.

The counters are read from the log: the agent logs every report (``horizon :: name value, ...``), one per
interval and one at stop, each the growth since the previous one, so a counter's total is their sum.
"""

from __future__ import annotations

import resource
import signal
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from skyline_analyzer import config
from tests.support import CLI, REPO, children, horizon_overrides, settings_env, wait_for_log


def horizon_settings(make_settings: Callable[..., Path], **overrides: object) -> Path:
    """A settings file for a Horizon on free loopback ports (``tests.support.horizon_overrides``)."""
    return make_settings(**horizon_overrides(SERVER_METRICS_NAME="e2e", **overrides))


def rss_bytes(pid: int) -> int:
    """Resident memory of a process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


class HorizonProcess:
    """``skyline-analyzer horizon`` with a settings file, started and serving; ``nofile`` caps its descriptors."""

    def __init__(self, settings_path: Path, nofile: int | None = None) -> None:
        self.settings = config.load(settings_path)
        self.log = Path(self.settings.LOG_PATH) / "horizon.log"

        def limit_descriptors() -> None:
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.process = subprocess.Popen([*CLI, "horizon"], env=settings_env(settings_path), cwd=REPO,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        preexec_fn=limit_descriptors)
        for protocol in ("pickle", "udp", "plaintext"):
            wait_for_log(self.log, f"{protocol} listener serving", process=self.process)

    def address(self, setting: str) -> tuple[str, int]:
        return "127.0.0.1", self.settings[setting]

    def pid_of(self, announcement: str) -> int:
        """The pid on the last log line holding ``announcement`` (e.g. ``pickle listener serving``)."""
        line = [line for line in self.log.read_text().splitlines() if announcement in line][-1]
        return int(line.split(" :: ")[1])

    def children(self) -> list[int]:
        return children(self.process.pid)

    def counters(self) -> Counter[str]:
        """Every counter summed over the reports logged so far."""
        totals: Counter[str] = Counter()
        for line in self.log.read_text(errors="replace").splitlines():
            if " :: horizon :: listen." not in line:
                continue
            for item in line.split(" :: horizon :: ", 1)[1].split(", "):
                name, value = item.rsplit(" ", 1)
                totals[name] += float(value)
        return totals

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        finally:
            if self.process.stdout is not None:
                self.process.stdout.close()
