"""What the recorded run shows: runtime evidence for the static rules (TL...), the runtime-only
checks (TR001-TR009), and a verdict for each static finding in the traced files."""
from __future__ import annotations

import math
import os
from collections import Counter
from typing import Dict, List, Optional, Tuple

from torch import nn

from .recorder import Recorder

Site = Tuple[str, int]
# which recorded events put a static finding's line on a path that ran
_EVENT_OF_RULE = {"TL201": "zero_grad", "TL202": "zero_grad", "TL203": "step", "TL204": "backward", "TL208": "backward",
                  "TL401": "scheduler", "TL501": "step", "TL101": "mode", "TL102": "mode",
                  "TL403": "constructed once"}
_RUNTIME_SEVERITY = {"TR001": "error", "TR002": "error", "TR003": "warning", "TR004": "warning", "TR005": "error",
                     "TR006": "warning", "TR007": "warning", "TR008": "warning", "TR009": "error"}
_NAMES = {"TR001": "no-gradient-flow", "TR002": "parameters-not-updated", "TR003": "optimizer-parameter-mismatch",
          "TR004": "constant-loss", "TR005": "non-finite", "TR006": "grad-scaler-skipping",
          "TR007": "repeated-batch", "TR008": "zero-norm-normalised", "TR009": "frozen-output-layer"}


def windows(recorder: Recorder) -> List[list]:
    """Events split at optimizer steps: each window ends with the step that applied it (or the
    GradScaler step that skipped it)."""
    result, current = [], []
    for event in recorder.events:
        current.append(event)
        if event.kind in ("step", "skipped_step"):
            result.append(current)
            current = []
    return result


def evidence(recorder: Recorder) -> Dict[str, List[Tuple[Site, str]]]:
    """Runtime evidence for static rules, by rule code."""
    found: Dict[str, List[Tuple[Site, str]]] = {}

    def add(code, site, message):
        found.setdefault(code, []).append((site, message))

    for window in windows(recorder):
        backwards = [i for i, e in enumerate(window) if e.kind == "backward"]
        if not backwards:
            continue
        # the micro-batches of an accumulation window run the same backward() line
        accumulated = [i for i in backwards if window[i].site == window[backwards[-1]].site]
        for i, event in enumerate(window):
            if event.kind != "zero_grad" or event.data["optimizer"] and event.data["owner"] != window[-1].data.get(
                    "optimizer"):
                continue
            if len(accumulated) > 1 and accumulated[0] < i < accumulated[-1]:
                add("TL201", event.site, f"zero_grad() ran between the {len(backwards)} backward() calls of one "
                                         f"accumulation window: only the last micro-batch's gradient was applied")
            elif i > backwards[-1] and window[-1].kind == "step":
                add("TL202", event.site, "zero_grad() ran after the last backward() and before optimizer.step(): "
                                         "the step applied zero gradients")
        scaled = any(window[i].data.get("scaled") for i in backwards)
        if scaled and window[-1].data.get("plain"):
            add("TL501", window[-1].site, "optimizer.step() ran on gradients still scaled by the GradScaler")
    leftover = _carried_over_window(recorder)
    if leftover is not None:
        add("TL207", *leftover)
    for site in recorder.uncleared_steps:
        add("TL203", site, "optimizer.step() applied gradients that were never cleared since the previous step")
    events = recorder.events
    losses = recorder.loss_values
    backward_events = [i for i, e in enumerate(events) if e.kind == "backward"]
    step_norms = {id(e): s.grad_norm() for e, s in zip([e for e in events if e.kind == "step"], recorder.step_stats)}
    for number, index in enumerate(backward_events):
        if math.isfinite(losses[number]):
            continue
        later = events[index + 1:]
        next_step = next((i for i, e in enumerate(later) if e.kind == "step"), None)
        if next_step is None or any(e.kind == "zero_grad" for e in later[:next_step]):
            continue
        skipped = any(e.kind == "backward" for e in later[:next_step])
        norm = step_norms.get(id(later[next_step]))
        if skipped and norm is not None and not math.isfinite(norm):
            add("TL208", events[index].site, "a non-finite loss was backpropagated, its step skipped without "
                                             "clearing, and the next step applied the non-finite gradients")
            break
    if (recorder.fp16_params or recorder.fp16_autocast) and not recorder.scaled and recorder.steps:
        add("TL503", next(e.site for e in events if e.kind == "step"),
            "float16 training ran with no GradScaler (no loss was scaled)")
    for event in recorder.events:
        if event.kind == "backward" and not event.data["connected"]:
            add("TL204", event.site, "backward() ran on a tensor with no autograd history: no parameter can "
                                     "receive a gradient")
    steps = sum(1 for e in recorder.events if e.kind == "step")
    schedules = [e for e in recorder.events if e.kind == "scheduler"]
    if steps and len(schedules) > 1.5 * steps:
        add("TL401", schedules[0].site, f"the scheduler stepped {len(schedules)} times for {steps} optimizer steps")
    ratios = [loss / float(criterion) for loss, criterion in zip(recorder.loss_values, recorder.criteria)
              if criterion is not None and float(criterion)]
    if len(ratios) >= 2 and max(ratios) - min(ratios) > 1e-3 * max(abs(r) for r in ratios):
        site = next(e.site for e in recorder.events if e.kind == "backward")
        add("TL301", site, f"the loss given to backward() was {min(ratios):.4g}x to {max(ratios):.4g}x the "
                           f"criterion's value across micro-batches: the rescale applies to some of them only")
    if recorder.eval_outputs_in_backward:
        add(*_eval_mode_training(recorder))
    return found


