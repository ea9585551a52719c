"""Optimizer steps and the accumulation window: which guard is the boundary, which zero_grad
clears which step, what counts optimizer steps."""
from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Iterator, List, Optional, Tuple

from .model import Event, FileFacts, FunctionFacts, Guard, GuardKind, Kind, Loop, Unpacked
from .roles import Role, constructor_of, role_of, scheduler_constructor
from .guards import LOGGING_WORDS
from .values import binding_before
from .modes import optimizer_modules
from .summaries import arguments_of
from .modules import module_classes
from .syntax import dotted, is_division, last_part, name_words, names_in, text

_ACCUMULATION_WORDS = {"accum", "accumulate", "accumulation", "accumulated", "ga", "micro", "update", "freq"}



def boundary_guards(event: Event, loop: Loop) -> List[Guard]:
    """Guards inside ``loop`` that restrict ``event`` to the accumulation boundary (or the last
    micro-batch of the loop)."""
    return [g for g in event.guards_within(loop) if g.kind in (GuardKind.BOUNDARY, GuardKind.EPOCH_END) and g.holds]



def accumulation_boundary(fn: FunctionFacts, step: Event, loop: Loop) -> List[Guard]:
    """The boundary guards of an optimizer step that accumulates gradients over iterations of
    ``loop``: the step runs only on the boundary while some backward() runs off it. Empty when the
    step's own branch runs a backward() before it (a complete update every k iterations, like a
    GAN generator trained every n_critic steps: the backward()s off the boundary feed other
    optimizers)."""
    boundary = boundary_guards(step, loop)
    if not boundary:
        return []
    backwards = backward_events_in(fn, loop)
    if any(b.order < step.order and all(b.has_guard(g) for g in boundary) for b in backwards):
        return []
    if not any(not any(b.has_guard(g) for g in boundary) for b in backwards):
        return []
    return boundary



def found_in_one_helper(*events: Event) -> bool:
    """Whether every event reached ``fn`` through the same call of a helper of this file: the
    helper, analysed on its own, reports what they show (one finding per bug, at the helper's
    line)."""
    return all(e.via for e in events) and len({id(e.node) for e in events}) == 1



def divided_by_accumulation(fn: FunctionFacts, backward: Event) -> bool:
    """Whether the loss given to ``backward`` was divided by the accumulation count
    (``loss = criterion(...) / accum``, ``loss /= args.gradient_accumulation_steps``)."""
    def divides(expr):
        return isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Div) and is_accumulation_count(expr.right)

    loss = backward.detail.get("loss")
    if loss is None:
        return False
    if divides(loss):
        return True
    name = dotted(loss)
    if name is None:
        return False
    value = binding_before(fn, name, backward.line)
    if divides(value) or isinstance(value, ast.AugAssign) and isinstance(value.op, ast.Div) and \
            is_accumulation_count(value.value):
        return True
    return any(e.kind == Kind.RESCALE and e.target == name and e.order < backward.order and isinstance(
        e.node, (ast.Assign, ast.AugAssign)) and _rescale_divides(e) for e in fn.events)



def _rescale_divides(event: Event) -> bool:
    node = event.node
    op = node.op if isinstance(node, ast.AugAssign) else getattr(node.value, "op", None)
    return isinstance(op, ast.Div) and is_accumulation_count(event.detail["factor"])



def modulus_counter(guard: Guard) -> Optional[str]:
    """``i`` for a boundary test ``(i + 1) % k == 0``; None for other forms."""
    test = guard.test
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        test = test.operand
    if isinstance(test, ast.Compare):
        test = test.left
    if isinstance(test, ast.BinOp) and isinstance(test.op, ast.Mod):
        counter = test.left
        while isinstance(counter, ast.BinOp) and isinstance(counter.op, (ast.Add, ast.Sub)):
            counter = counter.left
        return dotted(counter)
    return None



def loop_targets(loop: Loop) -> set:
    """Names bound by the loop statement itself (``for i, batch in enumerate(loader)``)."""
    target = getattr(loop.node, "target", None)
    return set(names_in(target)) if target is not None else set()



def describe(guard: Guard) -> str:
    test = text(guard.test)
    return test if guard.positive else f"not ({test})"



def backward_events_in(fn: FunctionFacts, loop: Loop) -> List[Event]:
    return fn.events_in(loop, Kind.BACKWARD)



def is_accumulation_count(expr: ast.AST) -> bool:
    """``accum_steps``, ``args.gradient_accumulation_steps``, ``self.update_freq``..."""
    words = set()
    for name in names_in(expr):
        words.update(name_words(name))
    return bool(words & _ACCUMULATION_WORDS)



