"""Turn a parsed module into FileFacts: one walk over statements per function, recording loops,
guards, bindings and the calls that can be training events; then classify those calls with the
roles of their receivers (which needs every binding in the file, hence the second step)."""
from __future__ import annotations

import ast
from typing import List, Optional, Tuple

from .model import (
    Event, FileFacts, FunctionFacts, Guard, Kind, Loop, Unpacked, WithBlock,
)
from .roles import Role, constructor_of, role_of, role_of_constructor
from .syntax import (
    LITERALS, UNKNOWN, assigned_names, calls_in, name_words, dotted, held_object, last_part, leaves_loop,
    names_bound_once, root_name, static_truth, terminates,
)

# Methods whose calls can be training events; any other call is kept only if it may reach a
# function with a summary (a local helper or an import from the linted tree).
_EVENT_METHODS = {
    "backward", "manual_backward", "step", "step_update", "zero_grad", "eval", "train",
    "requires_grad_", "update", "update_parameters", "update_params", "unscale_", "half", "set_epoch",
    "clip_grad_norm_", "clip_grad_value_", "append",
}
_MOVES = {"to", "cuda", "cpu", "half", "float", "double", "bfloat16", "long", "int", "bool"}
_CLIPS = {"clip_grad_norm_", "clip_grad_value_", "clip_grad_norm", "clip_gradients"}
_FUNCS = (ast.FunctionDef, ast.AsyncFunctionDef)
_TRY = (ast.Try, getattr(ast, "TryStar", ast.Try))
_PER_BATCH_HOOKS = {"training_step"}  # Lightning (manual optimisation lives here)
# the statements _Walker.statement does not hand to _Walker.simple (the ast module's own classes:
# it has no subclasses of them)
_NOT_SIMPLE = frozenset(_FUNCS + _TRY + (ast.ClassDef, ast.If, ast.For, ast.AsyncFor, ast.While, ast.With,
                                         ast.AsyncWith, ast.Import, ast.ImportFrom) + (getattr(ast, "Match", ()),))


def build_file_facts(tree: ast.Module, path: str, module_name: str, package: str, hints, index) -> FileFacts:
    facts = FileFacts(
        path=path, tree=tree, module_name=module_name, package=package, imports={},
        functions=[], module=None, class_attributes={}, class_bases={}, hints=hints,
        index=index,
    )
    module = FunctionFacts("<module>", "<module>", tree, None, None, [], facts)
    facts.module = module
    pending: List[Tuple[FunctionFacts, ast.Call, tuple, tuple]] = []
    _Walker(facts, module, pending).run(tree.body)
    for fn, call, frames, order in pending:
        fn.own_events.extend(_classify_call(fn, call, frames, order))
    for fn in [module] + facts.functions:
        fn.own_events.sort(key=lambda e: e.order)
    return facts


