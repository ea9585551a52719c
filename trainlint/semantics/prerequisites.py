"""What a file's text must contain for the semantic layer to find each kind of fact in it.

The engine checks a rule's prerequisites on the raw bytes before parsing: a file (or a rule on a
file) whose text lacks them cannot produce that rule's finding, so it is not analysed. Each
prerequisite here is read off how :mod:`.build` recognises the event (the method and function
names it looks for), so a rule that needs an optimizer step *and* a ``backward()`` combines the
two and stays exact.

A ``backward()`` or a mode switch inside a function of another linted file reaches a call site
through that function's summary, which no word of the calling file shows; such prerequisites are
``supplied_by`` what a summary says (it trains, it switches modes): they also hold when the file
calls a function whose summary says so (see ``engine.Engine._summary_callers_pass`` for how those
files are found). A summary's backward carries no loss, so the rules that read the loss need
``BACKWARD_WRITTEN``, and a summary's mode switch is no ``.eval()`` of the file's own: the
builder rule needs an ``EVAL_SWITCH`` of its own.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import AbstractSet, Callable, Dict, Iterable, Match, Optional, Pattern, Tuple

from ahocorasick_rs import BytesAhoCorasick

# what a function summary (semantics.summaries) can stand for at a call site
TRAINS, SWITCHES_MODES = "trains", "switches modes"
EVERY_SUMMARY = frozenset((TRAINS, SWITCHES_MODES))


_BY_NAME: Dict[str, "Evidence"] = {}


@dataclass(frozen=True, eq=False)
class Evidence:
    """Text without which a kind of fact cannot be in a file: any of ``words``, or a match of
    ``pattern`` that ``confirm`` accepts (for the few facts a word cannot pin down; a pattern
    that starts with a literal keeps the scan fast, ``confirm`` looks around it), or what
    ``test`` finds in the whole text (two statements that must name the same variable). Each is
    made once, below, and known by identity."""

    name: str
    words: Tuple[bytes, ...] = ()
    pattern: Optional[Pattern[bytes]] = None
    confirm: Optional[Callable[[bytes, Match], bool]] = None
    test: Optional[Callable[[bytes], bool]] = None
    supplied_by: Optional[str] = None  # what a called function's summary must say to stand for it
    parts: Tuple["Evidence", ...] = ()

    def __post_init__(self):
        if _BY_NAME.setdefault(self.name, self) is not self:
            raise ValueError(f"two kinds of evidence named {self.name!r}")  # names travel to worker processes

    def found_in(self, data: bytes, scan: Optional["Scan"] = None) -> bool:
        scan = Scan(data) if scan is None else scan
        if self.parts:
            return any(scan.holds(part) for part in self.parts)
        if any(scan.has_word(word) for word in self.words):
            return True
        if self.test is not None and self.test(data):
            return True
        return self.pattern is not None and any(self.confirm is None or self.confirm(data, match)
                                                for match in self.pattern.finditer(data))

    def supplied(self, summaries: AbstractSet[str]) -> bool:
        """Whether summaries saying ``summaries`` stand for this evidence."""
        return self.supplied_by in summaries or any(part.supplied(summaries) for part in self.parts)


def evidence(name: str, *words: str, pattern: Optional[bytes] = None, confirm=None, test=None) -> Evidence:
    return Evidence(name, tuple(w.encode() for w in words), re.compile(pattern) if pattern else None, confirm, test)


def either(name: str, *parts: Evidence) -> Evidence:
    return Evidence(name, parts=parts)


def or_summary(written: Evidence, supplied_by: str) -> Evidence:
    """``written``, or a call of a function whose summary says ``supplied_by``."""
    return Evidence(f"{written.name}, or a summary", parts=(written,), supplied_by=supplied_by)


class Scan:
    """What has been looked for in one file's text: each evidence's answer, and which of all
    the evidences' words the text holds (found in one pass, by an Aho-Corasick automaton:
    looking for each word in turn cost ten times as much)."""

    def __init__(self, data: bytes, answers: Optional[Dict[str, bool]] = None):
        self.data = data
        self.answers: Dict[Evidence, bool] = {_BY_NAME[name]: answer for name, answer in (answers or {}).items()}
        self._words: Optional[set] = None

    def holds(self, evidence: Evidence) -> bool:
        answer = self.answers.get(evidence)
        if answer is None:
            answer = self.answers[evidence] = evidence.found_in(self.data, self)
        return answer

    def has_word(self, word: bytes) -> bool:
        if self._words is None:
            words, automaton = _word_automaton()
            self._words = {words[index] for index, _, _ in automaton.find_matches_as_indexes(self.data, overlapping=True)}
        return word in self._words

    def by_name(self) -> Dict[str, bool]:
        """The answers, to hand to another process (which has evidence objects of its own)."""
        return {evidence.name: answer for evidence, answer in self.answers.items()}


@functools.lru_cache(maxsize=None)
def _word_automaton():
    words = sorted({word for evidence in _BY_NAME.values() for word in evidence.words})
    return words, BytesAhoCorasick(words)


def holds(requirements: Iterable[Evidence], data: bytes, summaries: AbstractSet[str] = frozenset(),
          scan: Optional[Scan] = None) -> bool:
    """Whether every requirement is met by ``data``, or by the summaries (what the functions of
    other files that the file calls do: ``TRAINS``, ``SWITCHES_MODES``). ``scan`` remembers
    answers across the rules asking of one file."""
    scan = Scan(data) if scan is None else scan
    for requirement in requirements:  # asked of every rule for every file: a plain loop
        if not (summaries and requirement.supplied(summaries)) and not scan.holds(requirement):
            return False
    return True


_WORD = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") | frozenset(range(128, 256))


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


_NAME_CHAIN = rb"((?:[A-Za-z_]\w*+[ \t]*+\.[ \t]*+)*+[A-Za-z_]\w*+)"  # `y`, `self.y`, `self . y`
# the right-hand side of `y = y - 1`, `y = (y + 1)` (the left-hand side is read backwards)
_SELF_SHIFT = re.compile(rb"=[\s\\(]*+" + _NAME_CHAIN + rb"[\s\\)]*+[-+]")
_REDUCTIONS = (b"max", b"min", b"amax", b"amin", b"any", b"all", b"sum", b"unique", b"item")
# `y.max(`, `torch.min(`: a reduction called as a method (the regex starts with a literal: fast)
_METHOD_REDUCTION = re.compile(rb"\.[ \t]*+(?:" + b"|".join(_REDUCTIONS) + rb")\s*+\(")
_SPACE = frozenset(b" \t\r\n\f\v")


def _shifted_and_reduced(data: bytes) -> bool:
    """Some name that is shifted (``y -= 1``, ``y = y + 1``) is also reduced: the first name in
    a reduction's argument (``torch.min(y)``, ``max((y.view(-1)))``), or on its line before a
    reduction called as a method (``y.max()``, ``(y - 1)[mask].any()``). A method call on a line
    that goes on from the one before (the line starts with ``.``, ``)`` or ``]``, closes a
    bracket it did not open, or follows a backslash) counts as reducing any name."""
    shifted = _shifted_names(data)
    if not shifted:
        return False
    receivers = re.compile(rb"(?<![\w.])(?:" + b"|".join(map(re.escape, shifted)) + rb")(?!\w)")
    for match in _METHOD_REDUCTION.finditer(data):
        line_start = data.rfind(b"\n", 0, match.start()) + 1
        before = data[line_start:match.start()]
        stripped = before.strip()
        if not stripped or stripped[:1] in b".)]" or _follows_backslash(data, line_start) or \
                before.count(b")") + before.count(b"]") > before.count(b"(") + before.count(b"["):
            return True
        if receivers.search(_compact(before)):
            return True
    # a shifted name opening some bracket's argument; the bracket must be a reduction's
    spaced = [rb"[ \t]*+\.[ \t]*+".join(map(re.escape, name.split(b"."))) for name in shifted]
    for match in re.finditer(rb"\([\s(]*+(?:" + b"|".join(spaced) + rb")(?!\w)", data):
        end = match.start()
        while end and data[end - 1] in _SPACE:
            end -= 1
        start = end
        while start and data[start - 1] in _WORD:
            start -= 1
        if data[start:end] in _REDUCTIONS:
            return True
    return False


def _shifted_names(data: bytes) -> set:
    names = set()
    for operator in (b"+=", b"-="):
        at = data.find(operator)
        while at != -1:
            names.add(_name_before(data, at))
            at = data.find(operator, at + 2)
    for match in _SELF_SHIFT.finditer(data):
        name = _compact(match.group(1))
        if _name_before(data, match.start()) == name:
            names.add(name)
    names.discard(None)
    return names


def _name_before(data: bytes, end: int) -> Optional[bytes]:
    """The dotted name that ends before ``end`` (spaces, ``)`` and line continuations skipped)."""
    stop = end
    while stop and data[stop - 1] in b" \t\\\r\n)":
        stop -= 1
    start, cursor = None, stop
    while True:
        word = cursor
        while word and data[word - 1] in _WORD:
            word -= 1
        if word == cursor:
            break
        start = cursor = word
        while cursor and data[cursor - 1] in b" \t":
            cursor -= 1
        if not cursor or data[cursor - 1] != ord("."):
            break
        cursor -= 1
        while cursor and data[cursor - 1] in b" \t":
            cursor -= 1
    return None if start is None else _compact(data[start:stop])


def _follows_backslash(data: bytes, line_start: int) -> bool:
    end = line_start
    while end and data[end - 1] in b" \t\r\n":
        end -= 1
    return bool(end) and data[end - 1] == ord("\\")


def _compact(text: bytes) -> bytes:
    return _AROUND_DOTS.sub(b".", text)


_AROUND_DOTS = re.compile(rb"[ \t]*\.[ \t]*")


_SCALER = ("scaler", "Scaler", "SCALER")  # timm's `loss_scaler(loss, optimizer)`: backward and step in one call

# `loss.backward()`, Lightning's `manual_backward`, a loss-scaler call
BACKWARD_WRITTEN = evidence("backward", "backward", *_SCALER)
# ... or a call of a function of another file that trains
BACKWARD = or_summary(BACKWARD_WRITTEN, TRAINS)
# `optimizer.step()`, `scaler.step(optimizer)` (schedulers, EMA and DeepSpeed step alike), a loss-scaler call
OPTIMIZER_STEP = evidence("optimizer step", ".step", *_SCALER)
TRAINING = either("training", BACKWARD, OPTIMIZER_STEP)
# `zero_grad()` (method or helper function), `p.grad = None`, `w.grad.zero_()`
GRADIENTS_CLEARED = evidence("gradients cleared", "zero_grad", ".grad")
CLIP = evidence("gradient clipping", "clip_grad")
# `model.eval()`, `model.train(False)`, `model.train(flag)`
MODE_SWITCH = evidence("mode switch", ".eval(", ".train(")
# ... or a call of a function of another file that switches modes (`evaluate(model)` leaves it in eval mode)
EVAL_MODE = or_summary(MODE_SWITCH, SWITCHES_MODES)
# a switch to eval mode itself: `model.eval()`, `model.train(False)`, `model.train(mode=False)`
EVAL_SWITCH = evidence("switch to eval mode",
                       pattern=rb"\.\s*eval\s*\(\s*\)|\.\s*train\s*\([\s(]*(?:mode\s*=[\s(]*)?False\b")
NO_GRAD = evidence("no_grad", "no_grad", "inference_mode", "set_grad_enabled")
# a non-finite check: `isfinite`, `isnan`, names such as `has_nan`/`found_inf`, and `x != x`
NAN_CHECK = evidence("NaN check", "nan", "Nan", "NaN", "NAN", "inf", "Inf", "INF", "finite", "Finite", "FINITE",
                     "overflow", "Overflow", "OVERFLOW", "!=")
LOGIT_LOSS = evidence("raw-logit loss", "cross_entropy", "CrossEntropyLoss", "BCEWithLogitsLoss")
ACTIVATION = evidence("softmax or sigmoid", "softmax", "Softmax", "sigmoid", "Sigmoid")
# `total += loss`, `losses.append(loss)`: a plain (dotted) name summed or appended, the only
# accumulation whose value the loss-keeping rule can follow (`+= loss.item()`, `+= 1` it cannot)
ACCUMULATED_NAME = either(
    "accumulated name",
    evidence("name summed", pattern=rb"\+=[\s\\(]*+" + _NAME_CHAIN + rb"[ \t\\)]*+(?:[\r\n;#)]|$)"),
    evidence("name appended", pattern=rb"\.[ \t]*+append[ \t]*+\([\s(]*+" + _NAME_CHAIN + rb"\s*+[),]"))
# what dataflow.holds_loss recognises: criteria, `*_loss` functions, `.loss` attributes, `nn.*Loss`
LOSS = either("loss", evidence("loss words", "loss", "Loss", "LOSS", "criterion", "Criterion", "CRITERION", "kl_div"),
              LOGIT_LOSS)
LOSS_OR_BACKWARD = either("loss or backward", LOSS, BACKWARD_WRITTEN)
# a shift (`y -= 1`, `y = y + 1`) of a name that a batch reduction reads (`if y.max() > 9`)
SHIFT_OF_REDUCED = evidence("shift of a reduced value", test=_shifted_and_reduced)
LOOP = evidence("loop", "for ", "while ", "for\t", "while\t", "for(", "while(", "training_step")
# what dataflow.unguarded_normalisations divides by or takes the log of
NORMALISATION = evidence("normalisation", "union", "Union", "UNION", ".norm(", "log(")
FP16 = evidence("fp16", "autocast", ".half")
SCALED_BACKWARD = evidence("scaled backward", ".scale", *_SCALER)
FREEZE = evidence("frozen parameters", "requires_grad")
MODULE_CLASS = evidence("nn.Module subclass", "Module")


def _container_value(data: bytes, match: Match) -> bool:
    """The value bound at ``match.end()`` starts a container display (``[``, ``{``, ``(``), or may
    be a tuple without brackets holding a call: a call closed outside any bracket, then a comma
    (``nn.Linear(4, 2, bias=False), nn.Linear(4, 3)``, also when the call spans lines)."""
    start = match.end()
    if data[start:start + 1] in (b"[", b"{", b"("):
        return True
    end = data.find(b"\n", start)
    line = data[start:] if end == -1 else data[start:end]
    if _PLAIN_TEXT.fullmatch(line) and line.count(b"(") == line.count(b")") and line.count(b"[") == line.count(b"]") \
            and line.count(b"{") == line.count(b"}"):
        return _CALL_THEN_COMMA.search(line) is not None  # the value ends on its line (most values)
    return _call_closed_before_comma(data, start)


_PLAIN_TEXT = re.compile(rb"[^'\"#\\]*+")  # no string, comment or line continuation whose brackets to skip
_CALL_THEN_COMMA = re.compile(rb"\)[ \t]*+,")
_COMMA_AFTER = re.compile(rb"[ \t]*+(?:\\\r?\n[ \t]*+)*+,")
_MARK = re.compile(rb"[()\[\]{}'\"#\n\\]")
_STRING = {quote: re.compile(rb"%s(?:[^%s\\\n]|\\[\s\S])*+%s" % (quote, quote, quote)) for quote in (b"'", b'"')}


def _call_closed_before_comma(data: bytes, start: int) -> bool:
    """Whether the statement from ``start`` closes a call with no bracket open, then goes on with a
    comma (the value is a tuple of a call and more); brackets in strings and comments are skipped.
    Where the text cannot be followed (a string left open), the answer is yes."""
    depth, position = 0, start
    while True:
        mark = _MARK.search(data, position)
        if mark is None:
            return False
        at = mark.start()
        character = data[at:at + 1]
        if character in b"([{":
            depth += 1
        elif character in b")]}":
            depth -= 1
            if depth < 0:
                return False
            if depth == 0 and character == b")" and _COMMA_AFTER.match(data, at + 1):
                return True
        elif character == b"#":
            at = data.find(b"\n", at) - 1
            if at < 0:
                return False
        elif character == b"\\":  # a line goes on
            at += 2 if data[at + 1:at + 3] == b"\r\n" else 1
        elif character == b"\n":
            if depth == 0:
                return False
        else:
            triple = character * 3
            if data[at:at + 3] == triple:
                closing = data.find(triple, at + 3)
                at = closing + 2 if closing != -1 else -1
            else:
                string = _STRING[character].match(data, at)
                at = string.end() - 1 if string else -1
            if at < 0:
                return True
        position = at + 1


# a plain container bound to a module attribute: `self.layers = [...]`, `= {...}`, `= (...)`, also
# through other targets (`self.layers = layers = [...]`), and a bare tuple of calls
# `self.heads = nn.Linear(...), nn.Linear(...)`
ATTRIBUTE_CONTAINER = evidence(
    "container attribute",
    pattern=rb"self\.[A-Za-z_]\w*\s*(?::[^=\n]*)?=(?:[\s\\]*+" + _NAME_CHAIN + rb"[ \t]*+=(?!=))*+[\s\\]*+",
    confirm=_container_value)
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
