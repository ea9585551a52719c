"""Module classes of a file (nn.Module subclasses) and how layers are built."""
from __future__ import annotations

import ast
from typing import Optional

from .model import FileFacts
from .syntax import dotted, last_part, name_words

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



def kept_out_of_parameters_on_purpose(facts: FileFacts, cls: str, methods: list, attribute: str) -> bool:
    """Whether the module class keeps the tensor ``attribute`` out of ``parameters()`` on purpose:
    it uses the tensor's gradient itself (reads ``self.x.grad``: an adversarial perturbation, an
    optimised input; or differentiates with respect to it, ``autograd.grad(loss, [self.scale])``:
    IRM's dummy multiplier), or it hands the tensor out through a method named for parameters
    (DARTS' ``arch_parameters()``, given to an optimizer of its own so that the weights' optimizer
    leaves it alone)."""
    nodes = [node for method in methods for node in ast.walk(method.node)]
    if any(isinstance(node, ast.Attribute) and node.attr == "grad" and dotted(node.value) == attribute
           or isinstance(node, ast.Call) and _differentiates_with_respect_to(facts, node, attribute) for node in nodes):
        return True
    holders = {attribute} | {name for name, values in facts.class_attributes.get(cls, {}).items()
                             if any(isinstance(v, (ast.List, ast.Tuple)) and attribute in map(dotted, v.elts)
                                    for v in values)}
    return any(isinstance(node, ast.Return) and node.value is not None and holders & _returned_names(node.value)
               for method in methods if {"parameters", "params", "param"} & set(name_words(method.name))
               for node in ast.walk(method.node))


def _differentiates_with_respect_to(facts: FileFacts, call: ast.Call, attribute: str) -> bool:
    if facts.qualify(dotted(call.func) or "") != "torch.autograd.grad":
        return False
    inputs = call.args[1:2] + [k.value for k in call.keywords if k.arg == "inputs"]
    return any(attribute == dotted(node) for value in inputs for node in ast.walk(value))


def _returned_names(value: ast.AST) -> set:
    """``self.x`` for ``return self.x``; every element's name for ``return [self.a, self.b]``."""
    elements = value.elts if isinstance(value, (ast.List, ast.Tuple)) else [value]
    return {dotted(element) for element in elements} - {None}


def frozen_by_the_class(methods: list) -> set:
    """Attributes whose layers the class itself freezes (``self.blocks[0].requires_grad_(False)``:
    a fixed filter kept as a convolution): nothing in them trains, so a plain container hiding
    them from the optimizer loses nothing, and one that ``.to()`` left behind fails loudly."""
    frozen = set()
    for method in methods:
        for node in ast.walk(method.node):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr == "requires_grad_" and node.args \
                    and isinstance(node.args[0], ast.Constant) and node.args[0].value is False:
                held = node.func.value
                while isinstance(held, ast.Subscript):
                    held = held.value
                frozen.add(dotted(held))
    return frozen - {None}


def registered_through_a_container(facts: FileFacts, cls: str) -> set:
    """Attributes of ``cls`` whose whole contents the class also keeps in a module container
    (``self.net = nn.ModuleList(list(self.convs.values()))``, ``self.body = nn.Sequential(*self.blocks)``):
    their layers are registered through it. (One element handed on, ``self.convs[0]``, registers
    only that one: not counted.)"""
    names = set()
    for values in facts.class_attributes.get(cls, {}).values():
        for value in values:
            if module_constructor(facts, value) == "wrapper":
                names.update(name for name in (dotted(_whole_contents(arg)) for arg in value.args) if name)
    return names


def _whole_contents(node: ast.AST) -> ast.AST:
    """The container an argument passes on whole: ``blocks`` for ``*blocks``, ``list(blocks)``,
    ``blocks.values()``."""
    while True:
        if isinstance(node, ast.Starred):
            node = node.value
        elif isinstance(node, ast.Call) and dotted(node.func) in ("list", "tuple") and len(node.args) == 1:
            node = node.args[0]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "values" \
                and not node.args:
            node = node.func.value
        else:
            return node


