"""``[tool.trainlint]`` in pyproject.toml: reading, validation (unknown keys and bad values are
errors), and rule selection."""
from __future__ import annotations

import fnmatch
import functools
import os
import re
import sys
from dataclasses import dataclass, field, replace
from typing import Dict, List, Optional, Tuple

from .rule import SEVERITIES, rule_codes
from .hints import Hints

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python < 3.11 only
    import tomli as tomllib

DEFAULT_EXCLUDES = (
    ".git", ".hg", ".svn", ".venv", "venv", ".env", "env", ".tox", ".nox", "build", "dist", "__pycache__",
    "node_modules", "site-packages", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".trainlint_cache",
    ".eggs", "*.egg-info", ".ipynb_checkpoints",
)


class ConfigError(Exception):
    """A user mistake in configuration or arguments: reported as one line, exit code 2."""


@dataclass
class Config:
    select: List[str] = field(default_factory=lambda: ["ALL"])
    ignore: List[str] = field(default_factory=list)
    extend_select: List[str] = field(default_factory=list)
    per_file_ignores: Dict[str, List[str]] = field(default_factory=dict)
    exclude: List[str] = field(default_factory=lambda: list(DEFAULT_EXCLUDES))
    extend_exclude: List[str] = field(default_factory=list)
    severity: Dict[str, str] = field(default_factory=dict)
    fail_on: str = "info"
    optimizer_names: List[str] = field(default_factory=list)
    scheduler_names: List[str] = field(default_factory=list)
    scaler_names: List[str] = field(default_factory=list)
    builder_patterns: List[str] = field(default_factory=list)
    root: str = "."  # folder of the pyproject.toml the settings came from
    source: Optional[str] = None  # that pyproject.toml
    _relative_folders: Dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def hints(self) -> Hints:
        return Hints(tuple(self.optimizer_names), tuple(self.scheduler_names), tuple(self.scaler_names),
                     tuple(self.builder_patterns))

    def selected_codes(self) -> Tuple[str, ...]:
        codes = expand_codes(self.select + self.extend_select, "select")
        codes -= expand_codes(self.ignore, "ignore")
        return tuple(sorted(codes))

    def relative_path(self, path: str) -> str:
        """``path`` relative to the root, with ``/`` between folders; a folder's part is worked out
        once (asked of every file of a tree: relpath per file was a tenth of reading it)."""
        folder, name = os.path.split(path)
        if name in ("", ".", ".."):
            return os.path.relpath(os.path.abspath(path), os.path.abspath(self.root)).replace(os.sep, "/")
        relative = self._relative_folders.get(folder)
        if relative is None:
            relative = os.path.relpath(os.path.abspath(folder), os.path.abspath(self.root)).replace(os.sep, "/")
            self._relative_folders[folder] = relative
        return name if relative == "." else f"{relative}/{name}"

    def ignored_for(self, path: str) -> set:
        relative = self.relative_path(path)
        ignored = set()
        for pattern, codes in self.per_file_ignores.items():
            if fnmatch.fnmatch(relative, pattern) or fnmatch.fnmatch(os.path.basename(path), pattern):
                ignored |= expand_codes(codes, "per-file-ignores")
        return ignored

    def is_excluded(self, path: str) -> bool:
        """Whether the exclusion globs match the path's name, or its path relative to the root
        (a pattern ending in ``/`` matches that folder)."""
        name = os.path.normcase(os.path.basename(path.rstrip("/\\")))
        relative = self.relative_path(path)
        patterns = tuple(self.exclude + self.extend_exclude)
        return bool(_glob_matcher(patterns)(name) or _glob_matcher(patterns, True)(os.path.normcase(relative)))


@functools.lru_cache(maxsize=None)
def _glob_matcher(patterns: Tuple[str, ...], folders: bool = False):
    """One compiled regex for a list of globs (``fnmatch`` per pattern and path was a twentieth of
    a large tree's check); with ``folders``, each pattern also without its trailing ``/``."""
    variants = {os.path.normcase(p) for p in patterns}
    if folders:
        variants |= {os.path.normcase(p.rstrip("/")) for p in patterns}
    if not variants:
        return lambda text: None
    return re.compile("|".join(fnmatch.translate(p) for p in sorted(variants))).match


