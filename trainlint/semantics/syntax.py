"""Small, allocation-light helpers over Python's ``ast`` used by the semantic layer."""
from __future__ import annotations

import ast
import re
from typing import Iterator, List, Optional

_NESTED_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
_NOT_WALKED = _NESTED_SCOPES + (ast.Name, ast.Constant, ast.expr_context, ast.operator, ast.cmpop, ast.unaryop,
                                ast.boolop)


def dotted(node: Optional[ast.AST]) -> Optional[str]:
    """``a.b.c`` for a Name/Attribute chain, else None."""
    # asked millions of times: exact type tests (the ast module has no subclasses of these),
    # and a bare name answered at once
    kind = type(node)
    if kind is _NAME:
        return node.id
    if kind is not _ATTRIBUTE:
        return None
    parts = []
    while kind is _ATTRIBUTE:
        parts.append(node.attr)
        node = node.value
        kind = type(node)
    if kind is not _NAME:
        return None
    parts.append(node.id)
    parts.reverse()
    return ".".join(parts)


_NAME, _ATTRIBUTE = ast.Name, ast.Attribute


def root_name(node: Optional[ast.AST]) -> Optional[str]:
    """The dotted name at the base of an expression: ``loss`` for ``loss.mean() / 2``."""
    while True:
        name = dotted(node)
        if name is not None:
            return name
        if isinstance(node, ast.Attribute):
            node = node.value
        elif isinstance(node, ast.Call):
            node = node.func
            if isinstance(node, ast.Attribute):
                node = node.value
        elif isinstance(node, ast.Subscript):
            node = node.value
        elif isinstance(node, ast.BinOp):
            node = node.left
        else:
            return None


# Module methods that return the module itself: `model.to(device).train()` is `model`.
RETURNS_SELF = frozenset({"to", "cuda", "cpu", "half", "float", "double", "bfloat16", "train", "eval",
                          "requires_grad_", "apply", "share_memory", "to_empty"})


def receiver(node: Optional[ast.AST]) -> Optional[ast.AST]:
    """The expression whose object ``node`` evaluates to, through methods that return their
    receiver: ``Net()`` for ``Net().to(device).eval()``."""
    while isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in RETURNS_SELF:
        node = node.func.value
    return node


def held_object(node: Optional[ast.AST]) -> Optional[str]:
    """The dotted name of the object an expression evaluates to: ``model``, ``self.net``, and
    ``model.to(device).eval()`` (methods that return their receiver). None for any other call: a
    method's result is not its receiver (``task.get_eval_model()`` is not ``task``)."""
    return dotted(receiver(node))


# Functions that build, create or load something (a model, by default, for TL101).
BUILDER_NAME = re.compile(r"^_*(build|create|make|load|construct|instantiate|init|initialize|setup|get|prepare)(_|$|[A-Z])")


def is_division(node: ast.AST) -> bool:
    """``a / b`` or ``a // b``."""
    return isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Div, ast.FloorDiv))


