"""Griffe extension for the API reference: the docstrings' house conventions, as Markdown.

Before mkdocstrings parses a docstring (Google style), three conventions of this code base are
rewritten so the strict build neither shows them literally nor warns about them:

- reStructuredText roles (``:class:`~deepscm.graph.CausalGraph```, ``:func:`~.engine.abduct```)
  become inline code of the target: its last component when it starts with ``~`` (Sphinx's
  rule), else the target without a leading ``.``;
- an ``Args:`` entry naming several parameters (``epochs, batch_size, lr: training ...``, the
  NumPy-style shorthand) becomes one entry per parameter with the same description;
- a sentence inside ``Args:`` that names no parameter (``Others as for TARNet.``) moves to a
  paragraph after the section.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

__all__ = ["DocstringConventions", "normalize"]

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|exc|obj|const):`(~?)\.?([^`]+)`")
_SECTION = re.compile(r"^(\s*)(Args|Arguments|Parameters|Params):\s*$")
_NAMES = re.compile(r"^\*{0,2}[A-Za-z_]\w*(?:\s*,\s*\*{0,2}[A-Za-z_]\w*)*(?:\s*\([^)]*\))?:")


def _roles(text: str) -> str:
    return _ROLE.sub(lambda m: f"`{m.group(2).rsplit('.', 1)[-1] if m.group(1) else m.group(2)}`",
                     text)


def _args(lines: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(lines):
        header = _SECTION.match(lines[i])
        out.append(lines[i])
        i += 1
        if not header:
            continue
        base, entry, moved = len(header.group(1)), None, []
        while i < len(lines) and (not lines[i].strip() or
                                  len(lines[i]) - len(lines[i].lstrip()) > base):
            line = lines[i]
            indent = len(line) - len(line.lstrip())
            if line.strip() and (entry is None or indent <= entry):
                entry = indent
                if not _NAMES.match(line.strip()):          # a sentence, not an entry
                    moved.append(line.strip())
                    i += 1
                    while i < len(lines) and len(lines[i]) - len(lines[i].lstrip()) > indent:
                        moved.append(lines[i].strip())
                        i += 1
                    continue
                names, _, rest = line.strip().partition(":")
                if "," in names and "(" not in names:     # several names, one description
                    body = [rest.strip()]
                    i += 1
                    while i < len(lines) and lines[i].strip() and \
                            len(lines[i]) - len(lines[i].lstrip()) > indent:
                        body.append(lines[i].strip())
                        i += 1
                    for name in names.split(","):
                        out.append(" " * indent + f"{name.strip()}: " + " ".join(body))
                    continue
            out.append(line)
            i += 1
        if moved:
            out += ["", " " * base + " ".join(moved)]
    return out


def normalize(text: str) -> str:
    """The docstring ``text`` with the conventions above rewritten."""
    return "\n".join(_args(_roles(text).splitlines()))


class DocstringConventions(griffe.Extension):
    """Apply :func:`normalize` to every loaded object's docstring."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = normalize(obj.docstring.value)