class _Walker:
    """Walks the statements of one function body (nested definitions get walkers of their own)."""

    def __init__(self, facts: FileFacts, fn: FunctionFacts, pending: list):
        self.facts = facts
        self.fn = fn
        self.pending = pending
        self.counter = 0
        self.bare_except_tests: dict = {}
        self.bound_once: Optional[set] = None
        self.frames_seen: Optional[tuple] = None
        self.loops_seen: Tuple[Loop, ...] = ()

    def run(self, body: list) -> None:
        self.block(body, ())

    def next_order(self) -> tuple:
        self.counter += 1
        return (self.counter,)

    def loops_of(self, frames: tuple) -> Tuple[Loop, ...]:
        # asked for each statement, and the statements of a block share one frames tuple
        if frames is not self.frames_seen:
            self.frames_seen, self.loops_seen = frames, tuple(f for f in frames if isinstance(f, Loop))
        return self.loops_seen

    def guard(self, test: ast.expr, positive: bool, node: ast.AST, frames: tuple, exits: bool = False) -> Guard:
        loops = self.loops_of(frames)
        # a `return` outside any loop is a condition of the rest of the function, not a loop exit
        return Guard(test, positive, node, self.fn, loops, loop_exit=exits and bool(loops))

    def block(self, body: list, frames: tuple) -> None:
        for stmt in body:
            self.statement(stmt, frames)
            if isinstance(stmt, ast.If):
                # after `if cond: ...; continue`, the rest of the block runs only when not cond;
                # after `if done: break` it runs on every iteration that goes on (a loop exit)
                if terminates(stmt.body) and not terminates(stmt.orelse):
                    frames = frames + (self.guard(stmt.test, False, stmt, frames, leaves_loop(stmt.body)),)
                elif terminates(stmt.orelse) and not terminates(stmt.body):
                    frames = frames + (self.guard(stmt.test, True, stmt, frames, leaves_loop(stmt.orelse)),)
            elif isinstance(stmt, _TRY):
                # after a try whose handler leaves (`except OOM: ...; break`), the rest of the block
                # does not run on that handler's path
                for handler in stmt.handlers:
                    if terminates(handler.body):
                        frames = frames + (self.guard(self.exception_test(handler), False, handler, frames,
                                                      leaves_loop(handler.body)),)

    def exception_test(self, handler: ast.ExceptHandler) -> ast.expr:
        """The pseudo-test "this handler caught an exception", one object per handler so that
        guards on its two sides are recognised as exclusive."""
        if handler.type is not None:
            return handler.type
        return self.bare_except_tests.setdefault(id(handler), ast.Name(id="BaseException", ctx=ast.Load()))

    def statement(self, stmt: ast.stmt, frames: tuple) -> None:
        if type(stmt) not in _NOT_SIMPLE:  # most statements: answered without the chain of tests below
            self.simple(stmt, frames)
        elif isinstance(stmt, _FUNCS):
            self.define_function(stmt, None)
        elif isinstance(stmt, ast.ClassDef):
            self.define_class(stmt)
        elif isinstance(stmt, ast.If):
            self.scan(stmt.test, frames)
            self.cut_dead_branch(stmt)
            self.block(stmt.body, frames + (self.guard(stmt.test, True, stmt, frames),))
            if stmt.orelse:
                self.block(stmt.orelse, frames + (self.guard(stmt.test, False, stmt, frames),))
        elif isinstance(stmt, (ast.For, ast.AsyncFor, ast.While)):
            self.loop(stmt, frames)
        elif isinstance(stmt, (ast.With, ast.AsyncWith)):
            kind = "other"
            for item in stmt.items:
                self.scan(item.context_expr, frames)
                if item.optional_vars is not None:
                    self.bind(item.optional_vars, item.context_expr, frames)
                kind = _with_kind(self.facts, item.context_expr) if kind == "other" else kind
            block = WithBlock(stmt, kind)
            self.fn.with_blocks.append((block, frames))
            self.block(stmt.body, frames + (block,))
        elif isinstance(stmt, _TRY):
            self.block(stmt.body, frames)
            for handler in stmt.handlers:
                self.block(handler.body, frames + (self.guard(self.exception_test(handler), True, handler, frames),))
            self.block(stmt.orelse, frames)
            self.block(stmt.finalbody, frames)
        elif isinstance(stmt, getattr(ast, "Match", ())):
            self.scan(stmt.subject, frames)
            for case in stmt.cases:
                self.block(case.body, frames + (self.guard(stmt.subject, True, case, frames),))
        else:  # an import
            self.record_import(stmt)

    def cut_dead_branch(self, stmt: ast.If) -> None:
        """A branch whose test is settled before the run (`if False:`; `world_size = 1` as the only
        binding of `world_size` in the function, then `if world_size > 1:`) never runs: it is cut
        from the tree, so that no fact and no rule reads it."""
        truth = static_truth(stmt.test, self.constant_of)
        if truth is True:
            stmt.orelse = []
        elif truth is False:
            stmt.body = [ast.Pass(lineno=stmt.lineno, col_offset=stmt.col_offset, end_lineno=stmt.test.end_lineno,
                                  end_col_offset=stmt.test.end_col_offset)]

    def constant_of(self, name: str):
        """The literal a local name always holds, if it is bound once, to a literal. (Module names
        are left out: other modules and `global` statements can rebind them.)"""
        values = self.fn.assignments.get(name, ())
        if self.fn is self.facts.module or len(values) != 1 or not isinstance(values[0], ast.Constant) \
                or not isinstance(values[0].value, LITERALS):
            return UNKNOWN
        if self.bound_once is None:
            self.bound_once = names_bound_once(self.fn.node)
        return values[0].value if name in self.bound_once else UNKNOWN

    def simple(self, stmt: ast.stmt, frames: tuple) -> None:
        if isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                self.bind(target, stmt.value, frames)
            if len(stmt.targets) == 1:
                self.rescale(stmt.targets[0], stmt.value, stmt, frames)
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            self.bind(stmt.target, stmt.value, frames)
        elif isinstance(stmt, ast.AugAssign):
            self.mark_assigned(stmt.target, frames)
            for name in assigned_names(stmt.target):  # the statement itself stands for the new value
                self.fn.assignments.setdefault(name, []).append(stmt)
            if isinstance(stmt.op, (ast.Div, ast.Mult)) and dotted(stmt.target) is not None:
                self.emit(Kind.RESCALE, dotted(stmt.target), stmt, frames, {"factor": stmt.value})
            elif isinstance(stmt.op, ast.Add) and dotted(stmt.target) is not None:
                self.emit(Kind.ACCUMULATE, dotted(stmt.target), stmt, frames, {"value": stmt.value})
            if isinstance(stmt.op, (ast.Add, ast.Sub)) and isinstance(stmt.value, ast.Constant):
                self.emit(Kind.SHIFT, dotted(stmt.target), stmt, frames, {"delta": stmt.value})
        elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call) \
                and isinstance(stmt.value.func, ast.Attribute) and stmt.value.func.attr in _MOVES:
            self.emit(Kind.DISCARDED_MOVE, dotted(stmt.value.func.value), stmt.value, frames, {})
        elif isinstance(stmt, ast.Return):
            self.fn.returns.append(stmt)
            self.fn.return_orders[id(stmt)] = self.next_order()
        if isinstance(stmt, (ast.Continue, ast.Break, ast.Return)) and self.loops_of(frames):
            self.emit(Kind.SKIP, None, stmt, frames, {})
        self.scan(stmt, frames)

    def scan(self, node: ast.AST, frames: tuple) -> None:
        """Queue the calls in ``node`` that may be events, and note what loops invoke."""
        loops = self.loops_of(frames)
        for call in calls_in(node):
            func = call.func
            name = dotted(func)
            if name is not None:
                for loop in loops:
                    loop.invoked.add(name)
            if isinstance(func, ast.Attribute) and func.attr in _EVENT_METHODS or name is not None:
                self.pending.append((self.fn, call, frames, self.next_order()))

    def loop(self, stmt: ast.AST, frames: tuple) -> None:
        parent = self.loops_of(frames)
        loop = Loop(stmt, parent[-1] if parent else None)
        self.fn.loops.append(loop)
        inner = frames + (loop,)
        if isinstance(stmt, ast.While):
            self.scan(stmt.test, frames)
        else:
            self.scan(stmt.iter, frames)
            self.bind(stmt.target, Unpacked(stmt.iter, -1, stmt.lineno), inner)
            cleared = _clears_gradients(stmt)
            if cleared is not None:
                self.emit(Kind.ZERO_GRAD, cleared, stmt, frames, {"form": "grad = None loop"})
        self.block(stmt.body, inner)
        self.block(stmt.orelse, frames)

    def bind(self, target: ast.AST, value: ast.AST, frames: tuple) -> None:
        if isinstance(target, (ast.Tuple, ast.List)):
            for index, element in enumerate(target.elts):
                element_value = value.elts[index] if isinstance(value, (ast.Tuple, ast.List)) and len(
                    value.elts) == len(target.elts) else Unpacked(value, index, getattr(value, "lineno", 0))
                self.bind(element, element_value, frames)
            return
        self.mark_assigned(target, frames)
        if any(isinstance(f, WithBlock) and f.kind == "no-grad" for f in frames):
            self.fn.no_grad_values.add(id(value))
        for name in assigned_names(target):
            self.fn.assignments.setdefault(name, []).append(value)
            if name.startswith("self.") and self.fn.class_name is not None:
                attributes = self.facts.class_attributes.setdefault(self.fn.class_name, {})
                attributes.setdefault(name, []).append(value)

    def mark_assigned(self, target: ast.AST, frames: tuple) -> None:
        names = set(assigned_names(target))
        for loop in self.loops_of(frames):
            loop.assigned |= names

    def rescale(self, target: ast.AST, value: ast.AST, stmt: ast.stmt, frames: tuple) -> None:
        """``loss = loss / k`` and ``loss = loss * w`` (either operand order for ``*``); also
        ``y = y - 1`` (a shift)."""
        name = dotted(target)
        if name is None or not isinstance(value, ast.BinOp):
            return
        if isinstance(value.op, (ast.Add, ast.Sub)) and dotted(value.left) == name and isinstance(
                value.right, ast.Constant):
            self.emit(Kind.SHIFT, name, stmt, frames, {"delta": value.right})
            return
        if not isinstance(value.op, (ast.Div, ast.Mult)):
            return
        if dotted(value.left) == name:
            factor = value.right
        elif isinstance(value.op, ast.Mult) and dotted(value.right) == name:
            factor = value.left
        else:
            return
        self.emit(Kind.RESCALE, name, stmt, frames, {"factor": factor})

    def emit(self, kind: str, target: Optional[str], node: ast.AST, frames: tuple, detail: dict) -> None:
        self.fn.own_events.append(Event(kind, target, node, frames, self.next_order(), node, (), detail))

    def define_function(self, node: ast.AST, class_name: Optional[str]) -> None:
        outer = None if self.fn is self.facts.module else self.fn
        prefix = f"{class_name}." if class_name else (f"{outer.qualname}." if outer else "")
        args = node.args
        params = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
        fn = FunctionFacts(node.name, prefix + node.name, node, outer, class_name or (outer.class_name if outer else None),
                           params, self.facts)
        self.facts.functions.append(fn)
        walker = _Walker(self.facts, fn, self.pending)
        if node.name in _PER_BATCH_HOOKS:
            # the framework calls it once per batch: its body is one iteration of an unseen loop
            loop = Loop(node, None, assigned=set(params))
            fn.loops.append(loop)
            walker.block(node.body, (loop,))
        else:
            walker.run(node.body)

    def define_class(self, node: ast.ClassDef) -> None:
        self.facts.class_bases[node.name] = [self.facts.qualify(dotted(b) or "") for b in node.bases]
        for stmt in node.body:
            if isinstance(stmt, _FUNCS):
                self.define_function(stmt, node.name)
            elif isinstance(stmt, ast.ClassDef):
                self.define_class(stmt)

    def record_import(self, stmt: ast.AST) -> None:
        imports = self.facts.imports
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                if alias.asname:
                    imports[alias.asname] = alias.name
                else:
                    head = alias.name.split(".")[0]
                    imports.setdefault(head, head)
            return
        base = stmt.module or ""
        if stmt.level:
            parts = self.facts.package.split(".") if self.facts.package else []
            parts = parts[: len(parts) - (stmt.level - 1)] if stmt.level > 1 else parts
            base = ".".join(p for p in parts + ([stmt.module] if stmt.module else []) if p)
        for alias in stmt.names:
            if alias.name != "*":
                imports[alias.asname or alias.name] = f"{base}.{alias.name}" if base else alias.name