def last_part(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def name_words(name: str) -> list:
    """Split an identifier into lower-case words: ``gradAccumSteps`` -> grad, accum, steps."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", last_part(name))
    return [w for w in spaced.lower().split("_") if w]


def calls_in(node: ast.AST) -> Iterator[ast.Call]:
    """Calls inside an expression or simple statement, not entering nested scopes. A hand-rolled
    walk: this is the semantic layer's hottest loop, so leaves (names, constants, load/store
    contexts) are never pushed and fields that never hold a node (names, operators) never read."""
    stack = [node]
    pop, push, walked = stack.pop, stack.append, _WALKED.get
    while stack:
        current = pop()
        kind = type(current)
        if kind is ast.Call:
            yield current
        fields = _NODE_FIELDS.get(kind)
        if fields is None:
            fields = _NODE_FIELDS[kind] = tuple(f for f in kind._fields if f not in _SCALAR_FIELDS)
        for name in fields:
            value = getattr(current, name, None)  # nodes built by hand may lack optional fields
            if type(value) is list:
                for item in value:
                    walks = walked(type(item))
                    if walks or walks is None and _learn_walk(item):
                        push(item)
            else:
                walks = walked(type(value))
                if walks or walks is None and _learn_walk(value):
                    push(value)


# fields that hold a string, a number or an operator/context node, never a node to walk into
_SCALAR_FIELDS = frozenset({"ctx", "op", "attr", "id", "arg", "name", "module", "kind", "level", "simple",
                            "conversion", "is_async", "type_comment"})
_NODE_FIELDS: dict = {}  # node class -> its fields that may hold nodes
_WALKED: dict = {}  # class -> whether calls_in walks into its instances (one dict look-up, not two isinstance)


def _learn_walk(value) -> bool:
    """Whether calls_in walks into values of this class (asked once per class)."""
    kind = type(value)
    walks = _WALKED[kind] = issubclass(kind, ast.AST) and not issubclass(kind, _NOT_WALKED)
    return walks


def names_in(node: ast.AST, values_only: bool = False) -> set:
    """Dotted names read in an expression (``args.accum``, ``i``), not entering nested scopes; with
    ``values_only``, not those it only measures (``torch.ones_like(p)``, ``x.size(0)``) nor those
    that only choose between values (the test of ``a if args.flag else b``)."""
    found = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if values_only and _measures_only(current):
            continue
        name = dotted(current)
        if name is not None:
            found.add(name)
            continue
        for child in ast.iter_child_nodes(current):
            if not isinstance(child, _NESTED_SCOPES) \
                    and not (values_only and isinstance(current, ast.IfExp) and child is current.test):
                stack.append(child)
    return found


# calls and attributes that read only a tensor's shape, dtype or device, never its values
_SHAPE_ONLY_CALLS = frozenset({"ones_like", "zeros_like", "full_like", "empty_like", "rand_like", "randn_like",
                               "randint_like", "len"})
_SHAPE_ONLY_ATTRIBUTES = frozenset({"shape", "size", "dim", "ndim", "numel", "device", "dtype", "new_ones",
                                    "new_zeros", "new_full", "new_empty"})


def _measures_only(node: ast.AST) -> bool:
    if isinstance(node, ast.Call):
        return last_part(dotted(node.func) or "") in _SHAPE_ONLY_CALLS
    return isinstance(node, ast.Attribute) and node.attr in _SHAPE_ONLY_ATTRIBUTES


def called_names(node: ast.AST) -> set:
    return {dotted(c.func) or "" for c in calls_in(node)}


def int_constant(node: ast.AST) -> Optional[int]:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = int_constant(node.operand)
        return None if inner is None else -inner
    return None


def number_constant(node: ast.AST) -> Optional[float]:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return float(node.value)
    return None


def text(node: ast.AST) -> str:
    return ast.unparse(node)


def argument(call: ast.Call, position: int, keyword: str) -> Optional[ast.expr]:
    """The argument passed at ``position`` or as ``keyword=``."""
    for kw in call.keywords:
        if kw.arg == keyword:
            return kw.value
    if position < len(call.args) and not any(isinstance(a, ast.Starred) for a in call.args[: position + 1]):
        return call.args[position]
    return None


def assigned_names(target: ast.AST) -> Iterator[str]:
    """Dotted names bound by an assignment target (tuples unpacked)."""
    if isinstance(target, (ast.Tuple, ast.List)):
        for element in target.elts:
            yield from assigned_names(element)
    elif isinstance(target, ast.Starred):
        yield from assigned_names(target.value)
    else:
        name = dotted(target)
        if name is not None:
            yield name
        elif isinstance(target, ast.Subscript):
            base = dotted(target.value)
            if base is not None:
                yield base


def leaves_loop(body: list) -> bool:
    """True when a block always ends the enclosing loop (break/return/raise, never continue)."""
    if not body:
        return False
    last = body[-1]
    if isinstance(last, (ast.Break, ast.Return, ast.Raise)):
        return True
    if isinstance(last, ast.If):
        return leaves_loop(last.body) and leaves_loop(last.orelse)
    return False


def terminates(body: list) -> bool:
    """True when a block always leaves the enclosing iteration (continue/break/return/raise)."""
    if not body:
        return False
    last = body[-1]
    if isinstance(last, (ast.Continue, ast.Break, ast.Return, ast.Raise)):
        return True
    if isinstance(last, ast.If):
        return terminates(last.body) and terminates(last.orelse)
    return False


def if_paths(root: ast.AST) -> dict:
    """For every node inside ``root`` (nested scopes excluded), by id: each ``if`` statement around
    it -> the block holding it ("body" or "orelse"). Two nodes in different blocks of one ``if``
    never both run."""
    paths: dict = {}
    blocks = ("body", "orelse", "finalbody", "handlers")

    def visit(statements: list, path: dict) -> None:
        for statement in statements:
            if isinstance(statement, _NESTED_SCOPES):
                continue
            nested = {id(child) for block in blocks for child in getattr(statement, block, None) or ()}
            stack = [statement]
            while stack:
                node = stack.pop()
                paths[id(node)] = path
                stack.extend(child for child in ast.iter_child_nodes(node)
                             if id(child) not in nested and not isinstance(child, _NESTED_SCOPES))
            for block in blocks:
                inner = {**path, statement: block} if isinstance(statement, ast.If) else path
                visit(getattr(statement, block, None) or [], inner)

    visit(getattr(root, "body", []), {})
    return paths


def exclusive_nodes(root: ast.AST, first: ast.AST, second: ast.AST, paths: dict) -> bool:
    """Whether two nodes never both run in one pass through ``root``: they sit in different blocks
    of one ``if``, or in opposite blocks of two ``if`` statements that ask the same question
    (``if not validation: ... else: <first>`` then ``if not validation: <second>``), one whose
    names ``root`` never binds and that calls nothing, so that both get the same answer.
    ``paths``: ``if_paths(root)`` (FunctionFacts.exclusive keeps it per function)."""
    one, other = paths.get(id(first), {}), paths.get(id(second), {})
    if any(other.get(statement, block) != block for statement, block in one.items()):
        return True
    tests = {}
    for statement, block in other.items():
        tests.setdefault(ast.dump(statement.test), set()).add(block)
    for statement, block in one.items():
        asked = tests.get(ast.dump(statement.test), set())
        if asked - {block} and _same_answer_throughout(root, statement.test):
            return True
    return False


def _same_answer_throughout(root: ast.AST, test: ast.expr) -> bool:
    """A test that calls nothing and reads only names ``root`` never binds (parameters, settings):
    asked twice in one pass, it gets the same answer."""
    if any(isinstance(node, (ast.Call, ast.Await, ast.NamedExpr)) for node in ast.walk(test)):
        return False
    bound = {name for node in ast.walk(root) for name in _names_bound_by(node)}
    return not any(name in bound or name.split(".")[0] in bound for name in names_in(test))


def _names_bound_by(node: ast.AST) -> List[str]:
    targets = []
    if isinstance(node, (ast.Assign,)):
        targets = node.targets
    elif isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.For, ast.AsyncFor, ast.NamedExpr)):
        targets = [node.target]
    elif isinstance(node, ast.withitem) and node.optional_vars is not None:
        targets = [node.optional_vars]
    elif isinstance(node, (ast.Global, ast.Nonlocal)):
        return list(node.names)
    return [name for target in targets for name in assigned_names(target)]


_COMPARISONS = {
    ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b, ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b, ast.Gt: lambda a, b: a > b, ast.GtE: lambda a, b: a >= b,
    ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
}
_SINGLETONS = (None, True, False)
LITERALS = (int, float, str, bytes, type(None))  # bool is an int
UNKNOWN = object()


def static_truth(test: ast.expr, constant_of) -> Optional[bool]:
    """Whether a test is true or false whatever the run (``False``, ``0``, ``world_size > 1`` where
    ``constant_of("world_size")`` is 1), or None when that depends on the run. ``constant_of``
    maps a name to the one literal value it can hold, or to UNKNOWN."""
    value = _static_value(test, constant_of)
    return None if value is UNKNOWN else bool(value)


def _static_value(node: ast.expr, constant_of):
    if isinstance(node, ast.Constant):
        return node.value if isinstance(node.value, LITERALS) else UNKNOWN
    if isinstance(node, ast.Name):
        return constant_of(node.id)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        operand = _static_value(node.operand, constant_of)
        return UNKNOWN if operand is UNKNOWN else not operand
    if isinstance(node, ast.BoolOp):
        # truth only: `a and b` is false as soon as one operand is, whatever the others
        truths = [static_truth(value, constant_of) for value in node.values]
        decisive = isinstance(node.op, ast.Or)
        if decisive in truths:
            return decisive
        return UNKNOWN if None in truths else not decisive
    if isinstance(node, ast.Compare):
        values = [_static_value(part, constant_of) for part in [node.left, *node.comparators]]
        if UNKNOWN in values:
            return UNKNOWN
        for op, left, right in zip(node.ops, values, values[1:]):
            if isinstance(op, (ast.Is, ast.IsNot)):
                if not any(left is s for s in _SINGLETONS) or not any(right is s for s in _SINGLETONS):
                    return UNKNOWN  # `1 is 1` depends on the interpreter
                holds = (left is right) == isinstance(op, ast.Is)
            else:
                try:
                    holds = _COMPARISONS[type(op)](left, right)
                except (TypeError, KeyError):
                    return UNKNOWN
            if not holds:
                return False
        return True
    return UNKNOWN


def names_bound_once(function: ast.AST) -> set:
    """Names that have exactly one binding in a function and are neither parameters nor declared
    global or nonlocal. Bindings in nested scopes count too, which can only shrink the answer."""
    counts: dict = {}
    declared = set()
    for node in ast.walk(function):
        if node is function:
            continue
        if isinstance(node, ast.Name):
            bound = None if isinstance(node.ctx, ast.Load) else node.id
        elif isinstance(node, ast.arg):
            bound = node.arg
        elif isinstance(node, ast.alias):
            bound = (node.asname or node.name).split(".")[0]
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            declared.update(node.names)
            continue
        else:  # definitions, `except E as name`, match captures
            bound = getattr(node, "name", None) or getattr(node, "rest", None)
        if isinstance(bound, str):
            counts[bound] = counts.get(bound, 0) + 1
    return {name for name, count in counts.items() if count == 1} - declared
