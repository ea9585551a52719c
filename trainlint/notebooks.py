"""Jupyter notebooks: the code cells joined into one module (IPython magics and shell escapes
blanked out, line numbers kept), and positions mapped back to (cell, line)."""
from __future__ import annotations

import ast
import json
import re
from typing import List, Tuple

_MAGIC = re.compile(r"^(\s*)(%|!|\?)")
_HELP = re.compile(r"^(\s*)[\w.*]+\?\??\s*$")  # `torch.*Tensor?`, `model.forward??`: IPython's help
_CAPTURED = re.compile(r"^(\s*[A-Za-z_][\w.]*(?:\s*,\s*[A-Za-z_][\w.]*)*\s*,?\s*=\s*)[!%]")  # `files = !ls`, `f, = %sx ls`
# magics whose argument (line magics) or body (cell magics) is Python that runs
_PYTHON_MAGICS = re.compile(r"^(\s*)(%%?(?:time|timeit|prun|capture|debug)\b\s*(?:-\w+(?:\s+\d+)?\s+)*)")


class NotebookError(ValueError):
    """The file is not a notebook trainlint can read."""


def virtual_source(data: bytes) -> Tuple[bytes, List[Tuple[int, int, int]]]:
    """The code of a notebook as one Python source, and for each of its lines (1-based index)
    the (cell number, line in cell, columns removed from its start) it came from; cells are
    numbered from 1 in notebook order."""
    try:
        notebook = json.loads(data.decode("utf-8"))
        cells = notebook["cells"]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
        raise NotebookError(f"not a readable notebook ({type(error).__name__}: {error})")
    if not isinstance(cells, list):
        raise NotebookError("not a readable notebook ('cells' is not a list)")
    lines: List[str] = []
    origin: List[Tuple[int, int, int]] = [(0, 0, 0)]  # index 0 unused: lines are 1-based
    for number, cell in enumerate(cells, 1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        converted = _python_lines(("".join(source) if isinstance(source, list) else str(source)).split("\n"))
        for index, (line, removed) in enumerate(converted, 1):
            lines.append(line)
            origin.append((number, index, removed))
        lines.append("")  # keeps cells apart
        origin.append((number, len(converted) + 1, 0))
    return "\n".join(lines).encode("utf-8"), origin


def _python_lines(cell_lines: List[str]) -> List[Tuple[str, int]]:
    """A cell's lines as Python, each with the number of columns removed from its start (negative
    where some were added): magics and shell escapes blanked out, `%time stmt` kept as `stmt`."""
    # IPython removes the first line's indentation from every line that starts with it
    cell_indent = re.match(r"[ \t]*", cell_lines[0]).group(0) if cell_lines[0].strip() else ""
    foreign = cell_lines[0].startswith("%%") and not _PYTHON_MAGICS.match(cell_lines[0])  # %%bash...
    continued = False  # the previous line was a shell/magic line ending in a backslash
    statement = _Statement()
    converted = []
    for index, line in enumerate(cell_lines, 1):
        removed = len(cell_indent) if cell_indent and line.startswith(cell_indent) else 0
        line = line[removed:]
        # inside brackets, a string or after a backslash, `% (a, b)` is the modulo operator
        escape = not statement.open and (_MAGIC.match(line) or _HELP.match(line))
        python = escape and _PYTHON_MAGICS.match(line)
        captured = not statement.open and not continued and _CAPTURED.match(line)
        shell = continued or (escape and not python)
        continued = bool(shell or captured) and line.rstrip().endswith("\\")  # `!pip install \` goes on below
        if not shell and not captured:
            statement.read(line[python.end():] if python else line)
        if foreign or index == 1 and line.startswith("%%") or shell and not escape:
            line = ""
        elif python:  # `%time step()`: the statement runs
            removed += python.end() - len(python.group(1))
            line = python.group(1) + line[python.end():] if line[python.end():].strip() else ""
        elif captured:  # `os_info = !uname -o`: a value the code does not show
            line = captured.group(1) + "..."
        elif shell:  # keep the block structure: an indented magic becomes `pass`
            line = f"{escape.group(1)}pass" if escape.group(1) else ""
        converted.append((line, removed))
    return converted


def mark_displayed(tree: ast.Module, source: bytes, origin: List[Tuple[int, int, int]]) -> None:
    """A cell's last statement, when an expression, is its displayed output (`m.to(device)` shows
    the moved copy), not a value thrown away: in the tree of the notebook's virtual source it
    becomes ``_ = value``, as IPython does. A trailing `;` hides the output: then the value is
    thrown away. (Read off the one tree of the whole source: parsing each cell again to find its
    last statement cost as much as the rest of reading the notebook.)"""
    last_of_cell = {origin[statement.lineno][0]: index for index, statement in enumerate(tree.body)}
    lines = source.split(b"\n")
    for index in last_of_cell.values():
        last = tree.body[index]
        if not isinstance(last, ast.Expr) or last.col_offset != 0 or \
                lines[last.end_lineno - 1][last.end_col_offset:].lstrip().startswith(b";"):
            continue
        target = ast.copy_location(ast.Name(id="_", ctx=ast.Store()), last)
        tree.body[index] = ast.copy_location(ast.Assign(targets=[target], value=last.value), last)


class _Statement:
    """Whether the lines read so far leave a statement open (an unclosed bracket or triple-quoted
    string, or a backslash at the end): the next line continues it and cannot be a magic."""

    def __init__(self):
        self.depth, self.quote, self.backslash = 0, None, False

    @property
    def open(self) -> bool:
        return bool(self.depth or self.quote or self.backslash)

    def read(self, line: str) -> None:
        at, self.backslash = 0, False
        while at < len(line):
            if self.quote:
                end = _string_end(line, at, self.quote)
                if end is None:
                    return
                self.quote, at = None, end
                continue
            next_mark = _MARKS.search(line, at)  # the characters between change nothing
            if next_mark is None:
                break
            at = next_mark.start()
            char = line[at]
            if char == "#":
                return  # a comment ends the line, and a backslash in it continues nothing
            if char in "'\"":
                quote = line[at:at + 3] if line[at:at + 3] in ('"""', "'''") else char
                end = _string_end(line, at + len(quote), quote)
                if end is None:
                    self.quote = quote if len(quote) == 3 else None
                    return
                at = end
                continue
            if char in "([{":
                self.depth += 1
            elif char in ")]}":
                self.depth = max(0, self.depth - 1)
            at += 1
        self.backslash = line.endswith("\\")


_MARKS = re.compile(r"[#'\"()\[\]{}]")


def _string_end(line: str, at: int, quote: str):
    """Where the string closed by ``quote`` ends on ``line`` from ``at``, or None if it goes on."""
    while at < len(line):
        if line[at] == "\\":
            at += 2
        elif line.startswith(quote, at):
            return at + len(quote)
        else:
            at += 1
    return None


_LINE_REFERENCE = re.compile(r"\bline (\d+)\b")


def map_back(finding: dict, origin: List[Tuple[int, int, int]]) -> dict:
    """Give a finding its cell and cell-relative lines and columns (also the lines its message
    refers to); fixes are not applied to notebooks."""
    last = len(origin) - 1

    def place(line: int) -> Tuple[int, int, int]:
        return origin[min(max(line, 1), last)]

    def reference(match) -> str:
        cell, line, _ = place(int(match.group(1)))
        return f"cell {cell}, line {line}"

    cell, line, removed = place(finding["line"])
    end_cell, end_line, end_removed = place(finding["end_line"])
    message = _LINE_REFERENCE.sub(reference, finding["message"])
    mapped = dict(finding, line=line, cell=cell, column=finding["column"] + removed, fix=None, message=message)
    if end_cell == cell:
        mapped.update(end_line=end_line, end_column=finding["end_column"] + end_removed)
    else:
        mapped.update(end_line=line, end_column=mapped["column"])
    return mapped
