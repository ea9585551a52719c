import ast

from trainlint.rule import Report, Rule
from trainlint.semantics import Kind, functions
from trainlint.semantics.boundaries import describe
from trainlint.semantics.syntax import calls_in, dotted, last_part, root_name
from trainlint.semantics.prerequisites import LOOP, SHIFT_OF_REDUCED

_REDUCTIONS = {"max", "min", "amax", "amin", "any", "all", "sum", "unique", "item"}


class BatchDependentLabelRemap(Rule):
    """
    What it does: finds labels (or any batch tensor) shifted under a condition computed from the
    current batch: `if label.max() >= NUM_CLASSES: label = label - 1`.

    Why it is bad: the condition holds for some batches only. A batch whose labels happen not to
    reach the maximum keeps the other mapping, so the same class has two label ids depending on
    what else is in the batch; the model is trained on contradicting targets and plateaus. The
    XCLIP report had exactly this line.

    Not flagged: remaps decided once for the dataset (before the loop, or by a configuration
    flag), and shifts without a condition.

    Fix: decide the mapping once from the dataset (or fix the labels at the source) and apply it
    to every batch.
    """

    code = "TL304"
    name = "batch-dependent-label-remap"
    severity = "warning"
    summary = "labels shifted under a condition computed from the current batch"
    requires = (LOOP, SHIFT_OF_REDUCED)

    INVALID = [
        """
        for idx, (video, label) in enumerate(loader):
            if label.max() >= NUM_CLASSES:
                label = label - 1  # <-
            loss = criterion(model(video), label)
        """,
        """
        for batch in loader:
            targets = batch["labels"]
            if torch.min(targets) == 1:
                targets -= 1  # <-
        """,
    ]
    VALID = [
        """
        one_based = dataset.labels.min() == 1
        for video, label in loader:
            if one_based:
                label = label - 1
            loss = criterion(model(video), label)
        """,
        """
        for video, label in loader:
            label = label - 1
            loss = criterion(model(video), label)
        """,
        """
        for step, batch in enumerate(loader):
            if loss_scale.max() > 1e4:
                step = step - 1
        """,
    ]

    def check(self, facts):
        for fn in functions(facts):
            for shift in fn.events_of(Kind.SHIFT):
                loop = shift.innermost_loop
                if not fn.owns(loop) or not shift.target or shift.target not in loop.assigned:
                    continue
                for guard in shift.guards_within(loop):
                    if _reduces(guard.test, shift.target):
                        yield Report(shift.node, f"'{shift.written}' is remapped only when {describe(guard)}, which "
                                                 f"depends on the current batch: batches disagree on the mapping")
                        break


def _reduces(test, name):
    """Whether ``test`` reduces ``name`` over the batch (``name.max()``, ``torch.min(name)``)."""
    for call in calls_in(test):
        func = call.func
        if isinstance(func, ast.Attribute) and func.attr in _REDUCTIONS and root_name(func.value) == name:
            return True
        if last_part(dotted(func) or "") in _REDUCTIONS and call.args and root_name(call.args[0]) == name:
            return True
    return False
