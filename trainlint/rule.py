"""What a rule is: one small class whose docstring is its documentation and whose VALID/INVALID
examples are its tests (the test suite runs them all)."""
from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import os
import pkgutil
import sys
import textwrap
from dataclasses import dataclass
from typing import AbstractSet, ClassVar, Dict, Iterable, List, Optional, Tuple, Union

SEVERITIES = ("info", "warning", "error")
MARKER = "# <-"  # in INVALID examples: this line must be reported


@dataclass
class Fix:
    """Replace the source range of ``node`` with ``replacement``: text, or the source text of
    another node (``return model.eval()`` -> ``return model``). With ``wrap`` (before, after),
    insert text around the node instead, leaving its own text (comments included) untouched."""

    message: str
    node: ast.AST
    replacement: Union[str, ast.AST, None] = None
    safe: bool = True
    wrap: Optional[Tuple[str, str]] = None


@dataclass
class Restructure:
    """A structural fix, applied with LibCST (comments and formatting kept): put a statement just
    after (or before) the statement that starts on line ``anchor``, in the same block. The
    statement is either moved from line ``moved`` (its comment lines travel with it) or new
    (``code``). The anchor is a simple statement alone on its line, or, with ``anchor_is_block``,
    a compound one (an ``if``) taken as a whole. Changing when code runs is never certain to be
    equivalent: unsafe by default."""

    message: str
    anchor: int
    after: bool = True
    moved: Optional[int] = None
    code: Optional[str] = None
    anchor_is_block: bool = False
    safe: bool = False


@dataclass
class Report:
    """What a rule says about one place; the engine turns it into a Finding."""

    node: ast.AST
    message: str
    severity: Optional[str] = None  # overrides the rule's default (e.g. TL101 escalates to error)
    fix: Union[Fix, Restructure, None] = None


@dataclass
class Finding:
    code: str
    name: str
    severity: str
    message: str
    path: str
    line: int
    column: int
    end_line: int
    end_column: int
    fix: Optional[dict] = None

    def to_json(self) -> dict:
        return dict(self.__dict__)


class Rule:
    code: ClassVar[str]
    name: ClassVar[str]
    severity: ClassVar[str]
    summary: ClassVar[str]
    # what a file's text must show for the rule to possibly match (semantics.prerequisites): a
    # file lacking any of them is not analysed for this rule
    requires: ClassVar[tuple]
    VALID: ClassVar[List[str]] = []
    INVALID: ClassVar[List[str]] = []

    def check(self, facts) -> Iterable[Report]:
        raise NotImplementedError

    @classmethod
    def may_match(cls, data: bytes, summaries: AbstractSet[str] = frozenset(), scan=None) -> bool:
        """Whether a file with these bytes can hold a finding of this rule; ``summaries``: what
        the summaries of the other files' functions it calls say (they train, they switch
        modes), which can stand for some prerequisites; ``scan``: what was already looked for
        in these bytes (semantics.prerequisites.Scan)."""
        from .semantics.prerequisites import holds  # not at import: a fully cached run needs no semantics

        return holds(cls.requires, data, summaries, scan)

    @classmethod
    def explain(cls) -> str:
        doc = textwrap.dedent(inspect.getdoc(cls) or "").strip()
        parts = [f"{cls.code} {cls.name} ({cls.severity})", "", doc]
        if cls.INVALID:
            parts += ["", "Example (flagged):", "", _indent(strip_markers(cls.INVALID[0]))]
        if cls.VALID:
            parts += ["", "Use instead:", "", _indent(textwrap.dedent(cls.VALID[0]).strip("\n"))]
        return "\n".join(parts) + "\n"


    @classmethod
    def markdown(cls) -> str:
        """The rule's documentation page (docs/rules/CODE.md)."""
        doc = textwrap.dedent(inspect.getdoc(cls) or "").strip()
        parts = [f"# {cls.code} {cls.name}", "", f"Severity: **{cls.severity}**. {cls.summary}.", "", doc]
        if cls.INVALID:
            parts += ["", "## Example (flagged)", "", "```python", strip_markers(cls.INVALID[0]), "```"]
        if cls.VALID:
            parts += ["", "## Use instead", "", "```python", textwrap.dedent(cls.VALID[0]).strip("\n"), "```"]
        return "\n".join(parts) + "\n"


def strip_markers(example: str) -> str:
    lines = textwrap.dedent(example).strip("\n").splitlines()
    return "\n".join(line.split(MARKER)[0].rstrip() for line in lines)


def marked_lines(example: str) -> List[int]:
    lines = textwrap.dedent(example).strip("\n").splitlines()
    return [i for i, line in enumerate(lines, 1) if MARKER in line]


def _indent(code: str) -> str:
    return textwrap.indent(code, "    ")


_RULES: Optional[Dict[str, type]] = None


def _rules_package():
    """``trainlint.rules``: installed from the top-level rules/ folder, or, when the trainlint
    package is imported straight from a source checkout (``python -m trainlint`` in the repo
    root), that folder itself."""
    try:
        return importlib.import_module("trainlint.rules")
    except ImportError:
        folder = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "rules")
        spec = importlib.util.spec_from_file_location(
            "trainlint.rules", os.path.join(folder, "__init__.py"), submodule_search_locations=[folder])
        package = importlib.util.module_from_spec(spec)
        sys.modules["trainlint.rules"] = package
        spec.loader.exec_module(package)
        return package


def rule_codes() -> Tuple[str, ...]:
    """Every rule code, from the module names (``tl201_zero_grad_every_micro_batch``) without
    importing the rules: a warm, fully cached run needs no more."""
    return tuple(sorted(info.name.split("_")[0].upper() for info in pkgutil.iter_modules(_rules_package().__path__)
                        if info.name.startswith("tl")))


def all_rules() -> Dict[str, type]:
    """Every rule class, by code, in code order."""
    global _RULES
    if _RULES is None:
        package = _rules_package()
        found = {}
        for info in pkgutil.iter_modules(package.__path__):
            module = importlib.import_module(f"{package.__name__}.{info.name}")
            for value in vars(module).values():
                if isinstance(value, type) and issubclass(value, Rule) and value is not Rule \
                        and value.__module__ == module.__name__:
                    found[value.code] = value
        _RULES = dict(sorted(found.items()))
    return _RULES