def clears_gradients_of(fn: FunctionFacts, zero: Event, step: Event) -> bool:
    """Whether ``zero`` (a zero_grad) clears the parameters that ``step`` updates. One tensor's
    gradient cleared by hand (``w.grad.zero_()``) clears them only where the optimizer is known to
    update that tensor: a frozen or masked parameter of a larger model is cleared on purpose."""
    one_tensor = zero.detail.get("form") == "grad.zero_()"
    if zero.target in (step.target, "*") or zero.target is None:
        return True
    if step.target is None:
        return not one_tensor
    if role_of(fn, zero.target) == Role.OPTIMIZER:
        return False  # another optimizer (GAN generator vs discriminator)
    constructed = constructor_of(fn, step.target)
    if constructed is None or constructed.element is not None:
        return not one_tensor
    updated = names_in(constructed.call)
    return any(n == zero.target or n.startswith(zero.target + ".") for n in updated)



def may_clear_gradients_of(fn: FunctionFacts, zero: Event, step: Event) -> bool:
    """The lenient reading: only a zero_grad of another optimizer surely misses ``step``'s
    parameters (``model.zero_grad()`` may clear them even when the optimizer was built from a
    parameter list trainlint cannot trace)."""
    return zero.target == step.target or role_of(fn, zero.target) != Role.OPTIMIZER



def is_prepared(fn: FunctionFacts, name: str) -> bool:
    """Bound to the result of ``accelerator.prepare(...)`` (accelerate then aligns it with
    gradient accumulation)."""
    for value in fn.all_bindings(name):
        call = value.value if isinstance(value, Unpacked) else value
        if isinstance(call, ast.Call) and last_part(dotted(call.func) or "") == "prepare":
            return True
    return False



def matching_steps(fn: FunctionFacts, scheduler: Event, candidates: List[Event]) -> List[Event]:
    """The optimizer steps a scheduler (or EMA) follows: those of the optimizer it was built on
    when that is known, else all."""
    constructed = scheduler_constructor(fn, scheduler.target) if scheduler.kind == Kind.SCHED_STEP else None
    if constructed is not None:
        first = constructed.call.args[0] if constructed.call.args else None
        optimizer = dotted(first) if first is not None else None
        own = [s for s in candidates if s.target == optimizer]
        if own:
            return own
    return candidates



def loop_passes_away(fn: FunctionFacts, loop: Loop, optimizer: Optional[str]) -> bool:
    """Whether the loop hands the optimizer or a trained model to code trainlint does not see
    (a call outside the file, an inherited method): that code may clear gradients itself."""
    watched = {optimizer} if optimizer else set()
    watched |= optimizer_modules(fn) or set()
    return _passes_away(fn, loop.node, watched, 0)


def _passes_away(fn: FunctionFacts, scope: ast.AST, watched: set, depth: int) -> bool:
    for node in ast.walk(scope):
        if not isinstance(node, ast.Call):
            continue
        callee = dotted(node.func) or ""
        if isinstance(node.func, ast.Attribute) and node.func.attr in ("backward", "step", "zero_grad", "update"):
            continue
        helper = fn.file.local_function(callee, fn)
        if helper is not None:  # spliced into the loop: what matters is what it hands on in turn
            on_self = callee.startswith("self.")
            inner = {param for param, arg in arguments_of(helper, node, on_self).items()
                     if dotted(arg) in watched or dotted(arg) == "self"}
            inner |= {name for name in watched if on_self and name.startswith("self.")}
            if depth < 3 and inner and _passes_away(helper, helper.node, inner, depth + 1):
                return True
            continue
        if callee.startswith("self."):
            return True
        for arg in list(node.args) + [k.value for k in node.keywords]:
            passed = dotted(arg)
            if passed and (passed in watched or passed == "self"):
                return True
    return False


_STEP_KEYWORDS = {"step", "global_step", "num_updates", "current_step", "steps", "num_steps", "iteration"}



def used_as_step_count(scope: ast.AST, name: str) -> Optional[ast.AST]:
    """Where the code of ``scope`` (a loop, a function) uses ``name`` as a count of optimizer
    steps: against a warm-up length (``if step < warmup_steps``, ``step / warmup``) or passed as
    ``step=`` / ``num_updates=``."""
    for node in ast.walk(scope):
        if isinstance(node, ast.Call) and not set(name_words(dotted(node.func) or "")) & LOGGING_WORDS:
            # `log(step=i)`, `writer.add_scalar(..., global_step=i)`: an x-axis, not a step count
            for keyword in node.keywords:
                if keyword.arg in _STEP_KEYWORDS and dotted(keyword.value) == name:
                    return keyword.value
        if isinstance(node, (ast.Compare, ast.BinOp)):
            names = names_in(node)
            if name in names and any({"warmup"} & set(name_words(n)) or {"warm", "up"} <= set(name_words(n))
                                     for n in names if n != name):
                return node
    return None



