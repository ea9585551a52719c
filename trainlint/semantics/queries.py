"""Questions rules ask about the facts: what is a training loop, which guard is the accumulation
boundary, which model an optimizer updates, which way a scheduler is meant to be stepped."""
from __future__ import annotations

import ast
import re
from typing import Iterator, List, Optional, Tuple

from .model import Event, FileFacts, FunctionFacts, Guard, GuardKind, Kind, Loop, Unpacked
from .roles import Role, constructor_of, role_of, scheduler_constructor
from .guards import LOGGING_WORDS
from .values import binding_before, nonzero_almost_surely, returned
from .syntax import BUILDER_NAME, RETURNS_SELF, argument, called_names, dotted, last_part, name_words, names_in, number_constant, text

_ACCUMULATION_WORDS = {"accum", "accumulate", "accumulation", "accumulated", "ga", "micro", "update", "freq"}
_INFERENCE_WORDS = {"infer", "inference", "predict", "predictor", "export", "eval", "evaluate", "evaluation",
                    "test", "deploy", "serve", "demo", "onnx", "trace", "jit", "script", "inference"}
_FROZEN_WORDS = {"teacher", "ema", "ref", "reference", "frozen", "target", "old", "momentum", "clip", "vae", "lpips"}


def functions(facts: FileFacts) -> List[FunctionFacts]:
    return [facts.module] + facts.functions


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
    return [e for e in fn.events_of(Kind.BACKWARD) if e.in_loop(loop)]


def is_accumulation_count(expr: ast.AST) -> bool:
    """``accum_steps``, ``args.gradient_accumulation_steps``, ``self.update_freq``..."""
    words = set()
    for name in names_in(expr):
        words.update(name_words(name))
    return bool(words & _ACCUMULATION_WORDS)


def clears_gradients_of(fn: FunctionFacts, zero: Event, step: Event) -> bool:
    """Whether ``zero`` (a zero_grad) clears the parameters that ``step`` updates."""
    if zero.target in (step.target, "*") or zero.target is None or step.target is None:
        return True
    if role_of(fn, zero.target) == Role.OPTIMIZER:
        return False  # another optimizer (GAN generator vs discriminator)
    constructed = constructor_of(fn, step.target)
    if constructed is None or constructed.element is not None:
        return True
    updated = names_in(constructed.call)
    return any(n == zero.target or n.startswith(zero.target + ".") for n in updated)


def may_clear_gradients_of(fn: FunctionFacts, zero: Event, step: Event) -> bool:
    """The lenient reading: only a zero_grad of another optimizer surely misses ``step``'s
    parameters (``model.zero_grad()`` may clear them even when the optimizer was built from a
    parameter list trainlint cannot trace)."""
    return zero.target == step.target or role_of(fn, zero.target) != Role.OPTIMIZER


def optimizer_modules(fn: FunctionFacts) -> Optional[set]:
    """Names of modules whose parameters an optimizer built in sight updates; None if unknown."""
    modules = set()
    for step in fn.events_of(Kind.OPT_STEP):
        constructed = constructor_of(fn, step.target) if step.target else None
        if constructed is None or constructed.element is not None:
            return None
        for name in names_in(constructed.call):
            for suffix in (".parameters", ".named_parameters"):
                if name.endswith(suffix):
                    modules.add(name[: -len(suffix)])
    return modules or None


def trained_modules(fn: FunctionFacts) -> Optional[set]:
    """Modules trained in ``fn``: those an optimizer in sight updates, else those known from use
    (a module passed in as a parameter and put in train mode here: ``def train_epoch(model, ...):
    model.train()``); None if neither is known."""
    known = optimizer_modules(fn)
    if known:
        return known
    from_use = {e.target for e in fn.own_events if e.kind == Kind.MODE and e.detail["mode"] == "train"
                and e.target and e.target.split(".")[0] in fn.params}
    return from_use or None


