"""MkDocs build hook: pages include files from the repository instead of copying them.

- ``<!-- docs: include PATH -->`` (on a line of its own) is replaced by the file ``PATH``
  (relative to the repository root); ``<!-- docs: include PATH#Heading -->`` by the section
  under that heading (up to the next heading of the same or a higher level). Headings of the
  included text are shifted so that its top level becomes ``level`` (default 2):
  ``<!-- docs: include benchmarks/results/ihdp.md level=3 -->``.
- Relative links in included text are re-based onto the page: to another docs page, to the
  repository's README (the home page) or to a published asset below; a link to any other
  repository file becomes that path as code, since the site does not carry it.
- ``ASSETS`` (the benchmark plots) are published under the same path inside the site, so a
  page links them as ``benchmarks/results/<name>.png`` relative to the docs root.

The README stays the source of the quick start and ``benchmarks/`` of the results: editing
them updates the site on the next build.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

__all__ = ["ASSETS", "expand_includes", "on_files", "on_page_markdown"]

ROOT = Path(__file__).resolve().parent.parent
#: repository files published in the site at their repository path (globs).
ASSETS = ("benchmarks/results/*.png",)

_INCLUDE = re.compile(r"^<!--\s*docs:\s*include\s+(?P<path>[^\s#]+)(?:#(?P<heading>[^=]+?))?"
                      r"(?:\s+level=(?P<level>[1-6]))?\s*-->\s*$", re.M)
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_LINK = re.compile(r"(!?\[[^\]]*\])\(([^)\s]+)\)")


def _section(text: str, heading: str, source: str) -> str:
    """The lines under ``heading`` (its own line included) up to the next heading of the same
    or a higher level, outside code fences."""
    lines, start, level, fenced = text.splitlines(), None, 0, False
    for i, line in enumerate(lines):
        if _FENCE.match(line):
            fenced = not fenced
        match = None if fenced else _HEADING.match(line)
        if not match:
            continue
        if start is None and match.group(2) == heading.strip():
            start, level = i, len(match.group(1))
        elif start is not None and len(match.group(1)) <= level:
            return "\n".join(lines[start:i])
    if start is None:
        raise PluginError(f"{source} has no heading {heading!r}; fix the include directive")
    return "\n".join(lines[start:])


def _shift_headings(text: str, level: int) -> str:
    lines, fenced, found = text.splitlines(), False, []
    for line in lines:
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced and (match := _HEADING.match(line)):
            found.append(len(match.group(1)))
    if not found:
        return text
    shift, out, fenced = level - min(found), [], False
    for line in lines:
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced and (match := _HEADING.match(line)):
            line = "#" * min(6, len(match.group(1)) + shift) + " " + match.group(2)
        out.append(line)
    return "\n".join(out)


def _rebase_links(text: str, source: str, page: str, docs: set[str]) -> str:
    """Rewrite relative links of ``source`` (a repository path) for the page ``page`` (a
    docs-relative path); ``docs`` are the docs-relative paths the site publishes."""
    page_dir = posixpath.dirname(page)

    def fix(match: re.Match[str]) -> str:
        label, target = match.groups()
        if re.match(r"^[a-z]+:|^#|^/", target):
            return match.group(0)
        path, _, anchor = target.partition("#")
        repo = posixpath.normpath(posixpath.join(posixpath.dirname(source), path))
        doc = {"README.md": "index.md"}.get(repo, repo.removeprefix("docs/"))
        if doc in docs:
            rel = posixpath.relpath(doc, page_dir or ".")
            return f"{label}({rel}{'#' + anchor if anchor else ''})"
        if label.startswith("!"):
            raise PluginError(f"{source} shows {target}, which the site does not publish; "
                             f"add it to ASSETS in docs/hooks.py")
        return f"{label[1:-1]} (`{repo}`)"

    out, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        out.append(line if fenced else _LINK.sub(fix, line))
    return "\n".join(out)


def expand_includes(markdown: str, page: str, docs: set[str]) -> str:
    """Replace every include directive of the page ``page`` (docs-relative path)."""

    def include(match: re.Match[str]) -> str:
        source = match.group("path")
        file = ROOT / source
        if not file.is_file():
            raise PluginError(f"docs/{page} includes {source}, which does not exist")
        text = file.read_text(encoding="utf-8")
        if match.group("heading"):
            text = _section(text, match.group("heading"), source)
        text = _shift_headings(text, int(match.group("level") or 2))
        return _rebase_links(text, source, page, docs)

    return _INCLUDE.sub(include, markdown)


def on_files(files: Files, config) -> Files:
    """Publish ``ASSETS`` at their repository paths."""
    for pattern in ASSETS:
        for path in sorted(ROOT.glob(pattern)):
            uri = path.relative_to(ROOT).as_posix()
            files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files


def on_page_markdown(markdown: str, page, config, files: Files) -> str:
    docs = {file.src_uri for file in files}
    return expand_includes(markdown, page.file.src_uri, docs)
