"""Data-parallel wrappers: which module a ``DistributedDataParallel`` wraps, and what the code
does to that module after wrapping it."""
from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Iterator, List, Optional, Tuple

from .dataflow import own_nodes
from .model import FunctionFacts, Kind, Loop
from .roles import Role, role_of_constructor
from .values import inside, starts_new_run
from .syntax import argument, dotted, last_part, name_words, names_in, root_name, text

# Module methods that convert or move every parameter: DDP's reducer keeps the tensors it saw when
# the wrapper was built, so the gradient all-reduce no longer reaches the converted ones.
CONVERSIONS = frozenset({"to", "cuda", "cpu", "half", "float", "double", "bfloat16", "type", "to_empty"})
_TARGET_KEYWORDS = {"device", "dtype", "tensor"}


@dataclass
class Wrapping:
    wrapper: str  # the name bound to DistributedDataParallel(...)
    module: Optional[str]  # the name of the module it wraps
    call: ast.Call


def is_ddp_constructor(fn: FunctionFacts, call: ast.AST) -> bool:
    if not isinstance(call, ast.Call):
        return False
    return last_part(fn.file.qualify(dotted(call.func) or "")) == "DistributedDataParallel"


def ddp_wrappings(fn: FunctionFacts) -> List[Wrapping]:
    """``ddp = DistributedDataParallel(model, ...)`` (any import alias, ``model = DDP(model)`` too)."""
    found = []
    for name, values in fn.assignments.items():
        for value in values:
            if is_ddp_constructor(fn, value):
                module = argument(value, 0, "module")
                found.append(Wrapping(name, dotted(module) if module is not None else None, value))
    return found


def changes_after_wrapping(fn: FunctionFacts, wrapping: Wrapping) -> Iterator[Tuple[ast.AST, str]]:
    """(node, what it does) for each conversion of the wrapped module (``ddp.cuda(rank)``,
    ``model.half()``, ``ddp.module.to(torch.float64)``) or replacement of one of its parameters
    or layers (``ddp.module.head = nn.Linear(...)``) that runs after the wrapper was built. A
    conversion the module already had before wrapping (``model.cuda(rank)`` both times) changes
    nothing and is left out, as are code paths exclusive with the wrapping."""
    wrapped = {wrapping.wrapper, f"{wrapping.wrapper}.module"} | ({wrapping.module} if wrapping.module else set())
    built_at = getattr(wrapping.call, "end_lineno", wrapping.call.lineno)
    before = _conversions_before(fn, wrapping)
    for node in own_nodes(fn):
        if getattr(node, "lineno", 0) <= built_at:
            continue
        change = _change_of(fn, wrapping, wrapped, node, before)
        if change is not None and not fn.exclusive(wrapping.call, node) \
                and not _rebound_between(fn, wrapping, node.lineno) and _trained_after(fn, wrapping, node):
            yield node, change