def is_trained_module(fn: FunctionFacts, name: str, loop: Loop) -> bool:
    """Whether the module ``name`` is the one being trained in ``loop`` (not a teacher/EMA copy)."""
    modules = optimizer_modules(fn)
    if modules is not None:
        return any(name == m or m.startswith(name + ".") or name.startswith(m + ".") for m in modules)
    if set(name_words(name)) & _FROZEN_WORDS:
        return False
    return name in loop.invoked or any(i.startswith(name + ".") for i in loop.invoked)


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


# -- builders (TL101) -------------------------------------------------------------------------

def is_builder(fn: FunctionFacts) -> bool:
    """A function that builds/creates/loads a model for training: not one named (or in a class or
    module named) for inference, not a teacher/EMA/reference copy."""
    if fn.name in ("eval", "train"):
        return False
    context = set(name_words(fn.name))
    for name in (fn.class_name or "", last_part(fn.file.module_name or "")):
        context |= set(name_words(name))
    if context & (_INFERENCE_WORDS | _FROZEN_WORDS | {"inferencer"}):
        return False
    if any(last_part(d) in ("no_grad", "inference_mode") for d in fn.decorators):
        return False
    patterns = getattr(fn.file.hints, "builder_patterns", ())
    if any(re.search(p, fn.name) for p in patterns):
        return True
    return bool(BUILDER_NAME.match(fn.name))


def returned_eval_model(fn: FunctionFacts) -> Optional[ast.AST]:
    """The node that leaves the returned model in eval mode: ``return model.eval()``, or the last
    ``model.eval()`` before ``return model``. None when the model is also frozen (a teacher/EMA
    copy is meant for inference) or returned in train mode."""
    own = fn.own_events
    for ret in fn.returns:
        value = ret.value
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute):
            method = value.func.attr
            switched = (method == "eval" and not value.args) or (
                method == "train" and value.args and isinstance(value.args[0], ast.Constant) and value.args[0].value is False)
            if switched:
                model = dotted(value.func.value)
                if model is None or not _frozen(fn, model):
                    return value
            continue
        model = dotted(value) if value is not None else None
        if model is None or _frozen(fn, model):
            continue
        modes = [e for e in own if e.kind == Kind.MODE and e.target == model and e.order < fn.return_orders[id(ret)]]
        if modes and modes[-1].detail["mode"] == "eval" and not modes[-1].guards():
            return modes[-1].node
    return None


def _frozen(fn: FunctionFacts, model: str) -> bool:
    if any(e.kind == Kind.FREEZE and e.target == model for e in fn.own_events):
        return True
    for loop in fn.loops:  # for p in model.parameters(): p.requires_grad = False
        node = loop.node
        if isinstance(node, ast.For) and dotted(getattr(node.iter, "func", None) or node.iter) in (
                f"{model}.parameters", f"{model}.named_parameters"):
            for stmt in node.body:
                if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Constant) and stmt.value.value is False:
                    if any(isinstance(t, ast.Attribute) and t.attr == "requires_grad" for t in stmt.targets):
                        return True
    return False


def builder_uses(fn: FunctionFacts) -> Iterator[tuple]:
    """(callee name, use) for each call of a builder-named function in ``fn``: use is "untrained"
    when ``fn`` trains the result without calling ``.train()`` on it, "passed" when ``fn`` returns
    it (a loader that hands the model on), else "other"."""
    trains = bool(fn.events_of(Kind.BACKWARD))
    trained = {e.target for e in fn.events if e.kind == Kind.MODE and e.detail["mode"] != "eval"}
    bound = {}
    for name, values in fn.assignments.items():
        for value in values:
            while isinstance(value, ast.Call):  # build_model(...).to(device).cuda()
                bound[id(value)] = name
                value = value.func.value if isinstance(value.func, ast.Attribute) else None
    for event in fn.own_events:
        if event.kind != Kind.CALL or not BUILDER_NAME.match(last_part(event.target)):
            continue
        name = bound.get(id(event.detail["call"]))
        restored = name is not None and any(
            t and (t == name or t.startswith(name + ".") or name.startswith(t + ".")) for t in trained)
        if name is not None and not trains and not restored and returned(fn, name):
            yield event.target, "passed"  # `load()` returns what the builder made: its callers decide
            continue
        yield event.target, "untrained" if trains and name is not None and not restored else "other"


