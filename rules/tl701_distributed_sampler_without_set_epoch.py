from trainlint.rule import Report, Rule
from trainlint.semantics import Kind, Role, role_of
from trainlint.semantics.queries import functions


class DistributedSamplerWithoutSetEpoch(Rule):
    """
    What it does: finds a `DistributedSampler` in a file whose training loop runs over several
    epochs while `set_epoch(epoch)` is never called on anything.

    Why it is bad: `DistributedSampler` shuffles with a seed derived from its epoch counter, which
    only `set_epoch` advances. Without it every epoch visits the data in exactly the same order on
    every rank, which quietly hurts convergence and generalisation (and makes "shuffle=True" a lie).

    Not flagged: files that call `set_epoch` (on the sampler, the loader or the batch sampler),
    loaders prepared by accelerate (it sets the epoch itself), and files without an epoch loop.

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
        if not any(_trains_over_epochs(fn) for fn in everything):
            return
        for fn in everything:
            for built in fn.events_of(Kind.CONSTRUCT):
                if built.detail["role"] == "sampler" and not built.via:
                    yield Report(built.detail["call"], "DistributedSampler without set_epoch(epoch) anywhere in this "
                                                       "file: every epoch sees the same order")


def _trains_over_epochs(fn):
    """A loop that runs backward() inside an inner loop (batches inside epochs)."""
    return any(len(b.loops) >= 2 or (b.loops and b.via) for b in fn.events_of(Kind.BACKWARD))
