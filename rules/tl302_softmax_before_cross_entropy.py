from trainlint.rule import Report, Rule
from trainlint.semantics import Kind, functions
from trainlint.semantics.dataflow import activation_of
from trainlint.semantics.prerequisites import ACTIVATION, LOGIT_LOSS


class SoftmaxBeforeCrossEntropy(Rule):
    """
    What it does: finds probabilities fed to a loss that expects raw logits: `softmax` outputs to
    `F.cross_entropy` / `nn.CrossEntropyLoss`, `sigmoid` outputs to
    `F.binary_cross_entropy_with_logits` / `nn.BCEWithLogitsLoss`; also through a model of the
    file whose `forward` returns such an output (alone or as one item of a returned tuple), or a
    layer that ends in `nn.Softmax`/`nn.Sigmoid` (`nn.Sequential(nn.Linear(d, C), nn.Softmax(1))`).
    One finding per activation: the line it names is where the softmax is applied.

    Why it is bad: these losses apply softmax (sigmoid) themselves. Applied twice, the
    probabilities are squashed into a narrow range, gradients vanish, and the loss stalls near
    ln(C) while accuracy creeps up just enough to look like slow learning.

    Not flagged: `log_softmax` before `cross_entropy` (log-softmax is idempotent, the result is
    unchanged), softmax outputs used for metrics or other losses, an activation applied only in a
    branch that excludes the loss (`if lerp: pred = sigmoid(pred) ... else: bce_with_logits(pred)`),
    and raw logits.

    Fix: pass the logits; apply softmax/sigmoid only where probabilities are needed.
    """

    code = "TL302"
    name = "softmax-before-cross-entropy"
    severity = "error"
    summary = "softmax/sigmoid outputs fed to a loss that applies it again (CrossEntropy, BCEWithLogits)"
    requires = (LOGIT_LOSS, ACTIVATION)

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
        """
        import torch
        from torch import nn

        class TwoHeads(nn.Module):
            def __init__(self, classes):
                super().__init__()
                self.body = nn.Sequential(nn.Linear(32, 64), nn.ReLU())
                self.head = nn.Sequential(nn.Linear(64, classes), nn.Softmax(dim=1))
                self.score = nn.Linear(64, 1)

            def forward(self, x):
                features = self.body(x)
                return self.score(features), self.head(features)

        model = TwoHeads(10)
        classification = nn.CrossEntropyLoss()
        for x, y in loader:
            score, probs = model(x)
            loss = classification(probs, y)  # <-
            loss.backward()
        """,
        """
        import torch
        from torch.nn import CrossEntropyLoss, Linear, Sequential, Softmax
        probe = Sequential(Linear(768, 10), Softmax(-1)).to("cuda")
        criterion = CrossEntropyLoss()
        optimizer = torch.optim.Adam(probe.parameters(), lr=1e-4)
        for features, labels in loader:
            optimizer.zero_grad()
            loss = criterion(probe(features), labels)  # <-
            loss.backward()
            optimizer.step()
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
        """
        import torch
        from torch import nn

        class Tagger(nn.Module):
            def __init__(self):
                super().__init__()
                self.head = nn.Sequential(nn.Linear(64, 10), nn.LogSoftmax(dim=1))

            def forward(self, x):
                return x, self.head(x)

        model = Tagger()
        for x, y in loader:
            _, log_probs = model(x)
            nn.functional.nll_loss(log_probs, y).backward()
        """,
        """
        import torch
        from torch import nn

        class Classifier(nn.Module):
            def __init__(self):
                super().__init__()
                self.logits = nn.Linear(64, 10)
                self.probabilities = nn.Softmax(dim=1)

            def forward(self, x):
                logits = self.logits(x)
                return logits, self.probabilities(logits)

        model = Classifier()
        criterion = nn.CrossEntropyLoss()
        for x, y in loader:
            logits, probs = model(x)
            criterion(logits, y).backward()
        """,
    ]

    def check(self, facts):
        reported = set()  # one finding per activation: a model's last layer feeds every call of the loss
        for fn in functions(facts):
            for call in fn.events_of(Kind.CRITERION):
                if call.via:
                    continue
                found = activation_of(fn, call.detail["input"], call.line)
                if found is not None and found[0] == call.detail["expects"] and id(found[1]) not in reported:
                    activation, node = found
                    reported.add(id(node))
                    yield Report(call.node, f"the input of {call.target}() already went through {activation} (line "
                                            f"{node.lineno}), and this loss applies {activation} itself: gradients "
                                            f"vanish; pass the raw logits")