def _with_kind(facts: FileFacts, expr: ast.AST) -> str:
    if not isinstance(expr, ast.Call):
        name = facts.qualify(dotted(expr) or "")
        return "no-grad" if last_part(name) in ("no_grad", "inference_mode") else "other"
    name = facts.qualify(dotted(expr.func) or "")
    leaf = last_part(name) if name else (expr.func.attr if isinstance(expr.func, ast.Attribute) else "")
    if leaf == "accumulate":
        return "accumulate"
    if leaf in ("no_grad", "inference_mode"):
        return "no-grad"
    if leaf == "set_grad_enabled" and expr.args and isinstance(expr.args[0], ast.Constant) and not expr.args[0].value:
        return "no-grad"
    if leaf == "optim_context":
        return "framework"
    if leaf == "autocast":
        return "autocast-fp16" if _autocasts_to_fp16(facts, name, expr) else "autocast"
    return "other"


def _autocasts_to_fp16(facts: FileFacts, name: str, call: ast.Call) -> bool:
    """``autocast(dtype=torch.float16)``, and the CUDA autocasts whose default dtype is fp16."""
    dtype = next((k.value for k in call.keywords if k.arg == "dtype"), None)
    if dtype is not None:
        return facts.qualify(dotted(dtype) or "") in ("torch.float16", "torch.half")
    if name.startswith("torch.cuda.amp"):
        return True
    device = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "device_type"), None)
    return isinstance(device, ast.Constant) and device.value == "cuda"


