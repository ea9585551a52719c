"""Where `trainlint check`'s CPU time goes on a tree, measured in one process (`-j 1`).

    python bench/check_phases.py TREE [TREE...]

Each phase is timed with `time.process_time()` around the functions that do it: in the parent,
the byte prerequisites of every file and the syntax check of the files no rule can match; per
analysed file, CPython's `ast.parse`, building the facts, the rules, and the rest of linting a
file (summaries for other files, suppression comments). What is left is discovery, reading,
hashing and the engine's passes. ruff's CPU time on the same tree is printed for scale.
"""
from __future__ import annotations

import ast
import os
import resource
import shutil
import subprocess
import sys
import time
from collections import Counter

import trainlint.analysis
import trainlint.engine
import trainlint.semantics
from trainlint.cli import cli
from trainlint.rule import all_rules

spent: Counter = Counter()


def timed(phase: str, function):
    def wrapper(*args, **kwargs):
        start = time.process_time()
        try:
            return function(*args, **kwargs)
        finally:
            spent[phase] += time.process_time() - start
    return wrapper


def timed_rule(rule):
    check = rule.check

    def wrapper(self, facts):
        start = time.process_time()
        reports = list(check(self, facts))
        spent["rules"] += time.process_time() - start
        return reports
    rule.check = wrapper


def main(trees: list) -> None:
    trainlint.engine.may_match = timed("prerequisites (parent)", trainlint.engine.may_match)
    trainlint.engine.matching_rules = timed("prerequisites (parent)", trainlint.engine.matching_rules)
    trainlint.engine.parses = timed("syntax check of unmatched files (parent)", trainlint.engine.parses)
    trainlint.analysis.lint_bytes = timed("lint a file", trainlint.analysis.lint_bytes)
    ast.parse = timed("ast.parse", ast.parse)
    trainlint.semantics.analyze = timed("build facts", trainlint.semantics.analyze)
    for rule in all_rules().values():
        timed_rule(rule)
    start = time.process_time()
    try:
        cli.main(["check", *trees, "--no-cache", "-q", "-j", "1"], standalone_mode=False)
    except SystemExit:  # exit code 1: findings
        pass
    total = time.process_time() - start
    rest_of_file = spent["lint a file"] - spent["ast.parse"] - spent["build facts"] - spent["rules"]
    rows = [(phase, spent[phase]) for phase in ("prerequisites (parent)", "syntax check of unmatched files (parent)",
                                                "ast.parse", "build facts", "rules")]
    rows += [("rest of linting a file (summaries, suppressions)", rest_of_file),
             ("everything else (discovery, reading, passes)", total - sum(s for _, s in rows) - rest_of_file),
             ("total", total)]
    ruff = shutil.which("ruff", path=os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]))
    if ruff:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([ruff, "check", "--no-cache", "--isolated", "--exit-zero", "-q", *trees], check=True,
                       stdout=subprocess.DEVNULL)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        rows.append(("ruff check (default rules), for scale",
                     after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime))
    print("| phase | CPU s | share |\n|---|---:|---:|")
    for phase, seconds in rows:
        print(f"| {phase} | {seconds:.1f} | {100 * seconds / total:.0f}% |")


if __name__ == "__main__":
    main(sys.argv[1:])
