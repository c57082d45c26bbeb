"""Mistakes in the source that a newer Python turns into failures (requires-python admits 3.11 to 3.13)."""

from __future__ import annotations

import ast

from tests.support import REPO

SOURCES = sorted(p for folder in ("skyline_analyzer", "tests", "benchmarks") for p in (REPO / folder).rglob("*.py"))


def _decorator_names(node: ast.AST) -> list[str]:
    return [ast.unparse(d) for d in getattr(node, "decorator_list", [])]


def test_no_decorator_is_applied_twice() -> None:
    """Chained ``@classmethod`` worked on 3.11 only by accident and breaks on 3.13."""
    repeated = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = _decorator_names(node)
            if len(names) != len(set(names)):
                repeated.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert repeated == []
