"""Instrumentation for `trainlint trace`: public PyTorch hooks first (global optimizer step pre/post
hooks, a global module forward pre-hook), wrappers only where no hook exists (backward, zero_grad,
scheduler step, GradScaler, Module.train, F.normalize). Every event gets the call site of the first
user frame. Per-step numbers (per-parameter gradient and weight norms, losses) stay on the device
and are read once, when tracing ends: no host synchronisation in the hot path. The per-call cost is
kept to what a training step can hide: one fused norm pass over the gradients and one over the
weights per optimizer step; until the first step every module call costs a dictionary look-up,
after it only the trained models' own calls are hooked."""
from __future__ import annotations

import functools
import math
import os
import sys
import traceback
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

_TORCH_DIR = os.path.dirname(torch.__file__)
_OWN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SKIPPED = (_TORCH_DIR, _OWN_DIR, os.path.dirname(os.__file__))
_MODE_SENSITIVE = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm)


class StopTracing(BaseException):
    """Raised into the script to end it cleanly (its own finally blocks run)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class Event:
    kind: str  # backward | step | skipped_step | zero_grad | scheduler | mode | unscale | scaler_step | scaler_update
    step: int  # optimizer steps completed before the event
    micro: int  # backward calls before the event
    site: Tuple[str, int]
    data: Dict[str, Any] = field(default_factory=dict)


def user_site() -> Tuple[str, int]:
    """file:line of the innermost frame outside torch, trainlint and the standard library."""
    frame = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(_SKIPPED) and not filename.startswith("<"):
            return os.path.abspath(filename), frame.f_lineno
        frame = frame.f_back
    return "<unknown>", 0


class Norms:
    """The 2-norm of each tensor of a list (None entries stay None), taken with fused kernels and
    kept on the device until `read()`. This runs at every optimizer step, where the host is often
    no further ahead of the GPU than the step itself: it does no per-tensor Python work."""

    def __init__(self, tensors: List[Optional[torch.Tensor]]):
        present = [t for t in tensors if t is not None]
        self.size = len(tensors)
        self.positions = None if len(present) == self.size else [i for i, t in enumerate(tensors) if t is not None]
        with torch.no_grad():
            self.norms = _fused_norms(present) if present else []
        self._values: Optional[List[Optional[float]]] = None

    def read(self) -> List[Optional[float]]:
        if self._values is None:
            try:
                found = torch.stack(self.norms).tolist() if self.norms else []
            except RuntimeError:  # parameters on several devices
                found = [float(norm) for norm in self.norms]
            self._values = [None] * self.size
            for position, value in zip(self.positions or range(self.size), found):
                self._values[position] = value
        return self._values


def _fused_norms(tensors: List[torch.Tensor]) -> List[torch.Tensor]:
    """One float32 norm per tensor, in order. The fused call covers the usual case (float32 and
    half types, one device); float64, complex, sparse or mixed-device tensors, which it rejects,
    get one norm each instead: the tracer must never make the user's step fail."""
    try:
        if _NORM_DTYPE_ARGUMENT:  # accumulate in float32: a float16 norm overflows long before its elements
            return torch._foreach_norm(tensors, dtype=torch.float32)
        return [norm.float() for norm in torch._foreach_norm(tensors)]
    except (RuntimeError, TypeError, NotImplementedError):
        return [_one_norm(tensor) for tensor in tensors]


def _one_norm(tensor: torch.Tensor) -> torch.Tensor:
    if tensor.is_sparse:
        tensor = tensor.coalesce().values()
    return torch.linalg.vector_norm(tensor).float()


def _norm_takes_dtype() -> bool:
    try:
        torch._foreach_norm([torch.zeros(1)], dtype=torch.float32)
        return True
    except TypeError:  # torch < 2.5
        return False


_NORM_DTYPE_ARGUMENT = _norm_takes_dtype()


