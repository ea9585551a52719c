from trainlint.rule import Report, Rule
from trainlint.semantics import Kind, Role, functions, role_of
from trainlint.semantics.loaders import data_loaders_of, loaders_trained_on, sampler_of
from trainlint.semantics.syntax import last_part
from trainlint.semantics.values import callee_of, origins
from trainlint.semantics.prerequisites import DISTRIBUTED_SAMPLER, TRAINING


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
    requires = (DISTRIBUTED_SAMPLER, TRAINING)

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
    """DistributedSampler calls (in this file) feeding a loader trained on once per epoch."""
    for trained in loaders_trained_on(fn):
        if not trained.per_epoch:
            continue
        for made in data_loaders_of(fn, trained.loader):
            sampler = sampler_of(made)
            for source in origins(made.fn, sampler) if sampler is not None else ():
                if last_part(callee_of(source)) == "DistributedSampler":
                    yield source.expr