def _clears_gradients(loop: ast.AST) -> Optional[str]:
    """``for p in model.parameters(): p.grad = None`` (or ``p.grad.zero_()``): the model, or '*'.
    (``p.grad = all_reduce(p.grad)`` replaces the gradient with another; it clears nothing.)"""
    variable = dotted(loop.target)
    if variable is None:
        return None
    def sets_none(stmt: ast.stmt) -> bool:
        return isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Constant) and stmt.value.value is None \
            and any(dotted(t) == f"{variable}.grad" for t in stmt.targets)

    for stmt in loop.body:
        cleared = False
        if isinstance(stmt, ast.Assign):
            cleared = sets_none(stmt)
        elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            func = stmt.value.func
            cleared = isinstance(func, ast.Attribute) and func.attr in ("zero_", "detach_") and (
                root_name(func.value) == f"{variable}.grad")
        elif isinstance(stmt, ast.If):
            # `if p.grad is not None: p.grad = None`; not `p.grad = reduce(p.grad)`, which keeps it
            cleared = any(sets_none(s) for s in stmt.body)
        if cleared:
            source = loop.iter
            if isinstance(source, ast.Call) and isinstance(source.func, ast.Attribute) and source.func.attr in (
                    "parameters", "named_parameters"):
                return dotted(source.func.value) or "*"
            return "*"
    return None


