"""Guard classes: what the test of an ``if`` around a training event means.

``classify_guard`` returns (kind, sense): ``sense`` is the truth value of the test in which the
classified condition holds. ``(i + 1) % k == 0`` is (BOUNDARY, True); ``(i + 1) % k != 0`` is
(BOUNDARY, False); ``torch.isfinite(loss)`` is (NAN, False): the loss is non-finite when the test
is false.
"""
from __future__ import annotations

import ast
import re
from typing import Tuple

from .model import GuardKind, Unpacked
from .syntax import called_names, dotted, int_constant, last_part, name_words, names_in

LOGGING_WORDS = {
    "log", "logging", "print", "debug", "verbose", "profile", "profiling", "vis", "visualize", "display",
    "dump", "eval", "val", "valid", "validation", "save", "ckpt", "checkpoint", "report", "summary", "plot",
    "show", "sample", "test", "snapshot", "write", "tb", "wandb", "monitor", "scalar", "scalars", "throughput",
    "metric", "metrics", "tracker", "writer", "logger",
}
_DEBUG_WORDS = {"debug", "verbose", "log", "logging", "print", "profile", "profiling", "dryrun", "trace"}
_ACCUMULATION_WORDS = {"accum", "accumulate", "accumulation", "acc", "ga", "update", "micro", "iters",
                       "accumulated", "sync"}
_EPOCH_END_WORDS = {"last", "final"}
_NAN_WORDS = {"nan", "inf", "overflow", "nonfinite", "isnan", "isinf"}
_COUNTER = re.compile(
    r"^(i|j|it|itr|iter|iters|iteration|iterations|idx|index|bi|b|b_idx|batch_idx|batch_i|batch_id|"
    r"batch_index|batch_num|batch_no|step|steps_done|global_step|cur_step|curr_step|current_step|n_iter|niter|"
    r"ni|epoch|ep|cur_epoch|current_epoch|num_updates|updates|n_updates|counter|count|completed_steps|"
    r"micro_step|t|k|step_idx|step_id|iteration_idx|train_step|total_steps_done|global_iter)$"
)
_SAFE_CALLS = {"len", "int", "float", "bool", "str", "getattr", "hasattr", "isinstance", "min", "max", "abs"}


def classify_guard(guard) -> Tuple[str, bool]:
    if isinstance(guard.node, ast.ExceptHandler):
        return GuardKind.OTHER, True
    return _classify(guard.test, guard, 0)


def _classify(test: ast.AST, guard, depth: int) -> Tuple[str, bool]:
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        kind, sense = _classify(test.operand, guard, depth)
        return kind, not sense
    if isinstance(test, ast.BoolOp):
        return _combine(test, [_classify(v, guard, depth) for v in test.values])
    if isinstance(test, ast.NamedExpr):
        return _classify(test.value, guard, depth)
    nan = _nan_check(test)
    if nan is not None:
        return GuardKind.NAN, nan
    if isinstance(test, ast.Compare) and len(test.ops) == 1:
        found = _comparison(test, guard)
        if found is not None:
            return found
    if isinstance(test, ast.BinOp) and isinstance(test.op, ast.Mod):  # `if i % k:` is true off the boundary
        return (_modulus_kind(test), False)
    name = dotted(test)
    if name is not None:
        found = _named_condition(name, guard, depth)
        if found is not None:
            return found
    if _is_invariant(test, guard):
        return GuardKind.INVARIANT, True
    return GuardKind.OTHER, True


def _combine(test: ast.BoolOp, parts) -> Tuple[str, bool]:
    kinds = [k for k, _ in parts]
    if isinstance(test.op, ast.Or):
        if all(k in (GuardKind.BOUNDARY, GuardKind.EPOCH_END) for k in kinds) and all(s for _, s in parts):
            return (GuardKind.BOUNDARY if GuardKind.BOUNDARY in kinds else GuardKind.EPOCH_END), True
        if all(k == GuardKind.NAN and s for k, s in parts):
            return GuardKind.NAN, True
        if any(k == GuardKind.DEBUG and s for k, s in parts):
            return GuardKind.DEBUG, True
        if all(k == GuardKind.INVARIANT for k in kinds):
            return GuardKind.INVARIANT, True
        return GuardKind.OTHER, True
    # `and`: the most specific varying part decides, the loop-invariant parts only narrow it
    if any(k == GuardKind.DEBUG and s for k, s in parts):
        return GuardKind.DEBUG, True
    varying = [(k, s) for k, s in parts if k != GuardKind.INVARIANT and (k, s) != (GuardKind.DEBUG, False)]
    if not varying:
        return GuardKind.INVARIANT, True
    if len(varying) == 1 and varying[0][1]:
        return varying[0]
    return GuardKind.OTHER, True