# -- scheduler granularity (TL402) ------------------------------------------------------------

_EPOCH_CLASSES = {"StepLR": ("step_size", 1), "MultiStepLR": ("milestones", 1), "ExponentialLR": ("gamma", 1),
                  "CosineAnnealingLR": ("T_max", 1), "ReduceLROnPlateau": (None, None)}
_ITERATION_WORDS = {"step", "steps", "iter", "iters", "iteration", "iterations", "batch", "batches", "updates",
                    "loader", "dataloader"}


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
        evidence = _evidence(fn, arg)
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


def _evidence(fn: FunctionFacts, expr: ast.AST, depth: int = 0) -> Optional[str]:
    """Whether an expression counts iterations (len(loader), total_steps) or epochs."""
    if "len" in called_names(expr):
        return "iteration"
    words = set()
    for name in names_in(expr):
        words.update(name_words(name))
        if depth < 2 and "." not in name:
            value = fn.binding(name)
            if isinstance(value, ast.expr):
                found = _evidence(fn, value, depth + 1)
                if found == "iteration":
                    return found
                if found == "epoch":
                    words.add("epochs")
    if words & _ITERATION_WORDS:
        return "iteration"
    if words & {"epoch", "epochs"}:
        return "epoch"
    return None


def passes(call_event: Event, name: str) -> bool:
    """Whether an (unresolved) call gets ``name``, or the object it belongs to, as an argument or
    receiver: ``train(model, ...)``, ``self.run_epoch()`` for ``self.model``."""
    call = call_event.detail["call"]
    head = name.split(".")[0]
    if call_event.target.split(".")[0] == head:
        return True
    for arg in list(call.args) + [k.value for k in call.keywords]:
        passed = dotted(arg)
        if passed and (passed == name or name.startswith(passed + ".") or passed.startswith(name + ".")):
            return True
    return False


def loop_passes_away(fn: FunctionFacts, loop: Loop, optimizer: Optional[str]) -> bool:
    """Whether the loop hands the optimizer or a trained model to code trainlint does not see
    (a call outside the file, an inherited method): that code may clear gradients itself."""
    watched = {optimizer} if optimizer else set()
    watched |= optimizer_modules(fn) or set()
    for node in ast.walk(loop.node):
        if not isinstance(node, ast.Call):
            continue
        callee = dotted(node.func) or ""
        if isinstance(node.func, ast.Attribute) and node.func.attr in ("backward", "step", "zero_grad", "update"):
            continue
        if callee.startswith("self.") and fn.file.local_function(callee, fn) is None:
            return True
        for arg in list(node.args) + [k.value for k in node.keywords]:
            passed = dotted(arg)
            if passed and (passed in watched or passed == "self"):
                return True
    return False


# -- the loss value (TL204, TL303) -------------------------------------------------------------

_DETACHING_METHODS = {"detach", "item", "numpy", "tolist"}
_REBUILDERS = {"tensor", "as_tensor", "Tensor", "FloatTensor", "from_numpy", "Variable"}


