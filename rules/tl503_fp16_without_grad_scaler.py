from trainlint.rule import Report, Rule
from trainlint.semantics import Kind, Role, functions, role_of
from trainlint.semantics.modes import is_trained_module
from trainlint.semantics.prerequisites import BACKWARD, FP16, OPTIMIZER_STEP


class Fp16WithoutGradScaler(Rule):
    """
    What it does: finds training in float16 — `autocast(dtype=torch.float16)`, the CUDA autocast
    defaults (`torch.cuda.amp.autocast()`, `torch.autocast("cuda")`), or `model.half()` — in a
    loop that calls `backward()` and `optimizer.step()`, with no GradScaler in the file.

    Why it is bad: float16 cannot represent gradients below ~6e-8; small gradients flush to zero
    (layers stop learning) and large activations overflow to Inf, which turns into NaN losses a
    few hundred steps in. The segmentation report trained in fp16 without a scaler and got NaN
    until mixed precision was set up properly.

    Not flagged: bfloat16 (same range as float32), files that create a GradScaler, training
    driven by accelerate, Lightning or DeepSpeed, and optimizers that run backward themselves
    (`optimizer.backward(loss)`: apex's FP16_Optimizer): they scale the loss themselves. Only
    modules are trained: `x = x.half()` on a batch is not.

    Fix: keep fp32 weights, use `torch.autocast(..., dtype=torch.float16)` with
    `torch.amp.GradScaler`, or switch to `dtype=torch.bfloat16`.
    """

    code = "TL503"
    name = "fp16-without-grad-scaler"
    severity = "warning"
    summary = "float16 training (autocast fp16 or .half()) with no GradScaler"
    requires = (FP16, BACKWARD, OPTIMIZER_STEP)

    INVALID = [
        """
        for x, y in loader:
            optimizer.zero_grad()
            with torch.autocast("cuda", dtype=torch.float16):  # <-
                loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
        """,
        """
        model = Net().cuda()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        model.half()  # <-
        for x, y in loader:
            optimizer.zero_grad()
            criterion(model(x.half()), y).backward()
            optimizer.step()
        """,
    ]
    VALID = [
        """
        scaler = torch.amp.GradScaler("cuda")
        for x, y in loader:
            optimizer.zero_grad()
            with torch.autocast("cuda", dtype=torch.float16):
                loss = criterion(model(x), y)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        """,
        """
        for x, y in loader:
            optimizer.zero_grad()
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
        """,
        """
        for batch in loader:
            with accelerator.autocast():
                loss = model(**batch).loss
            accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad()
        """,
        """
        teacher.half()
        optimizer = torch.optim.Adam(student.parameters())
        for x in loader:
            loss = F.mse_loss(student(x), teacher(x.half()).float())
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        """,
        """
        import torch
        from accelerate import Accelerator
        accelerator = Accelerator(mixed_precision="fp16")  # its backward() scales the loss
        model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
        for batch in loader:
            with torch.autocast("cuda"):
                depth = depth_model(batch["image"])
            loss = model(batch["pixels"], depth).loss
            accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad()
        """,
    ]

    def check(self, facts):
        everything = functions(facts)
        if any(e.detail.get("scaled") or e.detail.get("scaled_by") or e.kind == Kind.SCALER_UPDATE
               or role_of(fn, e.target) in (Role.SCALER, Role.ACCELERATOR, Role.ENGINE)
               for fn in everything for e in fn.own_events):
            return  # the file scales its loss, or a framework does
        for fn in everything:
            backwards = [b for b in fn.events_of(Kind.BACKWARD) if not b.detail.get("framework")]
            training_loops = [loop for b in backwards for loop in b.loops if fn.events_in(loop, Kind.OPT_STEP)]
            if not training_loops:
                continue
            for event in fn.own_events:
                if event.kind == Kind.HALF and event.target and is_trained_module(fn, event.target, training_loops[-1]):
                    yield Report(event.node, f"'{event.written}' is trained in float16 with no GradScaler: small "
                                             f"gradients underflow to zero and overflows turn into NaN")
            for block, frames in fn.with_blocks:
                if block.kind == "autocast-fp16" and any(f is loop for f in frames for loop in training_loops):
                    yield Report(block.node.items[0].context_expr,
                                 "float16 autocast in a training loop with no GradScaler: small gradients underflow "
                                 "to zero and overflows turn into NaN; scale the loss or use bfloat16")
