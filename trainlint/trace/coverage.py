"""How `trainlint trace` confirms each static rule: the runtime evidence it looks for, or why the
rule stays static only; and which bundled fixture shows the verdict. docs/trace-confirmation.md is
written from this table (`python -m trainlint.trace.coverage docs/trace-confirmation.md`); the
test suite checks that the table, the evidence the tracer can produce and the fixtures agree."""
from __future__ import annotations

import sys
from typing import Dict, NamedTuple, Optional


class Confirmation(NamedTuple):
    confirmed: bool  # the tracer can say "confirmed" for this code
    how: str  # the evidence, or why the rule is static only
    fixture: Optional[str] = None  # the bundled fixture whose trace confirms it


TABLE: Dict[str, Confirmation] = {
    "TL101": Confirmation(True, "event: the trained model's forward ran in eval mode (dropout/batch-norm "
                                "layers) before any backward(), and its output reached backward()", "video_classification"),
    "TL102": Confirmation(True, "event: eval mode switched on after training began, and the trained model's "
                                "eval-mode output reached backward()"),
    "TL103": Confirmation(False, "static only: a forward under no_grad has no autograd history; its effect shows "
                                 "as TR001 no-gradient-flow (or backward() raising)"),
    "TL201": Confirmation(True, "event: zero_grad() ran between the backward() calls of one accumulation window",
                          "contrastive_regions"),
    "TL202": Confirmation(True, "event: zero_grad() ran after the window's last backward() and before its step"),
    "TL203": Confirmation(True, "event: a step applied the same gradient tensors as the previous step, with no "
                                "zero_grad() between"),
    "TL204": Confirmation(True, "event: backward() ran on a tensor with no autograd history", "regression_pipeline"),
    "TL205": Confirmation(False, "static only: clipping calls are not recorded; their place relative to backward() "
                                 "and step() is read from the code"),
    "TL206": Confirmation(True, "line evidence: the counter's increment ran at least 1.5 times per optimizer "
                                "step", "contrastive_regions"),
    "TL207": Confirmation(True, "event: a step applied the gradients of more micro-batches than its windows "
                                "usually hold, none cleared between them (the leftovers of an epoch's end; seen "
                                "only when the traced steps cross an epoch whose length is not a multiple of the "
                                "window)"),
    "TL208": Confirmation(True, "event: a non-finite loss was backpropagated, its step skipped without clearing, "
                                "and the next step applied the non-finite gradients"),
    "TL209": Confirmation(False, "static only: whether a summed loss was meant (a nominal batch) is the code's "
                                 "intent, not an observable"),
    "TL301": Confirmation(True, "line evidence: the rescale's line ran in some but not all of the iterations that "
                                "reached backward(); event: the loss given to backward() was a different multiple "
                                "of the criterion's value across micro-batches", "regression_pipeline"),
    "TL302": Confirmation(False, "static only: its effect may show as TR004 constant-loss (near ln C)"),
    "TL303": Confirmation(False, "static only: memory growth over hours is not observed in a few steps"),
    "TL304": Confirmation(False, "static only: depends on which labels a batch happens to hold"),
    "TL305": Confirmation(False, "static only: its effect shows as TR008 zero-norm-normalised or TR005 non-finite "
                                 "when a zero-norm row reaches it"),
    "TL401": Confirmation(True, "event: the scheduler stepped more than 1.5 times per optimizer step",
                          "regression_pipeline"),
    "TL402": Confirmation(False, "static only: the intended granularity is in the schedule's arguments"),
    "TL403": Confirmation(True, "line evidence: the constructor's line ran on two or more iterations while the "
                                "optimizer stepped (refuted when it ran once over several steps)"),
    "TL404": Confirmation(False, "static only: its effect shows as TR003 optimizer-parameter-mismatch"),
    "TL405": Confirmation(False, "static only: its effect shows as TR002 parameters-not-updated or TR009 "
                                 "frozen-output-layer"),
    "TL406": Confirmation(False, "static only: its effect shows as TR003 optimizer-parameter-mismatch"),
    "TL501": Confirmation(True, "event: a plain optimizer.step() ran on gradients of a scaled backward()"),
    "TL502": Confirmation(False, "static only: clipping calls are not recorded"),
    "TL503": Confirmation(True, "event: float16 parameters or autocast trained with no loss scaled",
                          "segmentation_fp16"),
    "TL601": Confirmation(False, "static only: its effect shows as layers missing from parameters(); not checked"),
    "TL602": Confirmation(False, "static only: its effect shows as TR003 when the tensor is given to no optimizer"),
    "TL701": Confirmation(False, "static only: the sampler's order repeats across epochs, longer than a trace"),
    "TL702": Confirmation(True, "line evidence: the statement ran (its result is discarded by construction)"),
    "TL703": Confirmation(False, "static only: the ranks' batches are not compared"),
    "TL704": Confirmation(False, "static only: its effect shows under torchrun as TR011 replica-divergence"),
    "TL705": Confirmation(False, "static only: its effect shows under torchrun as TR011 replica-divergence"),
}


def markdown() -> str:
    rows = ["# How `trainlint trace` confirms each rule", "",
            "Generated from `trainlint/trace/coverage.py`; the test suite checks it against the tracer.", "",
            "Line evidence counts how often the lines of a finding ran (sys.monitoring on Python 3.12+, a tracer "
            "scoped to the code objects holding them on 3.10/3.11), for the findings of the script and the files "
            "beside it. A static finding in a traced file gets `confirmed` when the run shows the evidence below, `refuted` "
            "when its line ran and the evidence did not appear (for the rules whose evidence is an event at that "
            "line), and `not-observed` otherwise. Static-only rules are always `not-observed`; where another "
            "runtime check (TR...) shows their effect, it says so.", "",
            "| code | confirmed by trace | how | bundled fixture showing it |", "|---|---|---|---|"]
    for code, entry in TABLE.items():
        rows.append(f"| {code} | {'yes' if entry.confirmed else 'no'} | {entry.how} | {entry.fixture or ''} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    with open(sys.argv[1], "w", encoding="utf-8") as handle:
        handle.write(markdown())
