"""Structural fixes with LibCST: move a statement next to another one, or insert a new one, in a
concrete syntax tree that keeps comments, blank lines, indentation (tabs too) and line endings;
then express the change as one text edit over the lines that differ, like every other fix."""
from __future__ import annotations

import ast
import functools
from typing import List, Optional, Tuple

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from .analysis import parses, split_lines
from .rule import Restructure


def restructure_edits(text: str, change: Restructure, region: Optional[Tuple[int, int]] = None) -> Optional[List[dict]]:
    """The edits that carry out ``change`` on ``text``; None when it cannot be done exactly (the
    statements are not alone on their lines, a statement is missing, the result does not parse).
    ``region``: the first and last line of the top-level statement that holds the change, alone
    on its lines; only that part of the file is read by LibCST (the rest cannot change)."""
    lines = split_lines(text, keepends=True)
    first, last = region or (1, len(lines))
    part = "".join(lines[first - 1:last])
    try:
        module, starting = _statements(part)
    except Exception:  # any file LibCST cannot read gets no structural fix
        return None
    anchor = starting.get(change.anchor - first + 1)
    moved = starting.get(change.moved - first + 1) if change.moved is not None else None
    if anchor is None or moved is anchor or (change.moved is not None and not _single_statement(moved)) \
            or not (change.anchor_is_block and isinstance(anchor, cst.BaseCompoundStatement) or _single_statement(anchor)):
        return None
    if moved is not None:
        comments = [line for line in moved.leading_lines if line.comment is not None]
        statement = moved.with_changes(leading_lines=comments)
    else:
        try:
            statement = cst.parse_statement(change.code + "\n")
        except cst.ParserSyntaxError:
            return None
    mover = _Mover(anchor, moved, statement, change.after)
    new_text = "".join(lines[:first - 1]) + module.visit(mover).code + "".join(lines[last:])
    if not mover.placed or new_text == text or not parses(new_text):
        return None
    return [_edit_between(text, new_text)]


def region_of(tree: ast.Module, *lines: int) -> Optional[Tuple[int, int]]:
    """The first and last line of the top-level statement (decorators included) that holds all
    of ``lines``, when no other top-level statement shares those lines (``a = 1; b = 2``)."""
    spans = [(min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", ())]), node.end_lineno)
             for node in tree.body]
    for index, (first, last) in enumerate(spans):
        if all(first <= line <= last for line in lines):
            alone = (index == 0 or spans[index - 1][1] < first) and \
                    (index + 1 == len(spans) or spans[index + 1][0] > last)
            return (first, last) if alone else None
    return None


@functools.lru_cache(maxsize=4)
def _statements(text: str):
    """The concrete tree of ``text`` and the statement that starts on each line, parsed once per
    text: a function with several structural findings is not parsed again for each (the tree is
    immutable, every fix builds its own new one)."""
    wrapper = MetadataWrapper(cst.parse_module(text), unsafe_skip_copy=True)
    starting = {}
    for node, span in wrapper.resolve(PositionProvider).items():
        if isinstance(node, (cst.SimpleStatementLine, cst.BaseCompoundStatement)):
            starting.setdefault(span.start.line, node)
    return wrapper.module, starting


def _single_statement(node) -> bool:
    return isinstance(node, cst.SimpleStatementLine) and len(node.body) == 1


class _Mover(cst.CSTTransformer):
    """Rebuilds every statement list: drops the moved statement, places the new one next to the
    anchor. A block left empty gets ``pass``; an ``if`` whose whole body was the moved statement
    (and has no ``else``, and no call in its test) disappears."""

    def __init__(self, anchor, moved, statement, after: bool):
        super().__init__()
        self.anchor, self.moved, self.statement, self.after = anchor, moved, statement, after
        self.emptied: set = set()
        self.placed = False

    def on_visit(self, node) -> bool:
        # statements move whole: only the nodes that hold statement lists are rebuilt (the
        # expressions and simple statements of a large file are most of its nodes)
        return isinstance(node, _HOLDS_STATEMENTS) and super().on_visit(node)

    def _rebuild(self, original_body, updated_body) -> list:
        body = []
        for original, updated in zip(original_body, updated_body):
            if original is self.moved:
                continue
            if not body and original_body[0] is self.moved and hasattr(updated, "leading_lines"):
                # the new first statement of the block: no blank line between it and the header
                lines = list(updated.leading_lines)
                while lines and lines[0].comment is None:
                    lines.pop(0)
                updated = updated.with_changes(leading_lines=lines)
            if original is self.anchor and not self.after:
                body.append(self.statement)
                self.placed = True
            if not self._emptied_if(updated):
                body.append(updated)
            if original is self.anchor and self.after:
                body.append(self.statement)
                self.placed = True
        return body

    def _emptied_if(self, node) -> bool:
        return isinstance(node, cst.If) and id(node.body) in self.emptied and node.orelse is None \
            and not any(isinstance(n, cst.Call) for n in _walk(node.test))

    def leave_IndentedBlock(self, original_node, updated_node):
        body = self._rebuild(original_node.body, updated_node.body)
        if not body:
            block = updated_node.with_changes(body=[cst.SimpleStatementLine([cst.Pass()])])
            self.emptied.add(id(block))
            return block
        return updated_node.with_changes(body=body)

    def leave_Module(self, original_node, updated_node):
        return updated_node.with_changes(body=self._rebuild(original_node.body, updated_node.body))


_HOLDS_STATEMENTS = (cst.Module, cst.IndentedBlock, cst.BaseCompoundStatement, cst.Else, cst.ExceptHandler,
                     cst.ExceptStarHandler, cst.Finally, cst.MatchCase)


def _walk(node):
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(current.children)


def _edit_between(before: str, after: str) -> dict:
    """One edit replacing the lines that differ (whole lines, 1-based, end exclusive)."""
    old, new = split_lines(before, keepends=True), split_lines(after, keepends=True)
    prefix = 0
    while prefix < min(len(old), len(new)) and old[prefix] == new[prefix]:
        prefix += 1
    suffix = 0
    while suffix < min(len(old), len(new)) - prefix and old[-1 - suffix] == new[-1 - suffix]:
        suffix += 1
    return {"line": prefix + 1, "column": 1, "end_line": len(old) - suffix + 1, "end_column": 1,
            "content": "".join(new[prefix:len(new) - suffix])}
