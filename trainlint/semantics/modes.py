"""Which module is trained and in which mode: optimizers' modules, train/eval switches, model
builders, rebinding a model to a new object."""
from __future__ import annotations

import ast
import re
from typing import Iterator, List, Optional

from .model import Event, FileFacts, FunctionFacts, Kind, Loop, Unpacked, exclusive, functions
from .modules import same_in_both_modes
from .roles import Role, constructor_of, role_of, role_of_constructor
from .values import returned
from .syntax import BUILDER_NAME, RETURNS_SELF, dotted, last_part, name_words, names_in, receiver

_INFERENCE_WORDS = {"infer", "inference", "predict", "predictor", "export", "eval", "evaluate", "evaluation",
                    "test", "deploy", "serve", "demo", "onnx", "trace", "jit", "script", "inference"}

_FROZEN_WORDS = {"teacher", "ema", "ref", "reference", "frozen", "target", "old", "momentum", "clip", "vae", "lpips"}



def optimizer_modules(fn: FunctionFacts) -> Optional[set]:
    """Names of modules whose parameters an optimizer built in sight updates: one stepped here, or
    handed to a helper of another file that trains (``train_one_epoch(model, loader, optimizer)``);
    None if unknown."""
    modules = set()
    for optimizer in _optimizers_used(fn):
        updated = modules_updated_by(fn, optimizer)
        if updated is None:
            return None
        modules |= updated
    return modules or None


def _optimizers_used(fn: FunctionFacts) -> Iterator[Optional[str]]:
    for event in fn.events:
        if event.kind == Kind.OPT_STEP:
            yield event.target
        elif event.kind == Kind.BACKWARD and event.detail.get("external") and isinstance(event.node, ast.Call):
            for argument in event.node.args + [keyword.value for keyword in event.node.keywords]:
                name = dotted(argument)
                constructed = constructor_of(fn, name) if name is not None else None
                if constructed is not None and constructed.role == Role.OPTIMIZER:
                    yield name  # built in sight: a name alone (`opt`, often the options) says too little


def stepped_modules(fn: FunctionFacts, step: Event) -> Optional[set]:
    """Names of the modules whose parameters the optimizer of ``step`` was built from
    (``AdamW(disc.heads.parameters())`` -> disc.heads); None if unknown."""
    return modules_updated_by(fn, step.target)


def modules_updated_by(fn: FunctionFacts, optimizer: Optional[str]) -> Optional[set]:
    """Names of the modules whose parameters ``optimizer`` was built from; None if unknown."""
    constructed = constructor_of(fn, optimizer) if optimizer else None
    if constructed is None or constructed.element is not None:
        return None
    return {name[: -len(suffix)] for name in names_in(constructed.call)
            for suffix in (".parameters", ".named_parameters") if name.endswith(suffix)} or None



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
    if not steps_in_sight(fn):
        return False
    modules = optimizer_modules(fn)
    if modules is not None:
        return any(name == m or m.startswith(name + ".") or name.startswith(m + ".") or holds_module(fn, m, name)
                   for m in modules)
    if any(set(name_words(part)) & _FROZEN_WORDS for part in name.split(".")) or name.split(".")[0] in loop.assigned:
        # a frozen copy (also the module an EMA holder keeps: `ema_m.module`); or bound anew every
        # turn: the batch and what is computed from it
        return False
    return name in loop.invoked or any(i.startswith(name + ".") for i in loop.invoked)



def steps_in_sight(fn: FunctionFacts) -> bool:
    """Whether ``fn`` can train anything: an optimizer or framework step (its own, a helper's, or
    within a training helper of another file), or an optimizer it builds, is handed or names.
    backward() with no optimizer in sight computes gradients to be read (importance scores for
    pruning, saliency maps, attributions) and trains nothing."""
    if any(e.kind in (Kind.OPT_STEP, Kind.FRAMEWORK_STEP) or e.kind == Kind.BACKWARD and e.detail.get("external")
           for e in fn.events):
        return True
    return any(role_of(fn, name) == Role.OPTIMIZER for name in names_in(fn.node))


def trains_in_that_mode(switch: Event, events: List[Event]) -> bool:
    """The helper that switches to eval mode trains right after (linear probing keeps a frozen
    backbone's batch-norm statistics): the mode it trains in, chosen, not left over."""
    return bool(switch.via) and any(e.kind == Kind.BACKWARD and e.node is switch.node and e.order > switch.order
                                    for e in events)