def _carried_over_window(recorder: Recorder) -> Optional[Tuple[Site, str]]:
    """A step that applied the gradients of more micro-batches than its accumulation windows
    usually hold, none cleared in between: the micro-batches left over at an epoch's end, carried
    into the next epoch's first step."""
    sizes = []
    for window in windows(recorder):
        backwards = [i for i, e in enumerate(window) if e.kind == "backward"]
        cleared = any(e.kind == "zero_grad" for e in window[backwards[0]:backwards[-1]]) if backwards else True
        sizes.append((len(backwards), cleared, window[-1]))
    usual = Counter(size for size, _, _ in sizes).most_common(1)[0][0] if len(sizes) >= 3 else 0
    for size, cleared, step in sizes:
        if usual > 1 and size > usual and not cleared and step.kind == "step":
            return step.site, (f"optimizer.step() applied the gradients of {size} micro-batches where its windows "
                               f"hold {usual}: {size - usual} left over at an epoch's end were carried into this step")
    return None


LINE_EVIDENCE = ("TL206", "TL301", "TL403", "TL702")  # rules whose evidence is how often their line ran


def line_evidence(recorder: Recorder, lines) -> Dict[str, List[Tuple[Site, str]]]:
    """Evidence from how often the lines of static findings ran (see lines.py): a constructor that
    ran on every iteration, a discarded `.to()` that ran, a rescale that ran on some of the
    iterations that reached backward() only, a step counter that advanced more often than the
    optimizer stepped."""
    found: Dict[str, List[Tuple[Site, str]]] = {}
    backwards = sum(1 for e in recorder.events if e.kind == "backward")
    for site, micros in lines.hits.items():
        codes, ran, iterations = lines.lines[site[0]][site[1]], len(micros), len(set(micros))
        if "TL403" in codes and recorder.steps >= 2 and ran >= 2:
            found.setdefault("TL403", []).append(
                (site, f"line {site[1]} ran {ran} times in {recorder.steps} optimizer steps: a new object each time"))
        if "TL206" in codes and recorder.steps >= 2 and ran >= 1.5 * recorder.steps:
            found.setdefault("TL206", []).append(
                (site, f"line {site[1]} ran {ran} times for {recorder.steps} optimizer steps: the counter advances "
                       f"once per micro-batch, not once per step"))
        if "TL702" in codes:
            found.setdefault("TL702", []).append(
                (site, f"line {site[1]} ran {ran} times, and each time the converted tensor was thrown away"))
        if "TL301" in codes and 0 < iterations < backwards:
            found.setdefault("TL301", []).append(
                (site, f"line {site[1]} ran in {iterations} of the {backwards} iterations that reached backward()"))
    return found


def lines_against(recorder: Recorder, lines) -> Dict[str, set]:
    """Sites whose running contradicts their finding, by the pseudo event kind of _EVENT_OF_RULE:
    a constructor flagged as rebuilt every iteration that ran once while the optimizer stepped
    several times."""
    return {"constructed once": {site for site, micros in lines.hits.items()
                                 if "TL403" in lines.lines[site[0]][site[1]] and len(micros) == 1
                                 and recorder.steps >= 2}}


def _eval_mode_training(recorder: Recorder) -> Tuple[str, Site, str]:
    """A trained model's eval-mode output reached backward(). Which rule says why: eval mode
    switched on before training began is a model built in eval mode (TL101); switched on after
    some backward() it is eval mode left on after validation (TL102)."""
    reached = recorder.eval_outputs_in_backward
    model, kinds, micro = reached[0]
    micro_batches = len({m for _, _, m in reached})
    switches = [e for e in recorder.events if e.kind == "mode" and e.data["mode"] == "eval" and e.micro <= micro]
    switch = next((e for e in reversed(switches) if e.data.get("id") == model), switches[-1] if switches else None)
    code = "TL102" if switch is not None and switch.micro > 0 else "TL101"
    site = switch.site if switch is not None else next(e.site for e in recorder.events if e.kind == "backward")
    return code, site, (f"{micro_batches} of {recorder.micro} micro-batches ran the trained model's forward with "
                        f"{kinds} in eval mode, and its output reached backward()")


