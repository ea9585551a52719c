"""Lint one file's bytes: parse once, derive the facts, run the selected rules, apply suppression
comments. Runs in worker processes; everything it returns is plain JSON-able data."""
from __future__ import annotations

import ast
import gc
import os
import re
import symtable
import sys
import warnings
import tokenize
from contextlib import contextmanager
from dataclasses import dataclass, field
from io import BytesIO
from typing import AbstractSet, Callable, Dict, List, Optional, Tuple, Union

from .config import required_python
from .rule import Finding, Fix, Report, Restructure, all_rules
from .hints import Hints

MAX_BYTES = 20 * 1024 * 1024
_NOQA = re.compile(r"#\s*noqa(?::\s*(?P<codes>[A-Za-z]+[0-9]+(?:[\s,]+[A-Za-z]+[0-9]+)*))?", re.I)
_IGNORE = re.compile(r"#\s*trainlint:\s*ignore(?:\[(?P<codes>[^\]]*)\])?", re.I)


@dataclass
class Settings:
    """What every worker needs to lint a file; part of the cache key."""

    codes: Tuple[str, ...]
    severities: Dict[str, str] = field(default_factory=dict)
    hints: Hints = field(default_factory=Hints)

    def fingerprint(self) -> str:
        return repr((self.codes, sorted(self.severities.items()), self.hints))


def problem(path: str, message: str, line: int = 1, column: int = 1) -> Finding:
    """A file that could not be linted: reported, never skipped silently."""
    return Finding("TL000", "file-not-linted", "error", message, path, line, column, line, column, None)


def may_match(data: bytes, codes, summaries: AbstractSet[str] = frozenset(), scan=None) -> bool:
    """Whether any of the rules ``codes`` can match a file with these bytes (see Rule.may_match);
    ``scan`` keeps what was looked for, for the analysis to go on from."""
    return bool(matching_rules(data, codes, summaries, scan, first_only=True))


def matching_rules(data: bytes, codes, summaries: AbstractSet[str] = frozenset(), scan=None,
                   first_only: bool = False) -> Tuple[str, ...]:
    """The rules among ``codes`` that can match a file with these bytes, in the order of ``codes``
    (with ``first_only``, the first of them)."""
    from .semantics.prerequisites import Scan, holds  # not at import: a fully cached run needs no semantics

    scan = Scan(data) if scan is None else scan
    rules = all_rules()
    matching = []
    for code in codes:  # asked of every file: a plain loop
        if holds(rules[code].requires, data, summaries, scan):
            matching.append(code)
            if first_only:
                break
    return tuple(matching)


