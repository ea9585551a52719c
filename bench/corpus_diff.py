"""Re-lint the real-code corpus and compare with the reviewed baseline.

    python bench/corpus_diff.py CORPUS              # print new, gone and changed findings
    python bench/corpus_diff.py CORPUS --update     # add new findings to the baseline, unreviewed

CORPUS is the folder that ../shared/corpus/fetch.sh and bench/corpus/materialise.sh filled.
Findings are matched by (path, code, message) rather than line, so that an edit above a finding
in a corpus file does not make it "new". Exit 1 when a finding is new, gone, unreviewed or
reviewed false: the baseline must hold every finding, each reviewed true.
"""
import argparse
import json
import os
import subprocess
import sys

BASELINE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus_baseline.json")


def lint(corpus):
    run = subprocess.run([sys.executable, "-m", "trainlint", "check", ".", "--format", "json", "--no-cache",
                          "--isolated"], cwd=corpus, capture_output=True, text=True)
    if run.returncode not in (0, 1):
        sys.exit(f"trainlint check failed ({run.returncode}): {run.stderr.strip()}")
    return json.loads(run.stdout)


def keyed(findings):
    """Findings by (path, code, message, n): line numbers move with unrelated edits, so they are
    not part of the key; n counts findings that share the rest (in line order), so that two
    identical messages in one file (two notebook cells) stay two findings."""
    result, seen = {}, {}
    for finding in sorted(findings, key=lambda f: (f["path"], f["line"])):
        path = finding["path"][2:] if finding["path"].startswith("./") else finding["path"]
        base = (path, finding["code"], finding["message"])
        seen[base] = seen.get(base, 0) + 1
        result[base + (seen[base],)] = finding
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus")
    parser.add_argument("--update", action="store_true", help="record new findings (verdict null) and drop gone ones")
    args = parser.parse_args()
    with open(BASELINE) as handle:
        baseline = json.load(handle)
    reviewed = keyed(baseline["findings"])
    current = keyed(lint(args.corpus))
    new = [current[k] for k in current if k not in reviewed]
    gone = [reviewed[k] for k in reviewed if k not in current]
    moved = [(reviewed[k], current[k]) for k in current if k in reviewed and reviewed[k]["line"] != current[k]["line"]]
    unreviewed = [f for k, f in reviewed.items() if k in current and f.get("verdict") is None]
    false = [f for k, f in reviewed.items() if k in current and f.get("verdict") is False]
    for title, items in (("new", new), ("gone", gone), ("unreviewed", unreviewed), ("reviewed false", false)):
        for f in items:
            print(f"{title}: {f['path']}:{f['line']} {f['code']} {f['message']}")
    for old, now in moved:
        print(f"moved: {now['path']}:{old['line']} -> {now['line']} {now['code']}")
    counts = {}
    for f in current.values():
        counts[f["code"]] = counts.get(f["code"], 0) + 1
    print(f"{len(current)} findings ({', '.join(f'{c} {n}' for c, n in sorted(counts.items()))}); "
          f"{len(new)} new, {len(gone)} gone, {len(unreviewed)} unreviewed, {len(false)} reviewed false")
    if args.update:
        kept = [dict(reviewed[k], line=current[k]["line"]) for k in current if k in reviewed]
        added = [{"path": k[0], "line": f["line"], "code": f["code"], "severity": f["severity"], "message": f["message"],
                  "verdict": None, "reason": ""} for k, f in current.items() if k not in reviewed]
        baseline["findings"] = sorted(kept + added, key=lambda f: (f["path"], f["line"], f["code"]))
        with open(BASELINE, "w") as handle:
            json.dump(baseline, handle, indent=1)
            handle.write("\n")
    return 1 if new or gone or unreviewed or false else 0


if __name__ == "__main__":
    sys.exit(main())