def outside_graph(fn: FunctionFacts, expr: ast.AST, line: int, depth: int = 0) -> Optional[ast.AST]:
    """The node that rebuilt ``expr`` outside the autograd graph (``torch.tensor(loss.item(),
    requires_grad=True)``, ``loss.detach()``, ``loss.data``), or None when gradient can flow."""
    if isinstance(expr, ast.Call):
        callee = fn.file.qualify(dotted(expr.func) or "")
        if callee.startswith("torch") and last_part(callee) in _REBUILDERS or last_part(callee) == "Variable":
            # from literals it is a new leaf the graph starts at (`w = torch.tensor(2.0,
            # requires_grad=True)`), not a value rebuilt from the loss
            return None if all(_literal(a) for a in expr.args) else expr
        node = expr.func
        while isinstance(node, ast.Attribute):
            if node.attr in _DETACHING_METHODS:
                return expr
            node = node.value.func if isinstance(node.value, ast.Call) else node.value
        return None
    if isinstance(expr, ast.Attribute) and expr.attr == "data":
        return expr
    if isinstance(expr, ast.BinOp):  # outside the graph only if no operand carries it
        parts = (expr.left, expr.right)
        rebuilt = [outside_graph(fn, part, line, depth) for part in parts]
        if all(r is not None or isinstance(p, ast.Constant) for r, p in zip(rebuilt, parts)):
            return next((r for r in rebuilt if r is not None), None)
        return None
    name = dotted(expr)
    if name is not None and "." not in name and depth < 3:
        value = binding_before(fn, name, line)
        if isinstance(value, ast.expr):
            return outside_graph(fn, value, value.lineno, depth + 1)
    return None


def _literal(node: ast.AST) -> bool:
    return all(isinstance(n, (ast.Constant, ast.Tuple, ast.List, ast.UnaryOp, ast.unaryop, ast.expr_context))
               for n in ast.walk(node))


def bound_outside(fn: FunctionFacts, name: str, loop: Loop) -> bool:
    start, end = loop.node.lineno, getattr(loop.node, "end_lineno", loop.node.lineno)
    return any(not start <= getattr(v, "lineno", start) <= end for v in fn.all_bindings(name))


def reset_inside(fn: FunctionFacts, name: str, loop: Loop) -> bool:
    """Whether ``name`` is re-bound (not just added to) somewhere in the body of ``loop``."""
    start, end = loop.node.lineno, getattr(loop.node, "end_lineno", loop.node.lineno)
    return any(start <= getattr(v, "lineno", 0) <= end and not isinstance(v, ast.AugAssign)
               for v in fn.all_bindings(name))


_ACTIVATIONS = {"softmax": "softmax", "sigmoid": "sigmoid"}


def activation_of(fn: FunctionFacts, expr: ast.AST, line: int, depth: int = 0) -> Optional[Tuple[str, ast.AST]]:
    """("softmax" | "sigmoid", node) when ``expr`` is the output of that activation:
    ``F.softmax(x, -1)``, ``torch.sigmoid(x)``, ``x.softmax(-1)``, or a name bound to one."""
    if isinstance(expr, ast.Call):
        callee = fn.file.qualify(dotted(expr.func) or "")
        leaf = last_part(callee) if callee else (expr.func.attr if isinstance(expr.func, ast.Attribute) else "")
        if leaf in _ACTIVATIONS and (callee.startswith("torch") or isinstance(expr.func, ast.Attribute)):
            return _ACTIVATIONS[leaf], expr
        forward = _local_forward(fn, expr)
        if forward is not None and depth < 2:  # model(x) whose class's forward ends in softmax
            found = [activation_of(forward, ret.value, ret.lineno, depth + 1) for ret in forward.returns if ret.value]
            if found and all(found) and len({f[0] for f in found}) == 1:
                return found[0][0], expr
        return None
    name = dotted(expr)
    if name is not None and "." not in name and depth < 2:
        value = binding_before(fn, name, line)
        if isinstance(value, ast.expr):
            return activation_of(fn, value, value.lineno, depth + 1)
    return None


def _local_forward(fn: FunctionFacts, call: ast.Call) -> Optional[FunctionFacts]:
    """The ``forward`` of a module class of this file that ``call`` runs (``model(x)`` with
    ``model = Classifier()``)."""
    name = dotted(call.func)
    constructed = constructor_of(fn, name) if name else None
    if constructed is None or constructed.element is not None:
        return None
    return fn.file.methods.get(f"{constructed.callee}.forward")


