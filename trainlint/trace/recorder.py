"""Instrumentation for `trainlint trace`: public PyTorch hooks first (global optimizer step
pre/post hooks, global module forward hooks), wrappers only where no hook exists (backward,
zero_grad, scheduler step, GradScaler, Module.train, F.normalize). Every event gets the call site
of the first user frame. Per-step numbers (gradient norms, parameter-norm changes, losses) stay
on the device as small tensors and are read once, when tracing ends: no host synchronisation in
the hot path."""
from __future__ import annotations

import functools
import os
import sys
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
    kind: str  # backward | step | zero_grad | scheduler | mode | scale | unscale | scaler_step | scaler_update
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


class Recorder:
    def __init__(self, max_steps: int):
        self.max_steps = max_steps
        self.events: List[Event] = []
        self.steps = 0
        self.micro = 0
        self.losses: List[torch.Tensor] = []  # value given to each backward()
        self.criteria: List[Optional[torch.Tensor]] = []  # the last loss-module output before each backward
        self.step_stats: List[Dict[str, Any]] = []
        self.optimizers: Dict[int, torch.optim.Optimizer] = {}
        self.roots: Dict[int, nn.Module] = {}  # modules called from user code with grad enabled
        self.inputs: List[torch.Tensor] = []  # fingerprint of each root forward's first tensor input
        self.zero_norm_inputs: List[torch.Tensor] = []
        self.scaled: set = set()  # ids of tensors returned by GradScaler.scale
        self.scales: List[torch.Tensor] = []
        self.eval_forwards_in_micro: Dict[int, str] = {}  # micro-batch -> module type trained in eval mode
        self.uncleared_steps: List[Tuple[str, int]] = []  # steps applying gradients never cleared since the last
        self.fp16_params = False
        self.fp16_autocast = False
        self._last_criterion: Optional[torch.Tensor] = None
        self._depth = 0
        self._in_backward = False
        self._in_scaler_step = False
        self._cleared: Dict[int, bool] = {}  # optimizer -> zero_grad (of it or of a module) since its last step
        self._grad_ids: Dict[int, int] = {}  # optimizer -> id of its first gradient tensor after its last step
        self._pending: Dict[int, Any] = {}
        self._undo: List[Callable[[], None]] = []

    # -- installing -----------------------------------------------------------------------------

    def install(self) -> None:
        from torch.optim import lr_scheduler, optimizer

        from torch.nn.modules import module

        handles = [
            optimizer.register_optimizer_step_pre_hook(self._before_step),
            optimizer.register_optimizer_step_post_hook(self._after_step),
            module.register_module_forward_pre_hook(self._before_forward),
            module.register_module_forward_hook(self._after_forward),
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
        original = owner.__dict__.get(name) if isinstance(owner, type) else getattr(owner, name)
        if original is None:
            return

        @functools.wraps(original)
        def wrapper(*args, **kwargs):
            return replacement(original, *args, **kwargs)

        setattr(owner, name, wrapper)
        self._undo.append(lambda: setattr(owner, name, original))

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

    def _autograd_backward(self, original, tensors, *args, **kwargs):
        if not self._in_backward:
            root = tensors[0] if isinstance(tensors, (list, tuple)) else tensors
            self._note_backward(root)
        return original(tensors, *args, **kwargs)

    def _note_backward(self, root: torch.Tensor) -> None:
        self.record("backward", connected=root.grad_fn is not None, scaled=id(root) in self.scaled)
        self.losses.append(root.detach().float().sum())
        self.criteria.append(self._last_criterion)
        self._last_criterion = None
        self.micro += 1

    def _before_step(self, opt, args, kwargs):
        self.optimizers[id(opt)] = opt
        params = [p for group in opt.param_groups for p in group["params"]]
        grads = [p.grad for p in params if p.grad is not None]
        # the same gradient tensor as after the last step, and no zero_grad since: never cleared
        if grads and not self._cleared.get(id(opt), True) and self._grad_ids.get(id(opt)) == id(grads[0]):
            self.uncleared_steps.append(user_site())
        self.fp16_params = self.fp16_params or any(p.dtype == torch.float16 for p in params[:1])
        self._pending[id(opt)] = {
            "grad_norm": _norm(grads), "param_norms": _norms(params), "grads_missing": len(params) - len(grads),
            "lr": [group.get("lr") for group in opt.param_groups], "plain": not self._in_scaler_step,
        }

    def _after_step(self, opt, args, kwargs):
        stats = self._pending.pop(id(opt), {})
        params = [p for group in opt.param_groups for p in group["params"]]
        before = stats.pop("param_norms", None)
        after = _norms(params)
        stats["update"] = [(a - b).abs().sum() for a, b in zip(after, before)] if before and after else None
        stats["optimizer"] = id(opt)
        self.step_stats.append(stats)
        first = next((p.grad for p in params if p.grad is not None), None)
        self._grad_ids[id(opt)] = id(first) if first is not None else None
        self._cleared[id(opt)] = False
        self.record("step", plain=stats.get("plain", True), optimizer=id(opt))
        self.steps += 1
        if self.steps >= self.max_steps:
            raise StopTracing("stopped-after-steps")

    def _before_forward(self, module, inputs):
        if self._depth == 0 and torch.is_grad_enabled():
            self.roots[id(module)] = module
            self.fp16_autocast = self.fp16_autocast or _autocast_fp16(inputs)
            first = next((x for x in inputs if isinstance(x, torch.Tensor)), None)
            if first is not None and first.numel():
                self.inputs.append(first.detach().float().sum())
        self._depth += 1
        if isinstance(module, _MODE_SENSITIVE) and not module.training and torch.is_grad_enabled():
            self.eval_forwards_in_micro.setdefault(self.micro, type(module).__name__)

    def _after_forward(self, module, inputs, output):
        self._depth = max(0, self._depth - 1)
        if isinstance(module, nn.modules.loss._Loss) and isinstance(output, torch.Tensor):
            self._last_criterion = output.detach().float().sum()

    def _zero_grad(self, original, owner, *args, **kwargs):
        self.record("zero_grad", owner=id(owner), optimizer=isinstance(owner, torch.optim.Optimizer))
        for key in self._cleared:
            if key == id(owner) or not isinstance(owner, torch.optim.Optimizer):
                self._cleared[key] = True  # a module's zero_grad may clear any optimizer's parameters
        return original(owner, *args, **kwargs)

    def _train(self, original, module, mode=True):
        if self._depth == 0:
            self.record("mode", mode="train" if mode else "eval", module=type(module).__name__)
        return original(module, mode)

    def _scheduler_step(self, original, scheduler, *args, **kwargs):
        if getattr(scheduler, "_trainlint_inside", False):  # a subclass calling super().step()
            return original(scheduler, *args, **kwargs)
        scheduler._trainlint_inside = True
        try:
            self.record("scheduler", scheduler=type(scheduler).__name__)
            return original(scheduler, *args, **kwargs)
        finally:
            scheduler._trainlint_inside = False

    def _scale(self, original, scaler, outputs, *args, **kwargs):
        result = original(scaler, outputs, *args, **kwargs)
        if isinstance(result, torch.Tensor):
            self.scaled.add(id(result))
        return result

    def _unscale(self, original, scaler, optimizer, *args, **kwargs):
        self.record("unscale")
        return original(scaler, optimizer, *args, **kwargs)

    def _scaler_step(self, original, scaler, optimizer, *args, **kwargs):
        self._in_scaler_step = True
        try:
            self.record("scaler_step")
            return original(scaler, optimizer, *args, **kwargs)
        finally:
            self._in_scaler_step = False

    def _scaler_update(self, original, scaler, *args, **kwargs):
        result = original(scaler, *args, **kwargs)
        self.record("scaler_update")
        scale = getattr(scaler, "_scale", None)
        if isinstance(scale, torch.Tensor):
            self.scales.append(scale.detach().clone())
        return result

    def _normalize(self, original, tensor, *args, **kwargs):
        dim = kwargs.get("dim", args[1] if len(args) > 1 else 1)
        if isinstance(tensor, torch.Tensor) and tensor.requires_grad:
            self.zero_norm_inputs.append((tensor.detach().abs().sum(dim=dim) == 0).any())
        return original(tensor, *args, **kwargs)


def _autocast_fp16(inputs) -> bool:
    first = next((x for x in inputs if isinstance(x, torch.Tensor)), None)
    device = first.device.type if first is not None else "cpu"
    try:
        return torch.is_autocast_enabled(device) and torch.get_autocast_dtype(device) == torch.float16
    except (TypeError, RuntimeError, AttributeError):
        return False


def _norms(tensors) -> List[torch.Tensor]:
    """Per-tensor norms, one fused kernel and one result tensor per device, left on the device."""
    groups: Dict[torch.device, list] = {}
    for tensor in tensors:
        groups.setdefault(tensor.device, []).append(tensor.detach())
    return [torch.stack(torch._foreach_norm(group)).float() for group in groups.values()]


def _norm(tensors) -> List[torch.Tensor]:
    """The global norm as one partial sum of squares per device (combined when read)."""
    return [norms.pow(2).sum() for norms in _norms(tensors)]


def read(values) -> Optional[float]:
    """A value recorded on the device, read on the host (at the end of tracing)."""
    if values is None:
        return None
    if isinstance(values, list):
        return float(sum(float(v) for v in values)) if values else None
    return float(values)
