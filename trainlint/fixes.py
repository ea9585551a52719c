"""Applying the fixes findings carry: text edits at exact source ranges, so formatting and
comments outside the replaced range stay as they were. A fixed file must still parse (checked
with LibCST, which reads every Python grammar version), or it is left untouched."""
from __future__ import annotations

import difflib
from typing import Dict, List, Tuple


def _offsets(text: str) -> List[int]:
    """Offset of the start of each line (1-based index), newlines kept as they are."""
    from .analysis import split_lines

    starts = [0, 0]
    for line in split_lines(text, keepends=True):
        starts.append(starts[-1] + len(line))
    return starts


def apply_edits(text: str, edits: List[dict]) -> str:
    """Apply non-overlapping edits (1-based lines, 1-based character columns); an edit that
    overlaps one already applied is skipped (the next run of --fix gets it)."""
    starts = _offsets(text)
    spans = []
    for edit in edits:
        start = starts[edit["line"]] + edit["column"] - 1
        end = starts[edit["end_line"]] + edit["end_column"] - 1
        spans.append((start, end, edit["content"]))
    result, cursor = [], len(text)
    for start, end, content in sorted(spans, reverse=True):
        if end > cursor:
            continue
        result.append(text[end:cursor])
        result.append(content)
        cursor = start
    result.append(text[:cursor])
    return "".join(reversed(result))


def still_parses(text: str) -> bool:
    import libcst

    try:
        libcst.parse_module(text)
    except Exception:
        return False
    return True


def fixed_sources(findings: List[dict], sources: Dict[str, str], unsafe: bool) -> Dict[str, Tuple[str, int]]:
    """path -> (fixed text, number of fixes applied), for files where fixes apply cleanly."""
    by_path: Dict[str, List[dict]] = {}
    for finding in findings:
        fix = finding.get("fix")
        if fix and (fix["safe"] or unsafe) and finding["path"] in sources:
            by_path.setdefault(finding["path"], []).append(fix)
    fixed = {}
    for path, fixes in by_path.items():
        text = apply_edits(sources[path], [edit for fix in fixes for edit in fix["edits"]])
        if text != sources[path] and still_parses(text):
            fixed[path] = (text, len(fixes))
    return fixed


def unified_diff(path: str, before: str, after: str) -> str:
    return "".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                        fromfile=f"a/{path}", tofile=f"b/{path}"))
