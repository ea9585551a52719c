"""The semantic layer: from a parsed file to the training facts that rules query.

Entry point: :func:`analyze`. Rules use :class:`FileFacts` and the queries in
:mod:`trainlint.semantics.queries`; none of them walks the syntax tree for what is here.
"""
from .build import build_file_facts as analyze
from .model import Event, FileFacts, FunctionFacts, Guard, GuardKind, Kind, Loop, exclusive
from ..hints import Hints
from .roles import Role, role_of

__all__ = [
    "analyze", "Event", "FileFacts", "FunctionFacts", "Guard", "GuardKind", "Kind", "Loop", "exclusive",
    "Hints", "Role", "role_of",
]
