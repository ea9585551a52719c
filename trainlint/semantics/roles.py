"""Roles of names: which dotted names hold optimizers, schedulers, grad scalers, EMA models,
accelerators and engines. Evidence is taken from the constructor a name is bound to (through
imports, aliases, ``accelerator.prepare``-style unpacking and ``self.x`` attributes), and only
when there is none, from the name itself."""
from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass
from typing import Optional

from ..hints import Hints
from .model import FunctionFacts, Unpacked
from .syntax import dotted, last_part, name_words


class Role:
    OPTIMIZER = "optimizer"
    SCHEDULER = "scheduler"
    SCALER = "grad-scaler"
    LOSS_SCALER = "loss-scaler"  # timm-style callable: loss_scaler(loss, optimizer, need_update=...)
    EMA = "ema"
    ACCELERATOR = "accelerator"  # accelerate.Accelerator, lightning Fabric
    ENGINE = "engine"  # DeepSpeed engine: backward/step own the bookkeeping


_KNOWN_OPTIMIZERS = {
    "SGD", "Adam", "AdamW", "Adamax", "Adagrad", "Adadelta", "RMSprop", "LBFGS", "NAdam", "RAdam",
    "SparseAdam", "Rprop", "ASGD", "Lion", "LAMB", "Lamb", "Adafactor", "AdamP", "SGDP", "Adan",
    "Lookahead", "FusedAdam", "FusedLAMB", "FusedSGD", "DeepSpeedCPUAdam", "AdamW8bit", "Adam8bit",
    "PagedAdamW", "Shampoo", "Muon", "Prodigy", "Novograd", "NvNovoGrad", "MADGRAD", "AdaBelief",
}
_OPTIMIZER_FACTORY = re.compile(r"^(create|build|get|make|init|configure|setup)_?optim", re.I)
_SCHEDULER_FACTORY = re.compile(
    r"^(get_\w*schedule\w*|get_scheduler|(create|build|make|init|setup)_\w*(scheduler|schedule)\w*)$", re.I
)
_SCALERS = {"GradScaler", "ShardedGradScaler"}
_LOSS_SCALERS = {"NativeScaler", "ApexScaler", "NativeScalerWithGradNormCount"}
_EMAS = {"ModelEma", "ModelEmaV2", "ModelEmaV3", "ModelEMA", "ExponentialMovingAverage", "AveragedModel",
         "EMA", "EMAModel", "EMAHook"}
# Factories returning a tuple: the role of each element.
_TUPLE_FACTORIES = {"deepspeed.initialize": {0: Role.ENGINE, 1: Role.OPTIMIZER, 3: Role.SCHEDULER}}


@dataclass(frozen=True)
class Constructed:
    """The call that produced a value; ``element`` is set when the value is one element of the
    tuple the call returned (``engine, optimizer, _, _ = deepspeed.initialize(...)``)."""

    callee: str  # import-resolved dotted name
    call: ast.Call
    element: Optional[int] = None

    @property
    def role(self) -> Optional[str]:
        if self.element is not None:
            return _TUPLE_FACTORIES.get(self.callee, {}).get(self.element)
        return role_of_constructor(self.callee)


@functools.lru_cache(maxsize=16384)  # asked of every call the files make, most of them library calls
def role_of_constructor(qualified: str) -> Optional[str]:
    """The role of the value returned by calling ``qualified`` (an import-resolved dotted name)."""
    name = last_part(qualified)
    if qualified.startswith("diffusers") or "Noise" in name:
        return None  # diffusion noise schedulers have .step(model_output, t, sample)
    if name[:1].isupper() and ("lr_scheduler" in qualified or name.endswith(("LR", "LRScheduler"))) \
            or _SCHEDULER_FACTORY.match(name):
        return Role.SCHEDULER
    if name.endswith("Scheduler") and not qualified.startswith("torch.optim.") and "." in qualified:
        return Role.SCHEDULER if "scheduler" in qualified.lower().rsplit(".", 1)[0] else None
    if name in _SCALERS:
        return Role.SCALER
    if name in _LOSS_SCALERS:
        return Role.LOSS_SCALER
    if name in _EMAS:
        return Role.EMA
    if name in ("Accelerator", "Fabric"):
        return Role.ACCELERATOR
    if qualified.startswith("torch.optim.") or name in _KNOWN_OPTIMIZERS or name.endswith("Optimizer"):
        return Role.OPTIMIZER
    if _OPTIMIZER_FACTORY.match(name):
        return Role.OPTIMIZER
    return None


