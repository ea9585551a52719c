"""Structural fixes with LibCST: move a statement next to another one, or insert a new one, in a
concrete syntax tree that keeps comments, blank lines, indentation (tabs too) and line endings;
then express the change as one text edit over the lines that differ, like every other fix."""
from __future__ import annotations

import functools
from typing import List, Optional

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from .analysis import parses, split_lines
from .rule import Restructure


def restructure_edits(text: str, change: Restructure) -> Optional[List[dict]]:
    """The edits that carry out ``change`` on ``text``; None when it cannot be done exactly (the
    statements are not alone on their lines, a statement is missing, the result does not parse)."""
    try:
        module, starting = _statements(text)
    except Exception:  # any file LibCST cannot read gets no structural fix
        return None
    anchor = starting.get(change.anchor)
    moved = starting.get(change.moved) if change.moved is not None else None
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
    new_text = module.visit(mover).code
    if not mover.placed or new_text == text or not parses(new_text):
        return None
    return [_edit_between(text, new_text)]


@functools.lru_cache(maxsize=4)
def _statements(text: str):
    """The module's concrete tree and the statement that starts on each line, parsed once per
    text: a file with several structural findings is not parsed again for each (the tree is
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
