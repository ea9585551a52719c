"""Command line: ``trainlint check``, ``rules``, ``explain``."""
from __future__ import annotations

import os
import sys
from typing import Optional, Tuple

import click

from . import __version__
from .config import ConfigError, find_pyproject, load, with_overrides
from .rule import SEVERITIES, all_rules

_SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}


def _split(values: Tuple[str, ...]) -> Optional[list]:
    """`--select TL2,TL301 --select TL4` -> ['TL2', 'TL301', 'TL4']; None when not given."""
    if not values:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="trainlint")
def cli():
    """trainlint: find silent bugs in PyTorch training code."""


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--format", "output_format", type=click.Choice(["text", "json", "sarif", "github", "junit", "lsp"]),
              default="text", show_default=True)
@click.option("--select", multiple=True, help="Rule codes or prefixes to enable (comma-separated).")
@click.option("--extend-select", multiple=True, help="Rule codes or prefixes to enable on top of the selection.")
@click.option("--ignore", multiple=True, help="Rule codes or prefixes to disable (comma-separated).")
@click.option("--fail-on", type=click.Choice(SEVERITIES), help="Lowest severity that makes the exit code 1.")
@click.option("--exclude", multiple=True, help="Glob patterns of files and folders to skip (replaces defaults).")
@click.option("--extend-exclude", multiple=True, help="Glob patterns to skip on top of the defaults.")
@click.option("--stdin-filename", help="Path to report for source read from stdin ('-').")
@click.option("--config", "config_path", type=click.Path(), help="pyproject.toml to read [tool.trainlint] from.")
@click.option("--isolated", is_flag=True, help="Ignore configuration files.")
@click.option("--no-cache", is_flag=True, help="Do not read or write the cache.")
@click.option("--cache-dir", type=click.Path(), help="Cache folder (default: .trainlint_cache by the config).")
@click.option("--jobs", "-j", type=click.IntRange(min=1), help="Worker processes (default: all cores).")
@click.option("--fix", is_flag=True, help="Apply safe fixes (then report what is left).")
@click.option("--unsafe-fixes", is_flag=True, help="With --fix/--diff: also apply fixes marked unsafe.")
@click.option("--diff", is_flag=True, help="Print the fixes as a unified diff; change nothing.")
@click.option("--report-unused-suppressions", is_flag=True, help="Report noqa/ignore comments that suppress nothing.")
@click.option("--quiet", "-q", is_flag=True, help="Print the summary line only (text format).")
@click.option("--statistics", is_flag=True, help="Print the number of findings per rule instead of each finding.")
def check(paths, output_format, select, extend_select, ignore, fail_on, exclude, extend_exclude, stdin_filename,
          config_path, isolated, no_cache, cache_dir, jobs, fix, unsafe_fixes, diff, report_unused_suppressions,
          quiet, statistics):
    """Lint PATHS (files or folders; default: the current folder; '-' reads stdin)."""
    from .engine import Engine, SourceFile, default_cache_dir
    from .reporters import FORMATS

    paths = list(paths) or ["."]
    try:
        if isolated:
            config = load(None)
        else:
            start = stdin_filename if "-" in paths and stdin_filename else paths[0]
            config = load(config_path or find_pyproject(start if start != "-" else "."))
        # a selection on the command line replaces the file's selection, its ignores included
        cli_ignore = _split(ignore) or ([] if select else None)
        config = with_overrides(
            config, select=_split(select), ignore=cli_ignore, extend_select=_split(extend_select), fail_on=fail_on,
            exclude=_split(exclude), extend_exclude=_split(extend_exclude),
        )
        stdin = None
        if "-" in paths:
            paths.remove("-")
            stdin = SourceFile(stdin_filename or "-", sys.stdin.buffer.read())
        engine = Engine(config, jobs=jobs, cache_dir=None if no_cache else (cache_dir or default_cache_dir(config)),
                        progress=None if quiet else _terminal_progress())
        findings = engine.lint(paths, stdin, report_unused_suppressions)
    except ConfigError as error:
        raise click.exceptions.Exit(_fail(str(error)))
    if fix or diff:
        from .fixes import fix_until_stable, unified_diff

        def relint(path: str, text: str) -> list:
            encoding = "utf-8" if stdin is not None and path == stdin.path else _encoding_of(path)
            return engine.lint([], SourceFile(path, text.encode(encoding)))

        sources = {f["path"]: _read_text(f["path"], stdin) for f in findings if f.get("fix")}
        fixed = fix_until_stable(findings, sources, unsafe_fixes, relint)
        if diff:
            for path in sorted(fixed):
                click.echo(unified_diff(path, sources[path], fixed[path][0]), nl=False)
            sys.exit(1 if fixed else 0)
        if stdin is not None:  # stdin in, (fixed) source out, report on stderr: editor integrations
            click.echo(fixed[stdin.path][0] if stdin.path in fixed else _read_text(stdin.path, stdin), nl=False)
            click.echo(FORMATS[output_format](findings), err=True)
            sys.exit(0)
        for path, (text, _) in fixed.items():
            with open(path, "w", encoding=_encoding_of(path), newline="") as handle:
                handle.write(text)
        findings = engine.lint(paths, None, report_unused_suppressions) if fixed else findings
        count = sum(n for _, n in fixed.values())
        if count:
            click.echo(f"Fixed {count} finding{'s' if count != 1 else ''}.", err=True)
    if statistics:
        from .reporters import statistics as per_rule

        click.echo(per_rule(findings, output_format))
    elif quiet and output_format == "text":
        from .reporters import summary_line

        click.echo(summary_line(findings))
    else:
        click.echo(FORMATS[output_format](findings))
    threshold = _SEVERITY_RANK[config.fail_on]
    failed = any(_SEVERITY_RANK[f["severity"]] >= threshold for f in findings)
    sys.exit(1 if failed else 0)


