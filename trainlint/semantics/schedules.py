"""Which way a learning-rate scheduler is meant to be stepped: per epoch or per iteration."""
from __future__ import annotations

import ast
from typing import List, Optional

from .boundaries import is_accumulation_count, loop_targets, modulus_counter
from .dataflow import sources_of
from .model import FunctionFacts, Guard, Loop, Unpacked
from .roles import scheduler_constructor
from .syntax import argument, called_names, dotted, is_division, last_part, name_words, names_in, number_constant
from .summaries import arguments_of
from .values import handed_in, origins

_EPOCH_CLASSES = {"StepLR": ("step_size", 1), "MultiStepLR": ("milestones", 1), "ExponentialLR": ("gamma", 1),
                  "CosineAnnealingLR": ("T_max", 1), "ReduceLROnPlateau": (None, None)}

_ITERATION_WORDS = {"step", "steps", "iter", "iters", "iteration", "iterations", "batch", "batches", "updates",
                    "loader", "dataloader"}
_STEP_DECAY = {"StepLR", "MultiStepLR"}
_DECAY_STEP_WORDS = {"step", "steps"}



def scheduler_granularity(fn: FunctionFacts, name: str) -> Optional[str]:
    """"epoch" or "iteration" when the scheduler's constructor makes its intended stepping clear."""
    constructed = scheduler_constructor(fn, name)
    if constructed is None:
        return None
    cls = last_part(constructed.callee)
    call = constructed.call
    if cls in _EPOCH_CLASSES:
        keyword, position = _EPOCH_CLASSES[cls]
        if keyword is None:
            return None
        arg = argument(call, position, keyword)
        if arg is None:
            return None
        # a step-decay schedule's `lr_steps`/`decay_steps` are its own decay points, in any unit
        unit_words = _ITERATION_WORDS - _DECAY_STEP_WORDS if cls in _STEP_DECAY else _ITERATION_WORDS
        evidence = _evidence(fn, arg, unit_words=unit_words)
        if evidence is None and cls != "ExponentialLR" and _small_literal_sizes(arg):
            return "epoch"  # StepLR(step_size=30), MultiStepLR(milestones=[30, 60]): epoch counts
        if cls == "ExponentialLR" and evidence is None:
            gamma = number_constant(arg)
            return "epoch" if gamma is not None and gamma <= 0.99 else None
        return evidence
    if cls == "OneCycleLR":
        if argument(call, 99, "steps_per_epoch") is not None:
            return "iteration"
        total = argument(call, 2, "total_steps")
        return _evidence(fn, total) if total is not None else None
    if cls == "CyclicLR":
        size = argument(call, 99, "step_size_up")
        return "epoch" if size is not None and _evidence(fn, size) == "epoch" else "iteration"
    if "schedule" in cls or cls == "get_scheduler":
        total = argument(call, 2, "num_training_steps")
        return _evidence(fn, total) if total is not None else None
    return None



_EPOCH_SIZED = 1000  # a literal schedule length below this counts epochs, not batches



def _small_literal_sizes(expr: ast.AST) -> bool:
    sizes = expr.elts if isinstance(expr, (ast.List, ast.Tuple)) else [expr]
    values = [number_constant(size) for size in sizes]
    return bool(values) and all(v is not None and 0 < v < _EPOCH_SIZED for v in values)



def _evidence(fn: FunctionFacts, expr: ast.AST, depth: int = 0, unit_words=_ITERATION_WORDS) -> Optional[str]:
    """Whether an expression counts iterations (len(loader), total_steps) or epochs."""
    if "len" in called_names(expr):
        return "iteration"
    words = set()
    for name in names_in(expr):
        words.update(name_words(name))
        if depth < 2 and "." not in name:
            value = fn.binding(name)
            if isinstance(value, ast.expr):
                found = _evidence(fn, value, depth + 1, unit_words)
                if found == "iteration":
                    return found
                if found == "epoch":
                    words.add("epochs")
    if words & unit_words:
        return "iteration"
    if words & {"epoch", "epochs"}:
        return "epoch"
    return None


# the arguments that give a schedule's length, by keyword, or by position for the classes that take it there
_LENGTH_KEYWORDS = {"num_training_steps", "total_steps", "steps_per_epoch", "T_max", "t_total", "max_steps",
                    "total_iters", "num_steps"}
_LENGTH_POSITIONS = {"CosineAnnealingLR": 1, "OneCycleLR": 2, "LinearLR": 4, "PolynomialLR": 1}


def length_counts_micro_batches(fn: FunctionFacts, scheduler: str, boundary: List[Guard], loop: Loop) -> bool:
    """Whether the schedule's length counts micro-batches (``len(loader) * epochs``), not optimizer
    steps: stepped every micro-batch, it then keeps pace with training however often the optimizer
    steps. Judged from the calls that built it, in ``fn`` or handed in by its callers in this file:
    the length (for a helper that builds the scheduler, every argument) reaches a ``len()`` or a
    division by a batch size, and nothing that counts the accumulation (its words, or a name of the
    boundary's test)."""
    counters = loop_targets(loop) | {modulus_counter(g) for g in boundary}
    accumulation = {name for g in boundary for name in names_in(g.test)} - counters
    values = fn.all_bindings(scheduler)
    made = [o for value in values for o in origins(fn, value)] if values else handed_in(fn, scheduler)
    return bool(made) and all(isinstance(o.expr, ast.Call) and _counts_micro_batches(o.fn, _length(o.expr), accumulation)
                              for o in made) or not values and _length_is_the_runs_micro_batches(fn, scheduler, loop)


