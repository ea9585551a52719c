"""Function summaries: what a call contributes at its call site.

A helper defined in the same file is spliced in whole: its events appear at the call site, with
its internal guards and its parameters replaced by the caller's arguments. A function defined in
another linted file contributes its *summary* (which mode it leaves each argument in, whether it
trains, whether it returns an eval-mode model), looked up in the project index, which the engine
fills across the linted tree.
"""
from __future__ import annotations

import ast
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

from .model import Event, FunctionFacts, Guard, Kind, Loop, Unpacked
from .prerequisites import SWITCHES_MODES, TRAINS
from .syntax import dotted, held_object

MAX_DEPTH = 4


@dataclass
class FunctionSummary:
    # str(index) -> "train" | "eval" | None (`model.train(flag)`: a mode the code does not show)
    param_modes: Dict[str, Optional[str]] = field(default_factory=dict)
    trains: bool = False  # runs backward() (directly or through local helpers)
    modes_before_training: List[str] = field(default_factory=list)  # indexes whose mode is set before any backward()
    returns_eval_model: bool = False

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "FunctionSummary":
        return cls(**data)

    @property
    def empty(self) -> bool:
        return not (self.param_modes or self.trains or self.returns_eval_model)

    @property
    def says(self) -> frozenset:
        """What this summary adds at a call site, in the terms of the byte prerequisites."""
        return frozenset((TRAINS,) * self.trains + (SWITCHES_MODES,) * bool(self.param_modes))


def expand_events(fn: FunctionFacts, depth: int = 0, active: tuple = ()) -> List[Event]:
    events: List[Event] = []
    for event in fn.own_events:
        if event.kind != Kind.CALL:
            events.append(event)
            continue
        callee = fn.file.local_function(event.target, fn, event.detail.get("call"))
        if callee is not None:
            if callee in active or depth >= MAX_DEPTH or callee is fn:
                events.append(event)
                continue
            arguments = arguments_of(callee, event.detail["call"], event.detail.get("bound", False))
            inner = expand_events(callee, depth + 1, active + (fn,))
            events.extend(_splice(event, e, arguments, fn, callee) for e in inner)
            continue
        summary = None if event.target.startswith("self.") else fn.file.index.summary(fn.file.qualify(event.target))
        if summary is None:
            events.append(event)
        else:
            events.extend(_summary_events(event, summary))
    return events


def ask_about_calls(facts) -> None:
    """Ask the index about every call of the file into other files, the questions the rules would
    ask while splicing events: the second pass then lints the file again with the answers (a loop
    whose training and evaluation both happen in imported helpers shows neither in its own words)."""
    for fn in [facts.module] + facts.functions:
        for event in fn.own_events:
            if event.kind == Kind.CALL and not event.target.startswith("self.") \
                    and facts.local_function(event.target, fn, event.detail.get("call")) is None:
                facts.index.summary(facts.qualify(event.target))


def arguments_of(callee: FunctionFacts, call: ast.Call, bound: bool) -> Dict[str, ast.expr]:
    """Parameter -> argument expression; ``bound`` calls (``self.f()``, ``obj.f()``) skip ``self``."""
    params = list(callee.params)
    if bound and params[:1] == ["self"]:
        params = params[1:]
    bound = {}
    for param, arg in zip(params, call.args):
        if isinstance(arg, ast.Starred):
            break
        bound[param] = arg
    for keyword in call.keywords:
        if keyword.arg is not None:
            bound[keyword.arg] = keyword.value
    return bound


def _map_name(name: Optional[str], arguments: Dict[str, ast.expr], callee: FunctionFacts) -> Optional[str]:
    """A callee's name as the caller sees it: parameters become the arguments, the callee's own
    locals get a name no caller variable can have, globals and ``self`` stay."""
    if not name:
        return name
    head, dot, rest = name.partition(".")
    if head in arguments:
        replaced = held_object(arguments[head])
        if replaced is None:  # an expression's result (`f(task.ema_copy())`): no caller name holds it
            return f"{callee.name}.<argument>.{name}"
        return replaced + dot + rest
    if head in callee.assignments and head not in callee.params:
        return f"{callee.name}.<locals>.{name}"
    return name


