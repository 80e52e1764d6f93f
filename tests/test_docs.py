"""The documentation: the site builds in strict mode, and every Python example runs.

Examples are the fenced ```` ```python ```` blocks of README.md and docs/**/*.md. The blocks of
one page share a namespace and run in order, in a fresh temporary directory. An HTML comment
on the line before a block marks it (docs/contributing.md):

- ``<!-- docs: skip -->`` — never run (say why after the word: ``<!-- docs: skip: needs a GPU -->``);
- ``<!-- docs: slow -->`` — the default run stops before it (later blocks may use its names),
  the ``slow`` run (``make docs-check``: ``pytest -m "slow or not slow" tests/test_docs.py``)
  runs the whole page.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["Block", "collect_blocks", "run_blocks"]

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

_MARK = re.compile(r"^\s*<!--\s*docs:\s*(?P<mark>skip|slow)\b.*-->\s*$")
_OPEN = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)")


@dataclass(frozen=True)
class Block:
    """One fenced Python block: its first code line (1-based) and its marker, if any."""

    path: Path
    line: int
    code: str
    mark: str | None


def collect_blocks(path: Path) -> list[Block]:
    """The ```` ```python ```` blocks of a Markdown file, in order, with their markers."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i, previous = [], 0, ""
    while i < len(lines):
        match = _OPEN.match(lines[i])
        if not match:
            if lines[i].strip():
                previous = lines[i]
            i += 1
            continue
        indent, fence, lang = match.group("indent"), match.group("fence"), match.group("lang")
        start, i = i + 1, i + 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            i += 1
        if i == len(lines):
            raise AssertionError(f"{path}:{start}: code fence {fence} is never closed")
        if lang in ("python", "py"):
            body = [line[len(indent):] if line.startswith(indent) else line.lstrip()
                    for line in lines[start:i]]
            mark = _MARK.match(previous)
            blocks.append(Block(path, start + 1, "\n".join(body) + "\n",
                                mark.group("mark") if mark else None))
        previous, i = lines[i], i + 1
    return blocks


def run_blocks(blocks: list[Block], slow: bool) -> int:
    """Run the blocks of one page in one namespace; returns how many ran. Tracebacks point
    at the Markdown file's own lines."""
    namespace: dict[str, object] = {"__name__": "__docs__"}
    ran = 0
    for block in blocks:
        if block.mark == "skip":
            continue
        if block.mark == "slow" and not slow:
            break
        code = compile("\n" * (block.line - 1) + block.code, str(block.path), "exec")
        exec(code, namespace)  # noqa: S102 - the examples are the project's own documentation
        ran += 1
    return ran


def _page_id(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


_WITH_CODE = [p for p in PAGES if collect_blocks(p)]
_WITH_SLOW = [p for p in _WITH_CODE if any(b.mark == "slow" for b in collect_blocks(p))]


@pytest.fixture
def docs_sandbox(tmp_path, monkeypatch):
    """A page runs in an empty directory, with a non-interactive matplotlib, and the mechanism
    registry (which an example may extend) is restored afterwards."""
    import matplotlib

    from deepscm.mechanisms import registry

    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    saved = {name: dict(getattr(registry, name)) for name in ("REGISTRY", "_ALIASES", "_DEFAULTS")}
    yield
    import matplotlib.pyplot as plt

    plt.close("all")
    for name, value in saved.items():
        table = getattr(registry, name)
        table.clear()
        table.update(value)


@pytest.mark.parametrize("page", _WITH_CODE, ids=_page_id)
def test_examples(page: Path, docs_sandbox) -> None:
    blocks = collect_blocks(page)
    if run_blocks(blocks, slow=False) == 0:
        pytest.skip(f"{_page_id(page)}: its first example is marked slow (make docs-check)")


@pytest.mark.slow
@pytest.mark.parametrize("page", _WITH_SLOW, ids=_page_id)
def test_examples_slow(page: Path, docs_sandbox) -> None:
    assert run_blocks(collect_blocks(page), slow=True) > 0


def test_markers_are_spelled_right() -> None:
    """A misspelt marker would silently run a slow block in the default run."""
    for page in PAGES:
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            if re.match(r"^\s*<!--\s*docs\s*:", line) and not (
                _MARK.match(line) or re.match(r"^\s*<!--\s*docs:\s*include\s", line)
            ):
                raise AssertionError(f"{page}:{number}: unknown docs marker {line.strip()!r}")


def test_collect_blocks_reads_markers_and_lines(tmp_path) -> None:
    page = tmp_path / "page.md"
    page.write_text("x\n\n```python\na = 1\n```\n\n<!-- docs: slow -->\n```python\nb = a\n```\n"
                    "<!-- docs: skip: shows an error -->\n\n  ```py\n  raise X\n  ```\n"
                    "```bash\nls\n```\n")
    blocks = collect_blocks(page)
    assert [(b.line, b.code, b.mark) for b in blocks] == [
        (4, "a = 1\n", None), (9, "b = a\n", "slow"), (14, "raise X\n", "skip")]
    assert run_blocks(blocks, slow=False) == 1
    assert run_blocks(blocks, slow=True) == 2


def test_failing_example_points_at_its_line(tmp_path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# t\n\n```python\nx = 1\ny = undefined_name\n```\n")
    with pytest.raises(NameError) as info:
        run_blocks(collect_blocks(page), slow=False)
    frame = info.traceback[-1]
    assert (Path(frame.path), frame.lineno + 1) == (page, 5)


@pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("mkdocs", "material", "mkdocstrings_handlers")),
    reason="the docs tools are not installed: pip install -e '.[docs]' (or make docs)",
)
def test_site_builds_in_strict_mode(tmp_path) -> None:
    """``mkdocs build --strict``: broken links and anchors, pages missing from the nav,
    docstrings mkdocstrings cannot parse and bad include directives all fail it."""
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "index.html").is_file()
    assert (tmp_path / "site" / "api" / "deepscm" / "index.html").is_file()
