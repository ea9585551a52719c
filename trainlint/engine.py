"""The engine: discover files, read them, skip what no rule can match, lint in parallel with a
content-keyed cache, and resolve cross-file facts in a second, narrow pass.

Pass 1 lints every file alone; a file records the questions it asked about functions defined
elsewhere (``evaluate()`` imported from ``engine.py``: does it switch its argument to eval mode?).
The engine answers them from the summaries every file exported, and lints again only the files
whose questions have answers (cached by the answers too).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Tuple, Union

from ahocorasick_rs import BytesAhoCorasick

from . import __version__
from .analysis import Settings, empty_result, lint_file, matching_rules, may_match, module_of, parses, problem
from .config import Config, expand_codes

PYTHON_SUFFIXES = (".py", ".pyi", ".ipynb")


@dataclass
class SourceFile:
    path: str  # as shown to the user: the argument joined with the relative path
    data: Optional[bytes] = None


def discover(paths: Iterable[str], config: Config) -> Tuple[List[str], List[dict]]:
    """Python files under ``paths`` (files given explicitly are always linted) and TL000 problems
    for paths that do not exist or cannot be listed."""
    files: List[str] = []
    problems: List[dict] = []
    seen = set()

    def add(path: str) -> None:
        found = _regular_file(path)
        if isinstance(found, str):
            problems.append(problem(path, found).to_json())
        elif found not in seen:  # one file reached twice (a symbolic link to it) is linted once
            seen.add(found)
            files.append(path)

    for given in paths:
        if os.path.isdir(given):  # a folder named `x.py` too: it is walked, like any folder
            for directory, subdirs, names in os.walk(given, onerror=lambda e: problems.append(
                    problem(e.filename or given, f"cannot list directory: {e.strerror}").to_json())):
                subdirs[:] = sorted(d for d in subdirs if not config.is_excluded(os.path.join(directory, d)))
                for name in sorted(names):
                    path = os.path.join(directory, name)
                    if name.endswith(PYTHON_SUFFIXES) and not config.is_excluded(path):
                        add(path)
        else:
            add(given)
    return files, problems


def _regular_file(path: str) -> Union[Tuple[int, int], str]:
    """The file's identity (device, inode), or why ``path`` cannot be read as a source file:
    opening a FIFO would block, a socket or a device is not source."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return "broken symbolic link" if os.path.islink(path) else "no such file or directory"
    except OSError as error:
        return f"cannot read file: {error.strerror}"
    mode = status.st_mode
    if stat.S_ISREG(mode):
        return status.st_dev, status.st_ino
    kind = "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else \
        "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a file"
    return f"not a regular file: {kind}, not linted"


class Cache:
    """One JSON file per entry, named by the hash of everything the result depends on."""

    def __init__(self, directory: Optional[str]):
        self.directory = directory
        if directory:
            try:
                os.makedirs(directory, exist_ok=True)
                tag = os.path.join(directory, ".gitignore")
                if not os.path.exists(tag):
                    with open(tag, "w") as handle:
                        handle.write("# created by trainlint\n*\n")
            except OSError:
                self.directory = None  # a read-only tree still gets linted, just not cached

    def _file(self, key: str) -> str:
        return os.path.join(self.directory, key[:2], key + ".json")

    def get(self, key: str) -> Optional[dict]:
        if not self.directory:
            return None
        try:
            with open(self._file(key), encoding="utf-8") as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return None

    def put(self, key: str, value: dict) -> None:
        if not self.directory:
            return
        target = self._file(key)
        try:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            temporary = f"{target}.{os.getpid()}.tmp"
            with open(temporary, "w", encoding="utf-8") as handle:
                json.dump(value, handle)
            os.replace(temporary, target)
        except OSError:
            pass


def settings_for(config: Config) -> Settings:
    severities = {}
    for pattern, severity in config.severity.items():
        for code in expand_codes([pattern], "severity"):
            severities[code] = severity
    return Settings(config.selected_codes(), severities, config.hints)


# Worker state, set once per process by the pool initializer.
_SETTINGS: Optional[Settings] = None


def _init_worker(settings: Settings) -> None:
    global _SETTINGS
    _SETTINGS = settings


def _lint_task(task) -> dict:
    from .semantics.summaries import AnsweringIndex, RecordingIndex

    data, path, module, answers, found, matching = task
    index = RecordingIndex() if answers is None else AnsweringIndex(answers)
    try:
        return lint_file(data, path, module, _SETTINGS, index, found, matching)
    except Exception as error:  # a bug in trainlint must not hide the other files' findings
        return empty_result(module[0], [problem(path, f"internal error while linting: {error!r}").to_json()])