def runtime_findings(recorder: Recorder) -> List[dict]:
    """The TR checks: problems only a run can show."""
    findings = []

    def add(code, site, message):
        findings.append({"code": code, "name": _NAMES[code], "severity": _RUNTIME_SEVERITY[code], "message": message,
                         "path": site[0], "line": site[1], "verdict": None})

    step_events = [e for e in recorder.events if e.kind == "step"]
    stats = recorder.step_stats
    names = parameter_names(recorder)
    for event, stat in zip(step_events, stats):
        bad = [p for p, norm in zip(stat.params, stat.grad_norms()) if norm is not None and not math.isfinite(norm)]
        if bad:
            add("TR005", event.site, f"non-finite gradients at optimizer step {event.step + 1} in {len(bad)} "
                                     f"parameters (first: {names(bad[0])})")
            break
    no_grad = [e for e, s in zip(step_events, stats) if not s.grad_norm()]
    if stats and len(no_grad) == len(stats):
        add("TR001", no_grad[0].site, f"no parameter received a non-zero gradient before any of the "
                                      f"{len(stats)} optimizer steps")
    unchanged = [e for e, s in zip(step_events, stats) if s.update() == 0]
    if stats and len(unchanged) == len(stats):
        add("TR002", unchanged[0].site, f"{len(stats)} optimizer steps ran and no parameter changed "
                                        f"(learning rate 0, everything frozen, or zero gradients)")
    optimized = {id(p): p for opt in recorder.optimizers.values() for g in opt.param_groups for p in g["params"]}
    missing = [(name, p) for root in recorder.roots.values() if root.trainable
               for name, p in root.module.named_parameters() if p.requires_grad and id(p) not in optimized]
    if step_events and missing and recorder.optimizers:  # updates written by hand use no optimizer
        add("TR003", step_events[0].site, f"{len(missing)} trainable parameters of the trained model are in no "
                                          f"optimizer group (first: {missing[0][0]})")
    never = [p for key, p in optimized.items() if p.requires_grad and key not in recorder.params_with_grad]
    if len(stats) >= 2 and 0 < len(never) < len(optimized):
        add("TR003", step_events[0].site, f"{len(never)} parameters of the optimizer never received a gradient in "
                                          f"{len(stats)} steps (first: {names(never[0])}): the loss does not use them")
    losses = recorder.loss_values
    non_finite = [i for i, v in enumerate(losses) if not math.isfinite(v)]
    backward_sites = [e.site for e in recorder.events if e.kind == "backward"]
    if non_finite and not any(f["code"] == "TR005" for f in findings):
        add("TR005", backward_sites[non_finite[0]], f"the loss was not finite from micro-batch {non_finite[0] + 1} on")
    finite = [v for v in losses if math.isfinite(v)]
    if len(step_events) >= 3 and len(finite) >= 3 and max(finite) - min(finite) <= 1e-4 * max(abs(max(finite)), 1e-12):
        add("TR004", backward_sites[0], f"the loss stayed at {finite[0]:.4f} for {len(finite)} micro-batches"
                                        f"{explain_constant(finite[0], recorder)}")
    skipping = scaler_skipping(recorder.scaler_steps)
    if skipping:
        add("TR006", step_events[0].site if step_events else backward_sites[0], skipping)
    fingerprints = [float(v) for v in recorder.inputs]
    full_batch = recorder.closure_steps == len(step_events)  # L-BFGS and the like see the whole dataset each step
    if len(step_events) >= 3 and len(fingerprints) >= 3 and len(set(fingerprints)) == 1 and not full_batch:
        add("TR007", backward_sites[0], f"the model got the same input batch in all {len(fingerprints)} forwards")
    if any(float(flag) for flag in recorder.zero_norm_inputs):
        add("TR008", backward_sites[0] if backward_sites else ("<unknown>", 0),
            "rows of norm 0 were fed to F.normalize: their direction is undefined (zero vectors)")
    frozen = frozen_output(recorder)
    if frozen and step_events:
        add("TR009", step_events[0].site, frozen)
    return findings


_SKIPS_TO_SCALE_BELOW_ONE = 17  # the default initial scale, 2**16, halved at every skip


