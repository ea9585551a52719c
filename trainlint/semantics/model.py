"""The facts the semantic layer derives from a file, and that every rule queries.

A function's body becomes a list of training *events* in program order. Each event carries the
*frames* that enclose it: loops, guards (an ``if`` test with the branch taken, including the
implicit guard after an early ``continue``/``break``/``return``/``raise``), ``with`` blocks and
exception handlers (a guard "this handler caught an exception"). Events of local helpers are spliced in at their call sites, so rules see what
one iteration of a loop really does.
"""
from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from .syntax import exclusive_nodes, if_paths


class Kind:
    BACKWARD = "backward"
    OPT_STEP = "optimizer-step"
    ZERO_GRAD = "zero-grad"
    SCHED_STEP = "scheduler-step"
    EMA_UPDATE = "ema-update"
    MODE = "mode"  # detail["mode"]: "train" | "eval" | None (restored / unknown)
    FREEZE = "freeze"  # x.requires_grad_(False)
    RESCALE = "loss-rescale"
    UNSCALE = "unscale"  # scaler.unscale_(optimizer)
    SCALER_UPDATE = "scaler-update"  # scaler.update()
    CLIP = "clip-grad"  # clip_grad_norm_ / clip_grad_value_
    SKIP = "skip"  # continue / break / return inside a loop: the rest of the iteration does not run
    HALF = "half"  # x.half(): fp16 weights
    SET_EPOCH = "set-epoch"  # sampler.set_epoch(epoch)
    CONSTRUCT = "construct"  # an optimizer, scheduler, grad scaler or distributed sampler is built
    ACCUMULATE = "accumulate"  # total += value, items.append(value): detail["value"]
    DISCARDED_MOVE = "discarded-move"  # `x.to(device)` as a statement: the result is thrown away
    CRITERION = "criterion"  # a loss on logits called: detail["expects"] (the activation it applies), ["input"]
    SHIFT = "shift"  # x = x - c, x += c: detail["delta"]
    CALL = "call"  # call of a function that may have a summary
    FRAMEWORK_STEP = "framework-step"  # DeepSpeed engine.step, mmengine update_params: owns its bookkeeping


class GuardKind:
    BOUNDARY = "accumulation-boundary"
    EPOCH_END = "end-of-epoch"
    INVARIANT = "loop-invariant"
    DEBUG = "debug-or-first-iteration"
    NAN = "non-finite-check"
    OTHER = "other"


@dataclass(eq=False)
class Loop:
    node: ast.AST
    parent: Optional["Loop"]
    assigned: set = field(default_factory=set)  # dotted names bound anywhere in the body
    invoked: set = field(default_factory=set)  # dotted names called like functions in the body
    drained: Optional[set] = None  # containers the loop empties (values.consumed_inside), found when first asked

    @property
    def line(self) -> int:
        return self.node.lineno


@dataclass(eq=False)
class Guard:
    test: ast.expr
    positive: bool  # the branch in which the test is truthy
    node: ast.AST  # the `if` (or the call that supplied the condition)
    scope: "FunctionFacts"  # where the names of the test resolve
    enclosing_loops: Tuple[Loop, ...] = ()
    # the implicit guard after a branch that leaves the loop (`except StopIteration: break`,
    # `if done: return`): it ends the loop rather than making the rest of an iteration
    # conditional, so it is not a condition of the events after it (only of exclusivity)
    loop_exit: bool = False
    _classified: Optional[Tuple[str, bool]] = None

    @property
    def kind(self) -> str:
        return self._classification()[0]

    @property
    def holds(self) -> bool:
        """True in the branch where the classified condition (boundary, NaN, debug...) is met."""
        kind, sense = self._classification()
        return self.positive == sense

    def _classification(self) -> Tuple[str, bool]:
        if self._classified is None:
            from .guards import classify_guard

            self._classified = classify_guard(self)
        return self._classified

    @property
    def line(self) -> int:
        return self.node.lineno


