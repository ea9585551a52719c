import ast

from trainlint.rule import Fix, Report, Rule
from trainlint.semantics.modules import kept_out_of_parameters_on_purpose, module_classes, torch_nn_prefix
from trainlint.semantics.syntax import dotted, last_part
from trainlint.semantics.prerequisites import MODULE_CLASS, TENSOR_ATTRIBUTE


class TensorAttributeNotParameter(Rule):
    """
    What it does: finds an `nn.Module` that stores a trainable tensor as a plain attribute:
    `self.scale = torch.ones(1, requires_grad=True)`, `torch.zeros(d).requires_grad_()` or
    `Variable(..., requires_grad=True)`, instead of `nn.Parameter(...)`.

    Why it is bad: a plain tensor attribute is not a parameter. `model.parameters()` skips it, so
    the optimizer never updates it; `state_dict()` does not save it; `.to(device)` does not move
    it. The code that was supposed to learn a temperature, a prompt or a gate keeps its initial
    value forever, and nothing errors.

    Not flagged: tensors later wrapped (`self.w = nn.Parameter(self.w)`) or registered with
    `register_parameter`, buffers (`register_buffer`), and tensors without `requires_grad`
    (`Variable(t)` alone does not require grad: decoder states set per forward, class weights),
    tensors made in `forward` (per-call state cached on the module, not a weight), tensors whose
    gradient the class uses itself (it reads `self.delta.grad`: an adversarial perturbation; it
    calls `autograd.grad(loss, [self.scale])`: IRM's penalty), and tensors the class hands out
    through a method named for parameters (DARTS' `arch_parameters()`, trained by an optimizer of
    their own).

    Fix: `self.scale = nn.Parameter(torch.ones(1))`.
    """

    code = "TL602"
    name = "tensor-attribute-not-parameter"
    severity = "error"
    summary = "trainable tensor stored as a plain attribute instead of nn.Parameter"
    requires = (MODULE_CLASS, TENSOR_ATTRIBUTE)

    INVALID = [
        """
        import torch
        from torch import nn

        class Contrastive(nn.Module):
            def __init__(self):
                super().__init__()
                self.logit_scale = torch.ones([], requires_grad=True)  # <-
                self.prompt = torch.randn(4, 16).requires_grad_()  # <-
        """,
        """
        import torch
        from torch.autograd import Variable

        class Gate(torch.nn.Module):
            def __init__(self, n):
                super().__init__()
                self.gate = Variable(torch.zeros(n), requires_grad=True)  # <-
        """,
    ]
    VALID = [
        """
        import torch
        from torch import nn

        class Contrastive(nn.Module):
            def __init__(self):
                super().__init__()
                self.logit_scale = nn.Parameter(torch.ones([]))
                self.register_buffer("queue", torch.randn(4, 16))
        """,
        """
        import torch
        from torch import nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.w = torch.randn(3, requires_grad=True)
                self.w = nn.Parameter(self.w)
        """,
        """
        import torch

        class Attack:
            def __init__(self, shape):
                self.delta = torch.zeros(shape, requires_grad=True)
        """,
        """
        import torch
        from torch import nn
        class FakeEncoder(nn.Module):
            def __init__(self, width):
                super().__init__()
                self.width = width
                self._state = None

            def forward(self, tokens):
                if self._state is None or self._state.shape[0] != tokens.shape[0]:
                    self._state = torch.zeros(tokens.shape[0], self.width, requires_grad=True)
                return self._state
        """,
    ]

    def check(self, facts):
        for cls, methods in module_classes(facts).items():
            per_call = [m.node for m in methods if m.name in ("forward", "__call__")]
            for name, values in facts.class_attributes.get(cls, {}).items():
                if any(_is_parameter(facts, v) for v in values):
                    continue
                # a tensor made in forward is per-call state (a cached input or output), not a weight
                weights = [v for v in values
                           if _trainable_tensor(facts, v) and not any(_within(v, m) for m in per_call)]
                if weights and not kept_out_of_parameters_on_purpose(facts, cls, methods, name):
                    for value in weights:
                        prefix = torch_nn_prefix(facts)
                        fix = Fix("wrap in nn.Parameter", value, wrap=(f"{prefix}.Parameter(", ")"),
                                  safe=False) if prefix else None
                        yield Report(value, f"'{name}' requires grad but is a plain tensor attribute: parameters() "
                                            f"and the optimizer never see it, state_dict() never saves it; use "
                                            f"nn.Parameter", fix=fix)


def _within(node, function) -> bool:
    return function.lineno < getattr(node, "lineno", 0) <= getattr(function, "end_lineno", function.lineno)


def _is_parameter(facts, value):
    return isinstance(value, ast.Call) and last_part(facts.qualify(dotted(value.func) or "")) == "Parameter"


def _trainable_tensor(facts, value):
    if not isinstance(value, ast.Call):
        return False
    callee = facts.qualify(dotted(value.func) or "")
    if isinstance(value.func, ast.Attribute) and value.func.attr == "requires_grad_":
        flag = value.args[0] if value.args else None
        return not (isinstance(flag, ast.Constant) and flag.value is False)
    requires = next((k.value for k in value.keywords if k.arg == "requires_grad"), None)
    # `Variable(t)` alone does not require grad (per-forward states, constant class weights)
    trainable = callee.startswith("torch.") or last_part(callee) == "Variable"
    return trainable and isinstance(requires, ast.Constant) and requires.value is True
