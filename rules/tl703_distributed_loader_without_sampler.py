from trainlint.rule import Report, Rule
from trainlint.semantics import functions
from trainlint.semantics.distributed import data_parallel_setup
from trainlint.semantics.loaders import data_loaders_of, draws_from_whole_dataset, loaders_trained_on
from trainlint.semantics.prerequisites import DATA_PARALLEL, TRAINING


class DistributedLoaderWithoutSampler(Rule):
    """
    What it does: finds a data-parallel training loop (the model wrapped in
    `DistributedDataParallel`/FSDP) that trains on a `DataLoader` built with no
    `DistributedSampler` (or other rank-aware sampler) over a dataset that is not split by rank.

    Why it is bad: every process runs the same loader, so every rank trains on the whole dataset
    (in the same order when they share a seed): N GPUs do the work of one, an "epoch" is N
    epochs of gradient steps on duplicated batches, and the all-reduced gradient is that of one
    GPU's batch. Nothing fails; training is just N times more expensive than it looks.

    Not flagged: loaders given any sampler trainlint cannot see through; datasets or loaders whose
    construction names a rank, a shard or a partition, also through the values it is built from
    (`Subset(ds, indices[rank::world_size])`, `split_dataset_by_node`, `.shard(...)`,
    `mine = partition(files)[rank]; Dataset(mine)`); iterable and streaming datasets (they shard
    themselves); loaders prepared by accelerate or run by Lightning / HF Trainer (they add the
    sampler); validation loops (no backward()).

    Fix: `sampler = DistributedSampler(dataset)`, `DataLoader(dataset, sampler=sampler,
    shuffle=False, ...)`, and `sampler.set_epoch(epoch)` at the start of every epoch.
    """

    code = "TL703"
    name = "distributed-loader-without-sampler"
    severity = "warning"
    summary = "DDP/FSDP training loop over a DataLoader with no DistributedSampler: every rank sees all data"
    requires = (DATA_PARALLEL, TRAINING)
    INVALID = [
        """
        import torch.distributed as dist
        from torch.nn.parallel import DistributedDataParallel as DDP
        from torch.utils.data import DataLoader

        def main(rank, world_size):
            dist.init_process_group("nccl", rank=rank, world_size=world_size)
            model = DDP(Net().to(rank), device_ids=[rank])
            loader = DataLoader(MyDataset("train.csv"), batch_size=32, shuffle=True)  # <-
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            for epoch in range(10):
                for x, y in loader:
                    optimizer.zero_grad()
                    loss_fn(model(x.to(rank)), y.to(rank)).backward()
                    optimizer.step()
        """,
        """
        import torch
        from torch.utils.data import DataLoader, RandomSampler

        def train_epoch(model, loader, optimizer):
            for x, y in loader:
                optimizer.zero_grad()
                criterion(model(x), y).backward()
                optimizer.step()

        def main(args):
            torch.distributed.init_process_group(backend="nccl")
            dataset = datasets.ImageFolder(args.data, transform)
            loader = DataLoader(dataset, batch_size=64, sampler=RandomSampler(dataset))  # <-
            model = torch.nn.parallel.DistributedDataParallel(build_model().cuda())
            optimizer = torch.optim.AdamW(model.parameters())
            for epoch in range(args.epochs):
                train_epoch(model, loader, optimizer)
        """,
    ]
    VALID = [
        """
        from torch.nn.parallel import DistributedDataParallel as DDP
        from torch.utils.data import DataLoader
        from torch.utils.data.distributed import DistributedSampler

        def main(rank):
            model = DDP(Net().to(rank), device_ids=[rank])
            dataset = MyDataset("train.csv")
            sampler = DistributedSampler(dataset) if distributed else None
            loader = DataLoader(dataset, batch_size=32, shuffle=(sampler is None), sampler=sampler)
            for epoch in range(10):
                for x, y in loader:
                    optimizer.zero_grad()
                    loss_fn(model(x), y).backward()
                    optimizer.step()
        """,
        """
        from torch.nn.parallel import DistributedDataParallel as DDP
        from torch.utils.data import DataLoader, Subset

        def main(rank, world_size):
            model = DDP(Net().to(rank), device_ids=[rank])
            full = MyDataset("train.csv")
            shard = Subset(full, range(rank, len(full), world_size))
            loader = DataLoader(shard, batch_size=32, shuffle=True)
            for x, y in loader:
                optimizer.zero_grad()
                loss_fn(model(x), y).backward()
                optimizer.step()
        """,
        """
        from torch.nn.parallel import DistributedDataParallel as DDP
        from torch.utils.data import DataLoader, IterableDataset

        class TokenStream(IterableDataset):
            def __iter__(self):
                yield from read_my_share_of_files()

        def main(rank):
            model = DDP(Net().to(rank), device_ids=[rank])
            loader = DataLoader(TokenStream(), batch_size=8)
            for batch in loader:
                optimizer.zero_grad()
                model(batch).mean().backward()
                optimizer.step()
        """,
        """
        from torch.nn.parallel import DistributedDataParallel as DDP
        from torch.utils.data import DataLoader

        def main(rank):
            model = DDP(Net().to(rank), device_ids=[rank])
            train_loader = DataLoader(train_set, sampler=DistributedSampler(train_set), batch_size=32)
            val_loader = DataLoader(val_set, batch_size=32)
            for x, y in train_loader:
                optimizer.zero_grad()
                loss_fn(model(x), y).backward()
                optimizer.step()
            with torch.no_grad():
                for x, y in val_loader:
                    metric.update(model(x), y)
        """,
        """
        from accelerate import Accelerator
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
        from torch.utils.data import DataLoader

        def train(accelerator, model):
            model = FSDP(model)
            train_dl = DataLoader(RegressionDataset(length=128), batch_size=16, shuffle=True)
            train_dl, model, optimizer = accelerator.prepare(train_dl, model, optimizer)
            for batch in train_dl:
                model.zero_grad()
                accelerator.backward(model(batch).mean())
                optimizer.step()
        """,
        """
        from torch.utils.data import DataLoader

        def train_single_gpu(model):
            loader = DataLoader(MyDataset("train.csv"), batch_size=32, shuffle=True)
            for x, y in loader:
                optimizer.zero_grad()
                loss_fn(model(x), y).backward()
                optimizer.step()

        def wrap_for_ddp(model, rank):
            from torch.nn.parallel import DistributedDataParallel
            return DistributedDataParallel(model, device_ids=[rank])
        """,
    ]

    def check(self, facts):
        reported = set()
        for fn in functions(facts):
            for trained in loaders_trained_on(fn):
                for made in data_loaders_of(fn, trained.loader):
                    if id(made.expr) in reported or not draws_from_whole_dataset(made):
                        continue
                    wrapper = data_parallel_setup(fn, made.fn)
                    if wrapper is not None:
                        reported.add(id(made.expr))
                        yield Report(made.expr, f"every rank trains on this DataLoader (the model is wrapped for "
                                                f"data parallelism at line {wrapper.lineno}) and it has no "
                                                f"DistributedSampler: each rank sees the whole dataset")
