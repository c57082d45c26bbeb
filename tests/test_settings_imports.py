"""Loading settings imports no numerical library; no module of the package takes part in an import cycle;
the names that settings refer to, kept as plain data in defaults, are the ones the code uses."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import os
import pkgutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import skyline_analyzer
from skyline_analyzer import defaults

PACKAGE_DIR = Path(skyline_analyzer.__file__).parent
#: Third-party packages whose import costs a second or more; settings must not need them.
HEAVY = ("numpy", "scipy", "statsmodels", "pandas", "matplotlib")

# Imports each module named on stdin in a forked child of an interpreter that has loaded none of the
# package: a cycle fails with "partially initialized module". The heavy third-party modules the package
# uses are loaded first, once, for speed: they cannot take part in a cycle of the package's own modules.
FORK_EACH_IMPORT = r"""
import importlib, json, os, sys, traceback
job = json.load(sys.stdin)
for name in job["preload"]:
    importlib.import_module(name)
assert not [m for m in sys.modules if m.startswith("skyline_analyzer")]
failed = {}
for name in job["modules"]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            importlib.import_module(name)
        except BaseException:
            os.write(write, traceback.format_exc()[-3000:].encode())
            os._exit(1)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        report = pipe.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if status:
        failed[name] = report or f"wait status {status}"
print("\n" + json.dumps(failed))
"""


def package_modules() -> list[str]:
    found = pkgutil.walk_packages(skyline_analyzer.__path__, "skyline_analyzer.")
    return ["skyline_analyzer", *sorted(m.name for m in found if not m.name.endswith(".__main__"))]


def module_path(name: str) -> Path:
    relative = Path(*name.split(".")[1:])
    package = PACKAGE_DIR / relative / "__init__.py"
    return package if package.exists() else (PACKAGE_DIR / relative).with_suffix(".py")


def imported_modules(name: str) -> set[str]:
    """Every module ``name`` imports, at any depth of its code, except under ``if TYPE_CHECKING:``."""
    tree = ast.parse(module_path(name).read_text())
    guarded = [node for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test)]
    skipped = {id(inner) for node in guarded for inner in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from package import submodule`` depends on the submodule; the package's __init__ may import
            # its submodules without that being a cycle.
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if _is_module(submodule) else node.module)
    return found


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def test_loading_and_validating_settings_imports_no_numerical_library(make_settings: Callable[..., Path]) -> None:
    code = ("import sys\nfrom skyline_analyzer import config\n"
            "settings = config.load()\nassert settings.CONSENSUS == 5 and config.validate(settings) == []\n"
            f"print(sorted(set({HEAVY!r}) & {{name.split('.')[0] for name in sys.modules}}))")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                               env={**os.environ, "SKYLINE_SETTINGS": str(make_settings(CONSENSUS=5))})
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "[]"


def test_every_module_imports_first_in_a_fresh_interpreter() -> None:
    modules = package_modules()
    named = {imported for name in modules for imported in imported_modules(name)}
    preload = sorted(name for name in named if name.split(".")[0] in HEAVY and _is_module(name))
    completed = subprocess.run([sys.executable, "-c", FORK_EACH_IMPORT], capture_output=True, text=True,
                               input=json.dumps({"preload": preload, "modules": modules}), timeout=300,
                               env={**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})
    assert completed.returncode == 0, completed.stderr[-3000:]
    failed = json.loads(completed.stdout.strip().splitlines()[-1])
    assert failed == {}, "\n".join(f"{name}:\n{report}" for name, report in failed.items())
    assert len(modules) > 40


def test_the_package_import_graph_has_no_cycle() -> None:
    """Imports inside functions count too: they are how a cycle hides (config once imported the engine)."""
    modules = package_modules()
    graph = {name: {m for m in imported_modules(name) if m in modules and m != name} for name in modules}
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, "import cycle: " + " -> ".join((*path[path.index(name):], name))
        if name not in done:
            for dependency in sorted(graph[name]):
                visit(dependency, (*path, name))
            done.add(name)

    for name in modules:
        visit(name, ())


def test_algorithm_names_are_the_engines_order() -> None:
    from skyline_analyzer.detection.algorithms import DETECTORS
    from skyline_analyzer.detection.batched import BATCHED

    assert defaults.ALGORITHM_NAMES == tuple(DETECTORS) == tuple(BATCHED)
    assert defaults.DEFAULTS["ALGORITHMS"] == list(defaults.ALGORITHM_NAMES)


def test_alerter_names_are_the_registry() -> None:
    """Every name settings accept is a registered alerter with the same switch, and nothing else is; the
    switches are bool settings; the stale digest is sent by the Analyzer itself, never through ALERTS."""
    from skyline_analyzer.alerting import alerters

    assert {name: alerter.enabled_by for name, alerter in alerters.REGISTRY.items()} == defaults.ALERTER_NAMES
    for enabling in filter(None, defaults.ALERTER_NAMES.values()):
        assert isinstance(defaults.DEFAULTS[enabling], bool)
    assert alerters.STALE_DIGEST.name not in defaults.ALERTER_NAMES
    assert not set(alerters.REGISTRY).intersection(defaults.RETIRED_ALERTERS)
