"""Lint a tree twice, with the rules' byte prerequisites and with every rule forced to run on
every file, and print the findings only one of the two runs gave (none expected).

    python bench/prerequisites_soundness.py CORPUS_DIR
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
from trainlint.config import Config  # noqa: E402
from trainlint.engine import Engine  # noqa: E402
from trainlint.rule import Rule  # noqa: E402


def findings(root: str) -> set:
    return {(f["path"], f["line"], f["code"], f["message"]) for f in Engine(Config(root=root)).lint([root])}


def main() -> int:
    root = sys.argv[1]
    gated = findings(root)
    Rule.may_match = classmethod(lambda cls, data, summaries=frozenset(), scan=None: True)  # worker processes fork after this
    ungated = findings(root)
    for finding in sorted(ungated - gated):
        print("only without prerequisites:", *finding)
    for finding in sorted(gated - ungated):
        print("only with prerequisites:", *finding)
    print(f"{len(gated)} findings with the prerequisites, {len(ungated)} without; {len(gated ^ ungated)} differ")
    return 1 if gated != ungated else 0


if __name__ == "__main__":
    sys.exit(main())
