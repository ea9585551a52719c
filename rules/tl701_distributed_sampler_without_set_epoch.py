import ast

from trainlint.rule import Report, Rule
from trainlint.semantics import Kind, Role, functions, role_of
from trainlint.semantics.syntax import argument, dotted, last_part
from trainlint.semantics.values import callee_of, origins


class DistributedSamplerWithoutSetEpoch(Rule):
    """
    What it does: finds a `DistributedSampler` whose loader a training loop iterates over several
    epochs (directly, through a helper, or a loader built by a function of the same file) while
    `set_epoch(epoch)` is never called on anything.

    Why it is bad: `DistributedSampler` shuffles with a seed derived from its epoch counter, which
    only `set_epoch` advances. Without it every epoch visits the data in exactly the same order on
    every rank, which quietly hurts convergence and generalisation (and makes "shuffle=True" a lie).

    Not flagged: files that call `set_epoch` (on the sampler, the loader or the batch sampler),
    loaders prepared by accelerate (it sets the epoch itself), samplers of validation loaders (their
    order does not matter), and samplers whose loader is not seen being trained on.

    Fix: call `sampler.set_epoch(epoch)` at the start of every epoch.
    """

    code = "TL701"
    name = "distributed-sampler-without-set-epoch"
    severity = "warning"
    summary = "DistributedSampler never gets set_epoch(): the same order every epoch"
    triggers = ("DistributedSampler",)

    INVALID = [
        """
        from torch.utils.data.distributed import DistributedSampler

        def main(dataset, model, optimizer, epochs):
            sampler = DistributedSampler(dataset)  # <-
            loader = DataLoader(dataset, batch_size=32, sampler=sampler)
            for epoch in range(epochs):
                for x, y in loader:
                    optimizer.zero_grad()
                    F.cross_entropy(model(x), y).backward()
                    optimizer.step()
        """,
    ]
    VALID = [
        """
        from torch.utils.data.distributed import DistributedSampler

        def main(dataset, model, optimizer, epochs):
            sampler = DistributedSampler(dataset)
            loader = DataLoader(dataset, batch_size=32, sampler=sampler)
            for epoch in range(epochs):
                sampler.set_epoch(epoch)
                for x, y in loader:
                    optimizer.zero_grad()
                    F.cross_entropy(model(x), y).backward()
                    optimizer.step()
        """,
        """
        from torch.utils.data.distributed import DistributedSampler

        def build_loader(dataset):
            return DataLoader(dataset, sampler=DistributedSampler(dataset))
        """,
        """
        from torch.utils.data.distributed import DistributedSampler

        def main(dataset, model, optimizer, epochs):
            loader = DataLoader(dataset, sampler=DistributedSampler(dataset))
            for epoch in range(epochs):
                loader.sampler.set_epoch(epoch)
                for x, y in loader:
                    optimizer.zero_grad()
                    F.cross_entropy(model(x), y).backward()
                    optimizer.step()
        """,
    ]

    def check(self, facts):
        everything = functions(facts)
        events = [e for fn in everything for e in fn.own_events]
        if any(e.kind == Kind.SET_EPOCH for e in events) or any(
                role_of(fn, e.target) == Role.ACCELERATOR for fn in everything for e in fn.own_events if e.target):
            return
        reported = set()
        for fn in everything:
            for sampler in _samplers_trained_over_epochs(fn):
                if id(sampler) not in reported:
                    reported.add(id(sampler))
                    yield Report(sampler, "DistributedSampler of a training loader, and no set_epoch(epoch) "
                                          "anywhere in this file: every epoch sees the same order")


def _samplers_trained_over_epochs(fn):
    """DistributedSampler calls (in this file) feeding a loader that a loop inside an epoch loop
    trains on: iterated with backward() in the batch loop, or handed to a helper that trains."""
    for loop in fn.loops:
        if loop.parent is not None and isinstance(loop.node, ast.For) and fn.events_in(loop, Kind.BACKWARD):
            yield from _distributed_samplers(fn, _unwrapped(loop.node.iter))
        if loop.parent is None and any(b.via for b in fn.events_in(loop, Kind.BACKWARD)):
            for call in fn.events_in(loop, Kind.CALL):  # train_one_epoch(model, loader, ...) per epoch
                for passed in call.detail["call"].args:
                    yield from _distributed_samplers(fn, passed)


def _unwrapped(iterable):
    """The loader in ``enumerate(tqdm(loader))``, ``iter(loader)``."""
    while isinstance(iterable, ast.Call) and dotted(iterable.func) in ("enumerate", "tqdm", "iter", "tqdm.tqdm") \
            and iterable.args:
        iterable = iterable.args[0]
    return iterable


def _distributed_samplers(fn, loader):
    for made in origins(fn, loader):
        if last_part(callee_of(made)) != "DataLoader":
            continue
        sampler = argument(made.expr, 3, "sampler")  # DataLoader(dataset, batch_size, shuffle, sampler)
        for source in origins(made.fn, sampler) if sampler is not None else ():
            if last_part(callee_of(source)) == "DistributedSampler":
                yield source.expr
