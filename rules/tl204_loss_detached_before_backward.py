from trainlint.rule import Report, Rule
from trainlint.semantics import Kind, functions
from trainlint.semantics.dataflow import outside_graph
from trainlint.semantics.syntax import text
from trainlint.semantics.prerequisites import BACKWARD_WRITTEN


class LossDetachedBeforeBackward(Rule):
    """
    What it does: finds `backward()` called on a tensor that was rebuilt outside the autograd
    graph: `torch.tensor(loss.item(), requires_grad=True)`, `loss.detach()`, `loss.data`,
    `torch.tensor(float(loss))`, a NumPy round-trip, `Variable(loss.data)`.

    Why it is bad: the rebuilt tensor is a new leaf with no history, so `backward()` computes the
    gradient of nothing: no parameter receives a gradient and the optimizer steps on zeros (or on
    `None`, which it skips). With `requires_grad=True` added "to make the error go away", the
    script runs and prints a perfectly plausible, constant loss. Seed: the regression report ("no
    gradient flow").

    Not flagged: detaching after `backward()` (for logging), and sums where some term still
    carries the graph.

    Fix: call `backward()` on the loss tensor returned by the criterion; log with `loss.item()`
    separately.
    """

    code = "TL204"
    name = "loss-detached-before-backward"
    severity = "error"
    summary = "backward() on a loss rebuilt outside the graph (.item(), .detach(), .data)"
    requires = (BACKWARD_WRITTEN,)

    INVALID = [
        """
        for x, y in loader:
            loss = criterion(model(x), y)
            loss = torch.tensor(loss.item(), requires_grad=True)
            optimizer.zero_grad()
            loss.backward()  # <-
            optimizer.step()
        """,
        """
        for x, y in loader:
            loss = criterion(model(x), y).detach().requires_grad_()
            loss.backward()  # <-
        """,
        """
        def step(pred, target):
            loss = F.mse_loss(pred, target)
            Variable(loss.data, requires_grad=True).backward()  # <-
        """,
    ]
    VALID = [
        """
        for x, y in loader:
            loss = criterion(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            loss = loss.detach()
            running += loss.item()
            optimizer.step()
        """,
        """
        total = torch.tensor(0.0, device=device)
        for head in heads:
            total = total + head(features).mean()
        total.backward()
        """,
        """
        loss = torch.zeros(1, requires_grad=True)
        for part in parts:
            loss += part.loss()
        loss.backward()
        """,
    ]

    def check(self, facts):
        for fn in functions(facts):
            for backward in fn.events_of(Kind.BACKWARD):
                loss = backward.detail.get("loss")
                if loss is None or backward.via:
                    continue
                rebuilt = outside_graph(fn, loss, backward.line)
                if rebuilt is not None:
                    yield Report(backward.node, f"backward() runs on a tensor rebuilt outside the autograd graph "
                                                f"(line {rebuilt.lineno}: {text(rebuilt)}): no gradient reaches the "
                                                f"model")