class Engine:
    def __init__(self, config: Config, jobs: Optional[int] = None, cache_dir: Optional[str] = None,
                 progress: Optional[Callable[[int, int], None]] = None):
        self.config = config
        self.settings = settings_for(config)
        self.jobs = max(1, jobs or os.cpu_count() or 1)
        self.cache = Cache(cache_dir)
        self.salt = f"{__version__}\0{self.settings.fingerprint()}"
        self.progress = progress  # called with (done, total) while files are analysed
        self._pool, self._workers = None, 0

    def key(self, *parts) -> str:
        if not self.cache.directory:
            return ""  # nothing is stored or looked up: no need to hash every file
        digest = hashlib.sha256(self.salt.encode())
        for part in parts:
            digest.update(b"\0")
            digest.update(part if isinstance(part, bytes) else str(part).encode())
        return digest.hexdigest()

    def lint(self, paths: List[str], stdin: Optional[SourceFile] = None, report_unused: bool = False) -> List[dict]:
        try:
            return self._lint(paths, stdin, report_unused)
        finally:
            if self._pool is not None:
                self._pool.shutdown()
                self._pool = None

    def _lint(self, paths: List[str], stdin: Optional[SourceFile], report_unused: bool) -> List[dict]:
        files, problems = discover(paths, self.config)
        sources = [SourceFile(f) for f in files] + ([stdin] if stdin else [])
        findings = list(problems)
        results: Dict[str, dict] = {}
        modules: Dict[str, Tuple[str, str]] = {}
        keys: Dict[str, str] = {}
        todo, skipped = [], []
        for source in sources:
            if source.data is None:
                try:
                    with open(source.path, "rb") as handle:
                        source.data = handle.read()
                except OSError as error:
                    findings.append(problem(source.path, f"cannot read file: {error.strerror}").to_json())
                    continue
            modules[source.path] = module_of(source.path)
            keys[source.path] = self.key(source.path, modules[source.path], source.data)
            cached = self.cache.get(keys[source.path])
            if cached is not None:
                results[source.path] = cached
                if cached.get("skipped"):
                    skipped.append((source.data, source.path, modules[source.path], None, None, ()))
                continue
            if source.path.endswith(".ipynb"):  # its prerequisites are looked for in its code, once read
                todo.append((source.data, source.path, modules[source.path], None, None, None))
                continue
            from .semantics.prerequisites import Scan  # here: a fully cached run needs no semantics

            scan = Scan(source.data)
            matching = matching_rules(source.data, self.settings.codes, scan=scan)
            # the worker goes on from what was looked for (by name: it has evidence objects of its own)
            task = (source.data, source.path, modules[source.path], None, scan.by_name(), matching)
            if not matching and b"\0" not in source.data and parses(source.data):
                # nothing a rule looks for: not analysed (a file that does not parse is, to say so)
                results[source.path] = dict(empty_result(modules[source.path][0]), skipped=True)
                self.cache.put(keys[source.path], results[source.path])
                skipped.append(task)
            else:
                todo.append(task)
        for task, result in zip(todo, self._run(todo)):
            results[task[1]] = result
            self.cache.put(keys[task[1]], result)
        skipped = self._summary_callers_pass(skipped, results, keys)
        self._callers_pass(skipped, results, keys)
        self._second_pass(sources, results, modules, keys)
        for source in sources:
            result = results.get(source.path)
            if result is None:
                continue
            ignored = self.config.ignored_for(source.path)
            findings.extend(f for f in result["findings"] if f["code"] not in ignored)
            if report_unused:
                findings.extend(result.get("unused", ()))
        return sorted(findings, key=lambda f: (f["path"], f.get("cell") or 0, f["line"], f["column"], f["code"]))

    def _summary_callers_pass(self, skipped: list, results: Dict[str, dict], keys: Dict[str, str]) -> list:
        """Analyse the skipped files that may call a function another file exported a summary
        for (it trains, or switches its argument's mode): those events happen at the call, where
        no word of the calling file shows them. A file is analysed when what the summaries of
        the functions it may call say completes some rule's prerequisites (a loop calling
        ``train_epoch()`` and ``evaluate()`` from another file). Returns the files still skipped."""
        from .semantics.prerequisites import Scan
        from .semantics.summaries import FunctionSummary

        says_of: Dict[str, frozenset] = {}
        for result in results.values():
            for qualname, summary in result["exports"].items():
                says = FunctionSummary.from_json(summary).says
                if says:
                    says_of[full_name(result, qualname)] = says
        if not says_of:
            return skipped
        named_in = _finder(says_of)
        todo = []
        for task in skipped:
            data = task[0]
            said: frozenset = frozenset()
            for names in named_in(data, _called_or_renamed):
                for name in names:  # a leaf such as `forward` ends hundreds of names: ask what adds to `said`
                    if not says_of[name] <= said and _names_module_of(data, name):
                        said |= says_of[name]
            if said and may_match(data, self.settings.codes, said, Scan(data, task[4])):
                todo.append(task)
        for task, result in zip(todo, self._run(todo)):
            results[task[1]] = result
            self.cache.put(keys[task[1]], result)
        analysed = {id(task) for task in todo}
        return [task for task in skipped if id(task) not in analysed]

    def _callers_pass(self, skipped: list, results: Dict[str, dict], keys: Dict[str, str]) -> None:
        """Analyse the files the byte pre-filter skipped that call a model builder whose use is
        in question, or a loader that hands its model on: a ``load()`` in a file with nothing to
        flag still links ``build_model()`` to the training loop that uses it."""
        asking = [result for result in results.values() if any(kind == "uses" for kind, _ in result["asked"])]
        frontier = {key for result in asking for kind, key in map(tuple, result["asked"]) if kind == "uses"}
        frontier |= {full_name(result, qualname) for result in asking for qualname in result.get("passers", ())}
        wanted = set(frontier)
        while skipped and frontier:
            named_in = _finder(frontier)
            # a file may call one: it calls `build(` and names the module `models` of `pkg.models.build`
            todo = [task for task in skipped if any(_names_module_of(task[0], name, or_its_package=True)
                                                    for names in named_in(task[0], _called) for name in names)]
            analysed = {id(task) for task in todo}
            skipped = [task for task in skipped if id(task) not in analysed]
            leaves = {name.rsplit(".", 1)[-1] for name in frontier}
            frontier = set()
            for task, result in zip(todo, self._run(todo)):
                results[task[1]] = result
                self.cache.put(keys[task[1]], result)
                if any(use == "passed" and callee.rsplit(".", 1)[-1] in leaves for callee, use, *_ in result["uses"]):
                    frontier |= {full_name(result, qualname) for qualname in result.get("passers", ())}
            frontier -= wanted
            wanted |= frontier

    def _second_pass(self, sources, results, modules, keys) -> None:
        answers_for = cross_file_answers(results)
        todo, task_keys = [], []
        for source in sources:
            answers = answers_for.get(source.path)
            if not answers:
                continue
            key = self.key(keys[source.path], json.dumps(sorted(answers.items(), key=repr), sort_keys=True))
            cached = self.cache.get(key)
            if cached is not None:
                results[source.path] = cached
            else:
                todo.append((source.data, source.path, modules[source.path], answers, None, None))
                task_keys.append(key)
        for task, key, result in zip(todo, task_keys, self._run(todo)):
            result["asked"] = results[task[1]]["asked"]
            results[task[1]] = result
            self.cache.put(key, result)

    def _run(self, tasks: list) -> List[dict]:
        if not tasks:
            return []
        if self.jobs == 1 or len(tasks) < 4:
            _init_worker(self.settings)
            return [_lint_task(t) for t in tasks]
        if self._pool is None:  # one pool for all the passes: each new one forks the (large) engine again
            from concurrent.futures import ProcessPoolExecutor

            self._workers = min(self.jobs, len(tasks))
            self._pool = ProcessPoolExecutor(self._workers, initializer=_init_worker, initargs=(self.settings,))
        chunk = max(1, len(tasks) // (self._workers * 8))
        results = []
        for result in self._pool.map(_lint_task, tasks, chunksize=chunk):
            results.append(result)
            if self.progress is not None:
                self.progress(len(results), len(tasks))
        return results


def full_name(result: dict, qualname: str) -> str:
    return f"{result['module']}.{qualname}" if result["module"] else qualname


def _finder(names: Iterable[str]):
    """A function giving, for source bytes, the lists of those dotted ``names`` whose last part
    they hold (as text; with ``where``, at an occurrence it accepts), all looked for in one
    pass: asked of every skipped file, a search per name cost seconds."""
    by_leaf: Dict[bytes, List[str]] = {}
    for name in names:
        by_leaf.setdefault(name.rpartition(".")[2].encode(), []).append(name)
    by_leaf.pop(b"", None)  # no call can name it
    leaves = list(by_leaf)
    if not leaves:
        return lambda data, where=None: []
    automaton = BytesAhoCorasick(leaves)

    def named_in(data: bytes, where: Optional[Callable[[bytes, int, int], bool]] = None) -> List[List[str]]:
        found = set()
        for index, start, end in automaton.find_matches_as_indexes(data, overlapping=True):
            if index not in found and (where is None or where(data, start, end)):
                found.add(index)
        return [by_leaf[leaves[index]] for index in found]
    return named_in


def _called(data: bytes, start: int, end: int) -> bool:
    """Whether the name at ``data[start:end]`` is called (``build(``, ``models.build(``)."""
    return not (start and data[start - 1] in _WORD_BYTES) and _CALL.match(data, end) is not None


def _called_or_renamed(data: bytes, start: int, end: int) -> bool:
    """... or imported under another name (``import evaluate as run_eval``)."""
    return not (start and data[start - 1] in _WORD_BYTES) and _CALL_OR_RENAMING.match(data, end) is not None


_WORD_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_CALL = re.compile(rb"\s*+\(")
_CALL_OR_RENAMING = re.compile(rb"\s*+\(|\s++as\b")


def _names_module_of(data: bytes, qualified: str, or_its_package: bool = False) -> bool:
    """Whether source bytes name the module that defines ``qualified`` (to import it from there),
    or, with ``or_its_package``, the package that holds it and may re-export it (``from audioldm
    import build_model`` for ``audioldm.pipeline.build_model``: asked only of a builder's callers,
    few; for every exported summary it would admit thousands of files naming ``models``)."""
    module = qualified.rpartition(".")[0]
    return not module or any(part.encode() in data for part in module.split(".")[-2 if or_its_package else -1:])


def cross_file_answers(results: Dict[str, dict]) -> Dict[str, dict]:
    """For each file, answers to the questions it asked, from the summaries other files exported.
    A dotted name is resolved by suffix (``engine.evaluate`` matches ``pkg.engine.evaluate``), or
    as a package's re-export (``pkg.evaluate`` matches ``pkg.engine.evaluate``); when several
    linted files match, the one nearest the asking file wins (a script imports its neighbours),
    and a tie leaves the name unresolved."""
    by_suffix: Dict[str, List[Tuple[str, str, Optional[dict]]]] = {}

    by_leaf: Dict[str, List[Tuple[str, str, Optional[dict]]]] = {}

    def register(path: str, full: str, summary: Optional[dict]) -> None:
        parts = full.split(".")
        for start in range(len(parts) - 1):
            by_suffix.setdefault(".".join(parts[start:]), []).append((path, full, summary))
        by_leaf.setdefault(parts[-1], []).append((path, full, summary))

    for path, result in results.items():
        for qualname, summary in result.get("exports", {}).items():
            register(path, full_name(result, qualname), summary)
        for qualname in result.get("passers", []):  # a loader handing a built model on
            if qualname not in result.get("exports", {}):
                register(path, full_name(result, qualname), None)

    def resolve(name: str, near: str):
        # `facelib.parsing.f` from a namespace package (no facelib/__init__.py) is exported as
        # `parsing.f`: a longer name is also looked up without its leading packages
        parts = name.split(".")
        candidates = next((by_suffix[key] for key in (".".join(parts[start:]) for start in range(len(parts) - 1))
                           if key in by_suffix), [])
        if not candidates and len(parts) > 1:
            # `audioldm.build_model`, re-exported by the package's __init__ (`from .pipeline import *`):
            # the function of that name in a module under the package
            package, leaf = name.rpartition(".")[::2]
            candidates = [c for c in by_leaf.get(leaf, ()) if c[1].startswith(package + ".")]
        if not candidates:
            return None
        here = os.path.abspath(near)
        closeness = [len(os.path.commonpath([here, os.path.abspath(path)])) for path, _, _ in candidates]
        best = [c for c, score in zip(candidates, closeness) if score == max(closeness)]
        return best[0] if len({path for path, _, _ in best}) == 1 else None

    uses: Dict[Tuple[str, str], List[Tuple[str, Optional[Tuple[str, str]]]]] = {}
    for path, result in results.items():
        for callee, use, *caller in result.get("uses", []):
            found = resolve(callee, path)
            if found:
                passer = (path, full_name(result, caller[0])) if use == "passed" and caller else None
                uses.setdefault((found[0], found[1]), []).append((use, passer))

    def uses_through_loaders(key: Tuple[str, str], seen: set) -> List[str]:
        """How a builder's result is used, following functions that only hand it on: a caller
        that returns the model is replaced by how its own callers use it."""
        found = []
        for use, passer in uses.get(key, ()):
            if passer is not None and passer not in seen:
                seen.add(passer)
                found.extend(uses_through_loaders(passer, seen) or [use])
            else:
                found.append(use)
        return found

    answers: Dict[str, dict] = {}
    for path, result in results.items():
        for kind, name in map(tuple, result.get("asked", [])):
            if kind == "summary":
                found = resolve(name, path)
                if found and found[2] is not None:
                    answers.setdefault(path, {})[(kind, name)] = found[2]
            elif kind == "uses" and (path, name) in uses:
                answers.setdefault(path, {})[(kind, name)] = uses_through_loaders((path, name), {(path, name)})
    return answers


def default_cache_dir(config: Config) -> str:
    return os.environ.get("TRAINLINT_CACHE_DIR") or os.path.join(config.root, ".trainlint_cache")
