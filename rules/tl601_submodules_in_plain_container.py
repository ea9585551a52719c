import ast

from trainlint.rule import Fix, Report, Rule
from trainlint.semantics import Kind
from trainlint.semantics.modules import (
    frozen_by_the_class, holds_state, module_classes, module_constructor, registered_through_a_container,
    torch_nn_prefix,
)
from trainlint.semantics.prerequisites import ATTRIBUTE_CONTAINER, MODULE_CLASS


class SubmodulesInPlainContainer(Rule):
    """
    What it does: finds an `nn.Module` that keeps layers in a plain Python `list`, `dict` or
    `tuple` attribute (`self.blocks = [nn.Linear(...) for _ in range(n)]`, or `self.heads = []`
    filled with `append(nn.Linear(...))`).

    Why it is bad: PyTorch registers submodules only when they are assigned as modules or kept in
    `nn.ModuleList`/`nn.ModuleDict`. Layers in a plain container are invisible to
    `parameters()` (so the optimizer never updates them), to `.to(device)`/`.cuda()`, to
    `state_dict()` (checkpoints silently miss them) and to `train()`/`eval()`. They stay at their
    random initialisation while the rest of the model trains around them.

    Not flagged: containers later wrapped (`self.blocks = nn.ModuleList(self.blocks)`) or handed
    whole to a container the class keeps (`self.net = nn.ModuleList(list(self.convs.values()))`), modules
    also registered with `add_module`/`register_module`, and containers of things that are not
    freshly built layers (a list holding an existing model to hide it from `parameters()`), and
    layers with nothing to hide: no parameters, buffers or train/eval behaviour (pooling,
    activations, padding, loss criteria such as `nn.CrossEntropyLoss`, or a block of the file made
    only of those), nor data transforms of torchaudio/torchvision (no parameters; a buffer `.to()`
    missed fails loudly, not silently), nor layers the class freezes itself
    (`self.filters[0].requires_grad_(False)`: a fixed filter kept out of training on purpose).

    Fix: `nn.ModuleList([...])` for lists and tuples, `nn.ModuleDict({...})` for dicts.
    """

    code = "TL601"
    name = "submodules-in-plain-container"
    severity = "error"
    summary = "layers kept in a plain list/dict attribute: invisible to parameters() and state_dict()"
    requires = (MODULE_CLASS, ATTRIBUTE_CONTAINER)

    INVALID = [
        """
        from torch import nn

        class MLP(nn.Module):
            def __init__(self, sizes):
                super().__init__()
                self.layers = [nn.Linear(a, b) for a, b in zip(sizes, sizes[1:])]  # <-

            def forward(self, x):
                for layer in self.layers:
                    x = layer(x)
                return x
        """,
        """
        import torch.nn as nn

        class MultiHead(nn.Module):
            def __init__(self, dim, tasks):
                super().__init__()
                self.heads = {}  # <-
                for task in tasks:
                    self.heads[task] = nn.Linear(dim, 1)
        """,
        """
        import torch

        class Tower(torch.nn.Module):
            def __init__(self, n):
                super().__init__()
                self.blocks = []  # <-
                for _ in range(n):
                    self.blocks.append(Block())

        class Block(torch.nn.Module):
            pass
        """,
    ]
    VALID = [
        """
        from torch import nn

        class MLP(nn.Module):
            def __init__(self, sizes):
                super().__init__()
                self.layers = nn.ModuleList([nn.Linear(a, b) for a, b in zip(sizes, sizes[1:])])
        """,
        """
        from torch import nn

        class MLP(nn.Module):
            def __init__(self, sizes):
                super().__init__()
                layers = [nn.Linear(a, b) for a, b in zip(sizes, sizes[1:])]
                self.layers = nn.Sequential(*layers)
        """,
        """
        from torch import nn

        class Distiller(nn.Module):
            def __init__(self, student, teacher):
                super().__init__()
                self.student = student
                self._teacher = [teacher]  # kept out of parameters() on purpose
        """,
        """
        from torch import nn

        class Net(nn.Module):
            def __init__(self, n):
                super().__init__()
                self.blocks = [nn.Linear(8, 8) for _ in range(n)]
                for i, block in enumerate(self.blocks):
                    self.add_module(f"block{i}", block)
        """,
        """
        from torch import nn

        class Config:
            def __init__(self):
                self.layers = [nn.Linear(2, 2)]
        """,
        """
        from torch import nn

        class MultiScalePool(nn.Module):
            def __init__(self, kernels):
                super().__init__()
                self.pools = [nn.AvgPool1d(k, stride=1) for k in kernels]
                self.proj = nn.Linear(64, 64)
        """,
    ]

    def check(self, facts):
        for cls, methods in module_classes(facts).items():
            attributes = facts.class_attributes.get(cls, {})
            if any(e.kind == Kind.CALL and e.target.endswith(("add_module", "register_module"))
                   for fn in methods for e in fn.own_events):
                continue
            appended = {}
            for fn in methods:
                for event in fn.own_events:
                    if event.kind == Kind.ACCUMULATE and isinstance(event.node, ast.Call):
                        appended.setdefault(event.target, []).append(event.detail["value"])
                for name, values in fn.assignments.items():  # self.heads[task] = nn.Linear(...)
                    if name in attributes:
                        appended.setdefault(name, []).extend(v for v in values if isinstance(v, ast.Call))
            registered = None  # asked only of a class with a plain container of layers: it walks every method
            for name, values in attributes.items():
                if any(module_constructor(facts, v) == "wrapper" for v in values):
                    continue
                for value in values:
                    kind = _plain_container(facts, value, appended.get(name, []))
                    if kind is not None and registered is None:
                        registered = registered_through_a_container(facts, cls) | frozen_by_the_class(methods)
                    if kind is not None and name not in registered:
                        wrapper = "ModuleDict" if kind == "dict" else "ModuleList"
                        prefix = torch_nn_prefix(facts)
                        fix = _wrapping_fix(value, f"{prefix}.{wrapper}") if prefix else None
                        yield Report(value, f"'{name}' holds layers in a plain {kind}: their parameters are invisible "
                                            f"to parameters(), the optimizer, .to() and state_dict(); use "
                                            f"nn.{wrapper}", fix=fix)
                        break


