"""What names hold: where a value came from, followed through assignments, tuple unpacking,
attribute stores and the returns of functions defined in the file.

Rules ask these questions instead of matching names: "which expressions can have produced this
value", "is this loop starting a new training run (a new model each iteration)", "can this
tensor be zero". When the answer depends on code trainlint cannot see, the functions here answer
"unknown" (an empty list, False), and the rules asking stay silent.
"""
from __future__ import annotations

import ast
import bisect
from dataclasses import dataclass
from typing import List, Optional

from .model import FunctionFacts, Loop, Unpacked
from .roles import Role, role_of_constructor
from .summaries import arguments_of
from .syntax import BUILDER_NAME, RETURNS_SELF, argument, dotted, last_part, names_in

MAX_DEPTH = 4


@dataclass(frozen=True, eq=False)
class Origin:
    """An expression that produced a value, and the function whose names it reads."""

    fn: FunctionFacts
    expr: ast.AST


def origins(fn: FunctionFacts, expr: ast.AST, depth: int = 0) -> List[Origin]:
    """The expressions that may have produced the value of ``expr``: every binding of a name,
    the element of a tuple a call returned (``train, val = make_loaders()``), what a function of
    this file returns. Calls of other functions are their own origin."""
    if depth > MAX_DEPTH or expr is None:
        return []
    if isinstance(expr, Unpacked):
        return [o for inner in origins(fn, expr.value, depth + 1) for o in _element(inner, expr.index, depth)]
    if isinstance(expr, ast.Call):
        callee = fn.file.local_function(dotted(expr.func) or "", fn) if dotted(expr.func) else None
        if callee is not None and callee.returns:
            return [o for ret in callee.returns if ret.value is not None
                    for o in origins(callee, ret.value, depth + 1)] or [Origin(fn, expr)]
        return [Origin(fn, expr)]
    name = dotted(expr)
    if name is not None:
        values = fn.all_bindings(name)
        if not values:
            return [Origin(fn, expr)]
        return [o for value in values for o in origins(fn, value, depth + 1)]
    return [Origin(fn, expr)]


def handed_in(fn: FunctionFacts, name: str) -> List[Origin]:
    """The origins of what the callers of ``fn`` in this file pass for its parameter ``name``
    (``one_epoch(net, loader, opt, sched)``); empty when it is no parameter or no call is in sight."""
    if name not in fn.params:
        return []
    found = []
    for caller, event in fn.file.call_sites(fn):
        call = event.detail.get("call")
        passed = arguments_of(fn, call, event.detail.get("bound", False)).get(name) \
            if isinstance(call, ast.Call) else None
        found.extend(origins(caller, passed) if passed is not None else ())
    return found


def _element(origin: Origin, index: int, depth: int) -> List[Origin]:
    if isinstance(origin.expr, (ast.Tuple, ast.List)) and 0 <= index < len(origin.expr.elts):
        return origins(origin.fn, origin.expr.elts[index], depth + 1)
    return []  # an element of something unknown: no claim


def callee_of(origin: Origin) -> str:
    """The import-resolved name of the function whose call produced the value, or ''."""
    if isinstance(origin.expr, ast.Call):
        return origin.fn.file.qualify(dotted(origin.expr.func) or "")
    return ""


# -- loops ----------------------------------------------------------------------------------------

def bound_in_loop(expr: ast.AST, loop: Loop) -> bool:
    """Whether ``expr`` reads a name re-bound in the loop's body (``net.parameters()`` with
    ``net = make_net()`` in the loop)."""
    for name in names_in(expr):
        parts = name.split(".")
        if any(".".join(parts[:i]) in loop.assigned for i in range(1, len(parts) + 1)):
            return True
    return False


_FRESH_MODULE_CALLS = {"deepcopy", "from_pretrained", "from_config", "instantiate"}


# the keyword of the first parameter of the constructors of each role (torch.optim, lr_scheduler
# and transformers' schedule factories)
_SUBJECT_KEYWORDS = {Role.OPTIMIZER: "params", Role.SCHEDULER: "optimizer"}


def built_over(call: ast.Call, role: Optional[str]) -> Optional[ast.expr]:
    """What a constructor is built over, passed first or by its keyword: an optimizer's parameters
    (``AdamW(params=model.parameters())``), a scheduler's optimizer
    (``get_linear_schedule_with_warmup(optimizer=optimizer, ...)``)."""
    return argument(call, 0, _SUBJECT_KEYWORDS.get(role, ""))


def starts_new_run(fn: FunctionFacts, loop: Loop) -> bool:
    """Whether each iteration of ``loop`` starts a run of its own (cross-validation folds, sweeps,
    restarts): an optimizer built in the loop over the parameters of a model also built there, or a
    loop over a literal list of settings (``for device in ["cpu", "cuda"]``, ``for lr in (0.1,
    0.01)``): its iterations are configurations, not steps or epochs."""
    iterated = getattr(loop.node, "iter", None)
    if isinstance(iterated, (ast.List, ast.Tuple, ast.Set)) and iterated.elts \
            and all(isinstance(e, ast.Constant) for e in iterated.elts):
        return True
    for values in fn.assignments.values():
        for value in values:
            if not isinstance(value, ast.Call) or not inside(value, loop):
                continue
            role = role_of_constructor(fn.file.qualify(dotted(value.func) or ""))
            parameters = built_over(value, role) if role == Role.OPTIMIZER else None
            if parameters is None:
                continue
            for name in names_in(parameters):
                model = name.rsplit(".", 1)[0] if last_part(name) in ("parameters", "named_parameters") else name
                if model in loop.assigned and any(_fresh_module(fn, v) for v in fn.all_bindings(model)
                                                  if inside(v, loop)):
                    return True
    return False


