"""The semantic layer: from a parsed file to the training facts that rules query.

Entry point: :func:`analyze`. Rules use :class:`FileFacts` and the queries in
its modules by concern: :mod:`.boundaries` (steps and
accumulation windows), :mod:`.schedules`, :mod:`.modes` (which module is trained, in which mode),
:mod:`.dataflow` (values and the autograd graph), :mod:`.modules` (module classes), :mod:`.values`
(where a value comes from); none of them walks the syntax tree for what is here.
"""
from .build import build_file_facts as analyze
from .model import Event, FileFacts, FunctionFacts, Guard, GuardKind, Kind, Loop, exclusive, functions
from ..hints import Hints
from .roles import Role, role_of

__all__ = [
    "analyze", "Event", "FileFacts", "FunctionFacts", "Guard", "GuardKind", "Kind", "Loop", "exclusive", "functions",
    "Hints", "Role", "role_of",
]
