"""Values and the autograd graph: what was detached or computed without gradient, which activation
produced a tensor, what may be zero, what surely holds a tensor."""
from __future__ import annotations

import ast
from typing import Iterator, List, Optional, Tuple

from .boundaries import is_accumulation_count
from .model import Event, FunctionFacts, Kind, Loop, Unpacked
from .roles import constructor_of
from .values import binding_before, nonzero_almost_surely
from .syntax import (
    assigned_names, called_names, calls_in, dotted, last_part, name_words, names_in, receiver,
)

_DETACHING_METHODS = {"detach", "item", "numpy", "tolist"}

_REBUILDERS = {"tensor", "as_tensor", "Tensor", "FloatTensor", "from_numpy", "Variable"}



def outside_graph(fn: FunctionFacts, expr: ast.AST, line: int, depth: int = 0) -> Optional[ast.AST]:
    """The node that rebuilt ``expr`` outside the autograd graph (``torch.tensor(loss.item(),
    requires_grad=True)``, ``loss.detach()``, ``loss.data``), or None when gradient can flow."""
    if isinstance(expr, ast.Call):
        callee = fn.file.qualify(dotted(expr.func) or "")
        if callee.startswith("torch") and last_part(callee) in _REBUILDERS or last_part(callee) == "Variable":
            # from constants it is a new leaf the graph starts at (`w = torch.tensor(2.0,
            # requires_grad=True)`, `Variable(torch.Tensor([3]), requires_grad=True)`), not a value
            # rebuilt from the loss
            return None if all(_reads_no_variable(fn, a) for a in expr.args) else expr
        node = expr.func
        while isinstance(node, ast.Attribute):
            if node.attr in _DETACHING_METHODS:
                return expr
            node = node.value.func if isinstance(node.value, ast.Call) else node.value
        return None
    if isinstance(expr, ast.Attribute) and expr.attr == "data":
        return expr
    if isinstance(expr, ast.BinOp):  # outside the graph only if no operand carries it
        parts = (expr.left, expr.right)
        rebuilt = [outside_graph(fn, part, line, depth) for part in parts]
        if all(r is not None or isinstance(p, ast.Constant) for r, p in zip(rebuilt, parts)):
            return next((r for r in rebuilt if r is not None), None)
        return None
    name = dotted(expr)
    if name is not None and "." not in name and depth < 3:
        value = binding_before(fn, name, line)
        if isinstance(value, ast.expr):
            return outside_graph(fn, value, value.lineno, depth + 1)
    return None



def _reads_no_variable(fn: FunctionFacts, node: ast.AST) -> bool:
    """Whether ``node`` is computed from constants alone: literals, and calls of imported
    functions on them (``torch.Tensor([3])``, ``torch.ones(2, 2)``), reading no variable."""
    return all(name.split(".")[0] in fn.file.imports for name in names_in(node))



def bound_outside(fn: FunctionFacts, name: str, loop: Loop) -> bool:
    start, end = loop.node.lineno, getattr(loop.node, "end_lineno", loop.node.lineno)
    return any(not start <= getattr(v, "lineno", start) <= end for v in fn.all_bindings(name))



def backpropagated(fn: FunctionFacts) -> set:
    """Names whose values reach a ``backward()`` of ``fn``: the losses it is called on and the names
    they are computed from (``meta_loss = task_losses / n; meta_loss.backward()`` backpropagates
    ``task_losses``)."""
    losses = set()
    for backward in fn.events_of(Kind.BACKWARD):
        loss = backward.detail.get("loss")  # the expression, for a backward() of this function's own
        losses |= names_in(loss) if isinstance(loss, ast.AST) and not backward.via else {backward.target} - {None}
    return sources_of(fn, losses)


def _unpacked(value):
    """The expression an element of a tuple unpacking comes from (``x`` of ``(x, y), z = batch``)."""
    while isinstance(value, Unpacked):
        value = value.value
    return value