@cli.command()
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True)
def rules(output_format):
    """List every rule: code, name, severity, summary."""
    import json

    rows = [(r.code, r.name, r.severity, r.summary) for r in all_rules().values()]
    if output_format == "json":
        click.echo(json.dumps([dict(zip(("code", "name", "severity", "summary"), row)) for row in rows], indent=2))
        return
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3])


@cli.command()
@click.argument("code", required=False)
@click.option("--write-docs", type=click.Path(file_okay=False), help="Write every rule's page to DIR/CODE.md.")
def explain(code, write_docs):
    """Show the documentation of rule CODE: what, why, example, fix."""
    if write_docs:
        os.makedirs(write_docs, exist_ok=True)
        for rule in all_rules().values():
            with open(os.path.join(write_docs, f"{rule.code}.md"), "w", encoding="utf-8") as handle:
                handle.write(rule.markdown())
        return
    rule = all_rules().get((code or "").upper())
    if rule is None:
        raise click.exceptions.Exit(_fail(f"unknown rule code '{code}' (see `trainlint rules`)"))
    click.echo(rule.explain())


def _terminal_progress():
    """A progress line on an interactive terminal; nothing in pipes, files and CI."""
    if not sys.stderr.isatty() or os.environ.get("CI"):
        return None

    def show(done: int, total: int) -> None:
        if total >= 50:
            end = "\r\033[K" if done == total else ""
            sys.stderr.write(f"\rtrainlint: {done}/{total} files{end}")
            sys.stderr.flush()

    return show


def _read_text(path: str, stdin) -> str:
    from .analysis import decode

    if stdin is not None and path == stdin.path:
        return decode(stdin.data)
    with open(path, "rb") as handle:
        return decode(handle.read())


def _encoding_of(path: str) -> str:
    import tokenize

    with open(path, "rb") as handle:
        return tokenize.detect_encoding(handle.readline)[0]


def _fail(message: str) -> int:
    click.echo(f"trainlint: error: {message}", err=True)
    return 2


def main():
    try:
        cli(prog_name="trainlint")
    except KeyboardInterrupt:
        sys.exit(130)


@cli.command()
@click.argument("target", required=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option("-m", "module", help="Trace `python -m MODULE` instead of a script.")
@click.option("--steps", type=click.IntRange(min=1), default=8, show_default=True, help="Optimizer steps to trace.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), help="Stop after this many seconds.")
@click.option("--format", "output_format", type=click.Choice(["text", "json", "html"]), default="text",
              show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write the report here instead of stdout.")
@click.option("--fail-on", type=click.Choice(SEVERITIES), default="error", show_default=True)
def trace(target, args, module, steps, timeout, output_format, output, fail_on):
    """Run SCRIPT for a few optimizer steps and report what the run shows.

    Arguments for the script go after `--`: trainlint trace train.py --steps 4 -- --epochs 3
    """
    if module is None and target is None:
        raise click.exceptions.Exit(_fail("trace needs a SCRIPT or -m MODULE"))
    if module is not None and target is not None:
        args = (target,) + tuple(args)
    try:
        from .trace import exit_code, trace as run_trace
        from .trace.report import FORMATS
    except ImportError as error:
        raise click.exceptions.Exit(_fail(f"trace needs PyTorch ({error}); install it: pip install 'trainlint[trace]'"))
    from .trace.distributed import is_launcher, trace_torchrun

    if module is None and is_launcher(target):
        try:
            report = trace_torchrun(target, list(args), steps, timeout)
        except (ValueError, OSError) as error:
            raise click.exceptions.Exit(_fail(str(error)))
    elif module is None and not os.path.isfile(target):
        raise click.exceptions.Exit(_fail(f"no such script: {target}"))
    else:
        report = run_trace(module or target, list(args), steps=steps, timeout=timeout, module=module is not None)
    text = FORMATS[output_format](report)
    if output:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    else:
        click.echo(text)
    sys.exit(exit_code(report, fail_on))


@cli.command()
def lsp():
    """Run the language server on stdio (for editors)."""
    from .lsp import serve

    serve()


@cli.command(hidden=True)
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--function", "only", help="Only functions whose qualified name contains this.")
def facts(path, only):
    """Print the training events trainlint sees in PATH (for rule authors and bug reports)."""
    import ast

    from .analysis import module_of
    from .config import Config
    from .semantics import Guard, Loop, analyze, functions
    from .semantics.summaries import RecordingIndex

    with open(path, "rb") as handle:
        tree = ast.parse(handle.read(), filename=path)
    module_name, package = module_of(path)
    file_facts = analyze(tree, path, module_name, package, Config().hints, RecordingIndex())
    for fn in functions(file_facts):
        if only and only not in fn.qualname or not any(e.kind != "call" for e in fn.events):
            continue
        click.echo(f"{fn.qualname} (line {fn.line})")
        for event in fn.events:
            if event.kind == "call":
                continue
            frames = []
            for frame in event.frames:
                if isinstance(frame, Loop):
                    frames.append(f"loop@{frame.line}")
                elif isinstance(frame, Guard):
                    sign = "" if frame.positive else "not "
                    frames.append(f"if {sign}[{frame.kind}{'' if frame.holds else '/off'}]@{frame.line}")
            via = f" via {'>'.join(event.via)}" if event.via else ""
            click.echo(f"  {event.line:>5} {event.kind:<16} {event.target or '-':<28} {' / '.join(frames)}{via}")