@dataclass(eq=False)
class WithBlock:
    node: ast.AST
    kind: str  # "accumulate" | "no-grad" | "framework" | "other"


Frame = object  # Loop | Guard | WithBlock


@dataclass(eq=False)
class Event:
    kind: str
    target: Optional[str]  # dotted receiver/subject: optimizer, model, loss variable, callee
    node: ast.AST  # where a finding about it is reported, in the function being analysed
    frames: Tuple[Frame, ...]
    order: Tuple[int, ...]
    origin: ast.AST  # the node itself (differs from `node` for events spliced in from helpers)
    via: Tuple[str, ...] = ()  # helpers through which the event was reached
    detail: Dict = field(default_factory=dict)

    @property
    def written(self) -> Optional[str]:
        """The target as the code where the event is written spells it: a helper's local
        ``loss``, not the ``step.<locals>.loss`` its callers see."""
        if self.target is None:
            return None
        return re.split(r"\.<(?:locals|argument)>\.", self.target)[-1]

    @property
    def line(self) -> int:
        return self.node.lineno

    @functools.cached_property
    def loops(self) -> Tuple[Loop, ...]:
        return tuple(f for f in self.frames if isinstance(f, Loop))

    @property
    def innermost_loop(self) -> Optional[Loop]:
        loops = self.loops
        return loops[-1] if loops else None

    def in_loop(self, loop: Loop) -> bool:
        return any(f is loop for f in self.frames)

    def guards(self) -> List[Guard]:
        """The conditions under which the event runs (loop exits are not conditions)."""
        return [f for f in self.frames if isinstance(f, Guard) and not f.loop_exit]

    @property
    def recovers_from_an_error(self) -> bool:
        """Whether the event runs in an ``except`` handler: after a step failed (an out-of-memory
        micro-batch), not on the training path."""
        return any(isinstance(guard.node, ast.ExceptHandler) and guard.positive for guard in self.guards())

    def guards_within(self, loop: Loop) -> List[Guard]:
        """Guards that vary from one iteration of ``loop`` to the next (inside its body)."""
        for index, frame in enumerate(self.frames):
            if frame is loop:
                return [f for f in self.frames[index + 1:] if isinstance(f, Guard) and not f.loop_exit]
        return []

    def has_guard(self, guard: Guard) -> bool:
        return any(f is guard for f in self.frames)

    def in_with(self, kind: str) -> bool:
        return any(isinstance(f, WithBlock) and f.kind == kind for f in self.frames)


def exclusive(a: Event, b: Event) -> bool:
    """No single pass through the code runs both events (opposite branches of one test)."""
    for guard in (f for f in a.frames if isinstance(f, Guard)):
        for other in (f for f in b.frames if isinstance(f, Guard)):
            if other.node is guard.node and other.test is guard.test and other.positive != guard.positive:
                return True
    return False


