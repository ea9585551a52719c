"""Data-parallel wrappers: which module a ``DistributedDataParallel`` wraps, and what the code
does to that module after wrapping it."""
from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Iterator, List, Optional, Tuple

from .dataflow import own_nodes
from .model import FunctionFacts, Kind
from .syntax import argument, dotted, exclusive_nodes, last_part, text

# Module methods that convert or move every parameter: DDP's reducer keeps the tensors it saw when
# the wrapper was built, so the gradient all-reduce no longer reaches the converted ones.
CONVERSIONS = frozenset({"to", "cuda", "cpu", "half", "float", "double", "bfloat16", "type", "to_empty"})
_TARGET_KEYWORDS = {"device", "dtype", "tensor"}


@dataclass
class Wrapping:
    wrapper: str  # the name bound to DistributedDataParallel(...)
    module: Optional[str]  # the name of the module it wraps
    call: ast.Call


def is_ddp_constructor(fn: FunctionFacts, call: ast.AST) -> bool:
    if not isinstance(call, ast.Call):
        return False
    return last_part(fn.file.qualify(dotted(call.func) or "")) == "DistributedDataParallel"


def ddp_wrappings(fn: FunctionFacts) -> List[Wrapping]:
    """``ddp = DistributedDataParallel(model, ...)`` (any import alias, ``model = DDP(model)`` too)."""
    found = []
    for name, values in fn.assignments.items():
        for value in values:
            if is_ddp_constructor(fn, value):
                module = argument(value, 0, "module")
                found.append(Wrapping(name, dotted(module) if module is not None else None, value))
    return found


def changes_after_wrapping(fn: FunctionFacts, wrapping: Wrapping) -> Iterator[Tuple[ast.AST, str]]:
    """(node, what it does) for each conversion of the wrapped module (``ddp.cuda(rank)``,
    ``model.half()``, ``ddp.module.to(torch.float64)``) or replacement of one of its parameters
    or layers (``ddp.module.head = nn.Linear(...)``) that runs after the wrapper was built. A
    conversion the module already had before wrapping (``model.cuda(rank)`` both times) changes
    nothing and is left out, as are code paths exclusive with the wrapping."""
    wrapped = {wrapping.wrapper, f"{wrapping.wrapper}.module"} | ({wrapping.module} if wrapping.module else set())
    built_at = getattr(wrapping.call, "end_lineno", wrapping.call.lineno)
    before = _conversions_before(fn, wrapping)
    for node in own_nodes(fn):
        if getattr(node, "lineno", 0) <= built_at:
            continue
        change = _change_of(fn, wrapping, wrapped, node, before)
        if change is not None and not exclusive_nodes(fn.node, wrapping.call, node) \
                and not _rebound_between(fn, wrapping, node.lineno) and _trained_after(fn, wrapping, node):
            yield node, change


def _change_of(fn: FunctionFacts, wrapping: Wrapping, wrapped: set, node: ast.AST, before: set) -> Optional[str]:
    """What ``node`` does to the wrapped module, if it converts it or replaces its parameters."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in CONVERSIONS \
            and dotted(node.func.value) in wrapped and _converts(node) and _signature(node) not in before:
        return f"{text(node)} converts the parameters"
    if isinstance(node, ast.Assign) and _builds_layer_or_parameter(fn, node.value):
        for target in node.targets:
            name = dotted(target)
            if name and any(name.startswith(f"{owner}.") for owner in wrapped - {wrapping.wrapper}):
                return f"{name} = {text(node.value)} replaces parameters"
    return None


def _trained_after(fn: FunctionFacts, wrapping: Wrapping, node: ast.AST) -> bool:
    """Whether training can run after ``node``: a backward() below it or in a loop around it, or
    the wrapper called or handed on below it. (``torch.save(ddp.module.cpu().state_dict())``
    once training is over breaks nothing.)"""
    line = node.lineno
    for backward in fn.events_of(Kind.BACKWARD):
        if backward.line > line or any(
                loop.node.lineno <= line <= getattr(loop.node, "end_lineno", 0) for loop in backward.loops):
            return True
    for later in own_nodes(fn):
        if isinstance(later, ast.Call) and later.lineno > line and (dotted(later.func) == wrapping.wrapper or any(
                dotted(arg) == wrapping.wrapper for arg in list(later.args) + [k.value for k in later.keywords])):
            return True
    return False


def _converts(call: ast.Call) -> bool:
    """``.to()`` with a device or dtype (not only ``memory_format=``/``non_blocking=``); every
    other conversion method always converts."""
    return call.func.attr != "to" or bool(call.args) or any(k.arg in _TARGET_KEYWORDS for k in call.keywords)


def _signature(call: ast.Call) -> Tuple[str, str]:
    return call.func.attr, ", ".join(text(a) for a in call.args) + repr(sorted(text(k) for k in call.keywords))


def _conversions_before(fn: FunctionFacts, wrapping: Wrapping) -> set:
    """Conversions applied to the module before it was wrapped: in calls on it, and in the chain
    that built it (``model = Net().cuda(rank)``)."""
    module = wrapping.module
    if module is None:
        return set()
    found = set()
    for node in own_nodes(fn):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in CONVERSIONS \
                and dotted(node.func.value) == module and node.lineno < wrapping.call.lineno:
            found.add(_signature(node))
    for value in fn.assignments.get(module, ()):
        while isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and \
                getattr(value, "lineno", 0) < wrapping.call.lineno:
            if value.func.attr in CONVERSIONS:
                found.add(_signature(value))
            value = value.func.value
    return found


def _rebound_between(fn: FunctionFacts, wrapping: Wrapping, line: int) -> bool:
    """A new wrapper or a new module bound between the wrapping and ``line``."""
    for name in {wrapping.wrapper, wrapping.module} - {None}:
        for value in fn.assignments.get(name, ()):
            if value is not wrapping.call and wrapping.call.lineno < getattr(value, "lineno", 0) < line \
                    and not _returns_receiver(value, name):
                return True
    return False


def _returns_receiver(value: ast.AST, name: str) -> bool:
    """``model = model.cuda()``: the same object, converted."""
    while isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and value.func.attr in CONVERSIONS:
        value = value.func.value
    return dotted(value) == name


def _builds_layer_or_parameter(fn: FunctionFacts, value: ast.AST) -> bool:
    if not isinstance(value, ast.Call):
        return False
    callee = fn.file.qualify(dotted(value.func) or "")
    return callee.startswith("torch.nn.") and last_part(callee)[:1].isupper()
