import ast

from trainlint.rule import Report, Rule
from trainlint.semantics import Kind, Role, functions
from trainlint.semantics.modes import rebinds_to_new_module
from trainlint.semantics.roles import constructor_of
from trainlint.semantics.prerequisites import BACKWARD, OPTIMIZER_STEP


class OptimizerBoundToStaleModel(Rule):
    """
    What it does: finds an optimizer built from `model.parameters()` after which `model` is
    rebound to a new module — re-instantiated, loaded from a checkpoint into a new object,
    deep-copied — and then trained with that optimizer.

    Why it is bad: the optimizer holds references to the old module's parameters. The training
    loop runs the new module, its gradients land on parameters the optimizer does not know, and
    `optimizer.step()` updates the old, unused ones. The loss never moves, and nothing errors.

    Not flagged: wrappers that share the parameters (`DistributedDataParallel`, `DataParallel`,
    `torch.compile`, `accelerator.prepare`), in-place module methods (`.to()`, `.cuda()`,
    `.half()`), optimizers built again after the rebinding, and rebindings in a branch that
    excludes the training (`if use_pretrained: model = load(...)` / `else:` train).

    Fix: build the optimizer after the model is final (after loading and copying).
    """

    code = "TL404"
    name = "optimizer-bound-to-stale-model"
    severity = "error"
    summary = "optimizer built from model.parameters(), then model rebound to a new module"
    requires = (BACKWARD, OPTIMIZER_STEP)

    INVALID = [
        """
        model = Net()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        model = Net.from_checkpoint("init.pt")  # <-
        for x, y in loader:
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
        """,
        """
        from timm.optim import create_optimizer_v2

        model = create_model("resnet50")
        optimizer = create_optimizer_v2(model, "adamw", lr=1e-3)
        model = torch.load("finetuned.pt")  # <-
        for x, y in loader:
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
        """,
        """
        def main():
            model = build_model()
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            model = copy.deepcopy(model).cuda()  # <-
            for x, y in loader:
                optimizer.zero_grad()
                F.cross_entropy(model(x), y).backward()
                optimizer.step()
        """,
    ]
    VALID = [
        """
        model = Net()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        model = model.cuda()
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[rank])
        model = torch.compile(model)
        for x, y in loader:
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
        """,
        """
        model = Net()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        model = Net.from_checkpoint("init.pt")
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        for x, y in loader:
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
        """,
        """
        model, optimizer = accelerator.prepare(model, optimizer)
        for batch in loader:
            accelerator.backward(model(**batch).loss)
            optimizer.step()
            optimizer.zero_grad()
        """,
    ]

    def check(self, facts):
        for fn in functions(facts):
            for step in fn.events_of(Kind.OPT_STEP):
                if step.via or not step.target:
                    continue
                built = constructor_of(fn, step.target)
                if built is None or built.role != Role.OPTIMIZER or built.element is not None:
                    continue
                if not any(b.line < step.line for b in fn.own_events if b.kind == Kind.BACKWARD):
                    continue
                for model in _parameter_owners(built.call):
                    stale = rebinds_to_new_module(fn, model, built.call, step.node)
                    if stale is not None:
                        yield Report(stale, f"'{model}' is rebound to a new module here, after the optimizer at line "
                                            f"{built.call.lineno} took the old one's parameters: step() at line "
                                            f"{step.line} updates the old module's parameters, never the new one's")
                        break


def _parameter_owners(call):
    """``model`` for each ``model.parameters()`` / ``model.named_parameters()`` in the call, and
    for a module passed whole to an optimizer factory (``create_optimizer_v2(model, "adamw")``)."""
    for arg in call.args[:1]:
        if isinstance(arg, ast.Name):
            yield arg.id
    for node in ast.walk(call):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in ("parameters", "named_parameters") and isinstance(node.func.value, ast.Name):
            yield node.func.value.id