def mode_makes_no_difference(fn: FunctionFacts, name: Optional[str]) -> bool:
    """The module bound to ``name`` is built in sight from layers that compute the same in train
    and eval mode (no dropout, no batch norm): a mode left wrong changes nothing today."""
    built = [receiver(value) for value in fn.all_bindings(name or "")]
    built = [value for value in built if dotted(value) != name]  # `model = model.cuda()`: the same module
    return bool(built) and all(same_in_both_modes(fn.file, value) for value in built)


def chosen_by_a_test(switch: Event, events: List[Event]) -> bool:
    """The switch sits in one branch of a test whose other branch switches the same module to
    train mode (``if finetune: model.train() else: model.eval()``): the mode is chosen per run,
    as ``model.train(finetune)`` chooses it, not left over from evaluation."""
    return any(e.kind == Kind.MODE and e.detail["mode"] == "train" and e.target == switch.target
               and exclusive(e, switch) for e in events)


def switched_back_to_train_within_the_turn(switch: Event, iteration: List[Event]) -> bool:
    """Later in the same turn of the loop the module is set back to train mode and trained again
    (``dann.eval()`` for the generator's adversarial loss, then ``dann.train()`` before the
    discriminator's own loss): eval mode is a phase of every step, chosen on purpose, not a mode
    left over from evaluation. (A ``.train()`` with no backward() after it in the turn restores
    nothing in time: the next turn trains in eval mode again.)"""
    later = [e for e in iteration if e.order > switch.order and not exclusive(e, switch)]
    restored = [e.order for e in later if e.kind == Kind.MODE and e.detail["mode"] == "train"
                and e.target == switch.target]
    return bool(restored) and any(e.kind == Kind.BACKWARD and e.order > restored[0] for e in later)


def arranged_for_what_follows(switch: Event, iteration: List[Event]) -> bool:
    """The switch to eval mode is one of several mode settings made together for what follows:
    beside a switch of another module to train mode in the same block (``unet.eval();
    text_encoder.train()`` before textual inversion trains the embeddings), or with the module
    frozen wherever it is switched (``text_encoder.train(False); text_encoder.requires_grad_(False)``
    when its training stops). The module in eval mode is then not trained, or no longer: the
    mode is chosen, not left over from evaluation."""
    def runs_whenever(event: Event) -> bool:  # event's frames are among the switch's
        return all(any(frame is own for own in switch.frames) for frame in event.frames)

    for event in iteration:
        if event.loops != switch.loops or any(b.kind == Kind.BACKWARD and min(event.order, switch.order) < b.order
                                              < max(event.order, switch.order) for b in iteration):
            continue
        if event.kind == Kind.FREEZE and event.target == switch.target and runs_whenever(event):
            return True
        if event.kind == Kind.MODE and event.detail["mode"] == "train" and event.target not in (None, switch.target) \
                and len(event.frames) == len(switch.frames) and runs_whenever(event):
            return True
    return False