def _length_is_the_runs_micro_batches(fn: FunctionFacts, scheduler: str, loop: Loop) -> bool:
    """Every caller builds the scheduler it hands in with the value it passes for the number of
    micro-batches ``fn`` runs: a parameter that the batch loop counts up to (``range(num_steps)``),
    or that an outer loop divides by a loader's length (``range(ceil(num_steps / len(loader)))``)."""
    counted = set()
    batches = getattr(loop.node, "iter", None)
    if isinstance(batches, ast.Call) and dotted(batches.func) == "range":
        counted |= {dotted(a) for a in batches.args[-1:]} & set(fn.params)
    enclosing = loop
    while enclosing is not None:
        for node in ast.walk(getattr(enclosing.node, "iter", None) or ast.Pass()):
            if is_division(node) and "len" in called_names(node.right):
                counted |= names_in(node.left) & set(fn.params)
        enclosing = enclosing.parent
    sites = fn.file.call_sites(fn)
    if not counted or not sites:
        return False
    for caller, event in sites:
        passed = arguments_of(fn, event.detail["call"], event.detail.get("bound", False))
        lengths = {dotted(length) for o in origins(caller, passed.get(scheduler)) if isinstance(o.expr, ast.Call)
                   for length in _length(o.expr)} - {None}
        if not any(dotted(passed.get(name)) in lengths for name in counted):
            return False
    return True


def _length(call: ast.Call) -> List[ast.AST]:
    named = [k.value for k in call.keywords if k.arg in _LENGTH_KEYWORDS]
    if named:
        return named
    cls = last_part(dotted(call.func) or "")
    position = 2 if cls.startswith("get_") and "schedule" in cls else _LENGTH_POSITIONS.get(cls)  # transformers
    if position is not None:
        return call.args[position:position + 1]
    return list(call.args) + [k.value for k in call.keywords]


def _counts_micro_batches(fn: FunctionFacts, length: List[ast.AST], accumulation: set) -> bool:
    names = sources_of(fn, {name for expr in length for name in names_in(expr)})
    values = length + [v.value if isinstance(v, Unpacked) else v for name in names for v in fn.assignments.get(name, ())]
    if names & accumulation or any(is_accumulation_count(v) for v in values):
        return False
    return any("len" in called_names(v) or _divided_by_a_batch_size(v) for v in values)


def _divided_by_a_batch_size(expr: ast.AST) -> bool:
    """``num_images // batch_size * epochs``: a dataset's size in batches, as ``len(loader)`` counts
    them (a batch size that holds the accumulation factor is caught by the caller's test)."""
    return any(is_division(node) and any({"batch", "size"} <= set(name_words(name)) for name in names_in(node.right))
               for node in ast.walk(expr))


def stepped_to_a_given_value(event) -> bool:
    """``scheduler.step(val_loss)`` (a plateau scheduler, driven by the metric) or
    ``scheduler.step(epoch)`` (an absolute position): such a schedule does not advance by the
    number of calls, so where and how often it is stepped is its caller's design."""
    call = event.origin
    return isinstance(call, ast.Call) and bool(call.args or call.keywords)


def draws_batches(loop) -> bool:
    """Whether each turn of a training loop takes one batch: it iterates data (``for x, y in
    loader``), sits inside another loop, or draws in its body (``next(it)``, ``get_batch()``). A
    lone ``for i in range(n)`` over the same tensors is full-batch training (a Gaussian process,
    a graph), where a turn is an epoch: its granularity is not known."""
    node = loop.node
    bound = getattr(node, "iter", None)
    counted = isinstance(bound, ast.Call) and dotted(bound.func) in ("range", "tqdm", "trange", "tqdm.trange")
    if loop.parent is not None or not (counted or isinstance(node, ast.While)):
        return True
    names = loop.invoked | (names_in(bound) if counted else set())  # `range(len(loader))` counts batches
    return any(_DRAWING_WORDS & set(name_words(name)) for name in names)


_DRAWING_WORDS = {"next", "batch", "batches", "sample", "loader", "dataloader", "dataset"}


def counts_epochs(loop) -> bool:
    """A loop over epochs (``for epoch in range(1, epochs + 1)``): when it runs backward() and the
    step itself, as full-batch training does (one step per epoch), a scheduler stepped there is
    stepped once per epoch."""
    node = loop.node
    target = getattr(node, "target", None)
    words = set(name_words(dotted(target) or "")) if target is not None else set()
    bound = getattr(node, "iter", None)
    if isinstance(bound, ast.Call) and dotted(bound.func) in ("range", "tqdm", "trange", "tqdm.trange"):
        words |= {w for name in names_in(bound) for w in name_words(name)}
    return bool(words & {"epoch", "epochs", "ep"})
