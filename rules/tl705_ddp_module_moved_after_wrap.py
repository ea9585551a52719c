from trainlint.rule import Report, Rule
from trainlint.semantics import functions
from trainlint.semantics.distributed import changes_after_wrapping, ddp_wrappings
from trainlint.semantics.prerequisites import DDP


class DdpModuleMovedAfterWrap(Rule):
    """
    What it does: finds a module converted or moved after it was wrapped in
    `DistributedDataParallel` — `ddp.cuda(rank)`, `ddp.to(device)`, `model.half()`,
    `ddp.module.double()` — or one of its layers or parameters replaced
    (`ddp.module.head = nn.Linear(...)`), when training runs afterwards.

    Why it is bad: DDP registers the module's parameter tensors when the wrapper is built; its
    reducer all-reduces the gradients of those tensors. Converting the module afterwards gives the
    parameters new tensors, and a replaced layer brings parameters DDP never saw: their gradients
    are no longer averaged across ranks, and the replicas drift apart without an error (a
    reproduction in TrainCheck's suite of a PyTorch issue: `DDP(model)` then `.cuda(rank)`).

    Not flagged: moving or converting the module before wrapping it, moving inputs
    (`x = x.to(rank)`), the same conversion repeated after wrapping (`model.cuda(rank)` then
    `DDP(model).cuda(rank)` changes nothing), a move onto the GPU after a wrap given `device_ids`
    (DDP accepts those only for a module already on its GPU, and raises otherwise), code exclusive
    with the wrapping (`if distributed:
    model = DDP(model) else: model = model.cuda()`), and conversions after training is over
    (`torch.save(ddp.module.cpu().state_dict(), path)` at the end).

    Fix: convert and move the module first, then wrap it: `model = model.to(rank);
    ddp = DistributedDataParallel(model, device_ids=[rank])`. Replace layers before wrapping too.
    """

    code = "TL705"
    name = "ddp-module-moved-after-wrap"
    severity = "error"
    summary = "module converted or its parameters replaced after DistributedDataParallel wrapped it"
    requires = (DDP,)

    INVALID = [
        """
        from torch.nn.parallel import DistributedDataParallel as DDP

        def train(rank, loader):
            model = ToyModel()
            ddp_model = DDP(model)
            ddp_model.cuda(rank)  # <-
            optimizer = torch.optim.SGD(ddp_model.parameters(), lr=0.001)
            for x, y in loader:
                optimizer.zero_grad()
                loss_fn(ddp_model(x.cuda(rank)), y.cuda(rank)).backward()
                optimizer.step()
        """,
        """
        import torch.nn as nn

        def main(model, loader, optimizer, local_rank):
            model = nn.parallel.DistributedDataParallel(model, device_ids=[local_rank])
            model.module.head = nn.Linear(768, 10)  # <-
            model.half()  # <-
            for batch in loader:
                model(batch).sum().backward()
                optimizer.step()
                optimizer.zero_grad()
        """,
    ]
    VALID = [
        """
        from torch.nn.parallel import DistributedDataParallel as DDP

        def train(rank, loader):
            model = ToyModel().cuda(rank)
            ddp_model = DDP(model, device_ids=[rank])
            optimizer = torch.optim.SGD(ddp_model.parameters(), lr=0.001)
            for x, y in loader:
                x, y = x.cuda(rank), y.cuda(rank)
                optimizer.zero_grad()
                loss_fn(ddp_model(x), y).backward()
                optimizer.step()
        """,
        """
        from torch.nn.parallel import DistributedDataParallel as DDP

        def train(rank, model, loader, optimizer):
            model.cuda(rank)
            model = DDP(model, device_ids=[rank])
            model.cuda(rank)
            for x, y in loader:
                model(x.cuda(rank)).sum().backward()
                optimizer.step()
                optimizer.zero_grad()
        """,
        """
        import torch

        def setup(model, args, loader, optimizer):
            if args.distributed:
                model = torch.nn.parallel.DistributedDataParallel(model)
            else:
                model = model.cuda()
            for x in loader:
                model(x).sum().backward()
                optimizer.step()
                optimizer.zero_grad()
        """,
        """
        from torch.nn.parallel import DistributedDataParallel

        def fit(model, loader, optimizer, path):
            ddp = DistributedDataParallel(model)
            for x in loader:
                ddp(x).sum().backward()
                optimizer.step()
                optimizer.zero_grad()
            torch.save(ddp.module.cpu().state_dict(), path)
        """,
    ]

    def check(self, facts):
        for fn in functions(facts):
            for wrapping in ddp_wrappings(fn):
                for node, change in changes_after_wrapping(fn, wrapping):
                    yield Report(node, f"{change} of the module DistributedDataParallel wrapped at line "
                                       f"{wrapping.call.lineno}: DDP keeps the tensors it registered then, so these "
                                       f"gradients are no longer averaged across ranks; convert or replace before "
                                       f"wrapping")