@dataclass(eq=False)
class FunctionFacts:
    name: str
    qualname: str
    node: ast.AST  # FunctionDef / AsyncFunctionDef / Module for module-level code
    parent: Optional["FunctionFacts"]
    class_name: Optional[str]
    params: List[str]
    file: "FileFacts"
    own_events: List[Event] = field(default_factory=list)
    loops: List[Loop] = field(default_factory=list)
    # name -> values bound to it, in order: expressions, Unpacked elements, or AugAssign statements
    assignments: Dict[str, List[ast.AST]] = field(default_factory=dict)
    returns: List[ast.Return] = field(default_factory=list)
    return_orders: Dict[int, Tuple[int, ...]] = field(default_factory=dict)
    with_blocks: List[Tuple[WithBlock, Tuple[Frame, ...]]] = field(default_factory=list)  # with the frames around
    no_grad_values: set = field(default_factory=set)  # ids of values bound inside a no-grad block
    _events: Optional[List[Event]] = None
    _indexes: Dict = field(default_factory=dict)  # lazily built look-ups over `events`: cost stays linear

    @property
    def line(self) -> int:
        return getattr(self.node, "lineno", 1)

    @property
    def decorators(self) -> List[str]:
        from .syntax import dotted

        names = []
        for dec in getattr(self.node, "decorator_list", []):
            target = dec.func if isinstance(dec, ast.Call) else dec
            names.append(self.file.qualify(dotted(target) or ""))
        return names

    @property
    def events(self) -> List[Event]:
        """Own events with the events of called helpers spliced in at the call sites."""
        if self._events is None:
            from .summaries import expand_events

            self._events = expand_events(self)
        return self._events

    def if_paths(self) -> dict:
        """syntax.if_paths of this function's body, worked out once."""
        paths = self._indexes.get("if paths")
        if paths is None:
            paths = self._indexes["if paths"] = if_paths(self.node)
        return paths

    def exclusive(self, first: ast.AST, second: ast.AST) -> bool:
        """Whether two nodes of this function never both run in one pass (syntax.exclusive_nodes)."""
        return exclusive_nodes(self.node, first, second, self.if_paths())

    def owns(self, loop: Optional[Loop]) -> bool:
        """Whether ``loop`` is written in this function (not in a helper spliced into it): each
        finding is reported once, by the function whose loop it is about."""
        own = self._indexes.get("own loops")
        if own is None:
            own = self._indexes["own loops"] = {id(loop) for loop in self.loops}
        return id(loop) in own

    def events_of(self, *kinds: str) -> List[Event]:
        """The events of these kinds, in program order."""
        found = self._indexes.get(kinds)
        if found is None:
            found = self._indexes[kinds] = [e for e in self.events if e.kind in kinds]
        return found

    def events_in(self, loop: Optional[Loop], *kinds: str) -> List[Event]:
        """The events of these kinds inside ``loop`` (anywhere in its body, nested loops and
        spliced helpers included), in program order; all of them when ``loop`` is None."""
        if loop is None:
            return self.events_of(*kinds)
        by_loop = self._indexes.get(("by loop",) + kinds)
        if by_loop is None:
            by_loop = self._indexes[("by loop",) + kinds] = {}
            for event in self.events_of(*kinds):
                for frame in event.frames:
                    if isinstance(frame, Loop):
                        by_loop.setdefault(id(frame), []).append(event)
        return by_loop.get(id(loop), [])

    def binding(self, name: str) -> Optional[ast.AST]:
        """The value last bound to ``name`` in this function, its enclosing functions, its class or
        the module."""
        scope: Optional[FunctionFacts] = self
        while scope is not None:
            values = scope.assignments.get(name)
            if values:
                return values[-1]
            scope = scope.parent
        if name.startswith("self.") and self.class_name is not None:
            values = self.file.class_attributes.get(self.class_name, {}).get(name)
            if values:
                return values[-1]
        values = self.file.module.assignments.get(name) if self.file.module is not self else None
        return values[-1] if values else None

    def all_bindings(self, name: str) -> List[ast.AST]:
        found: List[ast.AST] = []
        scope: Optional[FunctionFacts] = self
        while scope is not None:
            found.extend(scope.assignments.get(name, ()))
            scope = scope.parent
        if name.startswith("self.") and self.class_name is not None:
            found.extend(self.file.class_attributes.get(self.class_name, {}).get(name, ()))
        if self.file.module is not self:
            found.extend(self.file.module.assignments.get(name, ()))
        return found


@dataclass(eq=False)
class Unpacked:
    """A value bound by tuple unpacking: element ``index`` of ``value``."""

    value: ast.AST
    index: int
    lineno: int = 0


