import ast

from trainlint.rule import Report, Rule
from trainlint.semantics import Kind, functions
from trainlint.semantics.dataflow import computed_without_grad, target_beside_its_prediction
from trainlint.semantics.modes import stepped_modules, trained_modules
from trainlint.semantics.syntax import calls_in, dotted
from trainlint.semantics.prerequisites import BACKWARD_WRITTEN, NO_GRAD


class TrainingForwardWithoutGrad(Rule):
    """
    What it does: finds a forward pass of the trained model that runs under `torch.no_grad()`
    (or `torch.inference_mode()`, `torch.set_grad_enabled(False)`) and whose output reaches the
    tensor given to `backward()`.

    Why it is bad: nothing computed under `no_grad` records a graph, so that part of the loss
    sends no gradient to the model. When another term still requires grad (a regulariser, a second
    head), `backward()` runs without error and the model's main term silently never trains.

    Not flagged: frozen teachers, targets and EMA models computed under `no_grad` (their outputs
    are meant to be constants), the trained model's own output under `no_grad` given as the target
    of its prediction with grad (`consistency(model(x_strong), y_weak)`: UDA, FixMatch), a model
    that another optimizer trains (a GAN discriminator's features of real data as the generator's
    feature-matching target), values taken out of the graph on purpose (`.numpy()`, `.item()`,
    `torch.tensor(...)`: constants however computed), and validation forwards whose outputs do not
    reach `backward()`, also where validation is an `else` whose test the training branch asks
    again (`if not validation: ... else: <no_grad forward>`, then `if not validation: backward()`).

    Fix: run the trained model's forward outside the `no_grad` block.
    """

    code = "TL103"
    name = "training-forward-without-grad"
    severity = "error"
    summary = "the trained model's forward runs under no_grad and its output reaches backward()"
    requires = (BACKWARD_WRITTEN, NO_GRAD)

    INVALID = [
        """
        optimizer = torch.optim.Adam(model.parameters())
        for x, y in loader:
            with torch.no_grad():
                logits = model(x)  # <-
            loss = criterion(logits, y) + 1e-4 * sum(p.pow(2).sum() for p in model.parameters())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        """,
    ]
    VALID = [
        """
        optimizer = torch.optim.Adam(student.parameters())
        for x in loader:
            with torch.no_grad():
                target = teacher(x)
            loss = F.mse_loss(student(x), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        """,
        """
        optimizer = torch.optim.Adam(model.parameters())
        for x, y in loader:
            logits = model(x)
            loss = criterion(logits, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                logits = model(x)
        """,
    ]

    def check(self, facts):
        for fn in functions(facts):
            trained = trained_modules(fn)
            if not trained:
                continue
            for backward in fn.events_of(Kind.BACKWARD):
                loss = backward.detail.get("loss")
                if loss is None or backward.via:
                    continue
                value = computed_without_grad(fn, loss, backward.line)
                if value is None:
                    continue
                # what this backward trains: what the next step updates (a GAN's generator loss runs
                # through the discriminator, which another optimizer trains)
                step = next((s for s in fn.events_of(Kind.OPT_STEP) if s.order > backward.order), None)
                updated = (stepped_modules(fn, step) if step is not None else None) or trained
                forwards = [c for c in calls_in(value) if dotted(c.func) in updated]
                if forwards and not target_beside_its_prediction(fn, loss, value, set(updated)):
                    yield Report(value if isinstance(value, ast.expr) else forwards[0],
                                 f"{dotted(forwards[0].func)}(...) runs under no_grad here, and its output reaches "
                                 f"backward() at line {backward.line}: this part of the loss trains nothing")
