"""Run the user's script in this process, as `python SCRIPT ARGS` (or `python -m MODULE ARGS`)
would, with the recorder installed before its first line; stop it cleanly after N optimizer
steps or a timeout, let its own `finally` blocks run, and put everything back. What the script
prints goes to stderr, so that stdout carries only the report."""
from __future__ import annotations

import contextlib
import os
import runpy
import signal
import sys
import traceback
from dataclasses import dataclass, field
from typing import List, Optional

from .lines import LineCounter
from .recorder import Recorder, StopTracing


@dataclass
class Outcome:
    script_exit: str  # stopped-after-steps | completed | exception | timeout
    error: Optional[str] = None  # the script's own exception, formatted
    exit_code: Optional[int] = None
    imported: List[str] = field(default_factory=list)  # files of the modules the script imported


def run(target: str, args: List[str], recorder: Recorder, timeout: Optional[float], module: bool = False,
        lines: Optional[LineCounter] = None) -> Outcome:
    saved_argv, saved_path, saved_modules = sys.argv[:], sys.path[:], set(sys.modules)
    previous_handler = None
    if timeout:
        def on_alarm(signum, frame):
            raise StopTracing("timeout")

        previous_handler = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
    sys.argv = [target] + list(args)
    sys.path.insert(0, os.getcwd() if module else os.path.dirname(os.path.abspath(target)))
    recorder.install()
    if lines is not None:
        lines.install()
    sys.stdout.flush()
    saved_stdout = os.dup(1)
    os.dup2(2, 1)  # stdout carries the report (JSON) alone: the script's, its C code's and its children's output go to stderr
    try:
        with contextlib.redirect_stdout(sys.stderr):
            outcome = _execute(target, module)
    finally:
        sys.stdout.flush()
        os.dup2(saved_stdout, 1)
        os.close(saved_stdout)
        if lines is not None:
            lines.uninstall()
        recorder.uninstall()
        recorder.finish()
        if timeout:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous_handler)
        sys.argv[:] = saved_argv
        sys.path[:] = saved_path
    root = os.getcwd() if module else os.path.dirname(os.path.abspath(target))
    new = {name: os.path.abspath(m.__file__) for name, m in list(sys.modules.items())
           if name not in saved_modules and getattr(m, "__file__", None)}
    outcome.imported = sorted(set(new.values()))
    for name, path in new.items():  # the script's own modules: a later run must import them afresh
        if path.startswith(root + os.sep) and "site-packages" not in path:
            del sys.modules[name]
    return outcome


def _execute(target: str, module: bool) -> Outcome:
    try:
        if module:
            runpy.run_module(target, run_name="__main__", alter_sys=True)
        else:
            runpy.run_path(target, run_name="__main__")
        return Outcome("completed", exit_code=0)
    except StopTracing as stop:
        return Outcome(stop.reason)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        return Outcome("completed", exit_code=code)
    except KeyboardInterrupt:
        return Outcome("exception", error="KeyboardInterrupt")
    except BaseException as error:  # the script's own crash, reported as the script's error
        return Outcome("exception", error=user_traceback(error))


_TRACER_FOLDER = os.path.dirname(os.path.abspath(__file__)) + os.sep
_RUNPY = {os.path.abspath(runpy.__file__), "<frozen runpy>"}


def _users(frame: traceback.FrameSummary) -> bool:
    return frame.filename not in _RUNPY and not frame.filename.startswith(_TRACER_FOLDER)


def user_traceback(error: BaseException) -> str:
    """The error's traceback as the script would have shown it run alone: without the frames of
    runpy and of the tracer (its runner, its wrappers around PyTorch calls), chained errors too."""
    report = traceback.TracebackException(type(error), error, error.__traceback__)
    seen = set()
    pending = [report]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        current.stack = traceback.StackSummary.from_list(
            [frame for frame in current.stack if _users(frame)])
        pending.extend(chained for chained in (current.__cause__, current.__context__) if chained is not None)
    return "".join(report.format())