def computed_without_grad(fn: FunctionFacts, expr: ast.AST, line: int, depth: int = 0) -> Optional[ast.AST]:
    """The value, bound inside a ``torch.no_grad()`` block, that flows into ``expr``."""
    for name in names_in(expr):
        if "." in name or depth > 3:
            continue
        value = binding_before(fn, name, line)
        if value is None or not isinstance(value, ast.AST):
            continue
        if id(value) in fn.no_grad_values:
            return value
        if isinstance(value, ast.expr):
            found = computed_without_grad(fn, value, value.lineno, depth + 1)
            if found is not None:
                return found
    return None


_SHARING_WRAPPERS = {"DistributedDataParallel", "DataParallel", "FullyShardedDataParallel", "FSDP", "DDP",
                     "compile", "prepare", "prepare_model", "setup", "setup_module", "wrap", "convert_sync_batchnorm",
                     "channels_last"}

def rebinds_to_new_module(fn: FunctionFacts, name: str, after: int, before: int) -> Optional[ast.AST]:
    """A value bound to ``name`` between two lines that is a different module object (a new
    instance, a deep copy, a checkpoint loaded into a new object), when the optimizer is not
    rebuilt after it. None for wrappers that share parameters and in-place module methods."""
    rebinding = None
    for value in fn.assignments.get(name, ()):
        line = getattr(value, "lineno", 0)
        if not after < line < before or not isinstance(value, ast.Call):
            continue
        call = value
        while isinstance(call.func, ast.Attribute) and call.func.attr in RETURNS_SELF \
                and isinstance(call.func.value, ast.Call):
            call = call.func.value  # copy.deepcopy(model).cuda(): look at the inner call
        if isinstance(call.func, ast.Attribute) and call.func.attr in RETURNS_SELF:
            continue  # model = model.cuda(): the same object
        callee = fn.file.qualify(dotted(call.func) or "")
        leaf = last_part(callee)
        if leaf in _SHARING_WRAPPERS or not callee:
            continue
        if leaf != "deepcopy" and any(dotted(arg) == name for arg in list(call.args) + [k.value for k in call.keywords]):
            continue  # load_checkpoint(model, path), apply_lora(model): usually the same object, returned
        if leaf == "deepcopy" or leaf == "load" or leaf[:1].isupper() or leaf.startswith("from_") or \
                BUILDER_NAME.match(leaf):
            rebinding = value
    if rebinding is None:
        return None
    rebuilt = [v for values in fn.assignments.values() for v in values
               if isinstance(v, ast.Call) and rebinding.lineno < v.lineno < before
               and role_of_call(fn, v) == Role.OPTIMIZER]
    return None if rebuilt else rebinding


def role_of_call(fn: FunctionFacts, call: ast.Call) -> Optional[str]:
    from .roles import role_of_constructor

    return role_of_constructor(fn.file.qualify(dotted(call.func) or ""))


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


# -- numerics (TL305) -------------------------------------------------------------------------

_EPS_WORDS = {"eps", "epsilon", "smooth", "tiny", "delta"}
_NORMS = {"norm", "linalg.norm", "vector_norm"}


def own_nodes(fn: FunctionFacts) -> Iterator[ast.AST]:
    """Every node of ``fn``'s own body (nested functions and classes excluded)."""
    scopes = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
    stack = [node for node in getattr(fn.node, "body", []) if not isinstance(node, scopes)]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(child for child in ast.iter_child_nodes(node) if not isinstance(child, scopes))