def sources_of(fn: FunctionFacts, names: set, values_only: bool = False) -> set:
    """``names`` and the names their values are computed from in ``fn``, transitively (with
    ``values_only``, as ``names_in`` reads them)."""
    reached = set(names)
    frontier = list(reached)
    while frontier:
        for value in fn.assignments.get(frontier.pop(), ()):
            for name in names_in(_unpacked(value), values_only):
                if name not in reached:
                    reached.add(name)
                    frontier.append(name)
    return reached


def reset_inside(fn: FunctionFacts, name: str, loop: Loop) -> bool:
    """Whether ``name`` is re-bound (not just added to) somewhere in the body of ``loop``."""
    start, end = loop.node.lineno, getattr(loop.node, "end_lineno", loop.node.lineno)
    return any(start <= getattr(v, "lineno", 0) <= end and not isinstance(v, ast.AugAssign)
               for v in fn.all_bindings(name))



_ACTIVATIONS = {"softmax": "softmax", "sigmoid": "sigmoid"}



def activation_of(fn: FunctionFacts, expr: ast.AST, line: int, depth: int = 0) -> Optional[Tuple[str, ast.AST]]:
    """("softmax" | "sigmoid", node) when ``expr`` is the output of that activation:
    ``F.softmax(x, -1)``, ``torch.sigmoid(x)``, ``x.softmax(-1)``, or a name bound to one."""
    if isinstance(expr, ast.Call):
        callee = fn.file.qualify(dotted(expr.func) or "")
        leaf = last_part(callee) if callee else (expr.func.attr if isinstance(expr.func, ast.Attribute) else "")
        if leaf in _ACTIVATIONS and (callee.startswith("torch") or isinstance(expr.func, ast.Attribute)):
            return _ACTIVATIONS[leaf], expr
        module = _activation_module(fn, expr)
        if module is not None:  # self.head(x) with self.head = nn.Sequential(..., nn.Softmax(1))
            return module
        return _returned_activation(fn, expr, None, depth)
    name = dotted(expr)
    if name is not None and "." not in name and depth < 2:
        value = binding_before(fn, name, line, reader=expr)  # not `pred = sigmoid(pred)` of another branch
        if isinstance(value, Unpacked) and isinstance(value.value, ast.Call):  # pred, aux = model(x)
            return _returned_activation(fn, value.value, value.index, depth)
        if isinstance(value, ast.expr):
            return activation_of(fn, value, value.lineno, depth + 1)
    return None


def _returned_activation(fn: FunctionFacts, call: ast.Call, element: Optional[int],
                         depth: int) -> Optional[Tuple[str, ast.AST]]:
    """The activation every return of the module's ``forward`` that ``call`` runs ends in (the
    ``element``-th item of the returned tuple, when the result is unpacked), and where the first
    of them is applied."""
    forward = _local_forward(fn, call)
    if forward is None or depth >= 2:
        return None
    found = []
    for ret in forward.returns:
        value = ret.value
        if element is not None:
            if not isinstance(value, ast.Tuple) or element >= len(value.elts):
                return None
            value = value.elts[element]
        found.append(activation_of(forward, value, ret.lineno, depth + 1) if value is not None else None)
    if found and all(found) and len({f[0] for f in found}) == 1:
        return found[0]
    return None


_ACTIVATION_MODULES = {"Softmax": "softmax", "Sigmoid": "sigmoid"}


def _activation_module(fn: FunctionFacts, call: ast.Call) -> Optional[Tuple[str, ast.AST]]:
    """("softmax" | "sigmoid", the layer) when ``call`` runs a module that ends in that
    activation: bound to ``nn.Softmax(dim=1)``, or to an ``nn.Sequential(...)`` whose last layer
    is one."""
    name = dotted(call.func)
    found = [_last_activation(fn, value) for value in (fn.all_bindings(name) if name else [])]
    if found and all(found) and len({f[0] for f in found}) == 1:
        return found[0]
    return None


def _last_activation(fn: FunctionFacts, value: ast.AST) -> Optional[Tuple[str, ast.AST]]:
    value = receiver(value)  # nn.Sequential(...).to(device) is the Sequential
    if not isinstance(value, ast.Call):
        return None
    callee = fn.file.qualify(dotted(value.func) or "")
    if not callee.startswith("torch.nn."):
        return None
    if last_part(callee) == "Sequential" and value.args and not isinstance(value.args[-1], ast.Starred):
        return _last_activation(fn, value.args[-1])
    kind = _ACTIVATION_MODULES.get(last_part(callee))
    return (kind, value) if kind else None