@dataclass
class StepStats:
    """One optimizer step: its parameters (flattened over groups) and their norms."""

    params: List[torch.Tensor]
    groups: List[int]  # the param group of each parameter
    lr: List[Optional[float]]
    grads: Norms  # gradient norm of each parameter (None: no gradient)
    before: Norms  # norms of the parameters that had a gradient, before the step
    after: Norms  # and after it
    moved: List[torch.Tensor]  # those parameters (the ones `before` and `after` measure)

    def grad_norms(self) -> List[Optional[float]]:
        return self.grads.read()

    def grad_norm(self) -> Optional[float]:
        """The global gradient norm, as clip_grad_norm_ computes it; None when no parameter had one."""
        present = [v for v in self.grad_norms() if v is not None]
        return math.sqrt(sum(v * v for v in present)) if present else None

    def group_grad_norms(self) -> List[Optional[float]]:
        squares: Dict[int, float] = {}
        for group, value in zip(self.groups, self.grad_norms()):
            if value is not None:
                squares[group] = squares.get(group, 0.0) + value * value
        return [math.sqrt(squares[g]) if g in squares else None for g in range(len(self.lr))]

    def update(self) -> float:
        """How much the parameter norms moved in this step (0: nothing changed)."""
        return sum(abs(a - b) for a, b in zip(self.after.read(), self.before.read()))


class _OriginalCall:
    """The wrapped PyTorch function, remembering whether it ran and what it returned or raised:
    an error of the tracer's own around it must neither hide the call's outcome nor run it twice."""

    def __init__(self, function: Callable):
        self.function = function
        self.done = False
        self.result: Any = None
        self.raised: Optional[BaseException] = None

    def __call__(self, *args, **kwargs):
        try:
            self.result = self.function(*args, **kwargs)
        except BaseException as error:
            self.raised = error
            raise
        self.done = True
        return self.result


@dataclass
class RootModule:
    """A module called from user code with gradients enabled: the model being trained."""

    module: nn.Module
    trainable: bool
    mode_sensitive: str  # kinds of its dropout / batch-norm layers, "" if it has none