def _plain_container(facts, value, later_elements):
    """'list' / 'dict' / 'tuple' when ``value`` is a plain container of freshly built modules."""
    if isinstance(value, (ast.List, ast.Tuple)):
        elements = value.elts
    elif isinstance(value, ast.Dict):
        elements = value.values
    elif isinstance(value, (ast.ListComp, ast.DictComp)):
        elements = [value.elt if isinstance(value, ast.ListComp) else value.value]
    else:
        return None
    elements = list(elements) + ([] if elements else later_elements)
    # an nn.Sequential (or ModuleList) inside a plain list is as invisible as a single layer
    # and layers without parameters, buffers or a train/eval behaviour lose nothing there
    if elements and all(module_constructor(facts, e) in ("layer", "wrapper") for e in elements) \
            and any(holds_state(facts, e) for e in elements):
        return "dict" if isinstance(value, (ast.Dict, ast.DictComp)) else (
            "tuple" if isinstance(value, ast.Tuple) else "list")
    return None


def _wrapping_fix(value, wrapper):
    """``[...]`` -> ``nn.ModuleList([...])`` (the container's own text, comments included, stays);
    an empty container becomes an empty wrapper, which supports append / item assignment."""
    empty = isinstance(value, (ast.List, ast.Tuple)) and not value.elts or isinstance(value, ast.Dict) and not value.keys
    if empty:
        return Fix(f"replace with {wrapper}()", value, f"{wrapper}()")
    return Fix(f"wrap in {wrapper}", value, wrap=(f"{wrapper}(", ")"))
