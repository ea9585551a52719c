from trainlint.rule import Report, Rule
from trainlint.semantics import functions
from trainlint.semantics.boundaries import accumulation_windows, sized_to_nominal_batch
from trainlint.semantics.dataflow import gradients_rescaled, loss_rescaled
from trainlint.semantics.roles import Role, role_of
from trainlint.semantics.syntax import dotted
from trainlint.semantics.prerequisites import BACKWARD_WRITTEN


class AccumulationWithoutLossDivision(Rule):
    """
    What it does: finds gradient accumulation (backward() on every micro-batch, the optimizer
    stepping once per k of them) where the loss given to backward() is never divided by k, nor
    normalised any other way on its path (by the window's token count, by a factor).

    Why it is bad: gradients add up in `.grad`, so each step applies the sum of k micro-batch
    gradients: an update k times larger than the mean the code was tuned for. It trains, the loss
    goes down or diverges depending on the learning rate, and changing k (a larger GPU, fewer
    devices) silently rescales the learning rate.

    Not flagged: any division or multiplication on the loss's way to backward (`loss / accum`,
    `loss /= n_tokens`, `loss * scale`, inside a helper of the file, or a helper handed the
    accumulation count); gradients divided by hand before the step (`p.grad /= k`);
    `accelerator.backward` (accelerate divides by its accumulation steps) and Fabric; DeepSpeed
    engines and Lightning automatic optimisation (the framework accumulates); a window sized to a
    nominal batch (`accumulate = nominal_batch_size // batch_size`, YOLO's design, where the loss
    is a per-sample sum meant to add up over the window; or Darknet's, a nominal batch split into
    the window's micro-batches, `batch_size=cfg.batch // cfg.subdivisions`, with the learning rate
    divided by it, `lr=base / cfg.batch`).

    Fix: divide the loss by the number of micro-batches in the window before backward()
    (`loss = loss / accum_steps`), or by the window's token count when the loss is a sum.
    """

    code = "TL209"
    name = "accumulation-without-loss-division"
    severity = "warning"
    summary = "gradients accumulated over k micro-batches but the loss is never divided by k"
    requires = (BACKWARD_WRITTEN,)
    INVALID = [
        """
        for i, (x, y) in enumerate(loader):
            loss = criterion(model(x), y)
            loss.backward()  # <-
            if (i + 1) % accum_steps == 0:
                optimizer.step()
                optimizer.zero_grad()
        """,
        """
        while step < max_steps:
            for micro_step in range(gradient_accumulation_steps):
                logits, loss = model(*get_batch())
                scaler.scale(loss).backward()  # <-
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            step += 1
        """,
        """
        def train_epoch(model, loader, optimizer, args):
            model.train()
            for step, batch in enumerate(loader):
                outputs = model(**batch)
                outputs.loss.backward()  # <-
                if step % args.gradient_accumulation_steps == 0:
                    optimizer.step()
                    optimizer.zero_grad()
        """,
    ]
    VALID = [
        """
        for i, (x, y) in enumerate(loader):
            loss = criterion(model(x), y) / accum_steps
            loss.backward()
            if (i + 1) % accum_steps == 0:
                optimizer.step()
                optimizer.zero_grad()
        """,
        """
        for i, batch in enumerate(loader):
            loss = model(**batch).loss
            if accum > 1:
                loss = loss / accum
            loss.backward()
            if (i + 1) % accum == 0:
                optimizer.step()
                optimizer.zero_grad()
        """,
        """
        for i, batch in enumerate(loader):
            loss = loss_fn(model(batch["x"]), batch["y"]) * (1.0 / accum)
            loss.backward()
            if (i + 1) % accum == 0:
                optimizer.step()
                optimizer.zero_grad()
        """,
        """
        for i, (x, y) in enumerate(loader):
            criterion(model(x), y).backward()
            if (i + 1) % accum_steps == 0:
                for p in model.parameters():
                    p.grad /= accum_steps
                optimizer.step()
                optimizer.zero_grad()
        """,
        """
        def compute_loss(model, batch, n_tokens):
            return model(batch).sum() / n_tokens

        for i, batch in enumerate(loader):
            loss = compute_loss(model, batch, batch.numel())
            loss.backward()
            if (i + 1) % accum == 0:
                optimizer.step()
                optimizer.zero_grad()
        """,
        """
        accumulate = max(round(nominal_batch_size / batch_size), 1)
        last_step = -1
        for i, (images, targets) in enumerate(loader):
            loss = compute_loss(model(images), targets)  # a sum over the batch's samples
            loss.backward()
            if i - last_step >= accumulate:
                optimizer.step()
                optimizer.zero_grad()
                last_step = i
        """,
        """
        from apex import amp
        for step, batch in enumerate(loader):
            loss = model(batch)
            loss = loss / args.gradient_accumulation_steps
            with amp.scale_loss(loss, optimizer) as scaled_loss:
                scaled_loss.backward()
            if (step + 1) % args.gradient_accumulation_steps == 0:
                optimizer.step()
                optimizer.zero_grad()
        """,
        """
        from accelerate import Accelerator
        accelerator = Accelerator(gradient_accumulation_steps=4)
        for i, batch in enumerate(loader):
            loss = model(**batch).loss
            accelerator.backward(loss)
            if (i + 1) % 4 == 0:
                optimizer.step()
                optimizer.zero_grad()
        """,
        """
        for i, (x, y) in enumerate(loader):
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
        """,
        """
        for step, (real, _) in enumerate(loader):
            d_loss = discriminator_loss(real)
            d_loss.backward()
            d_optimizer.step()
            d_optimizer.zero_grad()
            if step % n_critic == 0:
                g_loss = generator_loss()
                g_loss.backward()
                g_optimizer.step()
                g_optimizer.zero_grad()
        """,
    ]

    def check(self, facts):
        for fn in functions(facts):
            windows = list(accumulation_windows(fn))
            if not windows or gradients_rescaled(fn):  # the walk over the body only where it can matter
                continue
            for window in windows:
                own = [b for b in window.backwards if not b.via and not _framework_divides(fn, b)]
                if not own or len(own) != len(window.backwards):
                    continue  # a backward trainlint cannot see into, or one that divides itself
                if sized_to_nominal_batch(fn, window) or any(loss_rescaled(fn, b.detail.get("loss")) for b in own):
                    continue
                first = own[0]
                yield Report(first.node, f"backward() at line {first.line} accumulates gradients until the optimizer "
                                         f"step at line {window.step.line} ({window.description}), but its loss is "
                                         f"never divided by the number of micro-batches: each step applies k times "
                                         f"the intended update")


def _framework_divides(fn, backward) -> bool:
    """``accelerator.backward(loss)`` (accelerate divides by its accumulation steps; Fabric is
    left alone too), DeepSpeed's ``engine.backward``."""
    func = getattr(backward.node, "func", None)
    receiver = dotted(getattr(func, "value", None))
    return backward.detail.get("framework") is not None or role_of(fn, receiver) in (Role.ACCELERATOR, Role.ENGINE)