def _local_forward(fn: FunctionFacts, call: ast.Call) -> Optional[FunctionFacts]:
    """The ``forward`` of a module class of this file that ``call`` runs (``model(x)`` with
    ``model = Classifier()``)."""
    name = dotted(call.func)
    constructed = constructor_of(fn, name) if name else None
    if constructed is None or constructed.element is not None:
        return None
    return fn.file.methods.get(f"{constructed.callee}.forward")



def computed_without_grad(fn: FunctionFacts, expr: ast.AST, line: int, depth: int = 0) -> Optional[ast.AST]:
    """The value, bound inside a ``torch.no_grad()`` block, that flows into ``expr`` (on a path
    that runs both: not the no-grad forward of an ``else`` whose test the training branch repeats)."""
    for name in names_in(expr, values_only=True):
        if "." in name or depth > 3:
            continue
        value = binding_before(fn, name, line, reader=expr)
        if not isinstance(value, ast.expr) or outside_graph(fn, value, value.lineno) is not None:
            continue  # made a number or a new tensor (`.numpy()`, `torch.tensor(...)`): a constant by design
        if id(value) in fn.no_grad_values:
            return value
        found = computed_without_grad(fn, value, value.lineno, depth + 1)
        if found is not None:
            return found
    return None



def target_beside_its_prediction(fn: FunctionFacts, loss: ast.AST, no_grad_value: ast.AST, modules: set) -> bool:
    """Whether a value computed under no_grad meets, as an argument of one call on the way to
    ``loss``, a forward of the same ``modules`` computed with grad (``consistency(model(x_strong),
    y_weak)`` with ``y_weak = model(x_weak)`` under no_grad): a target held constant on purpose
    (UDA, FixMatch, self-distillation); the loss still trains the model through the prediction."""
    targets = {name for name, values in fn.assignments.items() if any(v is no_grad_value for v in values)}
    expressions = [loss] + [_unpacked(v) for name in sources_of(fn, names_in(loss))
                            for v in fn.assignments.get(name, ())]
    for call in (c for expression in expressions for c in calls_in(expression)):
        arguments = list(call.args) + [k.value for k in call.keywords]
        reaching = [sources_of(fn, names_in(argument)) & targets for argument in arguments]
        if any(reaching) and any(not reached and _forward_with_grad(fn, argument, modules)
                                 for argument, reached in zip(arguments, reaching)):
            return True
    return False


def _forward_with_grad(fn: FunctionFacts, expr: ast.AST, modules: set) -> bool:
    values = [expr] + [_unpacked(v) for name in sources_of(fn, names_in(expr)) for v in fn.assignments.get(name, ())
                       if id(v) not in fn.no_grad_values]
    return any(dotted(call.func) in modules for value in values for call in calls_in(value))


_EPS_WORDS = {"eps", "epsilon", "smooth", "tiny", "delta"}




def own_nodes(fn: FunctionFacts) -> List[ast.AST]:
    """Every node of ``fn``'s own body (nested functions and classes excluded); collected once
    per function, as several questions (each DDP wrapping, each freeze) walk them all."""
    nodes = fn._indexes.get("own nodes")
    if nodes is None:
        scopes = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
        nodes = fn._indexes["own nodes"] = []
        stack = [node for node in getattr(fn.node, "body", []) if not isinstance(node, scopes)]
        while stack:
            node = stack.pop()
            nodes.append(node)
            stack.extend(child for child in ast.iter_child_nodes(node) if not isinstance(child, scopes))
    return nodes