@dataclass(eq=False)
class FileFacts:
    path: str
    tree: ast.Module
    module_name: str
    package: str
    imports: Dict[str, str]  # local name -> qualified name
    functions: List[FunctionFacts]
    module: FunctionFacts  # module-level code as a pseudo-function
    class_attributes: Dict[str, Dict[str, List[ast.AST]]]  # class -> self.attr -> values
    class_bases: Dict[str, List[str]]
    hints: object
    index: object  # the project index: summaries of functions in other files
    role_cache: Dict = field(default_factory=dict)
    _functions_named: Optional[Dict[str, List[FunctionFacts]]] = None
    _methods: Optional[Dict[str, FunctionFacts]] = None

    def dispose(self) -> None:
        """Break the reference cycles between the facts (a function's facts point to the file's,
        its events' guards back to the function), so that they are freed as soon as the caller
        lets go, without waiting for the cyclic garbage collector."""
        for fn in [self.module] + self.functions:
            fn.__dict__.clear()
        self.__dict__.clear()

    def evaluates_graph_tensors(self) -> bool:
        """The file imports TensorFlow (or Theano) and not torch: there ``x.eval()`` computes a
        tensor's value (TF1's ``Tensor.eval()``), it switches no module to eval mode."""
        roots = {qualified.split(".")[0] for qualified in self.imports.values()}
        return bool(roots & {"tensorflow", "theano"}) and "torch" not in roots

    def qualify(self, name: str) -> str:
        """Resolve the first component of a dotted name through imports."""
        if not name:
            return name
        head, _, rest = name.partition(".")
        target = self.imports.get(head)
        if target is None:
            return name
        return f"{target}.{rest}" if rest else target

    def local_function(self, name: str, caller: FunctionFacts,
                       call: Optional[ast.AST] = None) -> Optional[FunctionFacts]:
        """The function defined in this file that a call to ``name`` from ``caller`` reaches:
        ``self.method``, a closure of the caller or of an enclosing function, or a module-level
        function. Where one scope defines the name more than once (in two branches of an ``if``),
        the definition that reaches ``call``, when it is given."""
        if name.startswith("self.") and name.count(".") == 1 and caller.class_name is not None:
            return self.methods.get(f"{caller.class_name}.{name[5:]}")
        if "." in name:
            return self.methods.get(name)
        candidates = self.functions_named.get(name, ())
        if not candidates:
            return None
        scope: Optional[FunctionFacts] = caller
        while scope is not None:
            defined = [fn for fn in candidates if fn.parent is scope]
            if defined:
                return _reaching(defined, scope, call)
            scope = scope.parent
        defined = [fn for fn in candidates if fn.parent is None and fn.class_name is None]
        return _reaching(defined, self.module, call) if defined else None

    def call_sites(self, callee: FunctionFacts) -> List[Tuple[FunctionFacts, Event]]:
        """(caller, call event) for every call of ``callee`` written in this file."""
        return [(caller, event) for caller in [self.module] + self.functions for event in caller.own_events
                if event.kind == Kind.CALL
                and self.local_function(event.target or "", caller, event.detail.get("call")) is callee]

    @property
    def methods(self) -> Dict[str, FunctionFacts]:
        """Methods by ``Class.method``."""
        if self._methods is None:
            self._methods = {fn.qualname: fn for fn in self.functions if fn.class_name and fn.parent is None}
        return self._methods

    @property
    def functions_named(self) -> Dict[str, List[FunctionFacts]]:
        if self._functions_named is None:
            self._functions_named = {}
            for fn in self.functions:
                self._functions_named.setdefault(fn.name, []).append(fn)
        return self._functions_named


def functions(facts: FileFacts) -> List[FunctionFacts]:
    """The module body and every function of the file: the scopes rules look at."""
    return [facts.module] + facts.functions


def _reaching(definitions: List[FunctionFacts], scope: FunctionFacts, call: Optional[ast.AST]) -> FunctionFacts:
    """Of several definitions of one name in a scope, the last one above ``call`` that is not in a
    branch exclusive with it (the first definition when that cannot be told)."""
    if len(definitions) == 1 or call is None:
        return definitions[0]
    above = [fn for fn in definitions if fn.node.lineno < call.lineno and not scope.exclusive(fn.node, call)]
    return max(above, key=lambda fn: fn.node.lineno) if above else definitions[0]
