"""How much of the facts-building an exact lazy build could skip: an upper bound, before writing one.

    python bench/lazy_facts_estimate.py TREE

A lazy build would walk a function only when something needs its facts. Over the files the rules'
byte prerequisites admit, this counts the bytes of function bodies (each byte once: a nested
function's bytes are its own, not its parent's) whose facts no selected rule could need, under
four ever-tighter needs:

- "own text": the function's own text meets some admitted rule's prerequisites;
- "+ helpers": or the text of a function it may call does (helpers are spliced into their
  callers, so their text counts; "may call" = the helper's name appears in the caller's text,
  followed transitively);
- "+ summaries": or that text shows a `backward()`, an eval/train switch or a train-mode method
  (what a function's summary for other files records);
- "+ builder uses": or the function calls a builder-named function (`build_`, `load_`, `get_`...),
  whose uses every analysed file reports for TL101.

The last line is what an exact lazy build must still walk.
"""
from __future__ import annotations

import ast
import os
import re
import sys
import warnings
from collections import Counter

from trainlint.rule import all_rules
from trainlint.semantics.prerequisites import BACKWARD, EVAL_MODE, Scan

BUILDER_CALL = re.compile(
    rb"(?<![\w])_*(?:build|create|make|load|construct|instantiate|init|initialize|setup|get|prepare)(?:[_A-Z]\w*)?\s*\(")
TRAIN_MODE_CALL = re.compile(rb"(?i:train)\w*\s*\(")
WORD = re.compile(rb"[A-Za-z_]\w*")
FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


def python_files(root: str):
    for directory, _, names in os.walk(root):
        for name in names:
            if name.endswith(".py"):
                yield os.path.join(directory, name)


def function_texts(data: bytes, tree: ast.AST):
    """(name, text, words, bytes of its own) for every function, nested ones included."""
    starts = [0]
    for line in data.split(b"\n"):
        starts.append(starts[-1] + len(line) + 1)
    for node in ast.walk(tree):
        if isinstance(node, FUNCTIONS):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            text = data[starts[first - 1]:starts[node.end_lineno]]
            nested = sum(starts[n.end_lineno] - starts[n.lineno - 1] for n in _directly_nested(node))
            yield node.name.encode(), text, set(WORD.findall(text)), len(text) - nested


def _directly_nested(outer: ast.AST):
    """The functions inside ``outer`` with no other function between them."""
    stack = list(ast.iter_child_nodes(outer))
    while stack:
        node = stack.pop()
        if isinstance(node, FUNCTIONS):
            yield node
        else:
            stack.extend(ast.iter_child_nodes(node))


def main(root: str) -> None:
    warnings.simplefilter("ignore")
    rules = all_rules()
    counted: Counter = Counter()
    for path in python_files(root):
        with open(path, "rb") as handle:
            data = handle.read()
        scan = Scan(data)
        admitted = [code for code in sorted(rules) if rules[code].may_match(data, frozenset(), scan)]
        if not admitted:
            continue
        try:
            tree = ast.parse(data)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        counted["admitted file bytes"] += len(data)
        functions = list(function_texts(data, tree))
        by_name: dict = {}
        for index, (name, *_) in enumerate(functions):
            by_name.setdefault(name, set()).add(index)
        calls = [{j for word in words & by_name.keys() for j in by_name[word] if j != i}
                 for i, (_, _, words, _) in enumerate(functions)]
        for index, (name, text, words, own_bytes) in enumerate(functions):
            reach, stack = {index}, [index]
            while stack:
                for callee in calls[stack.pop()] - reach:
                    reach.add(callee)
                    stack.append(callee)
            reach_text = b"\n".join(functions[i][1] for i in reach)
            own = any(rules[code].may_match(text, frozenset(), {}) for code in admitted)
            helpers = any(rules[code].may_match(reach_text, frozenset(), {}) for code in admitted)
            summaries = helpers or BACKWARD.found_in(reach_text) or EVAL_MODE.found_in(reach_text) \
                or bool(TRAIN_MODE_CALL.search(reach_text))
            builders = summaries or bool(BUILDER_CALL.search(text))
            counted["function bytes"] += own_bytes
            for need, holds in (("own text", own), ("+ helpers", helpers), ("+ summaries", summaries),
                                ("+ builder uses", builders)):
                counted[need] += own_bytes * holds
    total = counted["function bytes"]
    print(f"admitted files: {counted['admitted file bytes'] / 1e6:.1f} MB, of which function bodies "
          f"{total / 1e6:.1f} MB")
    print("| a function must be walked when | MB | share of function bytes |\n|---|---:|---:|")
    for need in ("own text", "+ helpers", "+ summaries", "+ builder uses"):
        print(f"| {need} | {counted[need] / 1e6:.1f} | {100 * counted[need] / total:.0f}% |")


if __name__ == "__main__":
    main(sys.argv[1])