def own_statements(fn: FunctionFacts) -> Iterator[ast.stmt]:
    """Every statement of ``fn``'s own body, in order (nested functions and classes excluded):
    ``own_nodes`` without the expressions, for questions about statements only."""
    scopes = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    stack = list(reversed(getattr(fn.node, "body", [])))
    while stack:
        statement = stack.pop()
        if isinstance(statement, scopes):
            continue
        yield statement
        blocks = [getattr(statement, "body", ())]
        blocks += [part.body for name in ("handlers", "cases") for part in getattr(statement, name, ())]
        blocks += [getattr(statement, name, ()) for name in ("orelse", "finalbody")]
        stack.extend(child for block in reversed(blocks) for child in reversed(block))



def guarded_against_zero(fn: FunctionFacts, expr: ast.AST, line: int, depth: int = 0) -> bool:
    """Whether an expression (or what its name is bound to) adds an epsilon or clamps:
    ``union + eps``, ``x.clamp(min=1e-6)``, ``torch.clamp_min(d, eps)``, ``max(n, 1)``."""
    for node in ast.walk(expr):
        if isinstance(node, ast.Call):
            leaf = last_part(dotted(node.func) or "") or (node.func.attr if isinstance(node.func, ast.Attribute) else "")
            if leaf in ("clamp", "clamp_min", "clamp_", "clip", "max", "maximum", "fmax", "where", "nan_to_num"):
                return True
        name = dotted(node)
        if name is not None:
            if set(name_words(name)) & _EPS_WORDS:
                return True
            if depth < 2 and "." not in name:
                value = binding_before(fn, name, line)
                if isinstance(value, ast.expr) and guarded_against_zero(fn, value, value.lineno, depth + 1):
                    return True
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) and any(
                isinstance(side, ast.Constant) and isinstance(side.value, float) and 0 < side.value < 1e-2
                for side in (node.left, node.right)):
            return True
    return False



def unguarded_normalisations(fn: FunctionFacts) -> Iterator[Tuple[ast.AST, str]]:
    """(node, suggestion) for divisions and logs of tensors that can be 0 with no epsilon, in code
    that computes a loss (a function named for one, or one that calls backward() or a criterion):
    ``inter / union``, ``torch.log(probs)`` of a softmax, ``(losses - min_losses).log()``,
    ``x / x.norm(...)``. Metrics and post-processing produce no gradient and are left alone."""
    if "loss" in name_words(fn.name):
        nodes = own_nodes(fn)
    elif any(e.kind in (Kind.BACKWARD, Kind.CRITERION) for e in fn.own_events):
        nodes = (node for statement in _feeding_a_loss(fn) for node in ast.walk(statement))
    else:
        return
    for node in nodes:
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            divisor = node.right
            divisor_name = dotted(divisor)
            if divisor_name and "union" in name_words(divisor_name) and not guarded_against_zero(fn, divisor, line):
                yield node, f"add an epsilon: ({ast.unparse(node.left)} + eps) / ({divisor_name} + eps)"
            elif isinstance(divisor, ast.Call) and isinstance(divisor.func, ast.Attribute) \
                    and divisor.func.attr == "norm" and ast.dump(divisor.func.value) == ast.dump(node.left) \
                    and not guarded_against_zero(fn, divisor, line) and not nonzero_almost_surely(fn, node.left, line):
                yield node, "use F.normalize(x, dim=..., eps=...), which never divides by 0"
        elif isinstance(node, ast.Call):
            callee = fn.file.qualify(dotted(node.func) or "")
            leaf = last_part(callee) or (node.func.attr if isinstance(node.func, ast.Attribute) else "")
            if leaf != "log" or callee.startswith(("math.", "numpy.", "np.")):
                continue  # scalar and NumPy logs are not in the autograd graph
            if dotted(node.func) and fn.file.local_function(dotted(node.func), fn) is not None:
                continue  # `log(t, eps)` of this file is that function (its own body is checked on its own)
            argument = node.args[0] if node.args and dotted(node.func) else (
                node.func.value if isinstance(node.func, ast.Attribute) and not node.args else None)
            if argument is None or guarded_against_zero(fn, argument, line):
                continue
            if isinstance(argument, ast.BinOp) and isinstance(argument.op, ast.Sub):
                yield node, "add an epsilon: the difference is 0 at its minimum, and log(0) = -inf"
            elif activation_of(fn, argument, line) is not None and activation_of(fn, argument, line)[0] == "softmax":
                yield node, "use log_softmax: softmax probabilities underflow to 0, and log(0) = -inf"