class Recorder:
    norms = Norms  # how per-step norms are taken (bench/trace_overhead.py swaps it out to cost the rest)

    def __init__(self, max_steps: int):
        self.max_steps = max_steps
        self.events: List[Event] = []
        self.steps = 0  # optimizer steps taken
        self.scaler_steps: List[bool] = []  # per GradScaler.step call: whether optimizer.step ran
        self.micro = 0
        self.losses: List[torch.Tensor] = []  # value given to each backward()
        self.criteria: List[Optional[torch.Tensor]] = []  # the last loss-module output before each backward
        self.step_stats: List[StepStats] = []
        self.optimizers: Dict[int, torch.optim.Optimizer] = {}
        self.roots: Dict[int, RootModule] = {}
        self.inputs: List[torch.Tensor] = []  # fingerprint of each root forward's first tensor input
        self.zero_norm_inputs: List[torch.Tensor] = []
        self.scaled = False  # an enabled GradScaler scaled a loss
        self.uncleared_steps: List[Tuple[str, int]] = []  # steps applying gradients never cleared since the last
        self.params_with_grad: set = set()  # ids of parameters that had a gradient at some step
        self.fp16_params = False
        self.fp16_autocast = False
        self._last_criterion: Optional[torch.Tensor] = None
        self._within_roots: set = set()  # ids of every module inside a known root (the hot path's fast exit)
        self._in_backward = False
        self._in_scaler_step = False
        self._in_train = False
        self._cleared: Dict[int, bool] = {}  # optimizer -> zero_grad (of it or of a module) since its last step
        # optimizer -> its first gradient tensor after its last step (weakly: an id could be reused)
        self._last_grads: Dict[int, Callable[[], Optional[torch.Tensor]]] = {}
        self._last_norms: Dict[int, Tuple[List[torch.Tensor], Norms]] = {}  # optimizer -> params, norms after its step
        self._pending: Dict[int, dict] = {}
        self._flattened: Dict[int, tuple] = {}  # optimizer -> (shape of its groups, parameters, group of each)
        self._forward_hook = None  # the global forward pre-hook, until only the trained models are hooked
        self._undo: List[Callable[[], None]] = []
        self.broken: Optional[str] = None  # the tracer's own failure (a traceback): from then on it stands aside
        self.closure_steps = 0  # steps given a closure (L-BFGS): the closure may run forward/backward many times
        self._closure: Optional[dict] = None  # the closure step in progress: its backward() calls, for one micro-batch
        self.eval_outputs_in_backward: List[Tuple[int, str, int]] = []  # (model, its layer kinds, micro-batch)
        self._manual: Optional[dict] = None  # parameters' norms after the last backward, while no optimizer steps
        self._manual_params: Tuple[int, List[torch.Tensor]] = (0, [])  # (roots seen, their trainable parameters)
        self.untraced_processes = 0  # child processes started that the tracer did not follow
        self._guarded_before_forward = self._guarded(self._before_forward)

    # -- installing -----------------------------------------------------------------------------

    def install(self) -> None:
        from torch.optim import lr_scheduler, optimizer

        from torch.nn.modules import module

        self._forward_hook = module.register_module_forward_pre_hook(self._guarded_before_forward)
        handles = [
            optimizer.register_optimizer_step_pre_hook(self._guarded(self._before_step)),
            optimizer.register_optimizer_step_post_hook(self._guarded(self._after_step)),
            self._forward_hook,
        ]
        self._undo.extend(handle.remove for handle in handles)
        self._wrap(torch.Tensor, "backward", self._backward)
        self._wrap(torch.autograd, "backward", self._autograd_backward)
        self._wrap(torch.optim.Optimizer, "zero_grad", self._zero_grad)
        self._wrap(nn.Module, "zero_grad", self._zero_grad)
        self._wrap(nn.Module, "train", self._train)
        self._wrap(lr_scheduler.LRScheduler, "step", self._scheduler_step)
        self._wrap(lr_scheduler.ReduceLROnPlateau, "step", self._scheduler_step)
        self._wrap(torch.amp.GradScaler, "scale", self._scale)
        self._wrap(torch.amp.GradScaler, "unscale_", self._unscale)
        self._wrap(torch.amp.GradScaler, "step", self._scaler_step)
        self._wrap(torch.amp.GradScaler, "update", self._scaler_update)
        self._wrap(F, "normalize", self._normalize)

    def uninstall(self) -> None:
        while self._undo:
            self._undo.pop()()

    def _wrap(self, owner, name: str, replacement: Callable) -> None:
        """Put ``replacement(original, *args)`` in place of ``owner.name``. Whatever the tracer's
        part of it does, the call itself runs once and returns or raises what it would untraced."""
        original = owner.__dict__.get(name) if isinstance(owner, type) else getattr(owner, name)
        if original is None:
            return

        @functools.wraps(original)
        def wrapper(*args, **kwargs):
            if self.broken is not None:
                return original(*args, **kwargs)
            call = _OriginalCall(original)
            try:
                return replacement(call, *args, **kwargs)
            except StopTracing:
                raise
            except Exception as error:
                if call.raised is error:
                    raise  # the call's own error (the user's, or PyTorch's), unchanged
                self._stand_aside(error)
                if call.raised is not None:
                    raise call.raised
                return call.result if call.done else original(*args, **kwargs)

        setattr(owner, name, wrapper)
        self._undo.append(lambda: setattr(owner, name, original))

    def _guarded(self, part: Callable) -> Callable:
        """A hook that cannot fail the user's step: an error of the tracer's own makes it stand aside."""
        @functools.wraps(part)
        def hook(*args, **kwargs):
            if self.broken is not None:
                return None
            try:
                return part(*args, **kwargs)
            except StopTracing:
                raise
            except Exception as error:
                self._stand_aside(error)
                return None

        return hook

    def _stand_aside(self, error: Exception) -> None:
        self.broken = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        print(f"trainlint trace: the tracer itself failed after {self.steps} optimizer steps and stands aside; "
              f"the script goes on untraced. This is a trainlint bug:\n{self.broken}", file=sys.stderr)

    def record(self, kind: str, **data) -> None:
        self.events.append(Event(kind, self.steps, self.micro, user_site(), data))

    # -- hooks and wrappers -----------------------------------------------------------------------

    def _backward(self, original, tensor, *args, **kwargs):
        self._note_backward(tensor)
        self._in_backward = True
        try:
            return original(tensor, *args, **kwargs)
        finally:
            self._in_backward = False
            self._after_backward()

    def _autograd_backward(self, original, tensors, *args, **kwargs):
        if self._in_backward:
            return original(tensors, *args, **kwargs)
        self._note_backward(tensors[0] if isinstance(tensors, (list, tuple)) else tensors)
        try:
            return original(tensors, *args, **kwargs)
        finally:
            self._after_backward()

    def _note_backward(self, root: torch.Tensor) -> None:
        if self._closure is not None:
            self._closure["backwards"] += 1
            if self._closure["backwards"] > 1:
                return  # the closure evaluated again inside one step (L-BFGS): the same micro-batch
        if not self.optimizers:
            self._manual_update_since_last_backward()
        self.record("backward", connected=root.grad_fn is not None, scaled=getattr(root, "_trainlint_scaled", False))
        self.losses.append(root.detach().sum(dtype=torch.float32))
        self.criteria.append(self._last_criterion)
        self._last_criterion = None
        self.micro += 1

    def _after_backward(self) -> None:
        if not self.optimizers and self.broken is None:
            try:
                self._remember_for_manual_update()
            except Exception as error:  # called from a finally block: never let it replace the user's error
                self._stand_aside(error)

    # -- updates written by hand: `p.data.add_(p.grad, alpha=-lr)` ----------------------------------

    def _trained_parameters(self) -> List[torch.Tensor]:
        if self._manual_params[0] != len(self.roots):
            params = [p for root in self.roots.values() if root.trainable
                      for p in root.module.parameters() if p.requires_grad]
            self._manual_params = (len(self.roots), params)
        return self._manual_params[1]

    def _remember_for_manual_update(self) -> None:
        """After a backward() while no optimizer has stepped: the gradients and weights, to see at
        the next backward() whether code of the script's own updated the weights in between."""
        params = self._trained_parameters()
        if not params:
            return
        first = next((p.grad for p in params if p.grad is not None), None)
        self._manual = {"params": params, "grads": self.norms([p.grad for p in params]), "before": self.norms(params),
                        "first_grad": (weakref.ref(first), first._version) if first is not None else None,
                        "cleared": False, "at": len(self.events), "site": self.events[-1].site}

    def _manual_update_since_last_backward(self) -> None:
        """A step written by hand counts as an optimizer step: the weights changed between two
        backward() calls with no optimizer. (An in-place update through `.data` does not bump the
        version counters, so the weights' norms are compared; this costs a host read per backward,
        only in scripts that never call an optimizer.)"""
        manual, self._manual = self._manual, None
        if manual is None:
            return
        after = self.norms(manual["params"])
        if after.read() == manual["before"].read():
            return  # accumulating, or evaluating: the weights did not move
        known = manual["first_grad"]
        grad = known[0]() if known is not None else None
        if grad is not None and not manual["cleared"] and grad._version == known[1] and any(
                p.grad is grad for p in manual["params"]):
            self.uncleared_steps.append(manual["site"])  # the next backward() adds to the gradients just applied
        self.step_stats.append(StepStats(manual["params"], [0] * len(manual["params"]), [], manual["grads"],
                                         manual["before"], after, manual["params"]))
        # the update ran after that backward() (where else it ran is not known): the step goes there
        for later in self.events[manual["at"]:]:
            later.step += 1
        self.events.insert(manual["at"], Event("step", self.steps, self.micro, manual["site"],
                                               {"plain": True, "optimizer": None, "manual": True}))
        self.steps += 1
        self._stop_when_done()

    def finish(self) -> None:
        """When the script has ended: an update written by hand after its last backward() is a
        step too."""
        if self._manual is None or self.broken is not None:
            return
        try:
            self._manual_update_since_last_backward()
        except StopTracing:
            pass
        except Exception as error:
            self._stand_aside(error)

    @functools.cached_property
    def loss_values(self) -> List[float]:
        """The value given to each backward(), read on the host once tracing has ended."""
        return [float(loss) for loss in self.losses]

    # -- optimizer steps ------------------------------------------------------------------------------

    def _before_step(self, opt, args, kwargs):
        self.optimizers[id(opt)] = opt
        self._manual = None
        params, groups = self._parameters(opt)
        lr = [group.get("lr") for group in opt.param_groups]
        closure = kwargs.get("closure", args[1] if len(args) > 1 else None)  # args[0] is the optimizer
        if callable(closure):
            # the gradients the step uses exist only once the closure has run, inside the step
            self._closure = {"optimizer": id(opt), "backwards": 0}
            self._pending[id(opt)] = {"params": params, "moving": params, "before": self.norms(params), "lr": lr,
                                      "groups": groups, "closure": True}
            return
        grads = [p.grad for p in params]
        self._check_cleared(opt, grads)
        # an optimizer skips parameters without a gradient: only the others can move
        moving = [p for p, g in zip(params, grads) if g is not None] if any(g is None for g in grads) else params
        self.params_with_grad.update(map(id, moving))
        self.fp16_params = self.fp16_params or (bool(params) and params[0].dtype == torch.float16)
        previous = self._last_norms.get(id(opt))
        if previous is not None and (previous[0] is moving or (
                len(previous[0]) == len(moving) and all(a is b for a, b in zip(previous[0], moving)))):
            before = previous[1]  # nothing but this optimizer's step moves its weights between two steps
        else:
            before = self.norms(moving)
        self._pending[id(opt)] = {"params": params, "moving": moving, "grads": self.norms(grads), "before": before,
                                  "lr": lr, "groups": groups}

    def _check_cleared(self, opt, grads: List[Optional[torch.Tensor]]) -> None:
        """The same gradient tensor as after the optimizer's last step, and no zero_grad since:
        the step applies gradients never cleared."""
        first = next((g for g in grads if g is not None), None)
        last = self._last_grads.get(id(opt))
        if first is not None and not self._cleared.get(id(opt), True) and last is not None and last() is first:
            self.uncleared_steps.append(user_site())

    def _parameters(self, opt) -> Tuple[List[torch.Tensor], List[int]]:
        """The optimizer's parameters flattened over its groups, and the group of each; kept from
        step to step while the groups are the same lists of the same lengths."""
        key = tuple((id(group["params"]), len(group["params"])) for group in opt.param_groups)
        cached = self._flattened.get(id(opt))
        if cached is None or cached[0] != key:
            params = [p for group in opt.param_groups for p in group["params"]]
            groups = [g for g, group in enumerate(opt.param_groups) for _ in group["params"]]
            cached = self._flattened[id(opt)] = (key, params, groups)
        return cached[1], cached[2]

    def _after_step(self, opt, args, kwargs):
        pending = self._pending.pop(id(opt))
        if pending.get("closure"):
            self._closure = None
            self.closure_steps += 1
            grads = [p.grad for p in pending["params"]]
            self._check_cleared(opt, grads)
            pending["grads"] = self.norms(grads)
            self.params_with_grad.update(id(p) for p, g in zip(pending["params"], grads) if g is not None)
            self.fp16_params = self.fp16_params or (bool(grads) and pending["params"][0].dtype == torch.float16)
        after = self.norms(pending["moving"])
        self._last_norms[id(opt)] = (pending["moving"], after)
        self.step_stats.append(StepStats(pending["params"], pending["groups"], pending["lr"], pending["grads"],
                                         pending["before"], after, pending["moving"]))
        first = next((p.grad for p in pending["params"] if p.grad is not None), None)
        self._last_grads[id(opt)] = weakref.ref(first) if first is not None else None
        self._cleared[id(opt)] = False
        self.record("step", plain=not self._in_scaler_step, optimizer=id(opt))
        if self._forward_hook is not None and any(root.trainable for root in self.roots.values()):
            self._watch_roots_only()
        self.steps += 1
        self._stop_when_done()

    def _watch_roots_only(self) -> None:
        """By the first step the trained models have run their forward: from then on hook them alone,
        so that every layer inside them takes PyTorch's hook-free fast path again. (A step before
        any model ran, e.g. one that only silences the scheduler's ordering warning, waits.)"""
        self._forward_hook.remove()
        self._forward_hook = None
        for root in self.roots.values():
            self._undo.append(root.module.register_forward_pre_hook(self._guarded_before_forward).remove)

    def _stop_when_done(self) -> None:
        # a scaler that skips forever must not trace forever: 8 skips per step asked is far past any warm-up
        if self.steps >= self.max_steps or self.scaler_steps.count(False) >= 8 * self.max_steps:
            raise StopTracing("stopped-after-steps")

    def _before_forward(self, module, inputs):
        if id(module) in self._within_roots and id(module) not in self.roots:
            return
        if not torch.is_grad_enabled():
            return
        root = self.roots.get(id(module))
        if root is None:
            root = self._add_root(module)
        self.fp16_autocast = self.fp16_autocast or _autocast_fp16(inputs)
        first = next((x for x in inputs if isinstance(x, torch.Tensor)), None)
        if first is not None and first.numel():
            first = first.detach()
            self.inputs.append((first.real if first.is_complex() else first).sum(dtype=torch.float32))

    def _add_root(self, module: nn.Module) -> RootModule:
        kinds = []
        for inner in module.modules():
            if isinstance(inner, _MODE_SENSITIVE) and type(inner).__name__ not in kinds:
                kinds.append(type(inner).__name__)
            if id(inner) in self._within_roots:  # shared with a model seen before: hooked already
                continue
            self._within_roots.add(id(inner))
            if isinstance(inner, nn.modules.loss._Loss):
                self._undo.append(inner.register_forward_hook(self._guarded(self._after_loss)).remove)
        root = RootModule(module, any(p.requires_grad for p in module.parameters()), ", ".join(kinds))
        self.roots[id(module)] = root
        if root.trainable and root.mode_sensitive:
            self._undo.append(module.register_forward_hook(self._guarded(self._after_root_forward)).remove)
        return root

    def _after_root_forward(self, module, inputs, output):
        """A trained model ran in eval mode with gradients on: validation without no_grad, unless
        its output reaches backward(), which a hook on the output tells (training in eval mode)."""
        if _training(module) or not torch.is_grad_enabled():
            return
        tensor = _first_tensor(output)
        if tensor is not None and tensor.requires_grad:
            kinds, micro = self.roots[id(module)].mode_sensitive, self.micro
            tensor.register_hook(self._guarded(
                lambda grad: self.eval_outputs_in_backward.append((id(module), kinds, micro))))

    def _after_loss(self, module, inputs, output):
        if isinstance(output, torch.Tensor):
            self._last_criterion = output.detach().sum(dtype=torch.float32)

    def _zero_grad(self, original, owner, *args, **kwargs):
        if self._closure is None:  # inside a closure step it only clears for the closure's next evaluation
            self.record("zero_grad", owner=id(owner), optimizer=isinstance(owner, torch.optim.Optimizer))
        if self._manual is not None:
            self._manual["cleared"] = True
        for key in self._cleared:
            if key == id(owner) or not isinstance(owner, torch.optim.Optimizer):
                self._cleared[key] = True  # a module's zero_grad may clear any optimizer's parameters
        return original(owner, *args, **kwargs)

    def _train(self, original, module, mode=True):
        if self._in_train:  # train() recursing into the children
            return original(module, mode)
        self.record("mode", mode="train" if mode else "eval", module=type(module).__name__, id=id(module))
        self._in_train = True
        try:
            return original(module, mode)
        finally:
            self._in_train = False

    def _scheduler_step(self, original, scheduler, *args, **kwargs):
        if getattr(scheduler, "_trainlint_inside", False) or getattr(scheduler, "_step_count", 1) == 0:
            return original(scheduler, *args, **kwargs)  # a subclass calling super().step(), or the constructor's step
        scheduler._trainlint_inside = True
        try:
            self.record("scheduler", scheduler=type(scheduler).__name__)
            return original(scheduler, *args, **kwargs)
        finally:
            scheduler._trainlint_inside = False

    def _scale(self, original, scaler, outputs, *args, **kwargs):
        result = original(scaler, outputs, *args, **kwargs)
        if isinstance(result, torch.Tensor) and scaler.is_enabled():
            result._trainlint_scaled = True  # marks the tensor itself: an id could be reused
            self.scaled = True
        return result

    def _unscale(self, original, scaler, optimizer, *args, **kwargs):
        self.record("unscale")
        return original(scaler, optimizer, *args, **kwargs)

    def _scaler_step(self, original, scaler, optimizer, *args, **kwargs):
        steps = self.steps
        self._in_scaler_step = True
        try:
            self.record("scaler_step")
            result = original(scaler, optimizer, *args, **kwargs)
        finally:
            self._in_scaler_step = False
        if scaler.is_enabled():
            self.scaler_steps.append(self.steps > steps)
            if self.steps == steps:  # inf/NaN gradients: the scaler skipped optimizer.step
                self.record("skipped_step", optimizer=id(optimizer))
                self._stop_when_done()
        return result

    def _scaler_update(self, original, scaler, *args, **kwargs):
        self.record("scaler_update")
        return original(scaler, *args, **kwargs)

    def _normalize(self, original, tensor, *args, **kwargs):
        dim = kwargs.get("dim", args[1] if len(args) > 1 else 1)
        if isinstance(tensor, torch.Tensor) and tensor.requires_grad:
            self.zero_norm_inputs.append((tensor.detach().abs().sum(dim=dim) == 0).any())
        return original(tensor, *args, **kwargs)


def _training(module: nn.Module) -> bool:
    """Whether the model is in training mode; a wrapper (DDP, FSDP, DataParallel) answers for the
    model it wraps."""
    inner = getattr(module, "module", None)
    return module.training and (not isinstance(inner, nn.Module) or inner.training)


def _first_tensor(output) -> Optional[torch.Tensor]:
    """The first tensor of a module's output: a tensor, a tuple or list, a dict (ModelOutput)."""
    if isinstance(output, torch.Tensor):
        return output
    items = output.values() if isinstance(output, dict) else output if isinstance(output, (list, tuple)) else ()
    for item in items:
        found = _first_tensor(item)
        if found is not None:
            return found
    return None


def _autocast_fp16(inputs) -> bool:
    first = next((x for x in inputs if isinstance(x, torch.Tensor)), None)
    device = first.device.type if first is not None else "cpu"
    try:
        return torch.is_autocast_enabled(device) and torch.get_autocast_dtype(device) == torch.float16
    except (TypeError, RuntimeError, AttributeError):
        return False
