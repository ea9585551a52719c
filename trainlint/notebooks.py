"""Jupyter notebooks: the code cells joined into one module (IPython magics and shell escapes
blanked out, line numbers kept), and positions mapped back to (cell, line)."""
from __future__ import annotations

import json
import re
from typing import List, Tuple

_MAGIC = re.compile(r"^(\s*)(%|!|\?)")
# magics whose argument (line magics) or body (cell magics) is Python that runs
_PYTHON_MAGICS = re.compile(r"^(\s*)(%%?(?:time|timeit|prun|capture|debug)\b\s*(?:-\w+(?:\s+\d+)?\s+)*)")


class NotebookError(ValueError):
    """The file is not a notebook trainlint can read."""


def virtual_source(data: bytes) -> Tuple[bytes, List[Tuple[int, int]]]:
    """The code of a notebook as one Python source, and for each of its lines (1-based index)
    the (cell number, line in cell) it came from; cells are numbered from 1 in notebook order."""
    try:
        notebook = json.loads(data.decode("utf-8"))
        cells = notebook["cells"]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
        raise NotebookError(f"not a readable notebook ({type(error).__name__}: {error})")
    if not isinstance(cells, list):
        raise NotebookError("not a readable notebook ('cells' is not a list)")
    lines: List[str] = []
    origin: List[Tuple[int, int]] = [(0, 0)]  # index 0 unused: lines are 1-based
    for number, cell in enumerate(cells, 1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        text = "".join(source) if isinstance(source, list) else str(source)
        cell_lines = text.split("\n")
        foreign = cell_lines[0].startswith("%%") and not _PYTHON_MAGICS.match(cell_lines[0])  # %%bash...
        continued = False  # the previous line was a shell/magic line ending in a backslash
        for index, line in enumerate(cell_lines, 1):
            python = _PYTHON_MAGICS.match(line)
            shell = continued or (_MAGIC.match(line) and not python)
            continued = bool(shell) and line.rstrip().endswith("\\")  # `!pip install \` goes on below
            if foreign or index == 1 and line.startswith("%%") or shell and not _MAGIC.match(line):
                line = ""
            elif python:  # `%time step()`: the statement runs (its columns shift by the magic's width)
                line = python.group(1) + line[python.end():] if line[python.end():].strip() else ""
            elif shell:  # keep the block structure: an indented magic becomes `pass`
                indent = _MAGIC.match(line).group(1)
                line = f"{indent}pass" if indent else ""
            lines.append(line)
            origin.append((number, index))
        lines.append("")  # keeps cells apart
        origin.append((number, len(cell_lines) + 1))
    return "\n".join(lines).encode("utf-8"), origin


_LINE_REFERENCE = re.compile(r"\bline (\d+)\b")


def map_back(finding: dict, origin: List[Tuple[int, int]]) -> dict:
    """Give a finding its cell and cell-relative lines (also those its message refers to); fixes
    are not applied to notebooks."""
    last = len(origin) - 1

    def place(line: int) -> Tuple[int, int]:
        return origin[min(max(line, 1), last)]

    def reference(match) -> str:
        cell, line = place(int(match.group(1)))
        return f"cell {cell}, line {line}"

    cell, line = place(finding["line"])
    end_cell, end_line = place(finding["end_line"])
    message = _LINE_REFERENCE.sub(reference, finding["message"])
    mapped = dict(finding, line=line, cell=cell, fix=None, message=message)
    mapped["end_line"] = end_line if end_cell == cell else line
    return mapped