def _feeding_a_loss(fn: FunctionFacts) -> Iterator[ast.stmt]:
    """The simple statements of ``fn`` whose values can reach a loss: those that call backward(),
    bind a name backward() or a ``return`` reaches, or return. (An assertion's reference value in
    a test, a metric logged beside the training step, reach none.)"""
    statements = [node for node in own_statements(fn) if isinstance(node, _SIMPLE_STATEMENTS)]
    returned_names = {name for s in statements if isinstance(s, ast.Return) and s.value is not None
                      for name in names_in(s.value)}
    reached = backpropagated(fn) | sources_of(fn, returned_names)
    for statement in statements:
        if isinstance(statement, ast.Return) or any(
                isinstance(call.func, ast.Attribute) and call.func.attr == "backward" for call in calls_in(statement)):
            yield statement
        elif any(name in reached for target in _targets(statement) for name in assigned_names(target)):
            yield statement


_SIMPLE_STATEMENTS = (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Expr, ast.Return)


def _targets(statement: ast.stmt) -> list:
    if isinstance(statement, ast.Assign):
        return statement.targets
    return [statement.target] if isinstance(statement, (ast.AugAssign, ast.AnnAssign)) else []


_TENSOR_FACTORIES = {
    "tensor", "as_tensor", "from_numpy", "zeros", "ones", "empty", "full", "rand", "randn", "randint", "arange",
    "linspace", "logspace", "eye", "stack", "cat", "zeros_like", "ones_like", "empty_like", "full_like",
    "rand_like", "randn_like", "randint_like", "randperm", "where", "Tensor", "FloatTensor", "LongTensor",
}

_DATA_WORDS = {"loader", "dataloader", "dl", "batches", "data", "dataset", "iterator"}



def is_known_tensor(fn: FunctionFacts, name: Optional[str], seen: frozenset = frozenset()) -> bool:
    """Whether ``name`` surely holds a tensor: built by a torch factory, or unpacked from the
    batches of a data loader (``for x, y in loader``). Modules never qualify. ``x = x.to(device)``
    moves what ``x`` already holds: its other bindings say what that is."""
    if not name or "." in name or name in seen:
        return False
    values = [v for v in fn.all_bindings(name) if dotted(receiver(v)) != name]
    return bool(values) and all(_tensor_value(fn, v, seen | {name}) for v in values)



def _tensor_value(fn: FunctionFacts, value: ast.AST, seen: frozenset) -> bool:
    if isinstance(value, ast.Call):
        callee = fn.file.qualify(dotted(value.func) or "")
        if callee.startswith("torch.") and callee.count(".") == 1 and last_part(callee) in _TENSOR_FACTORIES:
            return True
        if isinstance(value.func, ast.Attribute) and value.func.attr in ("to", "cuda", "float", "half", "long"):
            return _tensor_value(fn, value.func.value, seen) or is_known_tensor(fn, dotted(value.func.value), seen)
        return False
    path = []
    while isinstance(value, Unpacked):  # for i, (x, y) in enumerate(loader): x is [-1, 1, 0]
        path.insert(0, value.index)
        value = value.value
    if len(path) < 2 or not isinstance(value, ast.expr):
        return False
    iterable = value
    if isinstance(iterable, ast.Call) and dotted(iterable.func) == "enumerate" and iterable.args:
        if path[1] != 1:
            return False  # the counter
        iterable, path = iterable.args[0], path[1:]
        if len(path) < 2:
            return False  # `for i, batch in enumerate(loader)`: batch may be a dict or an object
    words = set()
    for name in names_in(iterable):
        words.update(name_words(name))
    return bool(words & _DATA_WORDS) and not called_names(iterable) - {"iter", "tqdm", "enumerate"} - {""}


_SCALING_METHODS = {"div", "div_", "mul", "mul_", "true_divide", "divide", "multiply"}
# methods through which a loss keeps its scale (``loss.mean()``, ``scaler.scale(loss)``)
_SCALE_KEEPING_METHODS = {"mean", "sum", "float", "double", "half", "to", "squeeze", "view", "reshape", "clone",
                          "contiguous", "scale"}
