from trainlint.rule import Fix, Report, Rule
from trainlint.semantics import Kind, functions
from trainlint.semantics.dataflow import is_known_tensor
from trainlint.semantics.syntax import text
from trainlint.semantics.prerequisites import DISCARDED_MOVE


class TensorToResultDiscarded(Rule):
    """
    What it does: finds `x.to(device)`, `x.cuda()`, `x.half()` (and the other dtype casts) used as
    a statement on a name that holds a tensor: a batch unpacked from a data loader, or the result
    of a `torch.*` factory.

    Why it is bad: unlike `nn.Module.to()`, `Tensor.to()` does not move or convert in place; it
    returns a new tensor, which the statement throws away. The batch stays on the CPU (or in the
    old dtype): the script either crashes later with a device mismatch or, with CPU models or
    automatic casting, silently trains on data that never got the intended treatment.

    Not flagged: modules (`model.to(device)` is in place), objects whose type is not known to be a
    tensor (dict batches, HF `BatchEncoding`), and assignments (`x = x.to(device)`).

    Fix: `x = x.to(device)`.
    """

    code = "TL702"
    name = "tensor-to-result-discarded"
    severity = "error"
    summary = "x.to(device) on a tensor as a statement: the moved tensor is thrown away"
    requires = (DISCARDED_MOVE,)

    INVALID = [
        """
        for images, labels in train_loader:
            images.to(device)  # <-
            labels.cuda()  # <-
            loss = criterion(model(images), labels)
        """,
        """
        def run(model, data_loader):
            for step, (x, y) in enumerate(data_loader):
                x.half()  # <-
                model(x)
        """,
        """
        noise = torch.randn(16, 100)
        noise.to(device)  # <-
        """,
    ]
    VALID = [
        """
        model.to(device)
        for images, labels in train_loader:
            images = images.to(device)
            labels = labels.to(device, non_blocking=True)
            model(images)
        """,
        """
        for batch in train_loader:
            batch.to(device)
            model(**batch)
        """,
        """
        for name, module in model.named_children():
            module.to(device)
        """,
        """
        for step, batch in enumerate(loader):
            batch.to(device)
        """,
    ]

    def check(self, facts):
        for fn in functions(facts):
            for event in fn.events_of(Kind.DISCARDED_MOVE):
                if is_known_tensor(fn, event.target):
                    call = text(event.node)
                    yield Report(event.node, f"{call} returns a new tensor that is thrown away: '{event.target}' is "
                                             f"not moved or converted; write {event.target} = {call}",
                                 fix=Fix(f"assign the result to {event.target}", event.node.func.value,
                                         f"{event.target} = {event.target}"))