def _classify_call(fn: FunctionFacts, call: ast.Call, frames: tuple, order: tuple) -> List[Event]:
    def event(kind, target, detail=None, extra_frames=(), after=0):
        return Event(kind, target, call, frames + extra_frames, order + (after,), call, (), detail or {})

    func = call.func
    if isinstance(func, ast.Attribute):
        method, receiver = func.attr, func.value
        name = dotted(receiver)
        if method == "backward":
            return _backward(fn, call, receiver, name, event)
        if method == "manual_backward" and call.args:
            return [event(Kind.BACKWARD, root_name(call.args[0]), {"loss": call.args[0], "framework": "lightning"})]
        if method in ("eval", "train", "requires_grad_"):
            if method == "eval" and fn.file.evaluates_graph_tensors():
                return []  # TensorFlow's `tensor.eval()`: a value computed, no mode switched
            return _mode(call, method, receiver, event)
        if method == "zero_" and name and (name.endswith(".grad") or name.endswith(".grad.data")):
            # `w.grad.zero_()`: gradients of a plain tensor cleared by hand
            return [event(Kind.ZERO_GRAD, name.split(".grad")[0], {"form": "grad.zero_()"})]
        own_method = _method_of_local_class(fn, name, method)
        if own_method is not None:
            # an accumulation wrapper defined here (`GradAccumOptimizer(opt, 4).zero_grad()`): what
            # its method does is what happens, guards included
            return [event(Kind.CALL, own_method, {"call": call, "bound": True})]
        if method == "zero_grad":
            return [] if role_of(fn, name) == Role.ENGINE else [event(Kind.ZERO_GRAD, name or root_name(receiver))]
        if method in _CLIPS:
            return [] if role_of(fn, name) == Role.ACCELERATOR else [event(Kind.CLIP, name)]
        if method == "half" and not call.args:
            return [event(Kind.HALF, held_object(receiver))]
        if method == "set_epoch":
            return [event(Kind.SET_EPOCH, name)]
        if method == "append" and len(call.args) == 1:
            return [event(Kind.ACCUMULATE, name, {"value": call.args[0]})] if name else []
        if method == "update_params":
            return [event(Kind.FRAMEWORK_STEP, name, {"framework": "mmengine"})]
        if method not in _ROLE_METHODS:
            return _plain_call(fn, call, func, frames, event)
        role = role_of(fn, name)
        if method == "step":
            if role == Role.SCALER and call.args:
                return [event(Kind.OPT_STEP, dotted(call.args[0]), {"scaled": True, "scaler": name})]
            if role == Role.OPTIMIZER:
                return [event(Kind.OPT_STEP, name)]
            if role == Role.SCHEDULER and len(call.args) <= 1:
                return [event(Kind.SCHED_STEP, name)]
            if role == Role.ENGINE:
                return [event(Kind.FRAMEWORK_STEP, name, {"framework": "deepspeed"})]
            if role == Role.EMA:
                return [event(Kind.EMA_UPDATE, name)]
            return []
        if method == "step_update" and role == Role.SCHEDULER:
            return [event(Kind.SCHED_STEP, name)]
        if role == Role.SCALER and method == "unscale_":
            return [event(Kind.UNSCALE, dotted(call.args[0]) if call.args else None, {"scaler": name})]
        if role == Role.SCALER and method == "update":
            return [event(Kind.SCALER_UPDATE, name)]
        if method in ("update", "update_parameters") and role == Role.EMA and call.args:
            return [event(Kind.EMA_UPDATE, name)]
    return _plain_call(fn, call, func, frames, event)