def inside(node: ast.AST, loop: Loop) -> bool:
    """Whether ``node`` is written in the body of ``loop``."""
    line = getattr(node, "lineno", 0)
    return loop.node.lineno < line <= getattr(loop.node, "end_lineno", loop.node.lineno)


def _fresh_module(fn: FunctionFacts, value: ast.AST) -> bool:
    """A call that returns a new module object: a class, a builder, a deep copy."""
    if not isinstance(value, ast.Call):
        return False
    while isinstance(value.func, ast.Attribute) and value.func.attr in RETURNS_SELF \
            and isinstance(value.func.value, ast.Call):  # make_net().to(device)
        value = value.func.value
    callee = fn.file.qualify(dotted(value.func) or "")
    leaf = last_part(callee)
    if not leaf or role_of_constructor(callee) is not None:
        return False
    return leaf[:1].isupper() or leaf in _FRESH_MODULE_CALLS or bool(BUILDER_NAME.match(leaf)) or \
        "model" in leaf.lower() or "net" in leaf.lower()


def consumed_inside(name: str, loop: Loop) -> bool:
    """Whether the loop drains the container ``name`` (``queue.pop(0)``, ``items.clear()``): a
    queue holds a bounded number of values. (One walk per loop: a long loop has many sums.)"""
    if loop.drained is None:
        loop.drained = {dotted(node.func.value) for node in ast.walk(loop.node) if isinstance(node, ast.Call)
                        and isinstance(node.func, ast.Attribute) and node.func.attr in ("pop", "popleft", "clear")}
    return name in loop.drained


_LIST_TYPES = {"list", "deque", "collections.deque"}


def keeps_what_is_appended(fn: FunctionFacts, container: str) -> bool:
    """Whether ``container.append(x)`` keeps ``x`` itself: a list or deque, or a container built
    out of sight. An object that some other call made (a running mean, a metric, a logger) has an
    ``append`` of its own, which may keep only a detached number."""
    return not any(isinstance(value, ast.Call) and fn.file.qualify(dotted(value.func) or "") not in _LIST_TYPES
                   for value in fn.all_bindings(container))


def is_local(fn: FunctionFacts, name: str) -> bool:
    """A plain name bound in a function (not an attribute, not module-level state)."""
    return fn is not fn.file.module and "." not in name and name in fn.assignments


def returned(fn: FunctionFacts, name: str) -> bool:
    """Whether ``fn`` returns the value of ``name`` (in any expression: ``sum(parts)``)."""
    return any(ret.value is not None and name in names_in(ret.value) for ret in fn.returns)


# -- numbers --------------------------------------------------------------------------------------

_RANDOM_NORMAL = {"randn", "randn_like", "normal", "normal_"}


def binding_before(fn: FunctionFacts, name: str, line: int, reader: Optional[ast.AST] = None) -> Optional[ast.AST]:
    """The value bound to ``name`` last before ``line`` in this function (textual order); with
    ``reader``, the last one on a path that also runs ``reader`` (not in a branch that excludes it)."""
    by_line = fn._indexes.get(("bindings by line", name))
    if by_line is None:
        values = sorted((v for v in fn.assignments.get(name, ()) if getattr(v, "lineno", 0) > 0),
                        key=lambda v: v.lineno)
        by_line = fn._indexes[("bindings by line", name)] = ([v.lineno for v in values], values)
    lines, values = by_line
    at = bisect.bisect_left(lines, line) - 1
    if reader is not None and at >= 0:
        paths = fn.if_paths()
        while at >= 0 and paths.get(id(values[at])) and fn.exclusive(values[at], reader):
            at -= 1
    if at < 0:
        return None
    return values[bisect.bisect_left(lines, lines[at])]  # of several on that line, the first bound


def nonzero_almost_surely(fn: FunctionFacts, expr: ast.AST, line: int, depth: int = 0) -> bool:
    """Whether the tensor ``expr`` (read at ``line``) is drawn from a continuous distribution
    (``torch.randn``, possibly rescaled), so that its norm is 0 with probability 0."""
    if depth > MAX_DEPTH:
        return False
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, (ast.Mult, ast.Div)):
        return nonzero_almost_surely(fn, expr.left, line, depth + 1)
    if isinstance(expr, ast.Call):
        callee = fn.file.qualify(dotted(expr.func) or "")
        method = expr.func.attr if isinstance(expr.func, ast.Attribute) else ""
        return method in _RANDOM_NORMAL or callee.startswith("torch") and last_part(callee) in _RANDOM_NORMAL
    name = dotted(expr)
    value = binding_before(fn, name, line) if name is not None else None
    return isinstance(value, ast.expr) and nonzero_almost_surely(fn, value, value.lineno, depth + 1)


def keeps_no_state(fn: FunctionFacts, call: ast.Call) -> bool:
    """An optimizer that carries nothing from one step to the next: plain SGD (no momentum), so
    building a new one every iteration loses nothing."""
    if last_part(fn.file.qualify(dotted(call.func) or "")) != "SGD":
        return False
    momentum = next((k.value for k in call.keywords if k.arg == "momentum"),
                    call.args[2] if len(call.args) > 2 else None)
    return momentum is None or isinstance(momentum, ast.Constant) and momentum.value == 0
