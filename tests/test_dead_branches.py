"""Branches settled before the run are cut from the tree before any fact is built: the `if` marked
`# dead` loses its body, the `else` marked `# dead` is dropped, any other `if` is kept whole."""
import ast
import textwrap

import pytest

from trainlint.config import Config
from trainlint.semantics import analyze
from trainlint.semantics.summaries import RecordingIndex

CASES = {
    "literal": """
        def f():
            if False:  # dead
                work()
            if 0:  # dead
                work()
            if None or "":  # dead
                work()
    """,
    "local-bound-once": """
        def f():
            world_size = 1
            if world_size > 1:  # dead
                work()
            if world_size == 1:
                work()
            else:  # dead
                work()
            every = 0
            if every and step % every == 0:  # dead
                work()
            if not every or cond:
                work()
            else:  # dead
                work()
    """,
    "decided-by-the-run": """
        import os

        def f(size=1):
            if size > 1:
                work()
            twice = 1
            if cond:
                twice = 2
            if twice > 1:
                work()
            flag = True
            if flag and cond:
                work()
            n = 1
            if n is 1:
                work()
            from_env = int(os.environ["WORLD_SIZE"])
            if from_env > 1:
                work()

        def g():
            for k in range(3):
                pass
            k = 0
            if k:
                work()
            shared = 0

            def bump():
                nonlocal shared
                shared = 1
            if shared:
                work()

        def h():
            global LIMIT
            LIMIT = 0
            if LIMIT:
                work()

        DEBUG = False
        if DEBUG:
            work()
    """,
}


@pytest.mark.parametrize("name", CASES)
def test_only_settled_branches_are_cut(name):
    source = textwrap.dedent(CASES[name])
    lines = source.splitlines()
    tree = ast.parse(source)
    ifs = [node for node in ast.walk(tree) if isinstance(node, ast.If)]
    # the `if` line, and the `else:` line (the one after the body) where there is an else
    expected = [(lines[node.lineno - 1], lines[node.body[-1].end_lineno] if node.orelse else "") for node in ifs]
    analyze(tree, "case.py", "case", "", Config().hints, RecordingIndex())
    for node, (if_line, else_line) in zip(ifs, expected):
        assert (len(node.body) == 1 and isinstance(node.body[0], ast.Pass)) == if_line.endswith("# dead"), if_line
        assert (else_line != "" and not node.orelse) == else_line.endswith("# dead"), else_line
