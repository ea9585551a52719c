from trainlint.rule import Report, Rule
from trainlint.semantics import Kind, functions
from trainlint.semantics.dataflow import activation_of


class SoftmaxBeforeCrossEntropy(Rule):
    """
    What it does: finds probabilities fed to a loss that expects raw logits: `softmax` outputs to
    `F.cross_entropy` / `nn.CrossEntropyLoss`, `sigmoid` outputs to
    `F.binary_cross_entropy_with_logits` / `nn.BCEWithLogitsLoss`.

    Why it is bad: these losses apply softmax (sigmoid) themselves. Applied twice, the
    probabilities are squashed into a narrow range, gradients vanish, and the loss stalls near
    ln(C) while accuracy creeps up just enough to look like slow learning.

    Not flagged: `log_softmax` before `cross_entropy` (log-softmax is idempotent, the result is
    unchanged), softmax outputs used for metrics or other losses, and raw logits.

    Fix: pass the logits; apply softmax/sigmoid only where probabilities are needed.
    """

    code = "TL302"
    name = "softmax-before-cross-entropy"
    severity = "error"
    summary = "softmax/sigmoid outputs fed to a loss that applies it again (CrossEntropy, BCEWithLogits)"
    triggers = ("softmax", "sigmoid")

    INVALID = [
        """
        import torch.nn.functional as F

        for x, y in loader:
            probs = F.softmax(model(x), dim=-1)
            loss = F.cross_entropy(probs, y)  # <-
            loss.backward()
        """,
        """
        from torch import nn

        criterion = nn.CrossEntropyLoss()
        out = model(x).softmax(dim=1)
        loss = criterion(out, target)  # <-
        """,
        """
        import torch
        from torch import nn

        bce = nn.BCEWithLogitsLoss()
        loss = bce(torch.sigmoid(model(x)), y)  # <-
        """,
    ]
    VALID = [
        """
        import torch.nn.functional as F

        for x, y in loader:
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            probs = F.softmax(logits, dim=-1)
            acc = (probs.argmax(-1) == y).float().mean()
        """,
        """
        import torch.nn.functional as F

        log_probs = F.log_softmax(model(x), dim=-1)
        loss = F.cross_entropy(log_probs, y)
        """,
        """
        import torch
        from torch import nn

        criterion = nn.BCELoss()
        loss = criterion(torch.sigmoid(model(x)), y)
        """,
    ]

    def check(self, facts):
        for fn in functions(facts):
            for call in fn.events_of(Kind.CRITERION):
                if call.via:
                    continue
                found = activation_of(fn, call.detail["input"], call.line)
                if found is not None and found[0] == call.detail["expects"]:
                    activation, node = found
                    yield Report(call.node, f"the input of {call.target}() already went through {activation} (line "
                                            f"{node.lineno}), and this loss applies {activation} itself: gradients "
                                            f"vanish; pass the raw logits")