# torch.nn layers with no parameters, no buffers and no train/eval behaviour: a plain container
# of these hides nothing (Dropout and the norms are not here: eval() must reach them)
_STATELESS_LAYERS = {
    "AvgPool1d", "AvgPool2d", "AvgPool3d", "MaxPool1d", "MaxPool2d", "MaxPool3d", "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveMaxPool3d",
    "LPPool1d", "LPPool2d", "ReLU", "ReLU6", "LeakyReLU", "GELU", "SiLU", "Mish", "ELU", "SELU", "CELU", "GLU",
    "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "Softmin", "Softplus", "Softsign", "Hardtanh", "Hardswish",
    "Hardsigmoid", "Hardshrink", "Softshrink", "Tanhshrink", "Threshold", "LogSigmoid", "Identity", "Flatten",
    "Unflatten", "Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d", "PixelShuffle", "PixelUnshuffle",
    "ChannelShuffle", "ZeroPad1d", "ZeroPad2d", "ZeroPad3d", "ConstantPad1d", "ConstantPad2d", "ConstantPad3d",
    "ReflectionPad1d", "ReflectionPad2d", "ReflectionPad3d", "ReplicationPad1d", "ReplicationPad2d",
    "ReplicationPad3d", "CircularPad1d", "CircularPad2d", "CircularPad3d", "CosineSimilarity", "PairwiseDistance",
}
_REGISTERS_STATE = {"Parameter", "register_buffer", "register_parameter", "register_module", "add_module"}


def _is_loss(layer: str) -> bool:
    """torch.nn's criteria (`CrossEntropyLoss`, `SmoothL1Loss`...): no parameters and no train/eval
    behaviour; a class-weight buffer `.to()` left behind fails loudly. Not the adaptive softmax,
    which has weights."""
    return layer.endswith("Loss") and layer != "AdaptiveLogSoftmaxWithLoss"


# data transforms: no parameters and no train/eval behaviour; a buffer of theirs (a resampling
# kernel, a mel filterbank) that `.to()` left behind fails loudly on the first call, not silently
_DATA_TRANSFORMS = ("torchaudio.transforms.", "torchvision.transforms.")


def holds_state(facts: FileFacts, call: ast.AST, seen: tuple = ()) -> bool:
    """Whether the module ``call`` builds holds parameters, buffers or a train/eval behaviour (what
    a plain container would hide from ``parameters()``, ``.to()`` and ``eval()``): any torch.nn
    layer but pooling, activations, padding, reshaping and loss criteria, and no
    torchaudio/torchvision data transform; a module class of this file when one of its attributes does. Anything not known to be stateless holds state."""
    if not isinstance(call, ast.Call):
        return True
    callee = facts.qualify(dotted(call.func) or "")
    if callee.startswith("torch.nn."):
        return last_part(callee) not in _STATELESS_LAYERS and not _is_loss(last_part(callee))
    if callee.startswith(_DATA_TRANSFORMS):
        return False
    if callee not in module_classes_cached(facts) or callee in seen:
        return True
    return _class_holds_state(facts, callee, seen + (callee,))


def _class_holds_state(facts: FileFacts, cls: str, seen: tuple) -> bool:
    """Stateless only when the class builds stateless layers and nothing else that could hold
    state (an empty placeholder class is not known to be stateless)."""
    stateless_layers = 0
    for base in facts.class_bases.get(cls, ()):
        if base in module_classes_cached(facts) and base not in seen:
            if _class_holds_state(facts, base, seen + (base,)):
                return True
            stateless_layers += 1
    methods = [fn for fn in facts.functions if fn.class_name == cls and fn.parent is None]  # walks cover nested defs
    for fn in methods:
        for node in ast.walk(fn.node):
            if isinstance(node, ast.Call) and last_part(dotted(node.func) or "") in _REGISTERS_STATE:
                return True
    for name, values in facts.class_attributes.get(cls, {}).items():
        for value in values:
            if isinstance(value, ast.Call):
                if holds_state(facts, value, seen):
                    return True
                stateless_layers += 1
            elif not isinstance(value, ast.Constant) and _used_as_object(methods, name):
                return True  # an argument kept and called (or looked into): a layer of unknown kind
    return stateless_layers == 0


