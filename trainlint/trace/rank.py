"""One rank of a traced `torchrun` job: `torchrun ... -m trainlint.trace.rank SCRIPT ARGS`.
Traces the script like `trainlint trace` does and writes the report to the folder the parent
named, one file per rank; the parent merges them."""
import json
import os
import sys

from . import trace


def main() -> None:
    script, args = sys.argv[1], sys.argv[2:]
    folder = os.environ["TRAINLINT_TRACE_DIR"]
    timeout = float(os.environ["TRAINLINT_TRACE_TIMEOUT"]) if os.environ.get("TRAINLINT_TRACE_TIMEOUT") else None
    report = trace(script, args, steps=int(os.environ.get("TRAINLINT_TRACE_STEPS", "8")), timeout=timeout)
    rank = os.environ.get("RANK", "0")
    with open(os.path.join(folder, f"rank{rank}.json"), "w", encoding="utf-8") as handle:
        json.dump(dict(report, rank=int(rank)), handle)


if __name__ == "__main__":
    main()