def _nan_check(test: ast.AST):
    """The sense of a non-finite check (True: the test is true when values are non-finite)."""
    calls = called_names(test)
    leaves = {last_part(c) for c in calls if c}
    if isinstance(test, ast.Call) and isinstance(test.func, ast.Attribute) and test.func.attr in ("any", "all"):
        inner = test.func.value
        if isinstance(inner, ast.Call):
            return _nan_check(inner)
    if leaves & {"isnan", "isinf"}:
        return True
    if "isfinite" in leaves:
        return False
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.NotEq):
        if ast.dump(test.left) == ast.dump(test.comparators[0]):  # loss != loss
            return True
    return None


def _comparison(test: ast.Compare, guard):
    left, op, right = test.left, test.ops[0], test.comparators[0]
    for a, b in ((left, right), (right, left)):
        if isinstance(a, ast.BinOp) and isinstance(a.op, ast.Mod):
            kind = _modulus_kind(a)
            if isinstance(op, ast.Eq):
                return kind, True
            if isinstance(op, ast.NotEq):
                return kind, False
    if isinstance(op, (ast.GtE, ast.Gt)) and isinstance(left, ast.BinOp) and isinstance(left.op, ast.Sub):
        # `if ni - last_opt_step >= accumulate:` with `last_opt_step = ni` inside
        subtrahend = dotted(left.right)
        if subtrahend is not None and subtrahend in _names_assigned_in(guard.node):
            return GuardKind.BOUNDARY, True
    if isinstance(op, (ast.Eq, ast.NotEq, ast.GtE)):
        sense = not isinstance(op, ast.NotEq)
        for a, b in ((left, right), (right, left)):
            if _is_counter(a, guard) and _is_last_index(b):
                return GuardKind.EPOCH_END, sense
            if isinstance(op, (ast.Eq, ast.NotEq)) and _is_counter(a, guard) and int_constant(b) is not None:
                return GuardKind.DEBUG, sense
    return None


def _modulus_kind(expression: ast.BinOp) -> str:
    """``x % log_every`` is logging; any other modulus of a counter is an accumulation boundary."""
    words = set()
    for name in names_in(expression.right):
        words.update(name_words(name))
    if words & LOGGING_WORDS and not words & _ACCUMULATION_WORDS:
        return GuardKind.DEBUG
    return GuardKind.BOUNDARY


def _is_counter(node: ast.AST, guard) -> bool:
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
        return _is_counter(node.left, guard)
    name = dotted(node)
    if name is None:
        return False
    if _COUNTER.match(last_part(name)):
        return True
    return any(name in loop.assigned for loop in guard.enclosing_loops)


def _is_last_index(node: ast.AST) -> bool:
    """``len(loader)``, ``len(loader) - 1``, ``num_batches - 1``, ``last_idx``."""
    if "len" in called_names(node):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Sub) and int_constant(node.right) == 1:
        return True
    name = dotted(node)
    return name is not None and bool(set(name_words(name)) & _EPOCH_END_WORDS)


def _named_condition(name: str, guard, depth: int):
    words = set(name_words(name))
    if last_part(name) == "sync_gradients":
        return GuardKind.BOUNDARY, True
    if words & _NAN_WORDS:
        return GuardKind.NAN, True
    if "finite" in words:
        return GuardKind.NAN, False
    if words & _DEBUG_WORDS:
        return GuardKind.DEBUG, True
    if words & _EPOCH_END_WORDS and words & {"batch", "step", "iter", "iteration", "idx", "micro"}:
        return GuardKind.EPOCH_END, True
    if depth < 3:
        value = guard.scope.binding(name)
        if value is not None and not isinstance(value, Unpacked) and isinstance(value, ast.expr):
            kind, sense = _classify(value, guard, depth + 1)
            if kind != GuardKind.OTHER and kind != GuardKind.INVARIANT:
                return kind, sense
    return None


def _is_invariant(test: ast.AST, guard) -> bool:
    calls = called_names(test)
    if any(last_part(c) not in _SAFE_CALLS for c in calls):
        return False
    for name in names_in(test):
        if name in _SAFE_CALLS:
            continue
        if _COUNTER.match(last_part(name)):
            return False
        head = name.split(".")[0]
        for loop in guard.enclosing_loops:
            if name in loop.assigned or head in loop.assigned:
                return False
    return True


def _names_assigned_in(node: ast.AST) -> set:
    found = set()
    for stmt in getattr(node, "body", []):
        if isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                name = dotted(target)
                if name:
                    found.add(name)
    return found
