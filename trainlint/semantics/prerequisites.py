"""What a file's text must contain for the semantic layer to find each kind of fact in it.

The engine checks a rule's prerequisites on the raw bytes before parsing: a file (or a rule on a
file) whose text lacks them cannot produce that rule's finding, so it is not analysed. Each
prerequisite here is read off how :mod:`.build` recognises the event (the method and function
names it looks for), so a rule that needs an optimizer step *and* a ``backward()`` combines the
two and stays exact.

A ``backward()`` or a mode switch inside a function of another linted file reaches a call site
through that function's summary, which no word of the calling file shows; such prerequisites are
``from_summaries``: they also hold when the engine lints a file again with the other files'
answers (see ``engine.Engine._summary_callers_pass`` for how those files are found).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, Match, Optional, Pattern, Tuple


@dataclass(frozen=True, eq=False)
class Evidence:
    """Text without which a kind of fact cannot be in a file: any of ``words``, or a match of
    ``pattern`` that ``confirm`` accepts (for the few facts a word cannot pin down; a pattern
    that starts with a literal keeps the scan fast, ``confirm`` looks around it). Each is made
    once, below, and known by identity."""

    name: str
    words: Tuple[bytes, ...] = ()
    pattern: Optional[Pattern[bytes]] = None
    confirm: Optional[Callable[[bytes, Match], bool]] = None
    from_summaries: bool = False
    parts: Tuple["Evidence", ...] = ()

    def found_in(self, data: bytes) -> bool:
        if self.parts:
            return any(part.found_in(data) for part in self.parts)
        if any(word in data for word in self.words):
            return True
        return self.pattern is not None and any(self.confirm is None or self.confirm(data, match)
                                                for match in self.pattern.finditer(data))


def evidence(name: str, *words: str, pattern: Optional[bytes] = None, confirm=None,
             from_summaries: bool = False) -> Evidence:
    return Evidence(name, tuple(w.encode() for w in words), re.compile(pattern) if pattern else None, confirm,
                    from_summaries)


def either(name: str, *parts: Evidence) -> Evidence:
    return Evidence(name, from_summaries=any(p.from_summaries for p in parts), parts=parts)


def holds(requirements: Iterable[Evidence], data: bytes, answered: bool = False,
          found: Optional[Dict[Evidence, bool]] = None) -> bool:
    """Whether every requirement is met by ``data`` (or, with ``answered``, by the other files'
    summaries where it can be). ``found`` remembers answers across the rules asking of one file."""
    found = {} if found is None else found
    for requirement in requirements:
        if answered and requirement.from_summaries:
            continue
        if requirement not in found:
            found[requirement] = requirement.found_in(data)
        if not found[requirement]:
            return False
    return True


_WORD = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") | frozenset(range(128, 256))
_WORD_OR_DOT = _WORD | {ord(".")}


def _starts_statement(data: bytes, position: int) -> bool:
    """Whether only indentation, or the ``;``/``:`` that ends what comes before, precedes
    ``position`` on its line (``x.to(d)`` alone, or after ``if ready:``)."""
    before = data[data.rfind(b"\n", 0, position) + 1: position].rstrip(b" \t")
    return not before or before.endswith((b";", b":"))


def _name_statement(data: bytes, match: Match) -> bool:
    """The attribute call matched is made on a bare name that starts a statement."""
    end = match.start()
    while end > 0 and data[end - 1] in b" \t":
        end -= 1
    start = end
    while start > 0 and data[start - 1] in _WORD:
        start -= 1
    return start < end and not data[start:start + 1].isdigit() and _starts_statement(data, start)


def _shifts_itself(data: bytes, match: Match) -> bool:
    """The ``= y -`` matched completes ``y = y - ...`` (or ``+``), an assignment statement."""
    equals = match.start()
    if equals and data[equals - 1] in b"=<>!:+-*/%&|^@":
        return False  # `==`, `<=`, `+=`, a walrus...: not an assignment of its own
    line_start = data.rfind(b"\n", 0, equals) + 1  # this line only: slicing from the start is quadratic
    target = data[line_start:equals].rstrip(b" \t")
    start = line_start + len(target) - len(match.group(1))
    if not target.endswith(match.group(1)) or (start and data[start - 1] in _WORD_OR_DOT):
        return False
    return _starts_statement(data, start)


_SCALER = ("scaler", "Scaler", "SCALER")  # timm's `loss_scaler(loss, optimizer)`: backward and step in one call

# `loss.backward()`, Lightning's `manual_backward`, a loss-scaler call; or a helper's summary
BACKWARD = evidence("backward", "backward", *_SCALER, from_summaries=True)
# `optimizer.step()`, `scaler.step(optimizer)` (schedulers, EMA and DeepSpeed step alike), a loss-scaler call
OPTIMIZER_STEP = evidence("optimizer step", ".step", *_SCALER)
TRAINING = either("training", BACKWARD, OPTIMIZER_STEP)
# `zero_grad()` (method or helper function), `p.grad = None`, `w.grad.zero_()`
GRADIENTS_CLEARED = evidence("gradients cleared", "zero_grad", ".grad")
CLIP = evidence("gradient clipping", "clip_grad")
# `model.eval()`, `model.train(False)`; or a helper's summary (`evaluate(model)` leaves it in eval mode)
EVAL_MODE = evidence("eval mode", ".eval(", ".train(", from_summaries=True)
NO_GRAD = evidence("no_grad", "no_grad", "inference_mode", "set_grad_enabled")
# a non-finite check: `isfinite`, `isnan`, names such as `has_nan`/`found_inf`, and `x != x`
NAN_CHECK = evidence("NaN check", "nan", "Nan", "NaN", "NAN", "inf", "Inf", "INF", "finite", "Finite", "FINITE",
                     "overflow", "Overflow", "OVERFLOW", "!=")
LOGIT_LOSS = evidence("raw-logit loss", "cross_entropy", "CrossEntropyLoss", "BCEWithLogitsLoss")
ACTIVATION = evidence("softmax or sigmoid", "softmax", "Softmax", "sigmoid", "Sigmoid")
# `x += v`, `list.append(v)`
ACCUMULATION = evidence("accumulation", "+=", ".append")
# what dataflow.holds_loss recognises: criteria, `*_loss` functions, `.loss` attributes, `nn.*Loss`
LOSS = either("loss", evidence("loss", "loss", "Loss", "LOSS", "criterion", "Criterion", "CRITERION", "kl_div"),
              LOGIT_LOSS)
LOSS_OR_BACKWARD = either("loss or backward", LOSS, BACKWARD)
# `y -= 1`, `y += 1` and `y = y - 1` (a constant shift)
SHIFT = evidence("constant shift", "+=", "-=", pattern=rb"=[ \t]*([A-Za-z_][\w.]*)[ \t]*[-+]", confirm=_shifts_itself)
# the reductions a batch-dependent test calls (`y.max()`, `torch.min(y)`, `(y < 0).any()`)
BATCH_REDUCTION = evidence("batch reduction", "max(", "min(", "any(", "all(", "sum(", "unique(", "item(")
LOOP = evidence("loop", "for ", "while ", "for\t", "while\t", "for(", "while(", "training_step")
# what dataflow.unguarded_normalisations divides by or takes the log of
NORMALISATION = evidence("normalisation", "union", "Union", "UNION", ".norm(", "log(")
FP16 = evidence("fp16", "autocast", ".half")
SCALED_BACKWARD = evidence("scaled backward", ".scale", *_SCALER)
FREEZE = evidence("frozen parameters", "requires_grad")
MODULE_CLASS = evidence("nn.Module subclass", "Module")
# a plain container display bound to a module attribute: `self.layers = [...]`, `= {...}`, `= (...)`,
# and a bare tuple `self.heads = nn.Linear(...), nn.Linear(...)`
ATTRIBUTE_CONTAINER = evidence(
    "container attribute", pattern=rb"self\.[A-Za-z_]\w*\s*(?::[^=\n]*)?=[\s\\]*(?:[\[{(]|[^\n=]*\)\s*,)")
TENSOR_ATTRIBUTE = evidence("tensor attribute", "requires_grad", "Variable")
# `x.to(device)` (and the other conversions) as a statement of its own, on a bare name
DISCARDED_MOVE = evidence(
    "discarded .to()", pattern=rb"\.[ \t]*(?:to|cuda|cpu|half|float|double|bfloat16|long|int|bool)[ \t]*\(",
    confirm=_name_statement)
DISTRIBUTED_SAMPLER = evidence("DistributedSampler", "DistributedSampler")
DATA_PARALLEL = evidence("data-parallel wrapper", "DistributedDataParallel", "FullyShardedDataParallel", "FSDP",
                         "fully_shard")
DDP = evidence("DistributedDataParallel", "DistributedDataParallel")
SHARDING = evidence("sharding", "parallelize_module", "fully_shard", "FullyShardedDataParallel", "FSDP",
                    "distribute_module")
