"""The repository stands alone: code points at its own docs/, and every such pointer resolves.

Code, tests, scripts and benchmarks may not refer to the specification or the shared folder the project
started from (neither is in the repository). A reference ``docs/<file>.md#<anchor>`` in any of them, and
every relative link between the Markdown documents, must name an existing file and heading, with
GitHub's anchor rules: lowercase, punctuation dropped (``_`` and ``-`` kept), spaces to ``-``, and
``-1``, ``-2``... appended to repeated headings.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from tests.support import REPO

CODE_DIRS = ("skyline_analyzer", "tests", "bin", "benchmarks")
BINARY_SUFFIXES = {".gz", ".png", ".pyc"}

#: What no file may mention: the specification, the sibling folder, or a path built to reach it.
OUTSIDE = re.compile(r"SPEC\.md|\.\./shared|parent\s*/\s*[\"']shared[\"']")
DOC_REFERENCE = re.compile(r"docs/([\w.-]+\.md)(?:#([\w-]+))?")
MARKDOWN_LINK = re.compile(r"\]\(([^)\s]*)\)")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")
REPOSITORY_PATH = re.compile(r"`((?:skyline_analyzer|tests|bin|benchmarks|etc|docs)/[\w./-]*)`")


def code_files() -> list[Path]:
    files = []
    for folder in CODE_DIRS:
        for path in sorted((REPO / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix not in BINARY_SUFFIXES:
                files.append(path)
    return files


def markdown_files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted((REPO / "tests").rglob("*.md"))]


def github_anchor(heading: str) -> str:
    """The id GitHub gives a heading (before de-duplication)."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(markdown: Path) -> set[str]:
    """Every heading anchor of a Markdown file, repeated headings numbered as GitHub does."""
    seen: Counter[str] = Counter()
    found = set()
    in_fence = False
    for line in markdown.read_text().splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        match = None if in_fence else HEADING.match(line)
        if match is None:
            continue
        base = github_anchor(match.group(2))
        found.add(base if seen[base] == 0 else f"{base}-{seen[base]}")
        seen[base] += 1
    return found


def test_anchor_rules() -> None:
    assert github_anchor("The early exit") == "the-early-exit"
    assert github_anchor("`histogram_bins`") == "histogram_bins"
    assert github_anchor("Steps 6 and 7: smtp alerter metrics") == "steps-6-and-7-smtp-alerter-metrics"
    assert github_anchor("`skyline-analyzer check` input rules") == "skyline-analyzer-check-input-rules"


def test_no_file_points_outside_the_repository() -> None:
    offenders = []
    for path in code_files():
        text = path.read_bytes().decode("utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), start=1):
            # This module names the forbidden patterns in order to find them.
            if OUTSIDE.search(line) and path != Path(__file__).resolve():
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert offenders == []


def test_code_references_to_docs_resolve() -> None:
    references = 0
    broken = []
    for path in code_files():
        text = path.read_bytes().decode("utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), start=1):
            for name, anchor in DOC_REFERENCE.findall(line):
                references += 1
                target = REPO / "docs" / name
                if not target.is_file():
                    broken.append(f"{path.relative_to(REPO)}:{number}: docs/{name} does not exist")
                elif anchor and anchor not in anchors(target):
                    broken.append(f"{path.relative_to(REPO)}:{number}: docs/{name} has no heading #{anchor}")
    assert broken == []
    # The code does point at the docs (this test would pass vacuously on a tree without references).
    assert references > 40


@pytest.mark.parametrize("markdown", markdown_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_links_between_documents_resolve(markdown: Path) -> None:
    broken = []
    in_fence = False
    for line in markdown.read_text().splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
        if in_fence:
            continue
        for link in MARKDOWN_LINK.findall(line):
            if "://" in link or link.startswith("mailto:"):
                continue
            file_part, _, anchor = link.partition("#")
            target = (markdown.parent / file_part).resolve() if file_part else markdown
            if not target.exists():
                broken.append(f"{link}: no such file")
            elif anchor and target.suffix == ".md" and anchor not in anchors(target):
                broken.append(f"{link}: no such heading")
    assert broken == []


@pytest.mark.parametrize("markdown", markdown_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_paths_named_in_documents_exist(markdown: Path) -> None:
    """A module or file a document names in backticks exists (documents follow the code when it moves)."""
    missing = sorted({path for path in REPOSITORY_PATH.findall(markdown.read_text())
                      if "<" not in path and not (REPO / path).exists()})
    assert missing == []


def test_every_document_is_in_the_index() -> None:
    index = (REPO / "docs" / "README.md").read_text()
    listed = set(re.findall(r"\]\(([\w.-]+\.md)\)", index))
    documents = {path.name for path in (REPO / "docs").glob("*.md")} - {"README.md"}
    assert documents - listed == set()


def test_the_readme_layout_table_has_a_line_for_every_module() -> None:
    """Every module and sub-package of the package has its own row (by its path below skyline_analyzer/)."""
    rows = re.findall(r"^\| `([^`]+)` \|", (REPO / "README.md").read_text(), re.MULTILINE)
    named = {row.removeprefix("skyline_analyzer/").rstrip("/") for row in rows}
    package = REPO / "skyline_analyzer"
    modules = [path.relative_to(package) for path in package.rglob("*.py") if path.name != "__main__.py"]
    expected = {str(path.parent if path.name == "__init__.py" else path) for path in modules} - {"."}
    assert sorted(expected - named) == []
    assert len(rows) == len(set(rows)), "one line each"