_COLLECTING_FUNCTIONS = {"sum", "stack", "cat", "torch.stack", "torch.cat", "torch.sum", "torch.mean"}


def loss_rescaled(fn: FunctionFacts, loss: ast.AST, depth: int = 0) -> bool:
    """Whether the loss value ``loss`` is divided or multiplied by anything on its way from the
    criterion (``/ k``, ``/= num_tokens``, ``* (1 / k)``, ``.div_(k)``), following the names it
    was built from and the returns of this file's functions. A call trainlint cannot see that is
    handed an accumulation count counts as rescaling (it may divide inside)."""
    if depth > 6 or loss is None:
        return False
    if isinstance(loss, Unpacked):
        return loss_rescaled(fn, loss.value, depth + 1)
    if isinstance(loss, ast.AugAssign):
        return isinstance(loss.op, (ast.Div, ast.Mult)) or loss_rescaled(fn, loss.value, depth + 1)
    if isinstance(loss, ast.BinOp):
        return isinstance(loss.op, (ast.Div, ast.Mult, ast.FloorDiv)) or any(
            loss_rescaled(fn, side, depth + 1) for side in (loss.left, loss.right))
    if isinstance(loss, ast.UnaryOp):
        return loss_rescaled(fn, loss.operand, depth + 1)
    if isinstance(loss, ast.IfExp):
        return any(loss_rescaled(fn, branch, depth + 1) for branch in (loss.body, loss.orelse))
    if isinstance(loss, ast.Subscript):
        return loss_rescaled(fn, loss.value, depth + 1)
    if isinstance(loss, ast.Call):
        return _call_rescales(fn, loss, depth)
    name = dotted(loss)
    if name is None:
        return False
    values = fn.all_bindings(name)
    if not values and "." in name:  # `outputs.loss`: what `outputs` is
        return loss_rescaled(fn, ast.Name(id=name.split(".", 1)[0], ctx=ast.Load()), depth + 1)
    return any(loss_rescaled(fn, value, depth + 1) for value in values)


def _call_rescales(fn: FunctionFacts, call: ast.Call, depth: int) -> bool:
    func = call.func
    name = dotted(func) or ""
    if isinstance(func, ast.Attribute):
        if func.attr in _SCALING_METHODS:
            return True
        if func.attr in _SCALE_KEEPING_METHODS:
            return any(loss_rescaled(fn, part, depth + 1) for part in [func.value] + list(call.args[:1]))
    if name in _COLLECTING_FUNCTIONS:
        return any(loss_rescaled(fn, arg, depth + 1) for arg in call.args[:1])
    if any(is_accumulation_count(arg) for arg in list(call.args) + [k.value for k in call.keywords]):
        return True
    callee = fn.file.local_function(name, fn) if name else None
    if callee is not None:
        return any(ret.value is not None and loss_rescaled(callee, ret.value, depth + 1) for ret in callee.returns)
    # a call that hands a loss on (`amp.scale_loss(loss, optimizer)`): the loss it was given
    return any(loss_rescaled(fn, arg, depth + 1) for arg in call.args if "loss" in name_words(dotted(arg) or ""))


def gradients_rescaled(fn: FunctionFacts) -> bool:
    """Whether the function scales gradients by hand before stepping (``p.grad /= k``,
    ``p.grad.div_(k)``, ``torch._foreach_div_(grads, k)``): the same effect as dividing the loss."""
    for node in own_nodes(fn):
        if isinstance(node, ast.AugAssign) and isinstance(node.op, (ast.Div, ast.Mult)) \
                and last_part(dotted(node.target) or "") == "grad":
            return True
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in ("div_", "mul_") and last_part(dotted(node.func.value) or "") == "grad":
                return True
            if node.func.attr in ("_foreach_div_", "_foreach_mul_"):
                return True
    return False


_LOSS_FUNCTIONS = {"cross_entropy", "binary_cross_entropy", "binary_cross_entropy_with_logits", "kl_div"}
_LOSS_WORDS = {"loss", "criterion"}
_NO_GRAD = {"no_grad", "inference_mode"}