def _change_of(fn: FunctionFacts, wrapping: Wrapping, wrapped: set, node: ast.AST, before: set) -> Optional[str]:
    """What ``node`` does to the wrapped module, if it converts it or replaces its parameters."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in CONVERSIONS \
            and dotted(node.func.value) in wrapped and _converts(node) and _signature(fn, node) not in before \
            and not (_names_its_device(wrapping) and _onto_a_gpu(node)):
        return f"{text(node)} converts the parameters"
    if isinstance(node, ast.Assign) and _builds_layer_or_parameter(fn, node.value):
        for target in node.targets:
            name = dotted(target)
            if name and any(name.startswith(f"{owner}.") for owner in wrapped - {wrapping.wrapper}):
                return f"{name} = {text(node.value)} replaces parameters"
    return None


def _names_its_device(wrapping: Wrapping) -> bool:
    """``DDP(model, device_ids=[rank])``: DDP accepts this only for a module already on one GPU
    (it raises for a CPU module), so a later move of the module onto its GPU changes nothing."""
    devices = argument(wrapping.call, 1, "device_ids")
    return devices is not None and not (isinstance(devices, ast.Constant) and devices.value is None)


def _onto_a_gpu(call: ast.Call) -> bool:
    """``.cuda(...)``, or ``.to(...)`` given only a device (a name that says so)."""
    if call.func.attr == "cuda":
        return True
    given = list(call.args) + [k.value for k in call.keywords if k.arg == "device"]
    return call.func.attr == "to" and bool(given) and not any(k.arg == "dtype" for k in call.keywords) and all(
        {"device", "rank", "cuda", "gpu"} & set(name_words(dotted(value) or "")) for value in given)


def _trained_after(fn: FunctionFacts, wrapping: Wrapping, node: ast.AST) -> bool:
    """Whether training can run after ``node``: a backward() below it or in a loop around it, or
    the wrapper called or handed on below it. (``torch.save(ddp.module.cpu().state_dict())``
    once training is over breaks nothing.)"""
    line = node.lineno
    for backward in fn.events_of(Kind.BACKWARD):
        if backward.line > line or any(
                loop.node.lineno <= line <= getattr(loop.node, "end_lineno", 0) for loop in backward.loops):
            return True
    for later in own_nodes(fn):
        if isinstance(later, ast.Call) and later.lineno > line and (dotted(later.func) == wrapping.wrapper or any(
                dotted(arg) == wrapping.wrapper for arg in list(later.args) + [k.value for k in later.keywords])):
            return True
    return False


def _converts(call: ast.Call) -> bool:
    """``.to()`` with a device or dtype (not only ``memory_format=``/``non_blocking=``); every
    other conversion method always converts."""
    return call.func.attr != "to" or bool(call.args) or any(k.arg in _TARGET_KEYWORDS for k in call.keywords)


def _signature(fn: FunctionFacts, call: ast.Call) -> Tuple[str, str]:
    return call.func.attr, ", ".join(_target(fn, a) for a in call.args) + repr(sorted(text(k) for k in call.keywords))


def _target(fn: FunctionFacts, argument: ast.expr) -> str:
    """A conversion's target as text, a device by what it names: after ``device =
    torch.device(args.device)``, ``.to(device)`` and ``.to(args.device)`` move to one device."""
    values = fn.assignments.get(argument.id, ()) if isinstance(argument, ast.Name) else ()
    if len(values) == 1 and isinstance(values[0], ast.Call):
        argument = values[0]
    if isinstance(argument, ast.Call) and last_part(dotted(argument.func) or "") == "device" \
            and len(argument.args) == 1 and not argument.keywords:
        argument = argument.args[0]
    return text(argument)


def _conversions_before(fn: FunctionFacts, wrapping: Wrapping) -> set:
    """Conversions applied to the module before it was wrapped: in calls on it, and in the chain
    that built it (``model = Net().cuda(rank)``)."""
    module = wrapping.module
    if module is None:
        return set()
    found = set()
    for node in own_nodes(fn):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in CONVERSIONS \
                and dotted(node.func.value) == module and node.lineno < wrapping.call.lineno:
            found.add(_signature(fn, node))
    for value in fn.assignments.get(module, ()):
        while isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and \
                getattr(value, "lineno", 0) < wrapping.call.lineno:
            if value.func.attr in CONVERSIONS:
                found.add(_signature(fn, value))
            value = value.func.value
    return found


def _rebound_between(fn: FunctionFacts, wrapping: Wrapping, line: int) -> bool:
    """A new wrapper or a new module bound between the wrapping and ``line``."""
    for name in {wrapping.wrapper, wrapping.module} - {None}:
        for value in fn.assignments.get(name, ()):
            if value is not wrapping.call and wrapping.call.lineno < getattr(value, "lineno", 0) < line \
                    and not _returns_receiver(value, name):
                return True
    return False


def _returns_receiver(value: ast.AST, name: str) -> bool:
    """``model = model.cuda()``: the same object, converted."""
    while isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and value.func.attr in CONVERSIONS:
        value = value.func.value
    return dotted(value) == name


def _builds_layer_or_parameter(fn: FunctionFacts, value: ast.AST) -> bool:
    if not isinstance(value, ast.Call):
        return False
    callee = fn.file.qualify(dotted(value.func) or "")
    return callee.startswith("torch.nn.") and last_part(callee)[:1].isupper()


# Transforms that give a module new parameter tensors (DTensors, flat parameters): an optimizer
# built before them holds tensors the model no longer uses.
SHARDING = frozenset({"parallelize_module", "fully_shard", "FullyShardedDataParallel", "FSDP", "distribute_module"})
_WRAPPERS = frozenset({"DistributedDataParallel", "FullyShardedDataParallel", "FSDP"})


def sharding_calls(fn: FunctionFacts) -> Iterator[Tuple[ast.Call, str]]:
    """(call, the module name it shards) for ``parallelize_module(model, ...)``,
    ``fully_shard(model.layers[i])``, ``model = FSDP(model)``."""
    for node in own_nodes(fn):
        if isinstance(node, ast.Call) and last_part(fn.file.qualify(dotted(node.func) or "")) in SHARDING:
            module = argument(node, 0, "module")
            name = root_name(module) if module is not None else None
            if name:
                yield node, name


def optimizers_built_from(fn: FunctionFacts) -> Iterator[Tuple[ast.Call, set]]:
    """(constructor call, names of the modules whose parameters it takes) for each optimizer
    built here from ``model.parameters()``-style arguments."""
    for values in fn.assignments.values():
        for value in values:
            if isinstance(value, ast.Call) and role_of_constructor(fn.file.qualify(dotted(value.func) or "")) \
                    == Role.OPTIMIZER:
                modules = {name.rsplit(".", 1)[0] for name in names_in(value)
                           if name.endswith((".parameters", ".named_parameters"))}
                if modules:
                    yield value, modules


def wrappers_in_training_loops(fn: FunctionFacts) -> Iterator[Tuple[ast.Call, Loop]]:
    """``DistributedDataParallel(...)``/``FSDP(...)`` built inside a loop that trains (a backward()
    in it), unless every iteration starts a new run (a new model per fold or sweep)."""
    for values in fn.assignments.values():
        for value in values:
            if not isinstance(value, ast.Call) or last_part(fn.file.qualify(dotted(value.func) or "")) not in _WRAPPERS:
                continue
            for loop in fn.loops:
                if inside(value, loop) and fn.events_in(loop, Kind.BACKWARD) and not starts_new_run(fn, loop):
                    yield value, loop
                    break


def bare_module_called_beside_wrapper(fn: FunctionFacts, wrapping: Wrapping) -> Optional[Loop]:
    """A training loop that calls both the DDP wrapper and the module it wraps (``ddp(x)`` on some
    steps, ``model(x)`` on others): the module's own calls skip the gradient all-reduce."""
    if wrapping.module is None or wrapping.module == wrapping.wrapper:
        return None
    for loop in fn.loops:
        if wrapping.wrapper in loop.invoked and wrapping.module in loop.invoked and fn.events_in(loop, Kind.BACKWARD):
            return loop
    return None


def wraps_for_data_parallel(fn: FunctionFacts) -> Optional[ast.Call]:
    """The first ``DistributedDataParallel(...)``/``FSDP(...)``/``fully_shard(...)`` call of ``fn``'s
    own body: the function sets up data-parallel training."""
    for node in own_nodes(fn):
        if isinstance(node, ast.Call) and last_part(fn.file.qualify(dotted(node.func) or "")) in _WRAPPERS | {"fully_shard"}:
            return node
    return None


def data_parallel_setup(fn: FunctionFacts, *others: FunctionFacts) -> Optional[ast.Call]:
    """The wrapper call that makes the training of ``fn`` data-parallel: built in ``fn``, in one of
    ``others`` (where its loader was built), or in a function of this file that calls ``fn``."""
    for candidate in (fn,) + others:
        wrapper = wraps_for_data_parallel(candidate)
        if wrapper is not None:
            return wrapper
    for caller, _ in fn.file.call_sites(fn):
        wrapper = wraps_for_data_parallel(caller)
        if wrapper is not None:
            return wrapper
    return None