def guarded_against_zero(fn: FunctionFacts, expr: ast.AST, line: int, depth: int = 0) -> bool:
    """Whether an expression (or what its name is bound to) adds an epsilon or clamps:
    ``union + eps``, ``x.clamp(min=1e-6)``, ``torch.clamp_min(d, eps)``, ``max(n, 1)``."""
    for node in ast.walk(expr):
        if isinstance(node, ast.Call):
            leaf = last_part(dotted(node.func) or "") or (node.func.attr if isinstance(node.func, ast.Attribute) else "")
            if leaf in ("clamp", "clamp_min", "clamp_", "clip", "max", "maximum", "fmax", "where", "nan_to_num"):
                return True
        name = dotted(node)
        if name is not None:
            if set(name_words(name)) & _EPS_WORDS:
                return True
            if depth < 2 and "." not in name:
                value = binding_before(fn, name, line)
                if isinstance(value, ast.expr) and guarded_against_zero(fn, value, value.lineno, depth + 1):
                    return True
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) and any(
                isinstance(side, ast.Constant) and isinstance(side.value, float) and 0 < side.value < 1e-2
                for side in (node.left, node.right)):
            return True
    return False


def unguarded_normalisations(fn: FunctionFacts) -> Iterator[Tuple[ast.AST, str]]:
    """(node, suggestion) for divisions and logs of tensors that can be 0 with no epsilon, in code
    that computes a loss (a function named for one, or one that calls backward() or a criterion):
    ``inter / union``, ``torch.log(probs)`` of a softmax, ``(losses - min_losses).log()``,
    ``x / x.norm(...)``. Metrics and post-processing produce no gradient and are left alone."""
    if "loss" not in name_words(fn.name) and not any(
            e.kind in (Kind.BACKWARD, Kind.CRITERION) for e in fn.own_events):
        return
    for node in own_nodes(fn):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            divisor = node.right
            divisor_name = dotted(divisor)
            if divisor_name and "union" in name_words(divisor_name) and not guarded_against_zero(fn, divisor, line):
                yield node, f"add an epsilon: ({ast.unparse(node.left)} + eps) / ({divisor_name} + eps)"
            elif isinstance(divisor, ast.Call) and isinstance(divisor.func, ast.Attribute) \
                    and divisor.func.attr == "norm" and ast.dump(divisor.func.value) == ast.dump(node.left) \
                    and not guarded_against_zero(fn, divisor, line) and not nonzero_almost_surely(fn, node.left, line):
                yield node, "use F.normalize(x, dim=..., eps=...), which never divides by 0"
        elif isinstance(node, ast.Call):
            callee = fn.file.qualify(dotted(node.func) or "")
            leaf = last_part(callee) or (node.func.attr if isinstance(node.func, ast.Attribute) else "")
            if leaf != "log" or callee.startswith(("math.", "numpy.", "np.")):
                continue  # scalar and NumPy logs are not in the autograd graph
            argument = node.args[0] if node.args and dotted(node.func) else (
                node.func.value if isinstance(node.func, ast.Attribute) and not node.args else None)
            if argument is None or guarded_against_zero(fn, argument, line):
                continue
            if isinstance(argument, ast.BinOp) and isinstance(argument.op, ast.Sub):
                yield node, "add an epsilon: the difference is 0 at its minimum, and log(0) = -inf"
            elif activation_of(fn, argument, line) is not None and activation_of(fn, argument, line)[0] == "softmax":
                yield node, "use log_softmax: softmax probabilities underflow to 0, and log(0) = -inf"


# -- tensors (TL702) ---------------------------------------------------------------------------

_TENSOR_FACTORIES = {
    "tensor", "as_tensor", "from_numpy", "zeros", "ones", "empty", "full", "rand", "randn", "randint", "arange",
    "linspace", "logspace", "eye", "stack", "cat", "zeros_like", "ones_like", "empty_like", "full_like",
    "rand_like", "randn_like", "randint_like", "randperm", "where", "Tensor", "FloatTensor", "LongTensor",
}
_DATA_WORDS = {"loader", "dataloader", "dl", "batches", "data", "dataset", "iterator"}