def parses(data: Union[bytes, str]) -> bool:
    """Whether the bytes (or text) are Python that ``ast.parse`` accepts. Building the symbol table answers
    most files faster (it parses, builds no Python objects for the syntax tree and generates no
    code); what it rejects beyond the parser's rules (``nonlocal`` at module level) is asked of
    ``ast.parse`` itself."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid escape sequences and the like are the linted code's
        for check in (_symbol_table, ast.parse):
            try:
                check(data)
                return True
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                pass
    return False


def _symbol_table(data: Union[bytes, str]) -> None:
    symtable.symtable(data, "<linted>", "exec")


_NEWLINE = re.compile(r"\r\n|\r|\n")


def split_lines(text: str, keepends: bool = False) -> List[str]:
    """Lines as Python's tokenizer counts them (str.splitlines also splits on form feeds and
    other separators, which would shift every line number after them)."""
    if not keepends:
        return _NEWLINE.split(text)
    parts, start = [], 0
    for match in _NEWLINE.finditer(text):
        parts.append(text[start:match.end()])
        start = match.end()
    parts.append(text[start:])
    return parts


def decode(data: bytes) -> str:
    try:
        encoding, _ = tokenize.detect_encoding(BytesIO(data).readline)
        return data.decode(encoding)
    except (SyntaxError, LookupError, UnicodeDecodeError):
        return data.decode("utf-8", errors="replace")


def empty_result(module_name: str, findings=()) -> dict:
    """What a file contributes when it is not analysed (nothing to match) or cannot be."""
    return {"module": module_name, "findings": list(findings), "exports": {}, "asked": [], "uses": [], "passers": [], "unused": []}


def lint_file(data: bytes, path: str, module: Tuple[str, str], settings: Settings, index,
              found: Optional[Dict[str, bool]] = None, matching: Optional[Tuple[str, ...]] = None) -> dict:
    """lint_bytes, with notebooks (.ipynb) turned into one module and mapped back to cells;
    ``found``: the prerequisites the engine already looked for in ``data``, by name; ``matching``:
    the rules whose prerequisites it found met, if it asked of all of them with the summaries of
    ``index``."""
    with _collector_paused():
        return _lint_file(data, path, module, settings, index, found, matching)


@contextmanager
def _collector_paused():
    """A file's syntax tree and facts are up to millions of objects, built in one go and freed
    together when the file is done (lint_bytes breaks the reference cycles among the facts, so
    that reference counting frees them at once). Meanwhile the automatic collector would traverse
    them again and again, for nothing: a fifth of the time on large files, measured."""
    if not gc.isenabled():  # whoever turned it off knows why
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _lint_file(data: bytes, path: str, module: Tuple[str, str], settings: Settings, index, found, matching) -> dict:
    if not path.endswith(".ipynb"):
        return lint_bytes(data, path, module, settings, index, found, matching=matching)
    from .notebooks import NotebookError, map_back, mark_displayed, virtual_source
    try:
        source, origin = virtual_source(data)
    except NotebookError as error:
        return empty_result(module[0], [problem(path, str(error)).to_json()])
    if not may_match(source, settings.codes, index.summaries_say) and parses(source):
        return empty_result(module[0])  # as for a Python file: unmatched, only its syntax is checked
    result = lint_bytes(source, path, module, settings, index,
                        prepare=lambda tree: mark_displayed(tree, source, origin))
    for key in ("findings", "unused"):
        result[key] = [map_back(f, origin) for f in result[key]]
    return result


def lint_bytes(data: bytes, path: str, module: Tuple[str, str], settings: Settings, index,
               found: Optional[Dict[str, bool]] = None,
               prepare: Optional[Callable[[ast.Module], None]] = None,
               matching: Optional[Tuple[str, ...]] = None) -> dict:
    """Findings, exported function summaries and cross-file questions for one file; ``prepare``
    changes the parsed tree before it is analysed (a notebook's displayed values); ``matching``
    as for lint_file."""
    module_name, package = module
    result = empty_result(module_name)
    if b"\0" in data:
        result["findings"].append(problem(path, "binary file (contains NUL bytes), not Python source").to_json())
        return result
    if len(data) > MAX_BYTES:
        result["findings"].append(problem(path, f"file larger than {MAX_BYTES // 2**20} MiB, not linted").to_json())
        return result
    from .semantics import analyze, functions
    from .semantics.modes import builder_uses, returned_eval_model
    from .semantics.prerequisites import EVERY_SUMMARY, Scan
    from .semantics.summaries import RecordingIndex, ask_about_calls, may_summarise, summarize

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarnings are about the linted code, not for our output
            tree = ast.parse(data, filename=path)
    except SyntaxError as error:
        line = error.lineno or 1
        result["findings"].append(problem(path, _cannot_parse(path, error), line, error.offset or 1).to_json())
        return result
    except (ValueError, RecursionError, MemoryError) as error:
        result["findings"].append(problem(path, f"cannot parse: {error}").to_json())
        return result
    if prepare is not None:
        prepare(tree)
    facts = analyze(tree, path, module_name, package, settings.hints, index)
    reported: List[Tuple[type, Report]] = []
    rules = all_rules()
    scan = Scan(data, found)
    if matching is None:
        matching = matching_rules(data, settings.codes, index.summaries_say, scan)
    # what the file lacks for the other rules may come from the summaries of the functions it calls
    unmatched = [code for code in settings.codes if code not in matching]
    needs_answers = isinstance(index, RecordingIndex) and bool(
        matching_rules(data, unmatched, EVERY_SUMMARY, scan, first_only=True))
    for code in matching:
        rule = rules[code]
        try:
            reports = list(rule().check(facts))
        except Exception as error:  # a bug in one rule must not hide the other rules' findings
            result["findings"].append(problem(path, f"internal error in {code} while linting: {error!r}; the other "
                                                    f"rules' findings for this file are reported").to_json())
            continue
        reported.extend((rule, report) for report in reports)
    if needs_answers:
        ask_about_calls(facts)
    lowered = data.lower()  # every suppression comment holds one of these words, in any case
    suppressing = b"noqa" in lowered or b"trainlint" in lowered
    # most files have neither a finding nor a suppression comment: their text is not needed
    text = decode(data) if reported or suppressing else ""
    lines = split_lines(text)
    findings = [_finding(rule, report, path, text, lines, settings, tree) for rule, report in reported]
    seen = set()
    comments = suppression_comments(lines) if suppressing else {}
    used = set()
    for finding in sorted(findings, key=lambda f: (f.line, f.column, f.code)):
        key = (finding.code, finding.line, finding.column)
        codes = comments.get(finding.line)
        if codes is not None and (not codes or finding.code in codes):
            used.add((finding.line, finding.code if codes else ""))
        elif key not in seen:
            seen.add(key)
            result["findings"].append(finding.to_json())
    result["unused"] = [
        Finding("TL002", "unused-suppression", "info", f"unused suppression: no {code} finding on this line", path,
                line, 1, line, len(lines[line - 1]) + 1, None).to_json()
        for line, codes in sorted(comments.items()) for code in sorted(codes)
        if code.startswith("TL") and (line, code) not in used and code in settings.codes
    ]
    for fn in facts.functions if may_summarise(facts) else ():
        summary = summarize(fn, returned_eval_model(fn) is not None)
        if not summary.empty:
            result["exports"][fn.qualname] = summary.to_json()
    for fn in functions(facts):
        uses = list(builder_uses(fn))
        result["uses"].extend([facts.qualify(callee), use, fn.qualname] for callee, use in uses
                              if facts.local_function(callee, fn) is None)
        if any(use == "passed" for _, use in uses):
            result["passers"].append(fn.qualname)  # other files' calls of it are uses of the builder
    if isinstance(index, RecordingIndex):
        result["asked"] = sorted(index.asked)
    facts.dispose()
    return result


def _cannot_parse(path: str, error: SyntaxError) -> str:
    """The parse error, and where the project needs a newer Python than the one running trainlint
    (PEP 695's `type X = ...` under 3.11), that this Python is the reason."""
    needed = required_python(os.path.dirname(os.path.abspath(path)))
    if needed is not None and needed > sys.version_info[:2]:
        running = "{}.{}".format(*sys.version_info[:2])
        return (f"cannot parse with Python {running} ({error.msg}), and the project requires Python "
                f">={needed[0]}.{needed[1]}: run trainlint under a Python the project supports")
    word = _NAME_NOW_RESERVED.search(error.text or "") if error.msg == "invalid syntax" else None
    if word is not None:
        return (f"cannot parse: '{word.group(1) or word.group(2)}' is used as a name, and it is a reserved word "
                f"since Python 3.7: the file was written for an older Python")
    return f"cannot parse: {error.msg}"


# `cuda(async=True)`, `def f(async):`, `obj.await`: names that Python 3.7 made keywords
_NAME_NOW_RESERVED = re.compile(r"\.\s*(async|await)\b|\b(async|await)\s*(?:=(?!=)|,|\))")


def _finding(rule, report: Report, path: str, text: str, lines: List[str], settings: Settings,
             tree: ast.Module) -> Finding:
    line, column, end_line, end_column = _span(report.node, lines)
    severity = settings.severities.get(rule.code) or report.severity or rule.severity
    if isinstance(report.fix, Restructure):
        from .restructure import region_of, restructure_edits  # LibCST: only for files with such a finding

        change = report.fix
        edits = restructure_edits(text, change, region_of(tree, *[n for n in (change.anchor, change.moved) if n]))
        fix = {"message": report.fix.message, "safe": report.fix.safe, "edits": edits} if edits else None
    else:
        fix = _fix_json(report.fix, lines) if report.fix is not None else None
    return Finding(rule.code, rule.name, severity, report.message, path, line, column, end_line, end_column, fix)


def _span(node: ast.AST, lines: List[str]) -> Tuple[int, int, int, int]:
    """1-based (line, column, end_line, end_column) in characters."""
    end_line = getattr(node, "end_lineno", None) or node.lineno
    end_offset = getattr(node, "end_col_offset", None)
    return (node.lineno, _character_column(lines, node.lineno, node.col_offset) + 1, end_line,
            _character_column(lines, end_line, node.col_offset if end_offset is None else end_offset) + 1)


def _fix_json(fix: Fix, lines: List[str]) -> dict:
    """A fix as edits of the source: ranges to replace (1-based, characters) and their content."""
    line, column, end_line, end_column = _span(fix.node, lines)
    if fix.wrap is not None:
        before, after = fix.wrap
        return {"message": fix.message, "safe": fix.safe, "edits": [
            {"line": line, "column": column, "end_line": line, "end_column": column, "content": before},
            {"line": end_line, "column": end_column, "end_line": end_line, "end_column": end_column,
             "content": after}]}
    if isinstance(fix.replacement, str):
        content = fix.replacement
    else:
        first, start, last, stop = _span(fix.replacement, lines)
        chunk = lines[first - 1: last]
        chunk[-1] = chunk[-1][: stop - 1]
        chunk[0] = chunk[0][start - 1:]
        content = "\n".join(chunk)
    return {"message": fix.message, "safe": fix.safe, "edits": [
        {"line": line, "column": column, "end_line": end_line, "end_column": end_column, "content": content}]}


def _character_column(lines: List[str], line: int, byte_offset: int) -> int:
    """ast columns count UTF-8 bytes; editors and SARIF count characters."""
    if not 0 < line <= len(lines):
        return byte_offset
    return len(lines[line - 1].encode("utf-8")[:byte_offset].decode("utf-8", errors="ignore"))


def suppression_codes(line_text: str) -> Optional[set]:
    """Codes suppressed on a line: an empty set means all, None means no suppression comment."""
    if "#" not in line_text:
        return None
    for pattern in (_NOQA, _IGNORE):
        match = pattern.search(line_text)
        if match:
            codes = match.group("codes")
            return {c.upper() for c in re.split(r"[\s,]+", codes) if c} if codes else set()
    return None


def suppression_comments(lines: List[str]) -> Dict[int, set]:
    """Line -> codes its suppression comment names (an empty set: all)."""
    found = {}
    for number, text in enumerate(lines, 1):
        if "#" in text:
            codes = suppression_codes(text)
            if codes is not None:
                found[number] = codes
    return found


def module_of(path: str, _cache: Dict[str, Tuple[str, ...]] = {}) -> Tuple[str, str]:
    """(module name, package) from the package folders (those with __init__.py) above the file."""
    directory, filename = os.path.split(os.path.abspath(path))
    stem = os.path.splitext(filename)[0]
    if directory not in _cache:
        parts: List[str] = []
        current = directory
        while os.path.isfile(os.path.join(current, "__init__.py")):
            current, name = os.path.split(current)
            parts.insert(0, name)
            if not name:
                break
        _cache[directory] = tuple(parts)
    package_parts = _cache[directory]
    if stem == "__init__":
        name = ".".join(package_parts)
        return name, name
    return ".".join(package_parts + (stem,)), ".".join(package_parts)
