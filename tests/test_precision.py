"""Precision and recall on the reasons real findings were wrong (issue 9).

Each case is a small project (one or more files) written for this test, in the manner of real
training code. A line ending in ``# <- TLxxx`` must be reported with that code; nothing else may
be reported. The false-positive cases name the fact the semantic layer lacked; the misses name the
fact it needed.
"""
import json
import os
import re
import textwrap

import pytest
from click.testing import CliRunner

from trainlint.cli import cli

EXPECTED = re.compile(r"#\s*<-\s*(TL\d{3})(?: (error|warning|info))?")  # `# <- TL101 error`: severity checked too

CASES = {
    # -- false positives ------------------------------------------------------------------------
    # An annotation that names a module (`torch.optim.lr_scheduler`) gives no role: `scheduler` is
    # not an optimizer, so its step() is not an optimizer step that zero_grad() must follow.
    "annotation-names-a-module": {
        "engine.py": """
            import torch
            import torch.nn.functional as F
            from torch.optim import lr_scheduler

            def train_epoch(model, loader, optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler):
                model.train()
                for inputs, targets in loader:
                    optimizer.zero_grad()
                    F.mse_loss(model(inputs), targets).backward()
                    optimizer.step()
                    scheduler.step()

            def finetune(net, batches, opt, warmup: lr_scheduler):
                for batch in batches:
                    opt.zero_grad()
                    net(batch).mean().backward()
                    opt.step()
                    warmup.step()
        """,
    },
    # A method's result is a different object from its receiver: evaluating
    # `task.ema_model(...)` does not switch `task` (nor the trained `task.model`) to eval mode.
    "method-result-is-not-its-receiver": {
        "fit.py": """
            import torch

            def run_validation(network, batches):
                network.eval()
                with torch.no_grad():
                    return sum(network(b).sum().item() for b in batches)

            def fit(task, batches, held_out, epochs):
                task.model.train()
                for epoch in range(epochs):
                    for batch in batches:
                        task.optimizer.zero_grad()
                        task.model(batch).mean().backward()
                        task.optimizer.step()
                    run_validation(task.averaged_copy(decay=0.999), held_out)
        """,
    },
    # `.train()` two calls deep, across files: the epoch helper sets train mode itself and its
    # backward sits in a further helper in a third file.
    "train-mode-two-calls-deep": {
        "steps.py": """
            def optimise_batch(net, batch, opt):
                opt.zero_grad()
                loss = net(batch).pow(2).mean()
                loss.backward()
                opt.step()
                return loss.item()
        """,
        "loops.py": """
            import torch
            from steps import optimise_batch

            def run_train_epoch(net, loader, opt):
                net.train()
                for batch in loader:
                    optimise_batch(net, batch, opt)

            def run_test_epoch(net, loader):
                net.eval()
                with torch.no_grad():
                    return [net(b) for b in loader]
        """,
        "main.py": """
            import torch
            from loops import run_train_epoch, run_test_epoch

            def main(net, loader, test_loader, epochs):
                opt = torch.optim.SGD(net.parameters(), lr=0.1)
                for epoch in range(epochs):
                    run_train_epoch(net, loader, opt)
                    run_test_epoch(net, test_loader)
        """,
    },
    "train-mode-two-calls-deep-one-file": {
        "train.py": """
            import torch

            def backward_and_step(net, batch, opt):
                opt.zero_grad()
                net(batch).sum().backward()
                opt.step()

            def one_epoch(net, loader, opt):
                net.train()
                for batch in loader:
                    backward_and_step(net, batch, opt)

            def score(net, loader):
                net.eval()
                return [net(b) for b in loader]

            def main(net, loader, test_loader, epochs):
                opt = torch.optim.SGD(net.parameters(), lr=0.1)
                for epoch in range(epochs):
                    one_epoch(net, loader, opt)
                    score(net, test_loader)
        """,
    },
    # A loop that builds a new model each iteration (cross-validation, sweeps) starts a new run:
    # a fresh optimizer, scheduler and scaler per iteration is correct.
    "new-model-per-iteration": {
        "cv.py": """
            import copy
            import torch
            from torch.optim.lr_scheduler import StepLR

            def cross_validate(make_net, folds, epochs):
                for train_loader, val_loader in folds:
                    net = make_net()
                    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-4)
                    scheduler = StepLR(optimizer, step_size=10)
                    scaler = torch.cuda.amp.GradScaler()
                    for epoch in range(epochs):
                        for x, y in train_loader:
                            optimizer.zero_grad()
                            scaler.scale(net(x).sub(y).abs().mean()).backward()
                            scaler.step(optimizer)
                            scaler.update()
                        scheduler.step()

            def sweep(base_model, loader, learning_rates):
                for lr in learning_rates:
                    candidate = copy.deepcopy(base_model)
                    opt = torch.optim.SGD(candidate.parameters(), lr=lr)
                    for x, y in loader:
                        opt.zero_grad()
                        candidate(x).sub(y).pow(2).mean().backward()
                        opt.step()
        """,
    },
    # Two optimizers, one scaler: the discriminator's scaled backward does not make the
    # generator's plain step wrong; and the two branches of one `if` never run together.
    "several-optimizers-and-branches": {
        "gan.py": """
            import torch

            def train_gan(gen, disc, loader, amp_scaler, noise):
                opt_disc = torch.optim.Adam(disc.parameters())
                opt_gen = torch.optim.Adam(gen.parameters())
                for real in loader:
                    opt_disc.zero_grad()
                    with torch.autocast("cuda", dtype=torch.float16):
                        d_loss = disc(real).mean() - disc(gen(noise).detach()).mean()
                    amp_scaler.scale(d_loss).backward()
                    amp_scaler.step(opt_disc)
                    amp_scaler.update()
                    opt_gen.zero_grad()
                    g_loss = -disc(gen(noise)).mean()
                    g_loss.backward()
                    opt_gen.step()

            def train(model, loader, optimizer, use_amp, grad_scaler):
                for x, y in loader:
                    optimizer.zero_grad()
                    loss = model(x).sub(y).abs().mean()
                    if use_amp and grad_scaler is not None:
                        grad_scaler.scale(loss).backward()
                        grad_scaler.step(optimizer)
                        grad_scaler.update()
                    else:
                        loss.backward()
                        optimizer.step()
        """,
    },
    # A micro-batch counter used for logging cadence and throughput is not a count of
    # optimizer steps.
    "micro-batch-counter-for-logging": {
        "loop.py": """
            import time

            def train(model, batches, optimizer, monitor, accum, log_every):
                micro = 0
                updates = 0
                for batch in batches:
                    micro += 1
                    (model(batch).mean() / accum).backward()
                    if micro % accum == 0:
                        optimizer.step()
                        optimizer.zero_grad()
                        updates += 1
                    if micro % log_every == 0:
                        monitor.update(time=time.perf_counter(), batches=micro, samples=micro * 8)
                        monitor.compute_and_log(step=micro)
                        print({"iter": micro, "step": updates})
        """,
    },
    # Loss lists local to a function that returns their sum are built to be backward'ed
    # together; losses appended after backward() are kept without their saved activations.
    "local-loss-lists": {
        "losses.py": """
            import torch
            import torch.nn.functional as F

            def chunked_loss(model, inputs, targets, pieces):
                parts = []
                for x, y in zip(inputs.chunk(pieces), targets.chunk(pieces)):
                    loss = F.cross_entropy(model(x), y)
                    parts.append(loss)
                return torch.stack(parts).sum() / pieces

            def cached_contrastive(model, chunks, optimizer):
                optimizer.zero_grad()
                losses = []
                for chunk in chunks:
                    loss = model(chunk).logsumexp(-1).mean()
                    loss.backward()
                    losses.append(loss)
                optimizer.step()
                return losses
        """,
    },
    # A norm that cannot be zero: a Gaussian random projection.
    "norm-that-cannot-be-zero": {
        "proj.py": """
            import torch

            def projection_loss(features, dim):
                directions = torch.randn(features.shape[-1], dim, device=features.device)
                directions = directions / directions.norm(dim=0, keepdim=True)
                return (features @ directions).pow(2).mean()
        """,
    },
    # One bug, one finding: reported inside the helper, not again at the helper's call site.
    "one-finding-per-bug": {
        "trainer.py": """
            import torch

            class Trainer:
                def __init__(self, model, optimizer):
                    self.model, self.optimizer = model, optimizer
                    self.scaler = torch.cuda.amp.GradScaler()

                def _train_batch(self, x, y):
                    self.optimizer.zero_grad()
                    loss = self.model(x).sub(y).pow(2).mean()
                    self.scaler.scale(loss).backward()
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)  # <- TL502
                    self.scaler.step(self.optimizer)
                    self.scaler.update()

                def fit(self, loader, epochs):
                    for epoch in range(epochs):
                        for x, y in loader:
                            self._train_batch(x, y)
        """,
    },
    # Each critic step runs its own backward under the same test as the step: a zero_grad on
    # every iteration clears only the other network's gradients (WGAN-style n_critic).
    "guarded-step-with-its-own-backward": {
        "wgan.py": """
            import torch

            def train(gen, critic, loader, opt_gen, opt_critic, n_critic, noise):
                for i, real in enumerate(loader):
                    opt_critic.zero_grad()
                    fake = gen(noise)
                    critic_loss = critic(fake).mean() - critic(real).mean()
                    critic_loss.backward()
                    opt_critic.step()
                    opt_gen.zero_grad()
                    if i % n_critic == 0:
                        gen_loss = -critic(gen(noise)).mean()
                        gen_loss.backward()
                        opt_gen.step()
        """,
    },
    # `Variable(t)` does not require grad: per-forward state stored on the module is not a
    # parameter; neither is a constant class weight.
    "variable-without-requires-grad": {
        "decoder.py": """
            import torch
            from torch import nn
            from torch.autograd import Variable

            class Decoder(nn.Module):
                def __init__(self, dim, weights=None):
                    super().__init__()
                    self.cell = nn.LSTMCell(dim, dim)
                    self.class_weights = Variable(weights if weights is not None else torch.ones(4))

                def init_states(self, memory):
                    self.hidden = Variable(memory.data.new(memory.size(0), 8).zero_())
        """,
    },
    # Leaf tensors made from constants are the graph's inputs, not a loss rebuilt outside it.
    "leaf-tensors-from-constants": {
        "basics.py": """
            import torch

            x = torch.tensor(1.0, requires_grad=True)
            w = torch.tensor(2.0, requires_grad=True)
            b = torch.tensor(3.0, requires_grad=True)
            y = w * x + b
            y.backward()
            print(x.grad, w.grad, b.grad)
        """,
    },
    # A validation sampler needs no set_epoch: its order does not matter. Only the sampler whose
    # loader an epoch loop trains on is flagged.
    "sampler-set-epoch-only-for-training-loaders": {
        "main.py": """
            import torch
            from torch.utils.data import DataLoader
            from torch.utils.data.distributed import DistributedSampler

            def make_loaders(train_set, val_set):
                train_sampler = DistributedSampler(train_set)  # <- TL701
                val_sampler = DistributedSampler(val_set, shuffle=False)
                return (DataLoader(train_set, sampler=train_sampler, batch_size=8),
                        DataLoader(val_set, sampler=val_sampler, batch_size=8))

            def evaluate(model, loader):
                model.eval()
                with torch.no_grad():
                    return sum(model(x).sum().item() for x in loader)

            def main(model, train_set, val_set, optimizer, epochs):
                train_loader, val_loader = make_loaders(train_set, val_set)
                for epoch in range(epochs):
                    model.train()
                    for x in train_loader:
                        optimizer.zero_grad()
                        model(x).mean().backward()
                        optimizer.step()
                    evaluate(model, val_loader)
        """,
    },
    # A queue of outputs kept for a later backward (pipeline schedules) is consumed in the loop.
    "queue-consumed-in-the-loop": {
        "pipeline.py": """
            import torch

            def backward_step(output, grad):
                torch.autograd.backward(output, grad_tensors=grad)

            def schedule(stage, micro_batches, grads):
                outputs = []
                for batch, grad in zip(micro_batches, grads):
                    output = stage(batch)
                    outputs.append(output)
                    output = outputs.pop(0)
                    backward_step(output, grad)
        """,
    },
    # A helper named zero_grad clears gradients, whatever it is given.
    "gradients-cleared-by-a-helper": {
        "fp16.py": """
            def zero_grad(params):
                for p in params:
                    if p.grad is not None:
                        p.grad.detach_()
                        p.grad.zero_()
        """,
        "loop.py": """
            from fp16 import zero_grad

            def run(model, params, opt, batches):
                for batch in batches:
                    zero_grad(params)
                    model(batch).mean().backward()
                    opt.step()
        """,
    },
    # What an optimizer or scheduler is built over may be passed by keyword (`params=`,
    # `optimizer=`): a sweep that builds a new model per trial and its optimizer and schedule with
    # keywords starts a new run each time (accelerate's cross-validation example); restarting the
    # optimizer of the same model each round is still flagged.
    "constructor-subject-by-keyword": {
        "sweep.py": """
            import torch
            from torch.optim.lr_scheduler import OneCycleLR

            def make_net(width):
                return torch.nn.Sequential(torch.nn.Linear(8, width), torch.nn.ReLU(), torch.nn.Linear(width, 1))

            def sweep(loader, widths, steps):
                for width in widths:
                    net = make_net(width)
                    opt = torch.optim.Adam(params=net.parameters(), lr=3e-4)
                    sched = OneCycleLR(optimizer=opt, max_lr=1e-3, total_steps=steps)
                    for x, y in loader:
                        opt.zero_grad()
                        torch.nn.functional.mse_loss(net(x), y).backward()
                        opt.step()
                        sched.step()

            def restarts(net, loader, rounds):
                for _ in range(rounds):
                    opt = torch.optim.Adam(params=net.parameters(), lr=3e-4)  # <- TL403
                    for x, y in loader:
                        opt.zero_grad()
                        torch.nn.functional.mse_loss(net(x), y).backward()
                        opt.step()
        """,
    },
    # A branch whose test is settled before the run never runs: `world_size = 1` as the only
    # binding of the name makes `if world_size > 1:` dead (opacus's vision benchmark keeps its DDP
    # wrap under such a test), and `every = 0` makes `if every and ...` dead. The same tests over a
    # name the run sets, or a name bound twice, still let the branch run.
    "branch-settled-before-the-run": {
        "bench.py": """
            import os
            import torch
            from torch.nn.parallel import DistributedDataParallel as DDP
            from torch.utils.data import DataLoader
            from torchvision.datasets import CIFAR10

            def single_process(model, root, epochs):
                world_size = 1
                loader = DataLoader(CIFAR10(root, train=True), batch_size=64)
                if world_size > 1:
                    model = DDP(model)
                optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
                every = 0
                model.train()
                for epoch in range(epochs):
                    for x, y in loader:
                        optimizer.zero_grad()
                        torch.nn.functional.cross_entropy(model(x), y).backward()
                        optimizer.step()
                    if every and epoch % every == 0:
                        model.eval()
                        print(sum(model(x).argmax(1).eq(y).sum() for x, y in loader))

            def launched(model, root, epochs, every):
                world_size = int(os.environ.get("WORLD_SIZE", 1))
                loader = DataLoader(CIFAR10(root, train=True), batch_size=64)  # <- TL703
                if world_size > 1:
                    model = DDP(model)
                optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
                model.train()
                for epoch in range(epochs):
                    for x, y in loader:
                        optimizer.zero_grad()
                        torch.nn.functional.cross_entropy(model(x), y).backward()
                        optimizer.step()
                    if every and epoch % every == 0:
                        model.eval()  # <- TL102
                        print(sum(model(x).argmax(1).eq(y).sum() for x, y in loader))

            def rebound(model, root, args):
                distributed = False
                if args.launcher == "torchrun":
                    distributed = True
                loader = DataLoader(CIFAR10(root, train=True), batch_size=64)  # <- TL703
                if distributed:
                    model = DDP(model)
                optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
                for x, y in loader:
                    optimizer.zero_grad()
                    torch.nn.functional.cross_entropy(model(x), y).backward()
                    optimizer.step()
        """,
    },
    # One tensor's gradient cleared by hand (`model.mask.grad.zero_()`) between backward() and
    # step(), or every micro-batch, keeps that tensor fixed: the rest of the model's gradients
    # reach the step (continual-learning's K-FAC preconditioning keeps its phantom parameter at
    # zero this way). Only where the optimizer is known to update that very tensor is its update lost.
    "one-tensor-cleared-by-hand": {
        "masked.py": """
            import torch
            import torch.nn.functional as F

            def train(model, loader, optimizer):
                for x, y in loader:
                    optimizer.zero_grad()
                    F.cross_entropy(model(x), y).backward()
                    model.mask.grad.zero_()
                    optimizer.step()

            def accumulate(model, loader, optimizer, k):
                for i, (x, y) in enumerate(loader):
                    (F.cross_entropy(model(x), y) / k).backward()
                    model.temperature.grad.zero_()
                    if (i + 1) % k == 0:
                        optimizer.step()
                        optimizer.zero_grad()

            def fit_line(points):
                w = torch.zeros(1, requires_grad=True)
                b = torch.zeros(1, requires_grad=True)
                opt = torch.optim.SGD([w, b], lr=0.1)
                for x, y in points:
                    opt.zero_grad()
                    ((w * x + b - y) ** 2).backward()
                    w.grad.zero_()  # <- TL202
                    opt.step()
        """,
    },
    # A helper defined in both branches of an `if` is, at each call, the definition of the call's
    # own branch (continual-learning's two `scale_grad`s), not the first one in the file.
    "helper-defined-in-each-branch": {
        "fit.py": """
            import torch.nn.functional as F

            def evaluate(model, loader):
                return sum(F.cross_entropy(model(x), y).item() for x, y in loader)

            def fit(model, loader, optimizer, epochs, final_only):
                model.train()
                if final_only:
                    def report(epoch):
                        model.eval()
                        print(epoch, evaluate(model, loader))
                    for epoch in range(epochs):
                        for x, y in loader:
                            optimizer.zero_grad()
                            F.cross_entropy(model(x), y).backward()
                            optimizer.step()
                    report(epochs)
                else:
                    def report(epoch):
                        model.eval()
                        print(epoch, evaluate(model, loader))
                        model.train()
                    for epoch in range(epochs):
                        for x, y in loader:
                            optimizer.zero_grad()
                            F.cross_entropy(model(x), y).backward()
                            optimizer.step()
                        report(epoch)

            def fit_and_watch(model, loader, optimizer, epochs, verbose):
                model.train()
                if verbose:
                    def report(epoch):
                        model.eval()
                        print(epoch, evaluate(model, loader))
                    for epoch in range(epochs):
                        for x, y in loader:
                            optimizer.zero_grad()
                            F.cross_entropy(model(x), y).backward()
                            optimizer.step()
                        report(epoch)  # <- TL102
                else:
                    def report(epoch):
                        print(epoch)
                    for epoch in range(epochs):
                        for x, y in loader:
                            optimizer.zero_grad()
                            F.cross_entropy(model(x), y).backward()
                            optimizer.step()
                        report(epoch)
        """,
    },
    # A helper in another file that switches the model to train mode and then runs the epoch
    # trains in that mode: at the call site the mode comes before the training, so an evaluation
    # later in the loop is undone by the next call (RepDistiller's `train_vanilla`). A helper that
    # leaves the model in eval mode after training, or never sets a mode, still lets the next
    # epoch train in eval mode.
    "mode-set-before-training-in-another-file": {
        "epochs.py": """
            import torch
            import torch.nn.functional as F

            def train_epoch(epoch, loader, model, optimizer):
                model.train()
                for x, y in loader:
                    optimizer.zero_grad()
                    F.cross_entropy(model(x), y).backward()
                    optimizer.step()
                return epoch

            def train_and_report(loader, model, optimizer):
                for x, y in loader:
                    optimizer.zero_grad()
                    F.cross_entropy(model(x), y).backward()
                    optimizer.step()
                model.eval()
                with torch.no_grad():
                    return sum(F.cross_entropy(model(x), y).item() for x, y in loader)

            def validate(loader, model):
                model.eval()
                with torch.no_grad():
                    return sum(model(x).argmax(1).eq(y).sum().item() for x, y in loader)
        """,
        "main.py": """
            import torch
            from epochs import train_epoch as train, train_and_report, validate

            def main(build, train_loader, val_loader, epochs):
                model = build()
                optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
                scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=30)
                for epoch in range(1, epochs + 1):
                    train(epoch, train_loader, model, optimizer)
                    scheduler.step()
                    print(validate(val_loader, model))

            def main_with_report(build, train_loader, epochs):
                model = build()
                optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
                scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=30)
                for epoch in range(epochs):
                    print(train_and_report(train_loader, model, optimizer))  # <- TL102
                    scheduler.step()
        """,
    },
    # A helper of another file that sets its argument's mode from a flag (`model.train(training)`)
    # leaves a mode the code does not show, before it trains: an evaluation afterwards may be undone
    # by it, as a `model.train()` of the same file would be.
    "mode-set-from-a-flag-in-another-file": {
        "loops.py": """
            import torch
            import torch.nn.functional as F

            def run_epoch(model, loader, optimizer, training):
                model.train(training)
                for x, y in loader:
                    loss = F.cross_entropy(model(x), y)
                    if training:
                        optimizer.zero_grad()
                        loss.backward()
                        optimizer.step()

            def evaluate(model, loader):
                model.eval()
                with torch.no_grad():
                    return sum(model(x).argmax(1).eq(y).sum().item() for x, y in loader)
        """,
        "fit.py": """
            import torch
            from loops import evaluate, run_epoch

            def fit(model, train_loader, val_loader, epochs):
                optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
                for epoch in range(epochs):
                    run_epoch(model, train_loader, optimizer, True)
                    print(evaluate(model, val_loader))
        """,
    },
    # A helper that switches every module of a container it is given (`for module in modules:
    # module.train()`) switches the modules the caller put in that container; a model in the
    # container the optimizer is built over is a trained model (RepDistiller's `module_list` and
    # `trainable_list`). A trained model left out of the switched container still trains in eval
    # mode after validation. `opt`, the options, handed to the helper is no optimizer.
    "modules-switched-through-a-container": {
        "epochs.py": """
            import torch

            def train_epoch(loader, modules, criterion, optimizer, opt):
                for module in modules:
                    module.train()
                modules[-1].eval()
                student, teacher = modules[0], modules[-1]
                for x, y in loader:
                    optimizer.zero_grad()
                    criterion(student(x), teacher(x).detach()).backward()
                    optimizer.step()

            def validate(loader, model, opt):
                model.eval()
                with torch.no_grad():
                    return sum(model(x).argmax(1).eq(y).sum().item() for x, y in loader)
        """,
        "distill.py": """
            import argparse
            import torch
            import torch.nn as nn
            from epochs import train_epoch as train, validate

            def parse_options():
                parser = argparse.ArgumentParser()
                parser.add_argument("--lr", type=float, default=0.05)
                return parser.parse_args()

            def distill(student, teacher, train_loader, val_loader, criterion, epochs):
                opt = parse_options()
                modules = nn.ModuleList([])
                modules.append(student)
                modules.append(teacher)
                trainable = nn.ModuleList([student])
                optimizer = torch.optim.SGD(trainable.parameters(), lr=opt.lr)
                for epoch in range(epochs):
                    train(train_loader, modules, criterion, optimizer, opt)
                    print(validate(val_loader, student, opt))

            def distill_with_head(student, head, teacher, train_loader, val_loader, criterion, epochs):
                opt = parse_options()
                modules = nn.ModuleList([head, teacher])
                trainable = nn.ModuleList([student, head])
                optimizer = torch.optim.SGD(trainable.parameters(), lr=opt.lr)
                for epoch in range(epochs):
                    train(train_loader, modules, criterion, optimizer, opt)
                    print(validate(val_loader, student, opt))  # <- TL102
        """,
    },
    # backward() with no optimizer in sight computes gradients to be read, not to train with:
    # importance scores between pruning steps (Torch-Pruning's criteria benchmark), saliency maps.
    # Evaluating the model in such a loop leaves nothing training in eval mode; fine-tuning with an
    # optimizer between the pruning steps does.
    "gradients-read-not-trained": {
        "prune.py": """
            import torch
            import torch.nn.functional as F

            def validate(model, loader):
                model.eval()
                with torch.no_grad():
                    return sum(model(x).argmax(1).eq(y).sum().item() for x, y in loader)

            def prune_by_gradient(model, loader, val_loader, pruner, scorer, rounds):
                model.train()
                for _ in range(rounds):
                    for x, y in loader:
                        model.zero_grad()
                        F.cross_entropy(model(x), y).backward()
                        scorer.accumulate(model)
                    pruner.step()
                    print(validate(model, val_loader))

            def saliency(model, images, labels):
                maps = []
                for x, y in zip(images, labels):
                    model.eval()
                    x.requires_grad_(True)
                    model(x)[0, y].backward()
                    maps.append(x.grad.abs())
                return maps

            def prune_and_finetune(model, loader, val_loader, pruner, rounds):
                optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
                model.train()
                for _ in range(rounds):
                    for x, y in loader:
                        optimizer.zero_grad()
                        F.cross_entropy(model(x), y).backward()
                        optimizer.step()
                    pruner.step()
                    print(validate(model, val_loader))  # <- TL102
        """,
    },
    # A lone `for i in range(n)` over the same tensors is full-batch training (a Gaussian process
    # fitted to all its points, as gpytorch's examples do): each turn is an epoch, so a short
    # literal schedule stepped there is no epoch schedule stepped per batch. A counted loop that
    # draws a batch each turn (`next(batches)`) is a batch loop.
    "full-batch-iterations": {
        "fit.py": """
            import torch
            import torch.nn.functional as F

            def fit_gp(model, mll, train_x, train_y, iterations):
                optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
                scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[40])
                model.train()
                for i in range(iterations):
                    optimizer.zero_grad()
                    loss = -mll(model(train_x), train_y)
                    loss.backward()
                    optimizer.step()
                    scheduler.step()

            def pretrain(model, batches, steps):
                optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
                scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=30)
                for step in range(steps):
                    x, y = next(batches)
                    optimizer.zero_grad()
                    F.cross_entropy(model(x), y).backward()
                    optimizer.step()
                    scheduler.step()  # <- TL402
        """,
    },
    # An optimizer that runs backward itself (`optimizer.backward(loss)`: apex's FP16_Optimizer, as
    # Transformer-XL uses it) scales the loss: fp16 weights under it are not trained unscaled. Only
    # modules are trained: `inputs = inputs.half()` on each batch is not a model (the CIFAR ResNet
    # trainer halves both; only the model is reported, in a file with no loss scaling).
    "fp16-loss-scaled-by-the-optimizer": {
        "apex_fp16.py": """
            import torch
            import torch.nn.functional as F
            from apex.fp16_utils import FP16_Optimizer

            def train(model, loader):
                model = model.half()
                optimizer = FP16_Optimizer(torch.optim.Adam(model.parameters()), dynamic_loss_scale=True)
                for x, y in loader:
                    optimizer.zero_grad()
                    loss = F.cross_entropy(model(x.half()), y)
                    optimizer.backward(loss)
                    optimizer.step()
        """,
        "plain_fp16.py": """
            import torch.nn.functional as F

            def train(model, loader, optimizer, half):
                if half:
                    model.half()  # <- TL503
                model.train()
                for i, (inputs, target) in enumerate(loader):
                    inputs = inputs.cuda()
                    if half:
                        inputs = inputs.half()
                    loss = F.cross_entropy(model(inputs), target.cuda())
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
        """,
    },
    # A scheduler stepped with a value (`scheduler.step(val_loss)`, a plateau scheduler) follows the
    # metric, not the number of calls: stepping it only when the model is evaluated is its design
    # (Transformer-XL's `dev_perf` schedule). A plain step under the same test is not.
    "scheduler-stepped-with-a-value": {
        "train.py": """
            import torch
            import torch.nn.functional as F

            def train(model, loader, optimizer, evaluate, eval_interval):
                plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5)
                for step, (x, y) in enumerate(loader):
                    optimizer.zero_grad()
                    F.cross_entropy(model(x), y).backward()
                    optimizer.step()
                    if step % eval_interval == 0:
                        plateau.step(evaluate(model))

            def train_with_decay(model, loader, optimizer, evaluate, eval_interval):
                decay = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.999)
                for step, (x, y) in enumerate(loader):
                    optimizer.zero_grad()
                    F.cross_entropy(model(x), y).backward()
                    optimizer.step()
                    if step % eval_interval == 0:
                        print(evaluate(model))
                        decay.step()  # <- TL401
        """,
    },
    # Meta-learning sums the tasks' losses and backpropagates the sum through another name
    # (`meta_loss = total / n; meta_loss.backward()`, learn2learn's MAML examples): the sum is the
    # loss, not a leak. A total that no backward() reaches still is.
    "task-losses-summed-into-the-meta-loss": {
        "maml.py": """
            import torch.nn.functional as F

            def meta_train(meta_model, tasks, optimizer, iterations, meta_batch):
                for iteration in range(iterations):
                    total = 0.0
                    for task in tasks.sample(meta_batch):
                        learner = meta_model.clone()
                        learner.adapt(F.cross_entropy(learner(task.support_x), task.support_y))
                        loss = F.cross_entropy(learner(task.query_x), task.query_y)
                        total += loss
                    meta_loss = total / meta_batch
                    optimizer.zero_grad()
                    meta_loss.backward()
                    optimizer.step()

            def meta_train_logged(meta_model, tasks, optimizer, iterations, meta_batch, regulariser):
                for iteration in range(iterations):
                    total = 0.0
                    for task in tasks.sample(meta_batch):
                        loss = F.cross_entropy(meta_model(task.query_x), task.query_y)
                        total += loss  # <- TL303
                    print(total / meta_batch)
                    optimizer.zero_grad()
                    regulariser(meta_model).backward()
                    optimizer.step()

            if __name__ == "__main__":
                meta_model, tasks, optimizer, regulariser = setup()
                meta_train(meta_model, tasks, optimizer, 1000, 8)
                meta_train_logged(meta_model, tasks, optimizer, 1000, 8, regulariser)
        """,
    },
    # A scheduler stepped beside its optimizer's step is stepped once per step, even when the
    # gradients of that step accumulate in an inner loop (tasks of a meta-batch, micro-batches):
    # learn2learn's MAML++ steps a cosine schedule of `epochs * iterations` that way. Stepped after
    # a loop that holds the optimizer's steps, it is stepped once per epoch.
    "scheduler-beside-an-accumulated-step": {
        "meta.py": """
            import torch

            def train(maml, tasks, epochs, iterations, meta_batch, step_on_task):
                opt = torch.optim.AdamW(maml.parameters(), 1e-3)
                scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * iterations)
                for epoch in range(epochs):
                    for _ in range(iterations):
                        opt.zero_grad()
                        for _ in range(meta_batch):
                            step_on_task(maml.clone(), tasks.sample()).backward()
                        opt.step()
                        scheduler.step()

            def train_per_epoch(model, loader, epochs, criterion):
                opt = torch.optim.SGD(model.parameters(), lr=0.1)
                scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * len(loader))
                for epoch in range(epochs):
                    for x, y in loader:
                        opt.zero_grad()
                        criterion(model(x), y).backward()
                        opt.step()
                    scheduler.step()  # <- TL402
        """,
    },
    # A device named through `torch.device(...)` is that device: `model.to(device)` before
    # wrapping and `model.to(args.device)` after it move to one device and convert nothing
    # (distiller's detector compression re-transfers the model after wrapping). Halving it after
    # wrapping to float64 does convert.
    "same-device-named-two-ways": {
        "ddp.py": """
            import torch
            from torch.nn.parallel import DistributedDataParallel as DDP

            def train(model, loader, args):
                device = torch.device(args.device)
                model.to(device)
                model = DDP(model, device_ids=[args.gpu])
                model.to(args.device)
                optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
                for x, y in loader:
                    optimizer.zero_grad()
                    torch.nn.functional.cross_entropy(model(x), y).backward()
                    optimizer.step()

            def train_half(model, loader, args):
                device = torch.device(args.device)
                model.to(device)
                model = DDP(model, device_ids=[args.gpu])
                model.double()  # <- TL705
                optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
                for x, y in loader:
                    optimizer.zero_grad()
                    torch.nn.functional.cross_entropy(model(x), y).backward()
                    optimizer.step()
        """,
    },
    # A step-decay schedule's `lr_steps` are its own decay points, in whatever unit it is stepped
    # (torchvision's detection recipe: epochs). "steps" in the length of a schedule still counts
    # iterations.
    "decay-steps-of-a-step-schedule": {
        "detect.py": """
            import torch

            def train(model, loader, optimizer, args):
                decay = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=args.lr_steps, gamma=0.1)
                for epoch in range(args.epochs):
                    for images, targets in loader:
                        optimizer.zero_grad()
                        sum(model(images, targets).values()).backward()
                        optimizer.step()
                    decay.step()

            def train_cosine(model, loader, optimizer, args):
                cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.total_steps)
                for epoch in range(args.epochs):
                    for x, y in loader:
                        optimizer.zero_grad()
                        torch.nn.functional.cross_entropy(model(x), y).backward()
                        optimizer.step()
                    cosine.step()  # <- TL402
        """,
    },
    # backward() on a scalar function with no optimizer in sight takes a derivative to be read (a
    # plot of a pruning schedule's rate in distiller's notebook): what it is appended to holds no
    # training loss.
    "derivative-read-not-a-loss": {
        "rates.py": """
            import matplotlib.pyplot as plt
            import torch

            def plot_rates(schedule, epochs):
                values, rates = [], []
                for epoch in range(epochs):
                    at = torch.tensor([float(epoch)], requires_grad=True)
                    value = schedule(at)
                    values.append(value)
                    value.backward()
                    rates.append(at.grad.item())
                plt.plot(range(epochs), values, range(epochs), rates)

            history = []

            def train(model, loader, optimizer, criterion):
                for x, y in loader:
                    loss = criterion(model(x), y)
                    history.append(loss)  # <- TL303
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
        """,
    },
    # A training helper that switches the model to eval mode itself and then trains chose that
    # mode (linear probing keeps the frozen backbone's batch-norm statistics, as MoCo v3's
    # `main_lincls.py` does): neither its switch nor validation's afterwards is a mode left over.
    "training-helper-chooses-eval-mode": {
        "probe.py": """
            import torch
            import torch.nn.functional as F

            def train_probe(loader, model, optimizer):
                model.eval()
                for x, y in loader:
                    optimizer.zero_grad()
                    F.cross_entropy(model(x), y).backward()
                    optimizer.step()

            def train_plain(loader, model, optimizer):
                for x, y in loader:
                    optimizer.zero_grad()
                    F.cross_entropy(model(x), y).backward()
                    optimizer.step()

            def validate(loader, model):
                model.eval()
                with torch.no_grad():
                    return sum(model(x).argmax(1).eq(y).sum().item() for x, y in loader)

            def linear_probe(model, train_loader, val_loader, epochs):
                optimizer = torch.optim.SGD(model.fc.parameters(), lr=0.1)
                for epoch in range(epochs):
                    train_probe(train_loader, model, optimizer)
                    print(validate(val_loader, model))

            def fine_tune(model, train_loader, val_loader, epochs):
                optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
                model.train()
                for epoch in range(epochs):
                    train_plain(train_loader, model, optimizer)
                    print(validate(val_loader, model))  # <- TL102
        """,
    },
    # The modules a backward() trains are those the optimizer stepped after it updates: a GAN
    # generator's feature-matching loss compares the discriminator's features of real audio, taken
    # under no_grad, with those of the generated audio (ParallelWaveGAN's tests); labels made with
    # `torch.ones_like(p)` read only p's shape. The generator's own forward under no_grad still
    # trains nothing.
    "discriminator-features-as-a-target": {
        "gan.py": """
            import torch
            import torch.nn.functional as F

            def check_generator_trains(model_g, model_d, c, y):
                optimizer_g = torch.optim.AdamW(model_g.parameters())
                optimizer_d = torch.optim.AdamW(model_d.parameters())
                y_hat = model_g(c)
                p_hat = model_d(y_hat)
                with torch.no_grad():
                    p = model_d(y)
                loss_g = F.l1_loss(p_hat, p) + F.mse_loss(p_hat, torch.ones_like(p_hat))
                optimizer_g.zero_grad()
                loss_g.backward()
                optimizer_g.step()
                loss_d = F.mse_loss(model_d(y), torch.ones_like(p)) + F.mse_loss(model_d(y_hat.detach()), torch.zeros_like(p))
                optimizer_d.zero_grad()
                loss_d.backward()
                optimizer_d.step()

            def generator_step_frozen(model_g, model_d, optimizer_g, c, y, reg):
                optimizer_g = torch.optim.Adam(model_g.parameters())
                with torch.no_grad():
                    y_hat = model_g(c)  # <- TL103
                loss_g = F.mse_loss(model_d(y_hat), torch.ones_like(y)) + reg(model_g)
                optimizer_g.zero_grad()
                loss_g.backward()
                optimizer_g.step()
        """,
    },
    # In a function that calls backward(), only what reaches a loss can poison the weights: a
    # reference value compared in a test's assertion or a metric printed beside the step reaches
    # none (botorch's tests of its safe-math helpers). The same log of a difference in the loss does.
    "normalisation-outside-the-loss": {
        "test_math.py": """
            import torch

            def log_diff_exp(a, b):
                return b + torch.log1p(-torch.exp(a - b))

            def test_log_diff_exp():
                x = torch.randn(17, requires_grad=True)
                y = 2 * x.abs() + 1
                out = log_diff_exp(x, y)
                assert torch.allclose(out, (y.exp() - x.exp()).log(), atol=1e-5)
                out.sum().backward()
                assert x.grad is not None

            def train(model, loader, optimizer):
                for x, y in loader:
                    scores = model(x)
                    print("gap", (scores.max() - scores.min()).log().item())
                    loss = -(scores.exp() - y.exp()).log().mean()  # <- TL305
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
        """,
    },
    # A zero_grad() in an `except` handler recovers from a failed micro-batch (an out-of-memory
    # backward leaves partial gradients; fairseq's trainer, in SpanBERT, clears them and goes on):
    # it is not on the training path between backward() and step(). The same call after every
    # backward() is.
    "gradients-cleared-when-a-micro-batch-fails": {
        "trainer.py": """
            def train_step(model, samples, optimizer):
                for sample in samples:
                    try:
                        loss = model(sample).sum()
                        loss.backward()
                    except RuntimeError as error:
                        if "out of memory" not in str(error):
                            raise
                        print("skipping a batch that ran out of memory")
                        optimizer.zero_grad()
                optimizer.step()
                optimizer.zero_grad()

            def train_step_cleared(model, samples, optimizer):
                for sample in samples:
                    loss = model(sample).sum()
                    loss.backward()
                optimizer.zero_grad()  # <- TL202
                optimizer.step()
        """,
    },
    # A builder whose every caller in the linted tree hands the model on to code trainlint cannot
    # follow (`return Generator(compression, lm)`, audiocraft's pretrained-model loaders) is not
    # known to feed training: no warning. One that no code of the tree calls still gets the warning.
    "builder-whose-callers-hand-the-model-on": {
        "loaders.py": """
            import torch

            def load_lm_model(path, device="cpu"):
                model = LanguageModel()
                model.load_state_dict(torch.load(path))
                model.eval()
                return model

            def load_codec(path):
                codec = Codec()
                codec.load_state_dict(torch.load(path))
                return codec.eval()  # <- TL101
        """,
        "generator.py": """
            from loaders import load_lm_model

            class Generator:
                @staticmethod
                def get_pretrained(path, device="cpu"):
                    lm = load_lm_model(path, device=device)
                    return Generator(lm)
        """,
    },
    # A call into a namespace package (`facelib/` with no __init__.py, as in CodeFormer) names the
    # callee `facelib.parsing.init_parsing_model`, while its file exports `parsing.init_parsing_model`:
    # the two are one function, so its uses are known (inference here; training there).
    "callee-in-a-namespace-package": {
        "facelib/parsing/__init__.py": """
            import torch

            def init_parsing_model(path):
                model = ParseNet()
                model.load_state_dict(torch.load(path))
                model.eval()
                return model

            def init_detection_model(path):
                model = RetinaFace()
                model.load_state_dict(torch.load(path))
                return model.eval()  # <- TL101 error
        """,
        "facelib/utils/__init__.py": "",
        "facelib/utils/restore.py": """
            import torch
            from facelib.parsing import init_parsing_model

            class RestoreHelper:
                def __init__(self, path):
                    self.face_parse = init_parsing_model(path)

                @torch.no_grad()
                def parse(self, face):
                    return self.face_parse(face)[0].argmax(1)
        """,
        "finetune.py": """
            import torch
            from facelib.parsing import init_detection_model

            def finetune(path, loader, criterion):
                detector = init_detection_model(path)
                optimizer = torch.optim.SGD(detector.parameters(), lr=0.01)
                for images, boxes in loader:
                    optimizer.zero_grad()
                    criterion(detector(images), boxes).backward()
                    optimizer.step()
        """,
    },
    # Layers with no parameters, buffers or train/eval behaviour (pooling, activations), directly
    # or inside a module class of the file, lose nothing in a plain list (Time-Series-Library's
    # series decomposition blocks); a list of the same blocks holding a Linear or a Dropout does.
    "parameter-free-blocks-in-a-list": {
        "layers.py": """
            import torch.nn as nn

            class MovingAverage(nn.Module):
                def __init__(self, kernel_size):
                    super().__init__()
                    self.kernel_size = kernel_size
                    self.avg = nn.AvgPool1d(kernel_size, stride=1)

                def forward(self, x):
                    pad = (self.kernel_size - 1) // 2
                    return self.avg(nn.functional.pad(x, (pad, pad)))

            class Decompose(nn.Module):
                def __init__(self, kernel_size):
                    super().__init__()
                    self.moving_avg = MovingAverage(kernel_size)

                def forward(self, x):
                    trend = self.moving_avg(x)
                    return x - trend, trend

            class Projected(nn.Module):
                def __init__(self, kernel_size, dim, block):
                    super().__init__()
                    self.moving_avg = MovingAverage(kernel_size)
                    self.proj = nn.Linear(dim, dim)
                    self.block = block

                def forward(self, x):
                    return self.proj(self.moving_avg(x))

            class Holder(nn.Module):
                def __init__(self, block):
                    super().__init__()
                    self.block = block

                def forward(self, x):
                    return self.block(x)

            class MultiScale(nn.Module):
                def __init__(self, kernels, dim):
                    super().__init__()
                    self.decompositions = [Decompose(k) for k in kernels]
                    self.pools = [nn.MaxPool1d(k) for k in kernels]
                    self.projected = [Projected(k, dim, None) for k in kernels]  # <- TL601
                    self.dropouts = [nn.Dropout(0.1), nn.ReLU()]  # <- TL601
                    self.held = [Holder(nn.ReLU())]  # <- TL601
        """,
    },
    # A dataset built from data already split by rank (`shards[rank]` bound to a name first, then
    # handed to the dataset) is each rank's own share: no DistributedSampler is needed. The same
    # dataset over the unsplit list is still every rank's whole dataset, whatever the test that
    # chose between two unsplit lists is named.
    "dataset-over-data-split-by-rank-earlier": {
        "ddp_train.py": """
            import glob
            import torch
            import torch.distributed as dist
            from torch.nn.parallel import DistributedDataParallel
            from torch.utils.data import DataLoader

            def chunk(items, n):
                return [items[i::n] for i in range(n)]

            def run(net, epochs):
                dist.init_process_group("nccl")
                volumes = sorted(glob.glob("volumes/*.npy"))
                mine = chunk(volumes, dist.get_world_size())[dist.get_rank()]
                cached = VolumeCache(items=mine, capacity=32)
                loader = DataLoader(cached, batch_size=4, shuffle=True)
                net = DistributedDataParallel(net.cuda())
                opt = torch.optim.Adam(net.parameters(), 1e-3)
                for epoch in range(epochs):
                    for x, y in loader:
                        opt.zero_grad()
                        torch.nn.functional.l1_loss(net(x.cuda()), y.cuda()).backward()
                        opt.step()

            def run_unsplit(net, epochs, per_node_cache=False):
                dist.init_process_group("nccl")
                volumes = sorted(glob.glob("volumes/*.npy"))
                everything = list(volumes) if per_node_cache else volumes[:1000]
                cached = VolumeCache(items=everything, capacity=32)
                loader = DataLoader(cached, batch_size=4, shuffle=True)  # <- TL703
                net = DistributedDataParallel(net.cuda())
                opt = torch.optim.Adam(net.parameters(), 1e-3)
                for epoch in range(epochs):
                    for x, y in loader:
                        opt.zero_grad()
                        torch.nn.functional.l1_loss(net(x.cuda()), y.cuda()).backward()
                        opt.step()
        """,
    },
    # A schedule whose horizon counts micro-batches (len(loader) * epochs) stepped every micro-batch
    # is in step with training, however often the optimizer steps; one whose horizon counts
    # optimizer steps (divided by the accumulation) runs k times too fast. The scheduler may come
    # in as an argument, built by the caller from a helper of another file.
    "schedule-counted-in-micro-batches": {
        "sched.py": """
            import torch
            from transformers import get_linear_schedule_with_warmup

            def make_schedule(opt, total, warmup_fraction):
                return get_linear_schedule_with_warmup(opt, int(total * warmup_fraction), total)
        """,
        "train.py": """
            import torch
            from transformers import get_cosine_schedule_with_warmup
            from sched import make_schedule

            def micro_batch_horizon(net, batches, epochs, k):
                opt = torch.optim.AdamW(net.parameters())
                sched = get_cosine_schedule_with_warmup(opt, 200, len(batches) * epochs)
                for epoch in range(epochs):
                    for n, b in enumerate(batches):
                        (net(b).mean() / k).backward()
                        if n % k == k - 1:
                            opt.step()
                            opt.zero_grad()
                        sched.step()

            def optimizer_step_horizon(net, batches, epochs, k):
                opt = torch.optim.AdamW(net.parameters())
                sched = get_cosine_schedule_with_warmup(opt, 200, len(batches) // k * epochs)
                for epoch in range(epochs):
                    for n, b in enumerate(batches):
                        (net(b).mean() / k).backward()
                        if n % k == k - 1:
                            opt.step()
                            opt.zero_grad()
                        sched.step()  # <- TL401

            def one_epoch(net, batches, opt, sched, k):
                for n, b in enumerate(batches):
                    (net(b).mean() / k).backward()
                    if n % k == k - 1:
                        opt.step()
                        opt.zero_grad()
                    sched.step()

            def fit(net, batches, epochs, k):
                opt = torch.optim.AdamW(net.parameters())
                count = len(batches) * epochs
                sched = make_schedule(opt, count, 0.05)
                for epoch in range(epochs):
                    one_epoch(net, batches, opt, sched, k)
        """,
    },
    # A model rebound in the branch that skips training (a pretrained one is loaded instead) never
    # meets the optimizer's step: the step runs only in the other branch, on the model it was built from.
    "model-replaced-only-where-training-is-skipped": {
        "notebook_export.py": """
            import torch

            net = UNet(channels=(32, 64, 128))
            opt = torch.optim.Adam(net.parameters(), lr=1e-4)
            skip_training = False

            if skip_training:
                net = UNet.from_checkpoint("unet.ckpt")
            else:
                for epoch in range(50):
                    for x, y in loader:
                        opt.zero_grad()
                        torch.nn.functional.mse_loss(net(x), y).backward()
                        opt.step()

            net = UNet.from_checkpoint("unet.ckpt")  # <- TL404
            for x, y in loader:
                opt.zero_grad()
                torch.nn.functional.mse_loss(net(x), y).backward()
                opt.step()
        """,
    },
    # `.append` of an object built by some class (a running mean, a metric) is that class's method:
    # it may keep only a detached number. A list keeps the tensor and its graph.
    "append-of-a-running-mean-object": {
        "loop.py": """
            import torch

            history = []

            def train(net, loader, opt, epochs):
                for epoch in range(epochs):
                    meter = RunningMean()
                    for x, y in loader:
                        opt.zero_grad()
                        loss = torch.nn.functional.mse_loss(net(x), y)
                        meter.append(loss, count=len(x))
                        history.append(loss)  # <- TL303
                        loss.backward()
                        opt.step()
                    print(meter.aggregate())
        """,
    },
    # A mode chosen per run by a test (fine-tune in train mode, linear probe in eval mode) is the
    # mode training is meant to run in, like `model.train(finetune)`; a mode chosen once before the
    # epoch loop is still undone by the evaluation at the end of the first epoch.
    "mode-chosen-by-a-test-before-training": {
        "probe.py": """
            import torch

            def fit(args, model, loader, val_loader, opt):
                for epoch in range(args.epochs):
                    if args.mode == "finetune":
                        model.train()
                    elif args.mode == "probe":
                        model.eval()
                    else:
                        raise ValueError(args.mode)
                    for x, y in loader:
                        opt.zero_grad()
                        torch.nn.functional.cross_entropy(model(x), y).backward()
                        opt.step()
                    model.eval()
                    with torch.no_grad():
                        for x, y in val_loader:
                            model(x)

            def fit_choosing_once(args, model, loader, val_loader, opt):
                if args.mode == "finetune":
                    model.train()
                else:
                    model.eval()
                for epoch in range(args.epochs):
                    for x, y in loader:
                        opt.zero_grad()
                        torch.nn.functional.cross_entropy(model(x), y).backward()
                        opt.step()
                    model.eval()  # <- TL102
                    with torch.no_grad():
                        for x, y in val_loader:
                            model(x)
        """,
    },
    # backward() frees the saved activations of the loss it runs on, whether a running total took
    # the loss before or after it: what the total keeps is graph nodes (a warning), unless
    # backward() may not run in that iteration or retains the graph (the activations stay: an error).
    "loss-kept-before-its-own-backward": {
        "epochs.py": """
            import torch

            for epoch in range(epochs):
                running = 0
                for x, y in loader:
                    loss = torch.nn.functional.cross_entropy(net(x), y)
                    running += loss  # <- TL303 warning
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                print(running / len(loader))

            def fit_retaining(net, loader, opt, epochs):
                for epoch in range(epochs):
                    running = 0
                    for x, y in loader:
                        loss = torch.nn.functional.cross_entropy(net(x), y)
                        running += loss  # <- TL303 error
                        opt.zero_grad()
                        loss.backward(retain_graph=True)
                        opt.step()
                    print(running / len(loader))

            def fit_sometimes(net, loader, opt, epochs, skip):
                for epoch in range(epochs):
                    running = 0
                    for x, y in loader:
                        loss = torch.nn.functional.cross_entropy(net(x), y)
                        running += loss  # <- TL303 error
                        if not skip(x):
                            opt.zero_grad()
                            loss.backward()
                            opt.step()
                    print(running / len(loader))
        """,
    },
    # A data transform (torchaudio/torchvision) or a loss criterion has no parameters and no
    # train/eval behaviour: a plain container of them (or of blocks made of one) hides nothing
    # silently. A block with a convolution does, and so does the adaptive softmax (it has weights).
    "plain-containers-of-parameter-free-layers": {
        "augment.py": """
            import torch
            import torchaudio

            class Resampled(torch.nn.Module):
                def __init__(self, source_rate, target_rate):
                    super().__init__()
                    self.resample = torchaudio.transforms.Resample(source_rate, target_rate)

                def forward(self, wave):
                    self.resample.to(wave.device)
                    return self.resample(wave)

            class Filtered(torch.nn.Module):
                def __init__(self, taps):
                    super().__init__()
                    self.filter = torch.nn.Conv1d(1, 1, taps)

                def forward(self, wave):
                    return self.filter(wave)

            class Perturb(torch.nn.Module):
                def __init__(self, rate, factors=(0.9, 1.0, 1.1), tap_counts=(3, 5)):
                    super().__init__()
                    self.choices = [Resampled(rate, int(rate * f)) for f in factors]
                    self.spectra = [torchaudio.transforms.MelSpectrogram(rate, n_mels=m) for m in (40, 80)]
                    self.criteria = {"l1": torch.nn.SmoothL1Loss(reduction="none"), "ce": torch.nn.CrossEntropyLoss()}
                    self.tails = [torch.nn.AdaptiveLogSoftmaxWithLoss(64, 1000, [100])]  # <- TL601
                    self.filters = [Filtered(t) for t in tap_counts]  # <- TL601

                def forward(self, wave):
                    pick = torch.randint(len(self.choices), ()).item()
                    return self.filters[0](self.choices[pick](wave))
        """,
    },
    # A plain container whose whole contents the class also keeps in a module container
    # (`self.net = nn.ModuleList(list(self.convs.values()))`, `nn.Sequential(*self.layers)`) is
    # registered through it. One element handed on registers that one only, and a container
    # module built in forward() and dropped registers nothing.
    "container-handed-whole-to-a-module-container": {
        "nets.py": """
            import torch.nn as nn

            class PoseNet(nn.Module):
                def __init__(self, frames):
                    super().__init__()
                    self.convs = {}
                    for i in range(4):
                        self.convs[i] = nn.Conv2d(3 * frames if i == 0 else 16, 16, 3)
                    self.body = nn.ModuleList(list(self.convs.values()))

                def forward(self, x):
                    for i in range(4):
                        x = self.convs[i](x)
                    return x

            class Tower(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.layers = [nn.Linear(8, 8) for _ in range(3)]
                    self.stack = nn.Sequential(*self.layers)

            class FirstOnly(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.convs = [nn.Conv2d(3, 3, 1), nn.Conv2d(3, 3, 1)]  # <- TL601
                    self.first = nn.ModuleList([self.convs[0]])

            class StackedInForward(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.layers = [nn.Linear(8, 8), nn.Linear(8, 8)]  # <- TL601

                def forward(self, x):
                    return nn.Sequential(*self.layers)(x)
        """,
    },
    # A loop over a literal list of settings runs one configuration per iteration (a timing on each
    # device, a learning-rate sweep): the optimizer built in it belongs to that run. A loop over
    # epochs that builds it again resets its state every epoch.
    "loop-over-literal-settings": {
        "bench.py": """
            import time
            import torch

            def time_devices(model, loader):
                for device in ["cpu", "cuda"]:
                    model.to(device)
                    opt = torch.optim.Adam(model.head.parameters(), lr=1e-3)
                    start = time.time()
                    for step, (x, y) in enumerate(loader):
                        opt.zero_grad()
                        torch.nn.functional.nll_loss(model(x.to(device)), y.to(device)).backward()
                        opt.step()
                        if step == 3:
                            break
                    print(device, (time.time() - start) / 4)

            def train(model, loader, epochs):
                for epoch in range(epochs):
                    opt = torch.optim.Adam(model.head.parameters(), lr=1e-3)  # <- TL403
                    for x, y in loader:
                        opt.zero_grad()
                        torch.nn.functional.nll_loss(model(x), y).backward()
                        opt.step()
        """,
    },
    # An engine a framework built from the model (`deepspeed.initialize(model=net)`, an element of
    # its result) holds it: `engine.train()` at the top of each step switches the model back after
    # an evaluation on the bare model. An engine built from another network does not.
    "engine-built-from-the-model-switches-it": {
        "train.py": """
            import torch
            import deepspeed

            def run(net, data, args):
                engine, opt, loader, _ = deepspeed.initialize(args=args, model=net, training_data=data)
                for step, batch in enumerate(loader):
                    engine.train()
                    loss = engine(batch)
                    engine.backward(loss)
                    engine.step()
                    if step % 100 == 0:
                        net.eval()
                        with torch.no_grad():
                            net(batch)

            def run_beside(net, critic, data, args):
                engine, opt, loader, _ = deepspeed.initialize(args=args, model=critic, training_data=data)
                net_opt = torch.optim.Adam(net.parameters())
                for step, batch in enumerate(loader):
                    engine.train()
                    engine.backward(engine(batch))
                    engine.step()
                    net_opt.zero_grad()
                    net(batch).mean().backward()
                    net_opt.step()
                    if step % 100 == 0:
                        net.eval()  # <- TL102
                        with torch.no_grad():
                            net(batch)
        """,
    },
    # A tensor the module updates itself from its own gradient (an adversarial perturbation) is
    # kept out of parameters() on purpose: the model's optimizer must not touch it. A learnable
    # temperature that nothing updates is still flagged.
    "tensor-updated-from-its-own-gradient": {
        "noise.py": """
            import torch

            class Perturb(torch.nn.Module):
                def __init__(self, size, step=1e-3):
                    super().__init__()
                    self.step = step
                    self.noise = torch.zeros(size).normal_(0, 1e-2).requires_grad_()
                    self.temperature = torch.ones(1, requires_grad=True)  # <- TL602

                def ascend(self):
                    with torch.no_grad():
                        self.noise += self.step * self.noise.grad.sign()
                    self.noise.grad = None

                def forward(self, embedded):
                    return (embedded + self.noise) / self.temperature
        """,
    },
    # Scaled gradients clipped at a threshold multiplied by the scaler's current scale clip as
    # unscaling first would, also through a helper handed the scale; a plain threshold does not.
    "clip-threshold-in-scaled-units": {
        "clipping.py": """
            import torch

            def clip_gradients(model, max_norm, scale=1.0):
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm * scale)
        """,
        "loop.py": """
            import torch
            from clipping import clip_gradients

            def train(model, loader, opt, max_norm):
                scaler = torch.cuda.amp.GradScaler()
                for x, y in loader:
                    opt.zero_grad()
                    with torch.autocast("cuda"):
                        loss = torch.nn.functional.mse_loss(model(x), y)
                    scaler.scale(loss).backward()
                    clip_gradients(model, max_norm, scale=scaler.get_scale())
                    scaler.step(opt)
                    scaler.update()

            class Trainer:
                def finish_update(self):
                    clip_gradients(self.model, self.max_norm, scale=self.scaler.get_scale())
                    self.scaler.step(self.opt)
                    self.scaler.update()

                def run(self, loader):
                    self.scaler = torch.cuda.amp.GradScaler()
                    for x, y in loader:
                        self.opt.zero_grad()
                        with torch.autocast("cuda"):
                            loss = torch.nn.functional.mse_loss(self.model(x), y)
                        self.scaler.scale(loss).backward()
                        self.finish_update()

            def train_inline(model, loader, opt, max_norm):
                scaler = torch.cuda.amp.GradScaler()
                for x, y in loader:
                    opt.zero_grad()
                    with torch.autocast("cuda"):
                        loss = torch.nn.functional.mse_loss(model(x), y)
                    scaler.scale(loss).backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm * scaler.get_scale())
                    scaler.step(opt)
                    scaler.update()

            def train_plain(model, loader, opt, max_norm):
                scaler = torch.cuda.amp.GradScaler()
                for x, y in loader:
                    opt.zero_grad()
                    with torch.autocast("cuda"):
                        loss = torch.nn.functional.mse_loss(model(x), y)
                    scaler.scale(loss).backward()
                    clip_gradients(model, max_norm)  # <- TL502
                    scaler.step(opt)
                    scaler.update()
        """,
    },
    # A tensor made from constants (`Variable(torch.Tensor([3]), requires_grad=True)`) is a leaf the
    # graph starts at, as `torch.tensor(3.0, requires_grad=True)` is: nothing was rebuilt. Wrapping
    # the loss's value in a new Variable still cuts the graph.
    "leaf-made-from-constant-tensors": {
        "autograd_demo.py": """
            import torch
            from torch.autograd import Variable

            x = Variable(torch.Tensor([3]), requires_grad=True)
            y = Variable(torch.ones(1) * 5, requires_grad=True)
            z = 2 * x + y + 4
            z.backward()
            print(x.grad, y.grad)

            def train(model, loader, optimizer, criterion):
                for inputs, targets in loader:
                    optimizer.zero_grad()
                    loss = criterion(model(inputs), targets)
                    loss = Variable(loss.data, requires_grad=True)
                    loss.backward()  # <- TL204
                    optimizer.step()
        """,
    },
    # A model built in sight from layers that compute the same in both modes (no dropout, no batch
    # norm) trains the same in eval mode: the finding is information, not an error. One block with
    # dropout, or a recurrent layer built with dropout, makes it an error again.
    "eval-mode-of-a-model-without-dropout-or-batch-norm": {
        "tutorial.py": """
            import torch
            from torch import nn

            class Block(nn.Module):
                def __init__(self, width):
                    super().__init__()
                    self.layers = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.LayerNorm(width))

                def forward(self, x):
                    return self.layers(x)

            class Plain(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.blocks = nn.ModuleList([Block(64), Block(64)])
                    self.rnn = nn.GRU(64, 64, batch_first=True)
                    self.head = nn.Linear(64, 10)

                def forward(self, x):
                    for block in self.blocks:
                        x = block(x)
                    return self.head(self.rnn(x)[0][:, -1])

            class Regularised(Plain):
                def __init__(self):
                    super().__init__()
                    self.rnn = nn.GRU(64, 64, num_layers=2, dropout=0.2, batch_first=True)

            def fit(net, loader, val_loader, epochs):
                opt = torch.optim.Adam(net.parameters())
                for epoch in range(epochs):
                    for x, y in loader:
                        opt.zero_grad()
                        nn.functional.cross_entropy(net(x), y).backward()
                        opt.step()
                    net.eval()  # <- TL102 error
                    with torch.no_grad():
                        print(sum(float(net(x).argmax(1).eq(y).sum()) for x, y in val_loader))

            model = Plain()
            optimizer = torch.optim.Adam(model.parameters())
            for epoch in range(3):
                for x, y in train_loader:
                    optimizer.zero_grad()
                    nn.functional.cross_entropy(model(x), y).backward()
                    optimizer.step()
                model.eval()  # <- TL102 info
                with torch.no_grad():
                    print(sum(float(model(x).argmax(1).eq(y).sum()) for x, y in val_loader))

            regularised = Regularised()
            regularised_optimizer = torch.optim.Adam(regularised.parameters())
            for epoch in range(3):
                for x, y in train_loader:
                    regularised_optimizer.zero_grad()
                    nn.functional.cross_entropy(regularised(x), y).backward()
                    regularised_optimizer.step()
                regularised.eval()  # <- TL102 error
                with torch.no_grad():
                    print(sum(float(regularised(x).argmax(1).eq(y).sum()) for x, y in val_loader))
        """,
    },
    # -- misses ---------------------------------------------------------------------------------
    # A loop whose training and evaluation both happen in helpers of another file shows neither in
    # its own words: the file is linted again with those helpers' summaries all the same, and the
    # model is the trained one because the optimizer built over it is handed to the training
    # helper. (Before: nothing asked the summaries, and nothing was reported.)
    "training-and-evaluation-both-imported": {
        "engine.py": """
            import torch
            import torch.nn.functional as F

            def train_one_epoch(model, loader, optimizer):
                for x, y in loader:
                    optimizer.zero_grad()
                    F.cross_entropy(model(x), y).backward()
                    optimizer.step()

            def evaluate(model, loader):
                model.eval()
                with torch.no_grad():
                    return sum(model(x).argmax(1).eq(y).sum().item() for x, y in loader)
        """,
        "main.py": """
            import torch
            from engine import train_one_epoch, evaluate

            def main(model, teacher, train_loader, val_loader, epochs):
                optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
                for epoch in range(epochs):
                    train_one_epoch(model, train_loader, optimizer)
                    print(evaluate(model, val_loader))  # <- TL102
                    print(evaluate(teacher, val_loader))
        """,
    },
    # Swin-Transformer's loss scaler (a copy of timm's) names its step flag `update_grad=`, not
    # `need_update=`: the optimizer steps only at the window's end, so a scheduler stepped every
    # micro-batch beside it advances k times too fast.
    "loss-scaler-update-grad-flag": {
        "main.py": """
            def train_one_epoch(model, criterion, loader, optimizer, scheduler, loss_scaler, accum):
                optimizer.zero_grad()
                for idx, (samples, targets) in enumerate(loader):
                    loss = criterion(model(samples), targets) / accum
                    loss_scaler(loss, optimizer, parameters=model.parameters(),
                                update_grad=(idx + 1) % accum == 0)
                    if (idx + 1) % accum == 0:
                        optimizer.zero_grad()
                    scheduler.step()  # <- TL401
        """,
    },
    # `try: next(it) except StopIteration: break` ends the loop; it guards nothing after it.
    "next-with-stop-iteration-is-a-loop-exit": {
        "trainer.py": """
            import torch

            class Trainer:
                def __init__(self, model, loader, accum):
                    self.model, self.loader, self.accum = model, loader, accum
                    self.optimizer = torch.optim.AdamW(model.parameters())

                def train(self):
                    batches = iter(self.loader)
                    step = 0
                    while True:
                        try:
                            batch = next(batches)
                        except StopIteration:
                            break
                        self.optimizer.zero_grad()  # <- TL201
                        loss = self.model(batch).mean() / self.accum
                        loss.backward()
                        if (step + 1) % self.accum == 0:
                            self.optimizer.step()
                        step += 1
        """,
    },
    # The trained model is known from use when it comes in as a parameter.
    "trained-model-passed-as-parameter": {
        "engine.py": """
            import torch
            import torch.nn.functional as F

            def train_epoch(net, loader, opt):
                net.train()
                for x, y in loader:
                    with torch.no_grad():
                        logits = net(x)  # <- TL103
                    loss = F.cross_entropy(logits, y)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
        """,
    },
    # build -> load -> train: a loader that passes the eval-mode model on is not a caller that
    # uses it for inference; the training caller never calls .train().
    "eval-model-passed-through-a-loader": {
        "models.py": """
            import torch
            from torch import nn

            def build_classifier(num_classes):
                net = nn.Sequential(nn.Linear(512, 256), nn.Dropout(0.5), nn.Linear(256, num_classes))
                return net.eval()  # <- TL101 error

            def load(num_classes, checkpoint=None):
                net = build_classifier(num_classes)
                if checkpoint is not None:
                    net.load_state_dict(torch.load(checkpoint))
                return net
        """,
        "train.py": """
            import torch
            import torch.nn.functional as F
            from models import load

            def main(loader, epochs):
                net = load(12)
                optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
                for epoch in range(epochs):
                    for x, y in loader:
                        optimizer.zero_grad()
                        F.cross_entropy(net(x), y).backward()
                        optimizer.step()
        """,
    },
    # the same chain over three files: the loader is in a file of its own
    "eval-model-passed-through-a-loader-in-another-file": {
        "models.py": """
            from torch import nn

            def build_classifier(num_classes):
                net = nn.Sequential(nn.Linear(512, 256), nn.Dropout(0.5), nn.Linear(256, num_classes))
                net.eval()  # <- TL101 error
                return net
        """,
        "loading.py": """
            import torch
            from models import build_classifier

            def load_pretrained(num_classes, checkpoint):
                net = build_classifier(num_classes)
                net.load_state_dict(torch.load(checkpoint))
                return net
        """,
        "train.py": """
            import torch
            import torch.nn.functional as F
            from loading import load_pretrained

            def main(loader, epochs):
                net = load_pretrained(12, "init.pt")
                optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
                for epoch in range(epochs):
                    for x, y in loader:
                        optimizer.zero_grad()
                        F.cross_entropy(net(x), y).backward()
                        optimizer.step()
        """,
    },
    # the loader's only caller evaluates: a warning at most, never an error
    "eval-model-passed-through-a-loader-to-evaluation": {
        "models.py": """
            from torch import nn

            def build_classifier(num_classes):
                net = nn.Sequential(nn.Linear(512, 256), nn.Dropout(0.5), nn.Linear(256, num_classes))
                return net.eval()
        """,
        "loading.py": """
            import torch
            from models import build_classifier

            def load_pretrained(num_classes, checkpoint):
                net = build_classifier(num_classes)
                net.load_state_dict(torch.load(checkpoint))
                return net
        """,
        "score.py": """
            import torch
            from loading import load_pretrained

            def accuracy(loader):
                net = load_pretrained(12, "best.pt")
                hits = 0
                with torch.no_grad():
                    for x, y in loader:
                        hits += (net(x).argmax(-1) == y).sum().item()
                return hits
        """,
    },
    # one bug, one finding: the helper reports it at its own line, not again where it is called
    "zero-grad-misplaced-inside-a-step-helper": {
        "train.py": """
            import torch
            import torch.nn.functional as F

            def train_step(model, optimizer, x, y):
                F.mse_loss(model(x), y).backward()
                optimizer.zero_grad()  # <- TL202
                optimizer.step()

            def train(model, loader):
                optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
                for x, y in loader:
                    train_step(model, optimizer, x, y)
        """,
    },
    # a helper of the same file is code trainlint sees: passing it the optimizer hides nothing
    "step-helper-never-clears-gradients": {
        "train.py": """
            import torch
            import torch.nn.functional as F

            def train_step(model, optimizer, x, y):
                F.mse_loss(model(x), y).backward()
                optimizer.step()

            def train(model, loader):
                optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
                for x, y in loader:
                    train_step(model, optimizer, x, y)  # <- TL203
        """,
    },
    # ... unless the helper hands the optimizer on to code trainlint does not see
    "step-helper-hands-the-optimizer-on": {
        "train.py": """
            import torch
            import torch.nn.functional as F
            from trainer_utils import finish_update

            def train_step(model, optimizer, x, y):
                F.mse_loss(model(x), y).backward()
                optimizer.step()
                finish_update(optimizer)

            def train(model, loader):
                optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
                for x, y in loader:
                    train_step(model, optimizer, x, y)
        """,
    },
    "layers-in-a-list-comprehension": {
        "model.py": """
            from torch import nn

            class Tower(nn.Module):
                def __init__(self, depth, width):
                    super().__init__()
                    self.blocks = [nn.Sequential(nn.Linear(width, width), nn.ReLU()) for _ in range(depth)]  # <- TL601

                def forward(self, x):
                    for block in self.blocks:
                        x = block(x)
                    return x
        """,
    },
    "forward-ends-in-softmax": {
        "train.py": """
            import torch
            from torch import nn

            class Classifier(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.body = nn.Linear(64, 10)

                def forward(self, x):
                    return torch.softmax(self.body(x), dim=-1)

            def train(loader):
                model = Classifier()
                criterion = nn.CrossEntropyLoss()
                optimizer = torch.optim.Adam(model.parameters())
                for x, y in loader:
                    optimizer.zero_grad()
                    loss = criterion(model(x), y)  # <- TL302
                    loss.backward()
                    optimizer.step()
        """,
    },
    "literal-step-size-stepped-per-batch": {
        "train.py": """
            import torch

            def train(model, loader, epochs):
                optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
                scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=20)
                for epoch in range(epochs):
                    for x, y in loader:
                        optimizer.zero_grad()
                        model(x).sub(y).pow(2).mean().backward()
                        optimizer.step()
                        scheduler.step()  # <- TL402
        """,
    },
    # The FG-CLIP seed: a warm-up counted in forward calls while the optimizer steps every k.
    "warm-up-counted-in-forward-calls": {
        "train.py": """
            import torch
            from torch import nn

            class RegionHead(nn.Module):
                def __init__(self, warmup_steps):
                    super().__init__()
                    self.proj = nn.Linear(32, 32)
                    self.calls = 0
                    self.warmup_steps = warmup_steps

                def forward(self, x):
                    self.calls += 1  # <- TL206
                    out = self.proj(x)
                    if self.calls < self.warmup_steps:
                        out = out.detach()
                    return out

            def train(loader, accum):
                head = RegionHead(warmup_steps=1000)
                optimizer = torch.optim.AdamW(head.parameters())
                for i, x in enumerate(loader):
                    loss = head(x).pow(2).mean() / accum
                    loss.backward()
                    if (i + 1) % accum == 0:
                        optimizer.step()
                        optimizer.zero_grad()
        """,
    },
    # A container module built with the model and then moved (`SelfTuning(q, k).to(device)`) holds
    # it: the training helper's `selftuning.train()` switches it back after validation.
    "container-built-then-moved-holds-the-model": {
        "fit.py": """
            import torch

            def validate(loader, model):
                model.eval()
                with torch.no_grad():
                    return sum(model(x).sum().item() for x in loader)

            def train_one_epoch(loader, wrapper, optimizer):
                wrapper.train()
                for x in loader:
                    optimizer.zero_grad()
                    wrapper(x).mean().backward()
                    optimizer.step()

            def main(loader, val_loader, backbone, device, epochs):
                query = Classifier(backbone).to(device)
                wrapper = MomentumPair(query, Classifier(backbone)).to(device)
                optimizer = torch.optim.SGD(query.parameters(), 0.1)
                for epoch in range(epochs):
                    train_one_epoch(loader, wrapper, optimizer)
                    validate(val_loader, query)

            def main_unwrapped(loader, val_loader, backbone, device, epochs):
                query = Classifier(backbone).to(device)
                other = MomentumPair(Classifier(backbone), Classifier(backbone)).to(device)
                optimizer = torch.optim.SGD(query.parameters(), 0.1)
                for epoch in range(epochs):
                    train_one_epoch(loader, other, optimizer)
                    for x in loader:
                        optimizer.zero_grad()
                        query(x).mean().backward()
                        optimizer.step()
                    validate(val_loader, query)  # <- TL102
        """,
    },
    # A discriminator switched to eval mode for the generator's adversarial loss and back to train
    # mode before its own loss, in every turn, is in the mode each loss chose; a `.train()` after
    # the turn's last backward() restores nothing in time.
    "eval-phase-within-each-step": {
        "adapt.py": """
            import torch

            def train(source, target, model, disc, criterion, optimizer, optimizer_d, iters):
                model.train()
                for i in range(iters):
                    x_s, y_s = next(source)
                    x_t = next(target)
                    optimizer.zero_grad()
                    optimizer_d.zero_grad()
                    disc.eval()
                    pred_s = model(x_s)
                    criterion(pred_s, y_s).backward()
                    pred_t = model(x_t)
                    disc(pred_t, "source").backward()
                    disc.train()
                    (disc(pred_s.detach(), "source") + disc(pred_t.detach(), "target")).backward()
                    optimizer.step()
                    optimizer_d.step()

            def fit(model, loader, val_loader, optimizer, epochs):
                model.train()
                for epoch in range(epochs):
                    model.eval()  # <- TL102
                    with torch.no_grad():
                        for x in val_loader:
                            model(x)
                    for x, y in loader:
                        optimizer.zero_grad()
                        torch.nn.functional.mse_loss(model(x), y).backward()
                        optimizer.step()
                    model.train()
        """,
    },
    # A schedule whose length is the dataset's size in batches (`num_images // batch_size *
    # epochs`) counts micro-batches as `len(loader)` does; divided by the accumulation too, it
    # counts optimizer steps and runs k times too fast when stepped every micro-batch.
    "schedule-length-from-dataset-size-over-batch-size": {
        "train.py": """
            import torch

            def run(cfg, model, loader, world_size):
                opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
                cfg.total_batch_size = cfg.batch_size * world_size
                cfg.total_step = cfg.num_image // cfg.total_batch_size * cfg.num_epoch
                scheduler = torch.optim.lr_scheduler.PolynomialLR(opt, total_iters=cfg.total_step)
                step = 0
                for epoch in range(cfg.num_epoch):
                    for x, y in loader:
                        step += 1
                        loss = torch.nn.functional.cross_entropy(model(x), y) / cfg.accum
                        loss.backward()
                        if step % cfg.accum == 0:
                            opt.step()
                            opt.zero_grad()
                        scheduler.step()

            def run_counting_updates(cfg, model, loader, world_size):
                opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
                updates = cfg.num_image // (cfg.batch_size * world_size * cfg.accum) * cfg.num_epoch
                scheduler = torch.optim.lr_scheduler.PolynomialLR(opt, total_iters=updates)
                step = 0
                for epoch in range(cfg.num_epoch):
                    for x, y in loader:
                        step += 1
                        loss = torch.nn.functional.cross_entropy(model(x), y) / cfg.accum
                        loss.backward()
                        if step % cfg.accum == 0:
                            opt.step()
                            opt.zero_grad()
                        scheduler.step()  # <- TL401
        """,
    },
    # In a file that uses TensorFlow and not torch, `x.eval()` computes a tensor's value: a helper
    # returning it returns a number, not a model in eval mode.
    "tensorflow-eval-computes-a-value": {
        "tfnet.py": """
            import numpy as np
            import tensorflow as tf

            class Network:
                def get_var(self, name):
                    return self.find_var(name).eval()

                def get_output(self, feed):
                    out = self.output
                    out.eval()
                    return out
        """,
        "torchnet.py": """
            import torch

            def get_model(path):
                return torch.load(path).eval()  # <- TL101
        """,
        "train.py": """
            from torchnet import get_model

            def train(path, loader):
                model = get_model(path)
                opt = torch.optim.SGD(model.parameters(), 0.1)
                for x in loader:
                    opt.zero_grad()
                    model(x).sum().backward()
                    opt.step()
        """,
    },
    # A criterion object (`LpLoss(d=2)`, `nn.MSELoss()`) is not a loss tensor: a list of criteria
    # keeps no graph; a list of the losses they return, with no backward(), keeps every graph.
    "criteria-collected-in-a-list": {
        "train.py": """
            import torch
            from losses import LpLoss, H1Loss

            l2loss = LpLoss(d=2, p=2)
            h1loss = H1Loss(d=2)
            mse = torch.nn.MSELoss()
            losses = []
            for name in ["l2", "h1", "mse"]:
                if name == "l2":
                    losses.append(l2loss)
                elif name == "h1":
                    losses.append(h1loss)
                else:
                    losses.append(mse)

            model = torch.nn.Linear(4, 1)
            errors = []
            for x, y in torch.utils.data.DataLoader(dataset, batch_size=8):
                err = mse(model(x), y)
                errors.append(err)  # <- TL303
        """,
    },
    # A tensor the class hands out through a method named for parameters (DARTS' architecture
    # weights, given to an optimizer of their own) or differentiates with respect to itself (IRM's
    # dummy multiplier) is kept out of parameters() on purpose; a getter that returns it is no
    # such sign.
    "tensor-kept-out-of-parameters-on-purpose": {
        "search.py": """
            import torch
            import torch.nn as nn
            from torch import autograd
            from torch.autograd import Variable
            import torch.nn.functional as F

            class SearchNetwork(nn.Module):
                def __init__(self, k, ops):
                    super().__init__()
                    self.alphas_normal = Variable(1e-3 * torch.randn(k, ops), requires_grad=True)
                    self.alphas_reduce = Variable(1e-3 * torch.randn(k, ops), requires_grad=True)
                    self._arch_parameters = [self.alphas_normal, self.alphas_reduce]

                def arch_parameters(self):
                    return self._arch_parameters

            class InvariancePenalty(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.scale = torch.tensor(1.).requires_grad_()

                def forward(self, y, labels):
                    loss = F.cross_entropy(y * self.scale, labels)
                    grad = autograd.grad(loss, [self.scale], create_graph=True)[0]
                    return torch.sum(grad ** 2)

            class Gate(nn.Module):
                def __init__(self, width):
                    super().__init__()
                    self.gate = torch.zeros(width, requires_grad=True)  # <- TL602

                def current_gate(self):
                    return self.gate

                def forward(self, x):
                    return x * torch.sigmoid(self.gate)
        """,
    },
    # The trained model's own output under no_grad, given as the target of its prediction with
    # grad (UDA's, FixMatch's consistency), is constant on purpose; given to the criterion beside
    # the labels, it is the forward that trains nothing.
    "no-grad-target-of-the-models-own-prediction": {
        "ssl.py": """
            import torch
            import torch.nn.functional as F

            def train(model, labeled, unlabeled, consistency, iters):
                optimizer = torch.optim.SGD(model.parameters(), lr=0.03)
                for i in range(iters):
                    x_l, y_l = next(labeled)
                    x_weak, x_strong = next(unlabeled)
                    optimizer.zero_grad()
                    F.cross_entropy(model(x_l), y_l).backward()
                    with torch.no_grad():
                        y_weak = model(x_weak)
                    y_strong = model(x_strong)
                    con_loss = 0.5 * consistency(y_strong, y_weak)
                    con_loss.backward()
                    optimizer.step()

            def train_broken(model, labeled, iters):
                optimizer = torch.optim.SGD(model.parameters(), lr=0.03)
                for i in range(iters):
                    x_l, y_l = next(labeled)
                    optimizer.zero_grad()
                    with torch.no_grad():
                        logits = model(x_l)  # <- TL103
                    loss = F.cross_entropy(logits, y_l) + 1e-4 * sum(p.pow(2).sum() for p in model.parameters())
                    loss.backward()
                    optimizer.step()
        """,
    },
    # Darknet's convention: a nominal batch split into the window's micro-batches and a learning
    # rate divided by that batch make the sum over the window the update the rate was set for; the
    # same split with the rate not divided is k times the update.
    "learning-rate-divided-by-the-split-batch": {
        "train.py": """
            import torch

            def train(model, cfg, dataset, criterion):
                loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.batch // cfg.subdivisions)
                if cfg.optimizer == "adam":
                    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate / cfg.batch)
                else:
                    optimizer = torch.optim.SGD(model.parameters(), cfg.learning_rate / cfg.batch, momentum=0.9)
                global_step = 0
                for epoch in range(cfg.epochs):
                    for images, boxes in loader:
                        global_step += 1
                        loss = criterion(model(images), boxes)
                        loss.backward()
                        if global_step % cfg.subdivisions == 0:
                            optimizer.step()
                            model.zero_grad()

            def train_at_the_base_rate(model, cfg, dataset, criterion):
                loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.batch // cfg.subdivisions)
                optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
                global_step = 0
                for epoch in range(cfg.epochs):
                    for images, boxes in loader:
                        global_step += 1
                        loss = criterion(model(images), boxes)
                        loss.backward()  # <- TL209
                        if global_step % cfg.subdivisions == 0:
                            optimizer.step()
                            model.zero_grad()
        """,
    },
    # Two `if` statements asking the same question of a name the function never binds get the
    # same answer: the no-grad forward in the first one's `else` never meets the backward() in
    # the second one's body (pytorch3d's implicitron loop); a test rebound in between may differ.
    "same-question-asked-twice": {
        "loop.py": """
            import torch

            def run_epoch(model, loader, validation):
                optimizer = torch.optim.Adam(model.parameters())
                for batch in loader:
                    if not validation:
                        optimizer.zero_grad()
                        preds = model(batch)
                    else:
                        with torch.no_grad():
                            preds = model(batch)
                    log(preds)
                    if not validation:
                        loss = preds["objective"]
                        loss.backward()
                        optimizer.step()

            def run_epoch_flag_changes(model, loader, validation):
                optimizer = torch.optim.Adam(model.parameters())
                for batch in loader:
                    if not validation:
                        optimizer.zero_grad()
                        preds = model(batch)
                    else:
                        with torch.no_grad():
                            preds = model(batch)  # <- TL103
                    validation = batch["train"]
                    if not validation:
                        loss = preds["objective"]
                        loss.backward()
                        optimizer.step()
        """,
    },
    # An activation applied in the other branch of the `if` that computes the loss never reaches
    # it; one applied before the `if` does.
    "activation-in-the-other-branch": {
        "metrics.py": """
            import torch.nn.functional as F

            def calc_bce(pred, gt, pred_logits=False, lerp_bound=None):
                if lerp_bound is not None:
                    if pred_logits:
                        pred = F.sigmoid(pred)
                    return lerp_bce(pred, gt, lerp_bound)
                else:
                    if pred_logits:
                        loss = F.binary_cross_entropy_with_logits(pred, gt)
                    else:
                        loss = F.binary_cross_entropy(pred, gt)
                    return loss.mean()

            def calc_bce_squashed(pred, gt, pred_logits=False):
                pred = F.sigmoid(pred)
                if pred_logits:
                    loss = F.binary_cross_entropy_with_logits(pred, gt)  # <- TL302
                else:
                    loss = F.binary_cross_entropy(pred, gt)
                return loss.mean()
        """,
    },
    # A package's __init__ that re-exports its modules (`from .pipeline import *`) makes
    # `pkg.build_model` the function of `pkg/pipeline.py`: its callers in the tree are known (an
    # inference script here; a training loop for the other builder).
    "builder-re-exported-by-its-package": {
        "audiogen/__init__.py": """
            from .pipeline import *
        """,
        "audiogen/pipeline.py": """
            import torch

            def build_model(path):
                model = Diffusion()
                model.load_state_dict(torch.load(path))
                model.eval()
                return model

            def build_tagger(path):
                tagger = Tagger()
                tagger.load_state_dict(torch.load(path))
                return tagger.eval()  # <- TL101 error
        """,
        "scripts/text2sound.py": """
            import torch
            from audiogen import build_model

            model = build_model("ckpt.pt")
            with torch.no_grad():
                audio = model("a dog barks")
        """,
        "scripts/finetune_tagger.py": """
            import torch
            from audiogen import build_tagger

            tagger = build_tagger("ckpt.pt")
            optimizer = torch.optim.Adam(tagger.parameters())
            for clips, labels in loader:
                optimizer.zero_grad()
                torch.nn.functional.cross_entropy(tagger(clips), labels).backward()
                optimizer.step()
        """,
    },
    # A value taken out of the graph on purpose (`.numpy()`, then a new tensor) is a constant
    # whether or not it was computed under no_grad (MO-GAAL's score thresholds as targets); a
    # no-grad output used as it is does reach the loss.
    "no-grad-value-turned-into-numbers": {
        "gaal.py": """
            import numpy as np
            import torch

            def train(model, loader, X, criterion):
                optimizer = torch.optim.Adam(model.parameters())
                for x, y in loader:
                    with torch.no_grad():
                        scores = model(torch.tensor(X)).cpu().numpy().ravel()
                    threshold = np.percentile(scores, 50)
                    target = torch.tensor([float(threshold)] * x.size(0)).unsqueeze(1)
                    optimizer.zero_grad()
                    loss = criterion(model(x), y) + (model(x).mean() - target).abs().mean()
                    loss.backward()
                    optimizer.step()

            def train_on_no_grad_scores(generator, loader, criterion):
                optimizer_g = torch.optim.Adam(generator.parameters())
                for noise in loader:
                    with torch.no_grad():
                        fake = generator(noise)  # <- TL103
                    loss = criterion(fake, torch.zeros_like(fake)) + 1e-4 * sum(p.pow(2).sum() for p in generator.parameters())
                    optimizer_g.zero_grad()
                    loss.backward()
                    optimizer_g.step()
        """,
    },
    # `x = x.to(device)` moves what `x` already holds: for a parameter that says nothing of what it
    # is (this used to recurse without end, an internal error for the whole file); for a batch
    # from a loader, its other binding says it is a tensor.
    "moved-onto-itself": {
        "infer.py": """
            import torch

            def run(loader, device, clip):
                clip.to(device)
                clip = clip.to(device)
                for x, y in loader:
                    x = x.to(device)
                    x.cuda()  # <- TL702
        """,
    },
    # `p.grad = all_reduce(p.grad)` in a loop over parameters replaces each gradient with its
    # average across processes: nothing is cleared between backward() and step(); `p.grad = None`
    # there is.
    "gradients-averaged-by-hand": {
        "train.py": """
            import torch

            def all_reduce_network(accelerator, network):
                for param in network.parameters():
                    if param.grad is not None:
                        param.grad = accelerator.reduce(param.grad, reduction="mean")

            def drop_gradients(network):
                for param in network.parameters():
                    if param.grad is not None:
                        param.grad = None

            def train(accelerator, network, loader, loss_fn):
                optimizer = torch.optim.AdamW(network.parameters())
                for batch in loader:
                    loss = loss_fn(network(batch))
                    accelerator.backward(loss)
                    all_reduce_network(accelerator, network)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)

            def train_dropping(accelerator, network, loader, loss_fn):
                optimizer = torch.optim.AdamW(network.parameters())
                for batch in loader:
                    loss = loss_fn(network(batch))
                    accelerator.backward(loss)
                    drop_gradients(network)  # <- TL202
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
        """,
    },
    # Modes set together for what follows: a frozen UNet in eval mode beside the text encoder set
    # to train mode (textual inversion), a text encoder switched to eval mode as it is frozen
    # (its training stops); a model switched to eval mode after its training, for validation,
    # is left there.
    "modes-arranged-for-what-follows": {
        "invert.py": """
            import torch

            def train_inversion(unet, text_encoder, loader, optimizer, epochs):
                for epoch in range(epochs):
                    unet.eval()
                    text_encoder.train()
                    for batch in loader:
                        loss = loss_step(batch, unet, text_encoder)
                        loss.backward()
                        optimizer.step()
                        optimizer.zero_grad()

            def train_both(unet, text_encoder, loader, args):
                optimizer = torch.optim.AdamW(list(unet.parameters()) + list(text_encoder.parameters()))
                step = 0
                for epoch in range(args.epochs):
                    unet.train()
                    text_encoder.train()
                    for batch in loader:
                        if step == args.stop_text_encoder_training:
                            if not args.gradient_checkpointing:
                                text_encoder.train(False)
                            text_encoder.requires_grad_(False)
                        loss = loss_step(batch, unet, text_encoder)
                        loss.backward()
                        optimizer.step()
                        optimizer.zero_grad()
                        step += 1

            def fit(unet, loader, val_loader, epochs):
                optimizer = torch.optim.AdamW(unet.parameters())
                unet.train()
                for epoch in range(epochs):
                    for batch in loader:
                        loss = loss_step(batch, unet, None)
                        loss.backward()
                        optimizer.step()
                        optimizer.zero_grad()
                    unet.eval()  # <- TL102
                    with torch.no_grad():
                        validate(unet, val_loader)
        """,
    },
    # A scheduler built by the caller with the number of micro-batches it has the loop run
    # (`num_training_steps=max_steps`, `num_steps=max_steps`) keeps pace when stepped every
    # micro-batch; built with the number of optimizer steps, it runs k times too fast.
    "schedule-length-handed-with-the-run-length": {
        "tune.py": """
            import math
            import torch
            from diffusers.optimization import get_scheduler

            def train_inversion(model, loader, num_steps, optimizer, lr_scheduler, accum_iter=1):
                global_step = 0
                for epoch in range(math.ceil(num_steps / len(loader))):
                    for batch in loader:
                        lr_scheduler.step()
                        loss = model(batch).mean() / accum_iter
                        loss.backward()
                        if global_step % accum_iter == 0:
                            optimizer.step()
                            optimizer.zero_grad()
                        global_step += 1

            def main(model, loader, max_steps, accum):
                optimizer = torch.optim.AdamW(model.parameters())
                lr_scheduler = get_scheduler("linear", optimizer=optimizer, num_warmup_steps=0,
                                             num_training_steps=max_steps)
                train_inversion(model, loader, max_steps, optimizer, lr_scheduler, accum_iter=accum)

            def train_tuning(model, loader, num_steps, optimizer, lr_scheduler, accum_iter=1):
                global_step = 0
                for epoch in range(math.ceil(num_steps / len(loader))):
                    for batch in loader:
                        lr_scheduler.step()  # <- TL401
                        loss = model(batch).mean() / accum_iter
                        loss.backward()
                        if global_step % accum_iter == 0:
                            optimizer.step()
                            optimizer.zero_grad()
                        global_step += 1

            def main_tuning(model, loader, max_steps, accum):
                optimizer = torch.optim.AdamW(model.parameters())
                updates = max_steps // accum
                lr_scheduler = get_scheduler("linear", optimizer=optimizer, num_warmup_steps=0,
                                             num_training_steps=updates)
                train_tuning(model, loader, max_steps, optimizer, lr_scheduler, accum_iter=accum)
        """,
    },
    # The module an EMA holder keeps (`ema_m.module`) is the averaged copy: evaluating it in eval
    # mode leaves the trained model alone; evaluating the model itself does not.
    "module-kept-by-an-ema-holder": {
        "engine.py": """
            import torch

            @torch.no_grad()
            def evaluate(model, loader):
                model.eval()
                return sum(model(images).sum().item() for images, _ in loader)
        """,
        "main.py": """
            import torch
            from engine import evaluate

            def main(model, param_dicts, loader, val_loader, args):
                optimizer = torch.optim.AdamW(param_dicts, lr=args.lr)
                ema_m = ModelEma(model, args.ema_decay)
                for epoch in range(args.epochs):
                    for images, targets in loader:
                        loss = sum(model(images, targets).values())
                        optimizer.zero_grad()
                        loss.backward()
                        optimizer.step()
                        ema_m.update(model)
                    torch.save(ema_m.module.state_dict(), f"ema_{epoch}.pth")
                    evaluate(ema_m.module, val_loader)

            def main_without_restoring(model, param_dicts, loader, val_loader, args):
                optimizer = torch.optim.AdamW(param_dicts, lr=args.lr)
                for epoch in range(args.epochs):
                    for images, targets in loader:
                        loss = sum(model(images, targets).values())
                        optimizer.zero_grad()
                        loss.backward()
                        optimizer.step()
                    evaluate(model, val_loader)  # <- TL102
        """,
    },
    # DDP given `device_ids` accepts only a module already on its GPU (it raises for one on the
    # CPU), so `.cuda(device)` after the wrap moves nothing; without `device_ids` (a CPU module
    # wrapped, then moved) the registered tensors are left behind.
    "moved-onto-its-gpu-after-a-wrap-given-device-ids": {
        "train.py": """
            import torch
            from torch.nn.parallel import DistributedDataParallel

            def train(model, loader, local_rank, args):
                device = torch.device(f"cuda:{local_rank}")
                model = DistributedDataParallel(model, device_ids=[local_rank], output_device=local_rank)
                model.cuda(device=device)
                optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
                for x, y in loader:
                    optimizer.zero_grad()
                    torch.nn.functional.mse_loss(model(x), y).backward()
                    optimizer.step()

            def train_on_cpu_wrap(model, loader, local_rank, args):
                device = torch.device(f"cuda:{local_rank}")
                model = DistributedDataParallel(model)
                model.cuda(device=device)  # <- TL705
                optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
                for x, y in loader:
                    optimizer.zero_grad()
                    torch.nn.functional.mse_loss(model(x), y).backward()
                    optimizer.step()
        """,
    },
    # A layer the class freezes itself (a fixed low-pass filter kept as a convolution) loses
    # nothing in a plain list; a trainable one does.
    "frozen-layer-in-a-plain-list": {
        "alias.py": """
            import torch
            import torch.nn as nn

            class LowPassFilter1d(nn.Module):
                def __init__(self, channels, kernel_size):
                    super().__init__()
                    self.register_buffer("filter", torch.ones(1, 1, kernel_size) / kernel_size)
                    self.conv_block = [nn.Conv1d(channels, channels, kernel_size, groups=channels, bias=False)]
                    self.conv_block[0].weight = nn.Parameter(self.filter.expand(channels, -1, -1))
                    self.conv_block[0].requires_grad_(False)

                def forward(self, x):
                    if self.conv_block[0].weight.device != x.device:
                        self.conv_block[0] = self.conv_block[0].to(x.device)
                    return self.conv_block[0](x)

            class LearnedFilter1d(nn.Module):
                def __init__(self, channels, kernel_size):
                    super().__init__()
                    self.conv_block = [nn.Conv1d(channels, channels, kernel_size, groups=channels)]  # <- TL601

                def forward(self, x):
                    return self.conv_block[0](x)
        """,
    },
}


def _expected(files):
    found = set()
    for name, source in files.items():
        for number, line in enumerate(textwrap.dedent(source).strip("\n").splitlines(), 1):
            match = EXPECTED.search(line)
            if match:
                found.add((name, number, match.group(1), match.group(2)))
    return found


@pytest.mark.parametrize("case", sorted(CASES))
def test_case(case, tmp_path):
    files = CASES[case]
    for name, source in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(source).strip("\n") + "\n")
    result = CliRunner().invoke(cli, ["check", str(tmp_path), "--format", "json", "--no-cache", "--isolated"])
    findings = json.loads(result.output)
    expected = _expected(files)
    severity_checked = {(name, line, code) for name, line, code, severity in expected if severity}
    got = set()
    for f in findings:
        key = (os.path.relpath(f["path"], tmp_path), f["line"], f["code"])
        got.add(key + (f["severity"] if key in severity_checked else None,))
    assert got == expected, "\n".join(f"{f['path']}:{f['line']} {f['code']} {f['message']}" for f in findings)