# the methods whose meaning depends on the receiver's role (an optimizer's step, a scaler's update)
_ROLE_METHODS = {"step", "step_update", "unscale_", "update", "update_parameters"}


def _plain_call(fn: FunctionFacts, call: ast.Call, func: ast.expr, frames: tuple, event) -> List[Event]:
    """A call that is no method event of its receiver's role: a clip or zero_grad helper, a
    criterion, a constructor of a role, a loss scaler, a train-mode method, or a call into code
    that may have a summary."""
    name = dotted(func)
    if name is None:
        return []
    leaf = last_part(name)
    if leaf in _CLIPS:  # torch.nn.utils.clip_grad_norm_(params, 1.0)
        return [event(Kind.CLIP, None)]
    if leaf in ("zero_grad", "zero_grads", "zero_gradients"):  # zero_grad(params): a helper
        return [event(Kind.ZERO_GRAD, "*", {"form": "function"})]
    qualified = fn.file.qualify(name)
    expects = _criterion_input(fn, name, qualified)
    if expects and call.args:
        return [event(Kind.CRITERION, name, {"expects": expects, "input": call.args[0]})]
    built = "sampler" if last_part(qualified) == "DistributedSampler" else role_of_constructor(qualified)
    if built in (Role.OPTIMIZER, Role.SCHEDULER, Role.SCALER, "sampler"):
        return [event(Kind.CONSTRUCT, qualified, {"role": built, "call": call})]
    if "scaler" in name.lower() and role_of(fn, name) == Role.LOSS_SCALER and len(call.args) >= 2:
        return _loss_scaler(fn, call, frames, event)
    if isinstance(func, ast.Attribute) and func.attr in _EVENT_METHODS:
        return []
    if isinstance(func, ast.Attribute) and _sets_train_mode(func.attr) and held_object(func.value) \
            and not name.startswith("self.") and fn.file.local_function(name, fn) is None:
        # `discriminator.train_custom()`: a method of the model's own (unseen) class that sets train mode
        return [event(Kind.MODE, held_object(func.value), {"mode": "train"})]
    if not name.startswith("self.") and not _may_reach_linted_code(fn.file, name) \
            and fn.file.local_function(name, fn) is None:
        return []
    return [event(Kind.CALL, name, {"call": call, "bound": name.startswith("self.")})]


_LIBRARIES = {
    "torch", "numpy", "np", "math", "os", "sys", "time", "logging", "random", "json", "re", "collections",
    "functools", "itertools", "typing", "warnings", "copy", "pathlib", "shutil", "pickle", "datetime",
    "tqdm", "wandb", "tensorboard", "torchvision", "transformers", "accelerate", "deepspeed", "timm",
    "lightning", "pytorch_lightning", "mmengine", "matplotlib", "pandas", "sklearn", "scipy", "PIL", "cv2",
}


def _sets_train_mode(method: str) -> bool:
    """``train_custom``, ``set_train_mode``: a module method named for switching to train mode."""
    if "train" not in method.lower():
        return False  # most methods: no need to split the name into words
    words = set(name_words(method))
    return "train" in words and not words & {"eval", "test", "split", "data", "loader", "dataset", "step",
                                                "epoch", "batch", "loop", "one"}


def _may_reach_linted_code(facts: FileFacts, name: str) -> bool:
    """An imported function that is not from a well-known library may be defined in the linted tree."""
    head = name.split(".")[0]
    qualified = facts.imports.get(head)
    return qualified is not None and qualified.split(".")[0] not in _LIBRARIES


# loss -> the activation it applies itself to raw logits
_LOGIT_LOSSES = {"cross_entropy": "softmax", "binary_cross_entropy_with_logits": "sigmoid",
                 "CrossEntropyLoss": "softmax", "BCEWithLogitsLoss": "sigmoid"}