def forward_call_counters(facts: FileFacts) -> Iterator[Tuple[str, Event, ast.AST]]:
    """(module class, increment, use) for a counter a module's ``forward`` increments on every
    call and uses as a count of optimizer steps (``self.calls += 1`` ... ``if self.calls <
    self.warmup_steps``): it counts forward calls, one per micro-batch."""
    for cls, methods in module_classes(facts).items():
        for forward in (m for m in methods if m.name == "forward"):
            for counter in forward.own_events:
                value = counter.detail.get("value")
                if counter.kind != Kind.ACCUMULATE or counter.guards() or not counter.target.startswith("self.") \
                        or not (isinstance(value, ast.Constant) and value.value == 1):
                    continue
                use = used_as_step_count(forward.node, counter.target)
                if use is not None:
                    yield cls, counter, use



def instances_of(fn: FunctionFacts, cls: str, loop: Loop) -> bool:
    """Whether ``loop`` calls an object built from the class ``cls`` of this file."""
    for name in loop.invoked:
        constructed = constructor_of(fn, name)
        if constructed is not None and constructed.element is None and constructed.callee == cls:
            return True
    return False


@dataclass
class Window:
    """An optimizer step that applies gradients summed over several backward() calls."""

    step: Event
    backwards: List[Event]
    description: str  # "only when (i + 1) % k == 0", "after the micro-batch loop at line 12"
    count: ast.AST  # the expression that sets the window's length (a boundary test, a range)


def accumulation_windows(fn: FunctionFacts) -> Iterator[Window]:
    """Every optimizer step that applies gradients summed over several backward() calls: a step
    on its loop's accumulation boundary (with the backward()s off it), or a step after an inner
    loop ``for _ in range(k)`` (k an accumulation count) that runs backward() on every iteration
    and clears nothing."""
    for step in fn.events_of(Kind.OPT_STEP):
        loop = step.innermost_loop
        if loop is not None and fn.owns(loop):
            boundary = accumulation_boundary(fn, step, loop)
            if boundary:
                clears_each_time = any(not any(z.has_guard(g) for g in boundary)
                                       for z in fn.events_in(loop, Kind.ZERO_GRAD) if may_clear_gradients_of(fn, z, step))
                if not clears_each_time:  # else nothing accumulates (TL201's bug)
                    yield Window(step, [b for b in backward_events_in(fn, loop) if not any(b.has_guard(g) for g in boundary)],
                                 f"only when {describe(boundary[0])}", boundary[0].test)
                continue
        for inner in fn.loops:
            if inner.parent is not loop or step.in_loop(inner) or not _counts_micro_batches(inner):
                continue
            backwards = [b for b in backward_events_in(fn, inner) if b.order < step.order]
            if backwards and not any(may_clear_gradients_of(fn, z, step) for z in fn.events_in(inner, Kind.ZERO_GRAD)):
                yield Window(step, backwards, f"after the micro-batch loop at line {inner.line}", inner.node.iter)


def _counts_micro_batches(loop: Loop) -> bool:
    """``for micro_step in range(gradient_accumulation_steps)``."""
    node = loop.node
    if not isinstance(node, (ast.For, ast.AsyncFor)) or not isinstance(node.iter, ast.Call) \
            or dotted(node.iter.func) != "range" or len(node.iter.args) != 1:
        return False
    return is_accumulation_count(node.iter.args[0])


_BATCH_SIZE_WORDS = {"batch", "bs", "nbs"}


def sized_to_nominal_batch(fn: FunctionFacts, window: Window) -> bool:
    """Whether the window's length is computed from batch sizes (``accumulate = nbs / batch_size``,
    YOLO's nominal batch): the window then always holds the same number of samples, and a loss
    that is a per-sample sum (``loss.sum() * batch_size``) is meant to add up over it; from the
    training loop alone trainlint cannot tell a sum from a mean. Also Darknet's form of it, where
    the nominal batch is split by the window's count (``batch_size=cfg.batch // cfg.subdivisions``)
    and the learning rate is divided by the nominal batch (``lr=base / cfg.batch``): the sum over
    the window is the update that rate was set for."""
    for name in names_in(window.count):
        if not is_accumulation_count(ast.Name(id=name, ctx=ast.Load())):
            continue
        for value in fn.all_bindings(name):
            for node in ast.walk(value if isinstance(value, ast.AST) else ast.Pass()):
                if is_division(node) and any(set(name_words(n)) & _BATCH_SIZE_WORDS for n in names_in(node)):
                    return True
    return _rate_divided_by_the_split_batch(fn, window)


def _rate_divided_by_the_split_batch(fn: FunctionFacts, window: Window) -> bool:
    counts = names_in(window.count)
    nominal = {dotted(node.left) for node in ast.walk(fn.node) if is_division(node) and dotted(node.right) in counts
               and set(name_words(dotted(node.left) or "")) & _BATCH_SIZE_WORDS}
    built = constructor_of(fn, window.step.target) if nominal else None
    if built is None:
        return False
    rate = [k.value for k in built.call.keywords if k.arg == "lr"] + list(built.call.args[1:2])
    return any(is_division(node) and dotted(node.right) in nominal for value in rate for node in ast.walk(value))
