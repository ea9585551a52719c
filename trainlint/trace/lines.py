"""Line evidence: how often the lines of static findings ran, and in which micro-batches, for the
rules whose evidence is a line running rather than a PyTorch call (a constructor rebuilt every
iteration, a discarded `.to()`, a rescale in a branch). Scoped to the code objects that hold
those lines: `sys.monitoring` on Python 3.12+ (every other function's start event is disabled
after its first call, so it costs nothing afterwards); on 3.10/3.11 a call filter that gives a
line tracer only to frames of those code objects. Another tool's tracer (a debugger, coverage)
is never replaced: on 3.10/3.11 line evidence is then off, and the report says so (3.12's
monitoring tools coexist)."""
from __future__ import annotations

import os
import sys
from typing import Callable, Dict, List, Set, Tuple

Site = Tuple[str, int]


class LineCounter:
    def __init__(self, lines: Dict[str, Dict[int, Set[str]]], micro: Callable[[], int]):
        self.lines = lines  # path -> line to count -> the codes of the findings there
        self.micro = micro  # the recorder's micro-batch counter (backward() calls so far)
        self.hits: Dict[Site, List[int]] = {}  # site -> micro-batch counter at each run of the line
        self.off: str = ""  # why line evidence is off, when it is
        self._codes: Dict[object, str] = {}  # code object -> its file, when it holds a counted line, else ""
        self._backend = None

    def install(self) -> None:
        if not self.lines:
            return
        backend = _Monitoring(self) if hasattr(sys, "monitoring") else _CallFilter(self)
        self.off = backend.start()
        self._backend = backend if not self.off else None

    def uninstall(self) -> None:
        if self._backend is not None:
            self._backend.stop()
            self._backend = None

    def wanted(self, code) -> bool:
        """Whether ``code`` runs one of the counted lines (decided once per code object)."""
        known = self._codes.get(code)
        if known is None:
            path = os.path.abspath(code.co_filename)
            lines = self.lines.get(path, ())
            known = self._codes[code] = path if any(line in lines for _, _, line in _line_table(code)) else ""
        return bool(known)

    def hit(self, code, line: int) -> bool:
        """A line of a watched code object ran: whether it is a counted one. Never raises into the
        user's code: a failure here turns line evidence off for the rest of the run."""
        try:
            path = self._codes.get(code)
            if path and line in self.lines[path]:
                self.hits.setdefault((path, line), []).append(self.micro())
                return True
        except Exception as error:  # pragma: no cover - defensive
            self.off = f"line evidence failed ({error!r}) and was turned off"
            self.uninstall()
        return False


def _line_table(code):
    try:
        return list(code.co_lines())
    except Exception:  # a code object without line information
        return []


class _Monitoring:
    """Python 3.12+: PY_START everywhere, answered with DISABLE (so each code object asks once);
    LINE only on the code objects that hold counted lines."""

    def __init__(self, counter: LineCounter):
        self.counter = counter
        self.tool = None

    def start(self) -> str:
        monitoring = sys.monitoring
        for tool in (monitoring.PROFILER_ID, 5, 4, 3):
            if monitoring.get_tool(tool) is None:
                monitoring.use_tool_id(tool, "trainlint")
                self.tool = tool
                break
        else:
            return "every sys.monitoring tool slot is taken"
        events = monitoring.events
        monitoring.restart_events()  # code objects a previous run of ours disabled must ask again
        monitoring.register_callback(self.tool, events.PY_START, self._start)
        monitoring.register_callback(self.tool, events.LINE, self._line)
        monitoring.set_events(self.tool, events.PY_START)
        return ""

    def _start(self, code, offset):
        try:
            if self.counter.wanted(code):
                sys.monitoring.set_local_events(self.tool, code, sys.monitoring.events.LINE)
        except Exception:
            pass  # the user's run comes first: a code object we cannot watch is simply not counted
        return sys.monitoring.DISABLE

    def _line(self, code, line):
        if not self.counter.hit(code, line):
            return sys.monitoring.DISABLE  # a line not counted costs nothing from now on
        return None

    def stop(self) -> None:
        monitoring = sys.monitoring
        monitoring.set_events(self.tool, 0)
        for code in [c for c, path in self.counter._codes.items() if path]:
            monitoring.set_local_events(self.tool, code, 0)
        monitoring.register_callback(self.tool, monitoring.events.PY_START, None)
        monitoring.register_callback(self.tool, monitoring.events.LINE, None)
        monitoring.free_tool_id(self.tool)


class _CallFilter:
    """Python 3.10/3.11: a call-event filter that returns a line tracer only for frames of the
    code objects holding counted lines (the frame already running, the script's module, too)."""

    def __init__(self, counter: LineCounter):
        self.counter = counter

    def start(self) -> str:
        if sys.gettrace() is not None:
            return "another tracer (a debugger or coverage) is active"
        sys.settrace(self._call)
        return ""

    def _call(self, frame, event, arg):
        try:
            return self._line if event == "call" and self.counter.wanted(frame.f_code) else None
        except Exception:  # the user's run comes first: a frame we cannot judge is not counted
            return None

    def _line(self, frame, event, arg):
        if event == "line":
            self.counter.hit(frame.f_code, frame.f_lineno)
        return self._line

    def stop(self) -> None:
        if sys.gettrace() == self._call:
            sys.settrace(None)