def scaler_skipping(stepped: List[bool]) -> Optional[str]:
    """GradScaler skipping most steps. The skips before its first step are the scale searching
    down from its initial value (normal) unless they go on past where the scale would be below 1."""
    warm_up = next((i for i, ran in enumerate(stepped) if ran), len(stepped))
    if warm_up >= _SKIPS_TO_SCALE_BELOW_ONE:
        return f"the GradScaler skipped all {warm_up} steps: the gradients are not finite even unscaled"
    later = stepped[warm_up:]
    skipped = later.count(False)
    if skipped >= 3 and skipped > len(later) / 2:
        return (f"the GradScaler skipped {skipped} of {len(later)} steps after its first one "
                f"(inf/NaN gradients in most steps)")
    return None


def parameter_names(recorder: Recorder):
    """A parameter's name in the trained model, or its shape when no traced model owns it."""
    known = {id(p): name for root in recorder.roots.values() for name, p in root.module.named_parameters()}
    return lambda p: known.get(id(p), f"a parameter of shape {tuple(p.shape)}")


def explain_constant(value: float, recorder: Recorder) -> str:
    """0.3105 ~ ln(12)/8: uniform predictions over C classes, loss divided by k."""
    per_step = Counter(e.step for e in recorder.events if e.kind == "backward")
    k_seen = max(per_step.values()) if per_step else 1
    best = None
    for k in sorted({k_seen, 1}):
        for classes in range(2, 100001):
            guess = math.log(classes) / k
            if guess > value * 1.01:
                break
            if abs(guess - value) <= 2e-3 * value and (best is None or abs(guess - value) < best[2]):
                best = (classes, k, abs(guess - value))
    if best is None:
        return ""
    classes, k, _ = best
    divided = f", loss divided by {k} accumulation steps" if k > 1 else ""
    return f": {value:.4f} ≈ ln({classes})/{k}, uniform predictions over {classes} classes{divided}"


def frozen_output(recorder: Recorder) -> Optional[str]:
    for root in (r.module for r in recorder.roots.values() if r.trainable):
        layers = [m for m in root.modules() if any(True for _ in m.parameters(recurse=False))]
        if not layers:
            continue
        last = layers[-1]
        if not any(p.requires_grad for p in last.parameters(recurse=False)):
            return f"the last parametrised layer ({type(last).__name__}) is frozen (requires_grad=False)"
        trainable = [(m, p) for m in layers for name, p in m.named_parameters(recurse=False) if p.requires_grad]
        normish = [p for m, p in trainable if isinstance(m, (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm))
                   or p.dim() == 1]
        total = sum(p.numel() for _, p in trainable)
        if trainable and len(normish) == len(trainable) and total < 0.05 * sum(p.numel() for p in root.parameters()):
            return ("almost nothing but normalisation layers and biases is trainable "
                    f"({total} of {sum(p.numel() for p in root.parameters())} parameters)")
    return None


def sites_that_ran(recorder: Recorder) -> Dict[str, set]:
    """Event kind -> the call sites where it ran."""
    ran: Dict[str, set] = {}
    for event in recorder.events:
        ran.setdefault(event.kind, set()).add(event.site)
    return ran


def verdicts(static: List[dict], found: Dict[str, list], ran: Dict[str, set]) -> List[dict]:
    """confirmed / refuted / not-observed for each static finding; runtime-only for evidence
    that no static finding explains."""
    results = []
    for finding in static:
        code = finding["code"]
        site = (finding["abspath"], finding["line"])
        kind = _EVENT_OF_RULE.get(code)
        if code in found:
            verdict = "confirmed"
        elif kind is not None and site in ran.get(kind, ()):
            verdict = "refuted"
        else:
            verdict = "not-observed"
        result = {k: v for k, v in finding.items() if k != "abspath"} | {"verdict": verdict}
        if verdict == "confirmed":
            (path, line), message = found[code][0]
            result["observed"] = f"{message} ({os.path.basename(path)}:{line})"
        results.append(result)
    explained = {f["code"] for f in static}
    for code, items in found.items():
        if code in explained or (code in ("TL101", "TL102") and explained & {"TL101", "TL102"}):
            continue
        site, message = items[0]
        results.append({"code": code, "name": code, "severity": "error", "message": message, "path": site[0],
                        "line": site[1], "verdict": "runtime-only"})
    return results


def replica_fingerprints(recorder: Recorder) -> Optional[List[List[list]]]:
    """Per optimizer step, [name, norm after the step] of each parameter it moved: what ranks
    compare to find replicas that drifted apart. Only for a model trained through
    DistributedDataParallel, whose replicas must stay identical (sharded models, FSDP or tensor
    parallel, hold different shards on each rank by design)."""
    from torch.nn.parallel import DistributedDataParallel

    if not any(isinstance(root.module, DistributedDataParallel) for root in recorder.roots.values()):
        return None
    names = parameter_names(recorder)
    return [[[names(p), norm] for p, norm in zip(stat.moved, stat.after.read())] for stat in recorder.step_stats]