def holds_loss(fn: FunctionFacts, name: str, line: int, depth: int = 0) -> bool:
    """Whether ``name`` holds, at ``line``, the result of a criterion (``criterion(out, y)``,
    ``F.cross_entropy(...)``, a call of an ``nn.*Loss`` instance, ``model(**batch).loss``) or an
    arithmetic combination of such results; not the criterion itself (``l2loss = LpLoss(d=2)``)."""
    value = binding_before(fn, name, line)
    return value is not None and _is_loss_expression(fn, value, line, depth)


def _is_loss_expression(fn: FunctionFacts, value: ast.AST, line: int, depth: int) -> bool:
    if depth > 3:
        return False
    if isinstance(value, ast.BinOp):
        return any(_is_loss_expression(fn, side, line, depth + 1) for side in (value.left, value.right))
    if isinstance(value, ast.Attribute) and value.attr == "loss":
        return True  # `outputs.loss`, `model(**batch).loss`
    if isinstance(value, ast.Name):
        return holds_loss(fn, value.id, getattr(value, "lineno", line), depth + 1)
    if not isinstance(value, ast.Call):
        return False
    callee = dotted(value.func) or ""
    leaf = last_part(fn.file.qualify(callee))
    if leaf[:1].isupper():
        return False  # `LpLoss(d=2)`, `nn.CrossEntropyLoss()`: builds a criterion; calling it gives a loss
    if leaf in _LOSS_FUNCTIONS or leaf.endswith("_loss") or set(name_words(callee)) & _LOSS_WORDS:
        return True
    built = constructor_of(fn, callee) if callee else None
    return built is not None and last_part(built.callee).endswith("Loss")


def frees_activations(backward: Event, kept: Event) -> bool:
    """Whether ``backward`` frees the activations of the loss ``kept`` holds, in every iteration
    that keeps it: it runs whenever ``kept`` does (no guard of its own) and does not retain the
    graph. A total formed before it then holds graph nodes only, as one formed after it does."""
    call = backward.origin
    retains = isinstance(call, ast.Call) and any(
        k.arg in ("retain_graph", "create_graph") and not (isinstance(k.value, ast.Constant) and not k.value.value)
        for k in call.keywords)
    loop = kept.innermost_loop
    return not retains and all(kept.has_guard(g) for g in backward.guards_within(loop))


def clips_at_the_scaled_threshold(clip: Event) -> bool:
    """The clip (or the helper that clips) is given the loss scaler's current scale
    (``max_norm * scaler.get_scale()``, ``clip_gradients(..., scale=scaler.get_scale())``): scaled
    gradients clipped at a scaled threshold, as unscaling first would."""
    call = clip.origin  # the clip itself, also when it was spliced in from a helper of this file
    return isinstance(call, ast.Call) and any(last_part(name) == "get_scale"
                                              for argument in list(call.args) + [k.value for k in call.keywords]
                                              for name in called_names(argument))


def under_no_grad(event: Event) -> bool:
    """Whether the event runs inside a ``no_grad``/``inference_mode`` block, its own or, for an
    event spliced in from a helper, the one around the helper's call."""
    return event.in_with("no-grad")


def runs_with_grad(fn: FunctionFacts, event: Event, depth: int = 0) -> bool:
    """Whether an event of ``fn`` surely runs with autograd recording: not under ``no_grad`` /
    ``inference_mode`` (a block, a decorator, ``set_grad_enabled``) and, for a function, called in
    this file from at least one place that records too. A function no code of this file calls is
    not known to record (its callers may wrap it in ``no_grad``)."""
    if under_no_grad(event) or any(last_part(d) in _NO_GRAD for d in fn.decorators):
        return False
    if any(isinstance(node, ast.Call) and last_part(dotted(node.func) or "") == "set_grad_enabled"
           for node in own_nodes(fn)):
        return False
    if fn is fn.file.module:
        return True
    return depth < 3 and any(runs_with_grad(caller, call, depth + 1) for caller, call in fn.file.call_sites(fn))