# torch.nn layers that compute the same in train and eval mode: weights, but no dropout and no
# running statistics (recurrent layers only when built without `dropout=`)
_SAME_IN_BOTH_MODES = _STATELESS_LAYERS | {
    "Linear", "Bilinear", "LazyLinear", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d",
    "ConvTranspose3d", "Embedding", "EmbeddingBag", "LayerNorm", "GroupNorm", "RMSNorm", "RNN", "LSTM", "GRU",
    "RNNCell", "LSTMCell", "GRUCell", "Sequential", "ModuleList", "ModuleDict", "Parameter"}
# what a module's own code reads or calls when it behaves differently in the two modes
_MODE_DEPENDENT_CODE = {"training", "dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout",
                        "feature_alpha_dropout", "batch_norm", "instance_norm"}


def same_in_both_modes(facts: FileFacts, call: ast.AST, seen: tuple = ()) -> bool:
    """Whether the module ``call`` builds computes the same in train and eval mode, so that a
    mode left wrong changes nothing: torch.nn layers with no dropout and no running statistics,
    containers of them, and module classes of this file made only of those whose code never reads
    ``self.training`` nor calls a dropout or batch-norm function. Anything unknown differs."""
    if not isinstance(call, ast.Call):
        return False
    callee = facts.qualify(dotted(call.func) or "")
    leaf = last_part(callee)
    if callee.startswith("torch.nn."):
        if leaf not in _SAME_IN_BOTH_MODES or any(k.arg == "dropout" for k in call.keywords):
            return False
        parts = [e for a in call.args for e in (a.elts if isinstance(a, (ast.List, ast.Tuple)) else [a])]
        return leaf not in _WRAPPERS or all(same_in_both_modes(facts, part, seen) for part in parts)
    if callee not in module_classes_cached(facts) or callee in seen:
        return False
    return _class_same_in_both_modes(facts, callee, seen + (callee,))


def _class_same_in_both_modes(facts: FileFacts, cls: str, seen: tuple) -> bool:
    classes = module_classes_cached(facts)
    if any(base in classes and not _class_same_in_both_modes(facts, base, seen + (base,)) or
           base not in classes and last_part(base) != "Module" for base in facts.class_bases.get(cls, ())):
        return False
    methods = [fn for fn in facts.functions if fn.class_name == cls and fn.parent is None]
    for fn in methods:
        for node in ast.walk(fn.node):
            if isinstance(node, ast.Attribute) and node.attr in _MODE_DEPENDENT_CODE or \
                    isinstance(node, ast.Call) and last_part(dotted(node.func) or "") in _MODE_DEPENDENT_CODE:
                return False
    return all(same_in_both_modes(facts, value, seen) if isinstance(value, ast.Call) else
               isinstance(value, ast.Constant) or not _used_as_object(methods, name)
               for name, values in facts.class_attributes.get(cls, {}).items() for value in values)


def _used_as_object(methods, attribute: str) -> bool:
    """Whether the class calls ``self.x(...)`` or reads ``self.x.y``: ``x`` may be a module; an
    attribute only used as a value (``self.kernel_size - 1``) is not."""
    for fn in methods:
        for node in ast.walk(fn.node):
            if isinstance(node, ast.Call) and dotted(node.func) == attribute:
                return True
            if isinstance(node, ast.Attribute) and dotted(node.value) == attribute:
                return True
    return False


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