def role_of_name(name: str, hints: Hints) -> Optional[str]:
    """Fallback when a name has no constructor in sight: judge by the name itself."""
    leaf = last_part(name)
    if leaf in hints.optimizer_names:
        return Role.OPTIMIZER
    if leaf in hints.scheduler_names:
        return Role.SCHEDULER
    if leaf in hints.scaler_names:
        return Role.SCALER
    words = name_words(leaf)
    lowered = leaf.lower()
    if "noise" in words:
        return None
    if "sched" in lowered:
        return Role.SCHEDULER
    if "loss" in words and "scaler" in words:
        return Role.LOSS_SCALER
    if "scaler" in words:
        return Role.SCALER
    if "ema" in words:
        return Role.EMA
    if "accelerator" in words or "fabric" in words:
        return Role.ACCELERATOR
    if "engine" in words:
        return Role.ENGINE
    if "optim" in lowered or "optimiser" in lowered or words[:1] == ["opt"] or "opt" in words[1:]:
        return Role.OPTIMIZER
    return None


def constructor_of(fn: FunctionFacts, name: str, _depth: int = 0) -> Optional[Constructed]:
    """(qualified callee, call) that produced the value bound to ``name``, looking through
    aliases and ``accelerator.prepare(...)``-style unpacking."""
    if _depth > 4:
        return None
    for value in reversed(fn.all_bindings(name)):
        found = _constructor_of_value(fn, value, _depth)
        if found is not None:
            return found
    return None


def _constructor_of_value(fn: FunctionFacts, value: ast.AST, depth: int) -> Optional[Constructed]:
    if isinstance(value, Unpacked):
        call = value.value
        if isinstance(call, ast.Call):
            callee = fn.file.qualify(dotted(call.func) or "")
            if last_part(callee) in ("prepare", "setup", "prepare_model") and value.index < len(call.args):
                passed = dotted(call.args[value.index])
                return constructor_of(fn, passed, depth + 1) if passed else None
            if callee in _TUPLE_FACTORIES:
                return Constructed(callee, call, value.index)
        return None
    if isinstance(value, ast.Call):
        callee = fn.file.qualify(dotted(value.func) or "")
        if callee:
            if last_part(callee) in ("prepare", "setup") and len(value.args) == 1:
                passed = dotted(value.args[0])
                return constructor_of(fn, passed, depth + 1) if passed else None
            return Constructed(callee, value)
        return None
    alias = dotted(value)
    if alias is not None:
        return constructor_of(fn, alias, depth + 1)
    return None


def role_of(fn: FunctionFacts, name: Optional[str]) -> Optional[str]:
    """The role of the object held by the dotted ``name`` as seen from ``fn``."""
    if not name:
        return None
    cache = fn.file.role_cache
    key = (id(fn), name)
    if key in cache:
        return cache[key]
    role = None
    constructed = constructor_of(fn, name)
    if constructed is not None:
        role = constructed.role
    if role is None:
        role = _role_from_annotation(fn, name) or role_of_name(name, fn.file.hints)
    cache[key] = role
    return role


def _role_from_annotation(fn: FunctionFacts, name: str) -> Optional[str]:
    node = fn.node
    if "." in name or not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return None
    for arg in node.args.args + node.args.kwonlyargs:
        if arg.arg == name and arg.annotation is not None:
            annotation = dotted(arg.annotation)
            # only a class gives a role: `scheduler: torch.optim.lr_scheduler` names a module
            if annotation is not None and last_part(annotation)[:1].isupper():
                return role_of_constructor(fn.file.qualify(annotation))
    return None


def scheduler_constructor(fn: FunctionFacts, name: str) -> Optional[Constructed]:
    """The LR-scheduler constructor bound to ``name``, when there is one in sight."""
    constructed = constructor_of(fn, name)
    if constructed is None or constructed.element is not None or constructed.role != Role.SCHEDULER:
        return None
    return constructed
