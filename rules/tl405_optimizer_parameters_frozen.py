from trainlint.rule import Report, Rule
from trainlint.semantics import Kind, functions
from trainlint.semantics.distributed import optimizers_built_from
from trainlint.semantics.modes import freezes, may_unfreeze_after
from trainlint.semantics.syntax import text
from trainlint.semantics.prerequisites import BACKWARD, FREEZE


class OptimizerParametersFrozen(Rule):
    """
    What it does: finds an optimizer built from the parameters of modules that are all frozen as a
    whole (`requires_grad_(False)`, or `p.requires_grad = False` over all their parameters) before
    training, with nothing making any of them trainable again.

    Why it is bad: nothing the optimizer owns can move. The loss is computed, backward runs,
    `optimizer.step()` runs, and the weights never change (TrainCheck's suite reproduces a forum
    report: a new head added for fine-tuning, then frozen with the backbone).

    Not flagged: freezing a backbone while the optimizer holds the head; optimizers built from
    `filter(lambda p: p.requires_grad, ...)`; a part unfrozen afterwards
    (`model.head.requires_grad_(True)`); a frozen model handed to code that may unfreeze part of it
    (`mark_only_lora_as_trainable(model)`) or re-bound (`model = get_peft_model(model, config)`);
    freezing under a condition.

    Fix: freeze what should stay fixed and give the optimizer what should train:
    `optimizer = SGD(model.head.parameters(), ...)` or
    `SGD((p for p in model.parameters() if p.requires_grad), ...)`.
    """

    code = "TL405"
    name = "optimizer-parameters-frozen"
    severity = "error"
    summary = "every parameter given to the optimizer is frozen"
    requires = (FREEZE, BACKWARD)

    INVALID = [
        """
        def finetune(model, loader):
            model.fc = nn.Linear(512, 10)
            optimizer = torch.optim.SGD(model.fc.parameters(), lr=0.01)  # <-
            for p in model.parameters():
                p.requires_grad = False
            for x, y in loader:
                optimizer.zero_grad()
                F.cross_entropy(model(x), y).backward()
                optimizer.step()
        """,
        """
        model = Net()
        model.requires_grad_(False)
        opt = torch.optim.Adam(model.parameters())  # <-
        for x, y in loader:
            opt.zero_grad()
            F.mse_loss(model(x), y).backward()
            opt.step()
        """,
    ]
    VALID = [
        """
        def finetune(model, loader):
            model.backbone.requires_grad_(False)
            optimizer = torch.optim.SGD(model.head.parameters(), lr=0.01)
            for x, y in loader:
                optimizer.zero_grad()
                F.cross_entropy(model(x), y).backward()
                optimizer.step()
        """,
        """
        model.requires_grad_(False)
        model.classifier.requires_grad_(True)
        opt = torch.optim.Adam(model.parameters())
        for x, y in loader:
            opt.zero_grad()
            F.mse_loss(model(x), y).backward()
            opt.step()
        """,
        """
        for p in model.parameters():
            p.requires_grad = False
        opt = torch.optim.AdamW(filter(lambda p: p.requires_grad, model.parameters()), lr=1e-4)
        for batch in loader:
            opt.zero_grad()
            model(**batch).loss.backward()
            opt.step()
        """,
        """
        model.requires_grad_(False)
        model = get_peft_model(model, lora_config)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        for batch in loader:
            opt.zero_grad()
            model(**batch).loss.backward()
            opt.step()
        """,
        """
        if args.linear_probe:
            model.requires_grad_(False)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for x, y in loader:
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        """,
    ]

    def check(self, facts):
        for fn in functions(facts):
            trained_from = [b.line for b in fn.events_of(Kind.BACKWARD)]
            if not trained_from:
                continue
            for optimizer, modules in optimizers_built_from(fn):
                if "requires_grad" in text(optimizer):
                    continue  # built from the parameters that still require grad
                frozen = {module: freezes(fn, module, unconditional=True) for module in modules}
                if not all(frozen.values()):
                    continue
                last = max(nodes[0].lineno for nodes in frozen.values())
                if any(may_unfreeze_after(fn, module, nodes[0].lineno) for module, nodes in frozen.items()) \
                        or not any(line > max(last, optimizer.lineno) for line in trained_from):
                    continue
                shown = ", ".join(sorted(modules))
                yield Report(optimizer, f"every parameter given to this optimizer ({shown}) is frozen (line {last}) "
                                        f"and nothing makes it trainable again: the steps change nothing")