def holds_module(fn: FunctionFacts, container: Optional[str], module: Optional[str]) -> bool:
    """Whether ``container`` holds ``module`` in ``fn``: built with it (``nn.ModuleList([model_s,
    head])``, ``DDP(model)``, ``SelfTuning(model_q, model_k).to(device)``, an element of
    ``deepspeed.initialize(model=model)``'s result) or given it (``module_list.append(model_s)``,
    an accumulate event), so a switch of every module of the container switches it too."""
    if not container or not module:
        return False
    calls = [receiver(value.value if isinstance(value, Unpacked) else value)
             for value in fn.assignments.get(container, ())]
    built = [argument for call in calls if isinstance(call, ast.Call)
             for argument in list(call.args) + [keyword.value for keyword in call.keywords]]
    given = [event.detail["value"] for event in fn.events_of(Kind.ACCUMULATE) if event.target == container]
    return any(module in names_in(value) for value in built + given)


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
    copy is meant for inference) or returned in train mode, and in a file where ``.eval()``
    evaluates TensorFlow tensors."""
    if fn.file.evaluates_graph_tensors():
        return None
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
    return bool(freezes(fn, model))


def freezes(fn: FunctionFacts, model: str, unconditional: bool = False) -> List[ast.AST]:
    """Where ``model`` (or a module containing it) is frozen as a whole:
    ``model.requires_grad_(False)``, ``for p in model.parameters(): p.requires_grad = False``
    (with ``unconditional``, not the calls under an ``if``)."""
    def covers(name: Optional[str]) -> bool:
        return bool(name) and (model == name or model.startswith(name + "."))

    found = [e.node for e in fn.own_events
             if e.kind == Kind.FREEZE and covers(e.target) and not (unconditional and e.guards())]
    for loop in fn.loops:
        node = loop.node
        if isinstance(node, ast.For) and covers(_parameters_of(node.iter)):
            for stmt in node.body:
                if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Constant) and stmt.value.value is False:
                    if any(isinstance(t, ast.Attribute) and t.attr == "requires_grad" for t in stmt.targets):
                        found.append(node)
    return sorted(found, key=lambda node: node.lineno)


def _parameters_of(iterable: ast.AST) -> Optional[str]:
    """``model`` for ``model.parameters()`` / ``model.named_parameters()``."""
    name = dotted(getattr(iterable, "func", None) or iterable) or ""
    for suffix in (".parameters", ".named_parameters"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return None


def may_unfreeze_after(fn: FunctionFacts, model: str, line: int) -> bool:
    """Whether code after ``line`` may make some of ``model``'s parameters trainable again:
    ``requires_grad_()``/``requires_grad_(True)`` on it or a part of it, any ``.requires_grad =
    True``, or ``model`` handed to a function (``mark_only_lora_as_trainable(model)``) or
    re-bound (``model = get_peft_model(model, config)``)."""
    def related(name: Optional[str]) -> bool:
        return bool(name) and (name == model or name.startswith(model + ".") or model.startswith(name + "."))

    for node in ast.walk(fn.node):
        if getattr(node, "lineno", 0) <= line:
            continue
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Attribute) and node.func.attr == "requires_grad_" and related(
                    dotted(node.func.value)) and not (node.args and isinstance(node.args[0], ast.Constant)
                                                      and node.args[0].value is False):
                return True
            if any(related(dotted(arg)) for arg in list(node.args) + [k.value for k in node.keywords]) \
                    and role_of_constructor(fn.file.qualify(dotted(node.func) or "")) is None:
                return True
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and node.value.value is True \
                and any(isinstance(t, ast.Attribute) and t.attr == "requires_grad" for t in node.targets):
            return True
    return any(getattr(value, "lineno", 0) > line for value in fn.assignments.get(model.split(".")[0], ()))


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




def uses_of_built_model(facts: FileFacts, builder: FunctionFacts) -> List[str]:
    """How the linted tree uses what ``builder`` returns, one use per call ("untrained",
    "other"): a caller that only hands the model on (``load()`` returning ``build_model()``) is
    replaced by how its own callers use it, in this file and (through the index) in others."""
    local = [(facts.local_function(callee, caller), use, caller) for caller in functions(facts)
             for callee, use in builder_uses(caller)]

    def uses(fn: FunctionFacts, seen: set) -> List[str]:
        found = []
        for callee, use, caller in local:
            if callee is not fn:
                continue
            if use == "passed" and id(caller) not in seen:
                seen.add(id(caller))
                found.extend(uses(caller, seen) or [use])
            else:
                found.append(use)
        return found + facts.index.builder_uses(f"{facts.module_name}.{fn.qualname}")

    return uses(builder, {id(builder)})

_SHARING_WRAPPERS = {"DistributedDataParallel", "DataParallel", "FullyShardedDataParallel", "FSDP", "DDP",
                     "compile", "prepare", "prepare_model", "setup", "setup_module", "wrap", "convert_sync_batchnorm",
                     "channels_last"}



def rebinds_to_new_module(fn: FunctionFacts, name: str, optimizer: ast.Call, step: ast.AST) -> Optional[ast.AST]:
    """A value bound to ``name`` between the optimizer's construction and its step, on a path
    that runs both (not in a branch that excludes either), that is a different module object (a new
    instance, a deep copy, a checkpoint loaded into a new object), when the optimizer is not
    rebuilt after it. None for wrappers that share parameters and in-place module methods."""
    rebinding = None
    before = step.lineno
    for value in fn.assignments.get(name, ()):
        line = getattr(value, "lineno", 0)
        if not optimizer.lineno < line < before or not isinstance(value, ast.Call) \
                or fn.exclusive(value, step) or fn.exclusive(value, optimizer):
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
    return role_of_constructor(fn.file.qualify(dotted(call.func) or ""))