def _splice(call_event: Event, inner: Event, arguments: Dict[str, ast.expr], caller: FunctionFacts,
            callee: FunctionFacts) -> Event:
    caller_loops = call_event.loops
    frames = list(call_event.frames)
    for frame in inner.frames:
        if isinstance(frame, Loop) and frame.node is callee.node:
            continue  # the implicit per-batch loop of a hook: the caller's own loop stands for it
        if isinstance(frame, Guard) and isinstance(frame.test, ast.Name) and frame.test.id in arguments:
            # `if update: opt.step()` inside a helper called with update=(i + 1) % k == 0
            frame = Guard(arguments[frame.test.id], frame.positive, frame.node, caller, caller_loops)
        frames.append(frame)
    return Event(
        inner.kind, _map_name(inner.target, arguments, callee), call_event.node, tuple(frames),
        call_event.order + inner.order, inner.origin, (call_event.target,) + inner.via, inner.detail,
    )


def _summary_events(call_event: Event, summary: FunctionSummary) -> List[Event]:
    call = call_event.detail["call"]
    events = []

    def add(kind, target, detail):
        events.append(Event(kind, target, call_event.node, call_event.frames, call_event.order + (len(events),),
                            call_event.node, (call_event.target,), detail))

    def add_modes(before_training: bool):
        for index, mode in sorted(summary.param_modes.items()):
            position = int(index)
            if position < len(call.args) and (index in summary.modes_before_training) == before_training:
                target = held_object(call.args[position])
                if target is not None:
                    add(Kind.MODE, target, {"mode": mode})

    add_modes(before_training=True)  # `model.train()` and then the epoch: the helper trains in that mode
    if summary.trains:
        add(Kind.BACKWARD, None, {"external": True})
    add_modes(before_training=False)
    return events


def may_summarise(facts) -> bool:
    """Whether any function of the file can have a summary that is not empty: a backward() or a
    mode switch of its own (``return model.eval()`` is one), of a helper spliced into it (whose
    events are its own), or at a call answered by another file's summary. Most files have none;
    then no function's spliced events need to be built for it."""
    return bool(facts.index.summaries_say) or any(
        event.kind in (Kind.BACKWARD, Kind.MODE) for fn in [facts.module] + facts.functions for event in fn.own_events)


def summarize(fn: FunctionFacts, returns_eval_model: bool) -> FunctionSummary:
    """The summary another file sees of ``fn``."""
    summary = FunctionSummary(returns_eval_model=returns_eval_model)
    params = fn.params[1:] if fn.class_name is not None and fn.params[:1] == ["self"] else fn.params
    final: Dict[str, Optional[Event]] = {}
    first_backward: Optional[Event] = None
    for event in fn.events:
        if event.kind == Kind.BACKWARD:
            summary.trains = True
            first_backward = first_backward or event
        elif event.kind == Kind.MODE:
            param = _parameter_switched(fn, event.target, params)
            if param is not None:  # a mode set under a condition leaves the argument's mode unknown
                final[param] = event if not event.guards() else None
    for param, event in final.items():
        if event is not None:
            summary.param_modes[str(params.index(param))] = event.detail["mode"]
            if first_backward is not None and event.order < first_backward.order:
                summary.modes_before_training.append(str(params.index(param)))
    return summary


def _parameter_switched(fn: FunctionFacts, target: Optional[str], params: List[str]) -> Optional[str]:
    """The parameter whose mode a switch of ``target`` sets: the parameter itself, or a container
    parameter whose every element a loop switches (``for module in module_list: module.train()``)."""
    if target in params:
        return target
    values = fn.assignments.get(target or "", ())
    sources = {dotted(v.value) for v in values if isinstance(v, Unpacked) and v.index == -1}
    if len(sources) == 1 and len(values) == 1 and sources <= set(params):
        return sources.pop()
    return None


class RecordingIndex:
    """The index during the first pass: answers nothing and remembers what was asked, so that
    the engine can answer from the other files and lint again only the files that asked."""

    summaries_say: frozenset = frozenset()  # it answers nothing

    def __init__(self):
        self.asked: set = set()

    def summary(self, qualified: str) -> Optional[FunctionSummary]:
        self.asked.add(("summary", qualified))
        return None

    def builder_uses(self, key: str) -> list:
        self.asked.add(("uses", key))
        return []


class AnsweringIndex:
    """The index during the second pass: the answers the engine resolved across the tree."""

    def __init__(self, answers: dict):
        self.answers = answers
        # what the answered summaries add at call sites: the prerequisites they can stand for
        self.summaries_say = frozenset().union(*(FunctionSummary.from_json(answer).says
                                                 for (kind, _), answer in answers.items() if kind == "summary"))

    def summary(self, qualified: str) -> Optional[FunctionSummary]:
        found = self.answers.get(("summary", qualified))
        return FunctionSummary.from_json(found) if found else None

    def builder_uses(self, key: str) -> list:
        """How the linted tree uses the builder ``key``: "untrained" / "other" per call."""
        return list(self.answers.get(("uses", key), ()))
