"""Applying the fixes findings carry: text edits at exact source ranges, so formatting and
comments outside the replaced range stay as they were. A fixed file must still parse (checked
with LibCST, which reads every Python grammar version), or it is left untouched."""
from __future__ import annotations

import difflib
from typing import Callable, Dict, List, Tuple


def _offsets(text: str) -> List[int]:
    """Offset of the start of each line (1-based index), newlines kept as they are."""
    from .analysis import split_lines

    starts = [0, 0]
    for line in split_lines(text, keepends=True):
        starts.append(starts[-1] + len(line))
    return starts


def apply_fixes(text: str, fixes: List[dict]) -> Tuple[str, int]:
    """Apply the fixes whose edits overlap no edit of a fix already taken (in the order given);
    the others wait for the next round. Lines are 1-based, columns 1-based characters.
    Returns the new text and the number of fixes applied."""
    starts = _offsets(text)
    taken: List[Tuple[int, int, str]] = []
    applied = 0
    for fix in fixes:
        spans = [(starts[e["line"]] + e["column"] - 1, starts[e["end_line"]] + e["end_column"] - 1, e["content"])
                 for e in fix["edits"]]
        if any(start < other_end and other_start < end or start == end == other_start == other_end
               for start, end, _ in spans for other_start, other_end, _ in taken):
            continue
        taken.extend(spans)
        applied += 1
    result, cursor = [], len(text)
    for start, end, content in sorted(taken, reverse=True):
        result.append(text[end:cursor])
        result.append(content)
        cursor = start
    result.append(text[:cursor])
    return "".join(reversed(result)), applied


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
        text, applied = apply_fixes(sources[path], fixes)
        if text != sources[path] and still_parses(text):
            fixed[path] = (text, applied)
    return fixed


MAX_ROUNDS = 10


def fix_until_stable(findings: List[dict], sources: Dict[str, str], unsafe: bool,
                     relint: Callable[[str, str], List[dict]]) -> Dict[str, Tuple[str, int]]:
    """Fix, re-lint the fixed texts, fix again, until no fix applies (at most MAX_ROUNDS rounds):
    a fix skipped because its lines overlap another one's is offered again on the new text."""
    current, counts = dict(sources), {}
    for _ in range(MAX_ROUNDS):
        fixed = fixed_sources(findings, current, unsafe)
        if not fixed:
            break
        for path, (text, applied) in fixed.items():
            current[path] = text
            counts[path] = counts.get(path, 0) + applied
        findings = [finding for path in fixed for finding in relint(path, current[path])]
    return {path: (current[path], applied) for path, applied in counts.items() if current[path] != sources[path]}


def unified_diff(path: str, before: str, after: str) -> str:
    return "".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                        fromfile=f"a/{path}", tofile=f"b/{path}"))
