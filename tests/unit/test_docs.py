"""Documentation honesty: error anchors, threat-model test references, ADR structure and the README commands."""

from __future__ import annotations

import ast
import re

from functools import cache
from pathlib import Path

import pytest

from remit.errors import ErrorCode

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
ADR_DIR = DOCS / "adr"
ADR_HEADINGS = ("Context", "Decision", "Consequences", "Security implications", "Alternatives")

_ANCHOR = re.compile(r"""<a\s+id=["']([a-z0-9_-]+)["']\s*>""")
_TEST_REF = re.compile(r"(tests/[\w/.-]+\.py)::((?:\w+::)?\w+)")
_PLANNED = re.compile(r"\bplanned \(issue \d+\)")
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_ADR_FILE = re.compile(r"^\d{4}-[a-z0-9-]+\.md$")


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _threat_rows() -> list[str]:
    """The body rows of the threat table (the table under the `## Threats` heading)."""
    text = _read(DOCS / "threat-model.md")
    _, found, rest = text.partition("\n## Threats\n")
    assert found, "docs/threat-model.md has no '## Threats' section"
    section = rest.split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    assert len(rows) > 2, "the threat table has no rows"
    return [row for row in rows[2:] if row.strip("| -")]  # skip the header and the |---| separator


@cache
def _tests_defined_in(path: Path) -> frozenset[str]:
    """Every test function in a module, as `name` (module level) or `Class::name` (in a test class)."""
    tree = ast.parse(_read(path))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.update(
                f"{node.name}::{item.name}"
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
            )
    return frozenset(name for name in names if name.rsplit("::", 1)[-1].startswith("test_"))


def _adr_files() -> list[Path]:
    return sorted(p for p in ADR_DIR.glob("*.md") if _ADR_FILE.match(p.name))


def _error_sections() -> dict[str, str]:
    """docs/errors.md split at its anchors: anchor id → the text up to the next anchor."""
    parts = _ANCHOR.split(_read(DOCS / "errors.md"))
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def _stated(section: str, row: str) -> int:
    found = re.search(rf"^\| {row} \| (\d+) \|", section, re.MULTILINE)
    assert found, f"no '{row}' row"
    return int(found.group(1))


def test_every_error_code_has_an_anchor_in_errors_md() -> None:
    """docs/errors.md has exactly one anchor per ErrorCode, so every problem `type` link lands somewhere."""
    anchors = _ANCHOR.findall(_read(DOCS / "errors.md"))

    assert sorted(anchors) == sorted(set(anchors)), "an anchor appears twice"
    assert [code.value for code in ErrorCode if code.value not in anchors] == []


def test_errors_md_states_the_http_status_each_code_really_gets() -> None:
    """The HTTP status written for each code in docs/errors.md is the one the API's status table sends."""
    problems = pytest.importorskip("remit.http.problems", reason="the HTTP entrypoint has not landed")
    sections = _error_sections()

    wrong = {
        code.value
        for code in ErrorCode
        if _stated(sections[code.value], "HTTP status") != problems.STATUS_BY_CODE[code]
    }

    assert wrong == set()


def test_errors_md_states_the_cli_exit_code_each_code_really_gets() -> None:
    """The exit code written for each code in docs/errors.md is the one the CLI exits with."""
    output = pytest.importorskip("remit.cli.output", reason="the CLI entrypoint has not landed")
    sections = _error_sections()

    wrong = {
        code.value
        for code in ErrorCode
        if _stated(sections[code.value], "CLI exit code") != output.EXIT_CODE_BY_CODE.get(code, 1)
    }

    assert wrong == set()


def test_threat_model_test_references_point_at_existing_tests() -> None:
    """Every `tests/…py::test_name` in the threat model names a file that exists and a test it defines."""
    references = _TEST_REF.findall(_read(DOCS / "threat-model.md"))
    assert references, "the threat model names no tests at all"

    missing = [
        f"{path}::{name}"
        for path, name in references
        if not (ROOT / path).is_file() or name not in _tests_defined_in(ROOT / path)
    ]

    assert missing == []


def test_every_threat_names_a_test_or_is_marked_planned() -> None:
    """A threat row either cites at least one test or says plainly that it is planned, and by which issue."""
    unaccounted = [row for row in _threat_rows() if not _TEST_REF.search(row) and not _PLANNED.search(row)]

    assert unaccounted == []


def test_readme_gives_the_two_setup_commands_and_the_makefile_defines_them() -> None:
    """README.md tells a newcomer `make run` and `make test`, and both are real Makefile targets."""
    readme = _read(ROOT / "README.md")
    makefile = _read(ROOT / "Makefile")

    for target in ("run", "test"):
        assert f"make {target}" in readme
        assert re.search(rf"^{target}:", makefile, re.MULTILINE), f"the Makefile has no {target!r} target"


def test_adrs_exist() -> None:
    """There is at least one ADR, numbered and named NNNN-title.md."""
    assert _adr_files()


@pytest.mark.parametrize("adr", _adr_files(), ids=lambda p: p.name)
def test_every_adr_has_the_five_required_sections(adr: Path) -> None:
    """Each ADR has Context, Decision, Consequences, Security implications and Alternatives headings."""
    headings = set(re.findall(r"^## (.+?)\s*$", _read(adr), re.MULTILINE))

    assert [h for h in ADR_HEADINGS if h not in headings] == []


def test_adr_index_lists_every_adr() -> None:
    """docs/adr/README.md has a table row for every ADR file (by number), so none is written and then lost."""
    index = _read(ADR_DIR / "README.md")
    listed = set(re.findall(r"^\| \[?(\d{4})\b", index, re.MULTILINE))

    assert [p.name for p in _adr_files() if p.name[:4] not in listed] == []


@pytest.mark.parametrize(
    "page",
    [ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "SECURITY.md", *sorted(DOCS.rglob("*.md"))],
    ids=lambda p: p.relative_to(ROOT).as_posix(),
)
def test_relative_links_resolve(page: Path) -> None:
    """Every relative link in the project documentation points at a file or directory that exists."""
    broken = []
    for target in _LINK.findall(_read(page)):
        if target.startswith(("http://", "https://", "mailto:", "#")):
            continue
        path = target.split("#", 1)[0]
        if not (page.parent / path).exists():
            broken.append(target)

    assert broken == []