def _criterion_input(fn: FunctionFacts, name: str, qualified: str) -> Optional[str]:
    """The activation a loss applies to its raw-logit input ("softmax", "sigmoid"), for torch's
    losses called as
    functions (``F.cross_entropy``) or through a module bound to a name (``criterion =
    nn.CrossEntropyLoss()``)."""
    if qualified.startswith("torch.nn.functional.") and last_part(qualified) in _LOGIT_LOSSES:
        return _LOGIT_LOSSES[last_part(qualified)]
    if qualified.split(".")[0] in fn.file.imports or name.count(".") > 1:
        return None
    constructed = constructor_of(fn, name)
    if constructed is not None and constructed.callee.startswith("torch.nn."):
        return _LOGIT_LOSSES.get(last_part(constructed.callee))
    return None


def _method_of_local_class(fn: FunctionFacts, receiver: Optional[str], method: str) -> Optional[str]:
    """``Class.method`` when ``receiver`` was built by a class defined in this file that defines
    ``method`` itself."""
    if receiver is None or method not in ("step", "zero_grad", "update"):
        return None
    constructed = constructor_of(fn, receiver)
    if constructed is None or constructed.element is not None:
        return None
    qualname = f"{constructed.callee}.{method}"
    return qualname if qualname in fn.file.methods else None


def _backward(fn, call, receiver, name, event) -> List[Event]:
    if fn.name == "backward":  # autograd.Function / hook internals, not a training step
        return []
    if isinstance(receiver, ast.Call) and isinstance(receiver.func, ast.Attribute) and receiver.func.attr == "scale" \
            and receiver.args:
        loss = receiver.args[0]
        return [event(Kind.BACKWARD, root_name(loss), {"loss": loss, "scaled": True})]
    if isinstance(receiver, ast.Call) and dotted(receiver.func) == "super":
        return []
    qualified = fn.file.qualify(name or "")
    if call.args and (role_of(fn, name) in (Role.ACCELERATOR, Role.ENGINE) or qualified == "torch.autograd"):
        loss = call.args[0]
        # accelerate's and Fabric's backward() scale the loss for fp16 themselves, DeepSpeed's too
        framework = {Role.ENGINE: "deepspeed", Role.ACCELERATOR: "accelerator"}.get(role_of(fn, name))
        return [event(Kind.BACKWARD, root_name(loss), {"loss": loss, "framework": framework})]
    if call.args and role_of(fn, name) == Role.OPTIMIZER:
        # `optimizer.backward(loss)`: a mixed-precision wrapper (apex's FP16_Optimizer, fairseq's)
        # runs backward itself and scales the loss on the way
        loss = call.args[0]
        return [event(Kind.BACKWARD, root_name(loss), {"loss": loss, "scaled_by": "optimizer"})]
    return [event(Kind.BACKWARD, root_name(receiver), {"loss": receiver})]


def _mode(call, method, receiver, event) -> List[Event]:
    target = held_object(receiver)
    flag = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "mode"), None)
    if method == "requires_grad_":
        if isinstance(flag, ast.Constant) and flag.value is False:
            return [event(Kind.FREEZE, target)]
        return []
    if method == "eval":
        return [] if call.args or call.keywords else [event(Kind.MODE, target, {"mode": "eval"})]
    if flag is None:
        return [event(Kind.MODE, target, {"mode": "train"})]
    if isinstance(flag, ast.Constant) and isinstance(flag.value, bool):
        return [event(Kind.MODE, target, {"mode": "train" if flag.value else "eval"})]
    return [event(Kind.MODE, target, {"mode": None})]


def _loss_scaler(fn, call, frames, event) -> List[Event]:
    """timm's ``loss_scaler(loss, optimizer, ..., need_update=...)`` (Swin's and other copies spell it
    ``update_grad=``): backward, then a step that runs only when that flag is true."""
    loss = call.args[0]
    update = next((k.value for k in call.keywords if k.arg in ("need_update", "update_grad")), None)
    guard = () if update is None else (Guard(update, True, call, fn, tuple(f for f in frames if isinstance(f, Loop))),)
    return [
        event(Kind.BACKWARD, root_name(loss), {"loss": loss, "scaled": True}),
        event(Kind.OPT_STEP, dotted(call.args[1]), {"scaled": True, "framework": "loss-scaler"}, guard, after=1),
    ]