def is_known_tensor(fn: FunctionFacts, name: Optional[str]) -> bool:
    """Whether ``name`` surely holds a tensor: built by a torch factory, or unpacked from the
    batches of a data loader (``for x, y in loader``). Modules never qualify."""
    if not name or "." in name:
        return False
    values = fn.all_bindings(name)
    return bool(values) and all(_tensor_value(fn, v) for v in values)


def _tensor_value(fn: FunctionFacts, value: ast.AST) -> bool:
    if isinstance(value, ast.Call):
        callee = fn.file.qualify(dotted(value.func) or "")
        if callee.startswith("torch.") and callee.count(".") == 1 and last_part(callee) in _TENSOR_FACTORIES:
            return True
        if isinstance(value.func, ast.Attribute) and value.func.attr in ("to", "cuda", "float", "half", "long"):
            return _tensor_value(fn, value.func.value) or is_known_tensor(fn, dotted(value.func.value))
        return False
    path = []
    while isinstance(value, Unpacked):  # for i, (x, y) in enumerate(loader): x is [-1, 1, 0]
        path.insert(0, value.index)
        value = value.value
    if len(path) < 2 or not isinstance(value, ast.expr):
        return False
    iterable = value
    if isinstance(iterable, ast.Call) and dotted(iterable.func) == "enumerate" and iterable.args:
        if path[1] != 1:
            return False  # the counter
        iterable, path = iterable.args[0], path[1:]
        if len(path) < 2:
            return False  # `for i, batch in enumerate(loader)`: batch may be a dict or an object
    words = set()
    for name in names_in(iterable):
        words.update(name_words(name))
    return bool(words & _DATA_WORDS) and not called_names(iterable) - {"iter", "tqdm", "enumerate"} - {""}


# -- module definitions (TL601, TL602) --------------------------------------------------------

_WRAPPERS = {"ModuleList", "ModuleDict", "Sequential", "ParameterList", "ParameterDict"}


def module_classes(facts: FileFacts) -> dict:
    """Classes of this file that are ``nn.Module`` subclasses (directly, through other local
    classes, or LightningModule), with their methods."""
    modules = set()
    changed = True
    while changed:
        changed = False
        for cls, bases in facts.class_bases.items():
            if cls not in modules and any(
                    b in ("torch.nn.Module", "torch.nn.modules.module.Module") or last_part(b) in (
                        "LightningModule", "Module") and b.startswith(("torch", "lightning", "pytorch_lightning"))
                    or b in modules for b in bases):
                modules.add(cls)
                changed = True
    return {cls: [fn for fn in facts.functions if fn.class_name == cls and fn.parent is None] for cls in modules}


def module_constructor(facts: FileFacts, value: ast.AST) -> Optional[str]:
    """"wrapper" for nn.ModuleList/ModuleDict/Sequential(...), "layer" for a call building a layer
    (``nn.Linear(...)`` or a module class of this file), else None."""
    if not isinstance(value, ast.Call):
        return None
    callee = facts.qualify(dotted(value.func) or "")
    leaf = last_part(callee)
    if callee.startswith("torch.nn.") and leaf in _WRAPPERS:
        return "wrapper"
    if callee.startswith("torch.nn.") and leaf[:1].isupper() and leaf not in ("Parameter", "Identity"):
        return "layer"
    return "layer" if callee in module_classes_cached(facts) else None


def module_classes_cached(facts: FileFacts) -> set:
    cached = facts.role_cache.get("module-classes")
    if cached is None:
        cached = facts.role_cache["module-classes"] = set(module_classes(facts))
    return cached


def torch_nn_prefix(facts: FileFacts) -> Optional[str]:
    """How this file spells ``torch.nn`` (``nn``, ``torch.nn``), for fixes."""
    for local, qualified in facts.imports.items():
        if qualified == "torch.nn":
            return local
    return "torch.nn" if facts.imports.get("torch") == "torch" else None
