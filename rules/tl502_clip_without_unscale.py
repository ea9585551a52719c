from trainlint.rule import Report, Restructure, Rule
from trainlint.semantics import Kind, exclusive, functions
from trainlint.semantics.boundaries import found_in_one_helper
from trainlint.semantics.dataflow import clips_at_the_scaled_threshold
from trainlint.semantics.prerequisites import CLIP, OPTIMIZER_STEP, SCALED_BACKWARD


class ClipWithoutUnscale(Rule):
    """
    What it does: finds gradient clipping between `scaler.scale(loss).backward()` and
    `scaler.step(optimizer)` with no `scaler.unscale_(optimizer)` before it.

    Why it is bad: the gradients are still multiplied by the loss scale (~65536), so
    `clip_grad_norm_(params, 1.0)` clips against a threshold 65536 times too small: every step is
    clipped to a tiny norm and the model barely moves, while the logged loss looks merely slow.

    Not flagged: clipping after `scaler.unscale_(optimizer)`, clipping at a threshold multiplied by
    the scaler's current scale (`max_norm * scaler.get_scale()`: the same clip in scaled units), and
    `accelerator.clip_grad_norm_` (accelerate unscales first).

    Fix: call `scaler.unscale_(optimizer)` right before clipping (`--fix --unsafe-fixes` inserts it).
    """

    code = "TL502"
    name = "clip-without-unscale"
    severity = "error"
    summary = "gradient clipping on scaled gradients (no scaler.unscale_ before it)"
    requires = (CLIP, SCALED_BACKWARD, OPTIMIZER_STEP)

    INVALID = [
        """
        for x, y in loader:
            optimizer.zero_grad()
            with torch.autocast("cuda"):
                loss = criterion(model(x), y)
            scaler.scale(loss).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)  # <-
            scaler.step(optimizer)
            scaler.update()
        """,
    ]
    VALID = [
        """
        for x, y in loader:
            optimizer.zero_grad()
            with torch.autocast("cuda"):
                loss = criterion(model(x), y)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
            scaler.step(optimizer)
            scaler.update()
        """,
        """
        for batch in loader:
            with accelerator.accumulate(model):
                loss = model(**batch).loss
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                optimizer.zero_grad()
        """,
        """
        for x, y in loader:
            loss = criterion(model(x), y)
            loss.backward()
            clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad()
        """,
    ]

    def check(self, facts):
        for fn in functions(facts):
            scaled = [b for b in fn.events_of(Kind.BACKWARD) if b.detail.get("scaled")]
            steps = [s for s in fn.events_of(Kind.OPT_STEP) if s.detail.get("scaled")]
            unscales = fn.events_of(Kind.UNSCALE)
            for clip in fn.events_of(Kind.CLIP):
                loop = clip.innermost_loop
                if loop is not None and not fn.owns(loop):
                    continue
                backward = [b for b in scaled if b.order < clip.order and not exclusive(b, clip)
                            and (loop is None or b.in_loop(loop))]
                step = [s for s in steps if s.order > clip.order and not exclusive(s, clip)]
                if not backward or not step or found_in_one_helper(backward[-1], clip, step[0]):
                    continue
                if any(backward[-1].order < u.order < clip.order and not exclusive(u, clip) for u in unscales) \
                        or clips_at_the_scaled_threshold(clip):
                    continue
                scaler, optimizer = step[0].detail.get("scaler"), step[0].target
                yield Report(clip.node, f"this clips gradients that are still scaled by the GradScaler (backward() "
                                        f"at line {backward[-1].line}): call scaler.unscale_(optimizer) first",
                             fix=None if clip.via or not (scaler and optimizer) else Restructure(
                                 f"insert {scaler}.unscale_({optimizer}) before the clip", anchor=clip.node.lineno,
                                 after=False, code=f"{scaler}.unscale_({optimizer})"))