def expand_codes(patterns: List[str], where: str) -> set:
    """Codes matched by ``ALL``, full codes and prefixes (``TL2``)."""
    known = set(rule_codes())
    found = set()
    for pattern in patterns:
        pattern = pattern.strip().upper()
        matched = known if pattern == "ALL" else {c for c in known if c.startswith(pattern)}
        if not matched:
            raise ConfigError(f"{where}: unknown rule code or prefix '{pattern}' (see `trainlint rules`)")
        found |= matched
    return found


_LIST_KEYS = {"select", "ignore", "extend-select", "exclude", "extend-exclude", "optimizer-names",
              "scheduler-names", "scaler-names", "builder-patterns"}
_KEYS = _LIST_KEYS | {"per-file-ignores", "severity", "fail-on"}


def find_pyproject(start: str) -> Optional[str]:
    """The nearest pyproject.toml at or above ``start`` that has a [tool.trainlint] table."""
    current = os.path.abspath(start if os.path.isdir(start) else os.path.dirname(start) or ".")
    while True:
        candidate = os.path.join(current, "pyproject.toml")
        if os.path.isfile(candidate) and _has_section(candidate):
            return candidate
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


@functools.lru_cache(maxsize=None)
def required_python(directory: str) -> Optional[Tuple[int, int]]:
    """The lowest Python that the project holding ``directory`` supports, from the nearest
    pyproject.toml's ``requires-python`` (``>=3.12``, ``~=3.12``, ``==3.12.*``), if it says."""
    candidate = os.path.join(directory, "pyproject.toml")
    if os.path.isfile(candidate):
        try:
            with open(candidate, "rb") as handle:
                specifier = tomllib.load(handle).get("project", {}).get("requires-python", "")
        except (OSError, tomllib.TOMLDecodeError):
            return None
        found = _MINIMUM_PYTHON.search(specifier if isinstance(specifier, str) else "")
        return (int(found.group(1)), int(found.group(2))) if found else None
    parent = os.path.dirname(directory)
    return None if parent == directory else required_python(parent)


_MINIMUM_PYTHON = re.compile(r"(?:>=|~=|==)\s*(\d+)\.(\d+)")


def _has_section(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            return b"[tool.trainlint" in handle.read()
    except OSError:
        return False


def load(path: Optional[str]) -> Config:
    if path is None:
        return Config(root=os.getcwd())
    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}")
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: invalid TOML: {error}")
    table = document.get("tool", {}).get("trainlint", {})
    return from_table(table, path)


def from_table(table: dict, path: str) -> Config:
    where = f"[tool.trainlint] in {path}"
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table")
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key '{unknown[0]}' (known keys: {', '.join(sorted(_KEYS))})")
    config = Config(root=os.path.dirname(os.path.abspath(path)), source=path)
    for key, value in table.items():
        attribute = key.replace("-", "_")
        if key in _LIST_KEYS:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{where}: '{key}' must be a list of strings")
        elif key == "per-file-ignores":
            if not isinstance(value, dict) or not all(
                    isinstance(v, list) and all(isinstance(c, str) for c in v) for v in value.values()):
                raise ConfigError(f"{where}: 'per-file-ignores' must map glob patterns to lists of codes")
        elif key == "severity":
            if not isinstance(value, dict) or not all(v in SEVERITIES for v in value.values()):
                raise ConfigError(f"{where}: 'severity' must map codes to one of {', '.join(SEVERITIES)}")
            for code in value:
                expand_codes([code], "severity")
        elif key == "fail-on":
            if value not in SEVERITIES:
                raise ConfigError(f"{where}: 'fail-on' must be one of {', '.join(SEVERITIES)}, not {value!r}")
        setattr(config, attribute, value)
    config.selected_codes()  # validates select/ignore codes now, not at first use
    for codes in config.per_file_ignores.values():
        expand_codes(codes, "per-file-ignores")
    return config


def with_overrides(config: Config, **overrides) -> Config:
    """CLI flags override the file: only those given (not None) apply."""
    given = {k: v for k, v in overrides.items() if v is not None}
    updated = replace(config, **given)
    updated.selected_codes()
    return updated
