"""Training started with `torch.multiprocessing.spawn` (or `start_processes`): each worker is
traced in its own process and sends what it saw back through a file, and the parent merges the
workers like torchrun's ranks. Other child processes (DataLoader workers, `multiprocessing.Process`)
are only counted: when no step ran where the tracer could see it, the report says why."""
from __future__ import annotations

import contextlib
import json
import multiprocessing.process
import os
import signal
import sys
import tempfile
import traceback
from typing import Iterator, List, Optional

_SPAWN_MODULE = "torch.multiprocessing.spawn"


class Workers:
    """The spawned workers' observations, filled in when the traced run has ended."""

    def __init__(self):
        self.observations: List[dict] = []
        self.untraced = 0  # child processes started outside spawn/start_processes


@contextlib.contextmanager
def following_spawn(steps: int, timeout: Optional[float]) -> Iterator[Workers]:
    import torch.multiprocessing

    spawn_module = sys.modules[_SPAWN_MODULE]
    original = spawn_module.start_processes
    workers = Workers()
    following = []
    untraced_start = multiprocessing.process.BaseProcess.start

    def start_processes(fn, args=(), nprocs=1, *rest, **kwargs):
        # spawn() calls start_processes from its own module, so both names lead here
        folder = tempfile.mkdtemp(prefix="trainlint-spawn-")
        following.append(folder)
        return original(traced_worker, (fn, folder, steps, timeout) + tuple(args), nprocs, *rest, **kwargs)

    def counted_start(process):
        if process._args[:1] != (traced_worker,):
            workers.untraced += 1
        return untraced_start(process)

    spawn_module.start_processes = start_processes
    torch.multiprocessing.start_processes = start_processes
    multiprocessing.process.BaseProcess.start = counted_start
    try:
        yield workers
    finally:
        spawn_module.start_processes = original
        torch.multiprocessing.start_processes = original
        multiprocessing.process.BaseProcess.start = untraced_start
        for folder in following:
            for name in sorted(os.listdir(folder)):
                with open(os.path.join(folder, name), encoding="utf-8") as handle:
                    workers.observations.append(json.load(handle))
                os.remove(os.path.join(folder, name))
            os.rmdir(folder)


def traced_worker(index: int, fn, folder: str, steps: int, timeout: Optional[float], *args) -> None:
    """Runs in the spawned process: ``fn(index, *args)`` traced, the observation written for the
    parent, and the worker's own exception raised again (the parent sees it as untraced)."""
    from . import observe
    from .recorder import Recorder, StopTracing
    from .runner import Outcome

    recorder = Recorder(steps)
    if timeout:
        def on_alarm(signum, frame):
            raise StopTracing("timeout")

        signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
    recorder.install()
    raised = None
    try:
        fn(index, *args)
        outcome = Outcome("completed", exit_code=0)
    except StopTracing as stop:
        outcome = Outcome(stop.reason)
    except BaseException as error:
        raised = error
        outcome = Outcome("exception", error="".join(traceback.format_exception(type(error), error,
                                                                                  error.__traceback__)))
    finally:
        recorder.uninstall()
        recorder.finish()
        if timeout:
            signal.setitimer(signal.ITIMER_REAL, 0)
    with open(os.path.join(folder, f"rank{index}.json"), "w", encoding="utf-8") as handle:
        json.dump(dict(observe(recorder, outcome), rank=index), handle)
    if raised is not None:
        raise raised
