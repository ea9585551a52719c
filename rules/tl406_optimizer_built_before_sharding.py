from trainlint.rule import Report, Rule
from trainlint.semantics import functions
from trainlint.semantics.distributed import optimizers_built_from, sharding_calls
from trainlint.semantics.syntax import last_part, text
from trainlint.semantics.prerequisites import SHARDING


class OptimizerBuiltBeforeSharding(Rule):
    """
    What it does: finds an optimizer built from `model.parameters()` before the model (or a part
    of it) is passed to `parallelize_module`, `fully_shard`, `FSDP(...)` or `distribute_module`,
    when no optimizer is built again afterwards.

    Why it is bad: these transforms give the module new parameter tensors (DTensors, flat
    parameters). The optimizer keeps the old ones: it steps tensors the model no longer uses, the
    model never changes, and the loss only moves with the data. PyTorch's own tensor-parallel
    example once built its optimizer before `parallelize_module`.

    Not flagged: optimizers built after sharding (torchtitan's order), `DistributedDataParallel`
    after the optimizer (DDP keeps the parameters), an optimizer built again after sharding, and
    code paths exclusive with each other (`if tp: parallelize_module(...) else: ...`).

    Fix: shard first, then build the optimizer from the sharded model's parameters.
    """

    code = "TL406"
    name = "optimizer-built-before-sharding"
    severity = "error"
    summary = "optimizer built before the model's parameters were replaced by sharding"
    requires = (SHARDING,)

    INVALID = [
        """
        from torch.distributed.tensor.parallel import parallelize_module, ColwiseParallel, RowwiseParallel

        def main(mesh, loader):
            model = ToyModel().to("cuda")
            optimizer = torch.optim.AdamW(model.parameters(), lr=0.25, foreach=True)
            model = parallelize_module(model, mesh, {"in_proj": ColwiseParallel(), "out_proj": RowwiseParallel()})  # <-
            for x in loader:
                model(x).sum().backward()
                optimizer.step()
                optimizer.zero_grad()
        """,
        """
        from torch.distributed.fsdp import fully_shard

        def setup(model, lr):
            opt = torch.optim.SGD(model.parameters(), lr=lr)
            for layer in model.layers:
                fully_shard(layer)
            fully_shard(model)  # <-
            return model, opt
        """,
    ]
    VALID = [
        """
        from torch.distributed.tensor.parallel import parallelize_module, ColwiseParallel

        def main(mesh, loader):
            model = ToyModel().to("cuda")
            model = parallelize_module(model, mesh, {"in_proj": ColwiseParallel()})
            optimizer = torch.optim.AdamW(model.parameters(), lr=0.25)
            for x in loader:
                model(x).sum().backward()
                optimizer.step()
                optimizer.zero_grad()
        """,
        """
        from torch.nn.parallel import DistributedDataParallel as DDP

        def main(model, rank):
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            model = DDP(model, device_ids=[rank])
            return model, optimizer
        """,
        """
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        def build(model, cfg):
            optimizer = torch.optim.AdamW(model.parameters())
            if cfg.fsdp:
                model = FSDP(model)
                optimizer = torch.optim.AdamW(model.parameters())
            return model, optimizer
        """,
        """
        from torch.distributed.fsdp import fully_shard

        def build(model, use_fsdp):
            if use_fsdp:
                fully_shard(model)
            else:
                optimizer = torch.optim.AdamW(model.parameters())
        """,
    ]

    def check(self, facts):
        for fn in functions(facts):
            optimizers = list(optimizers_built_from(fn))
            if not optimizers:
                continue  # the common case: no walk over the function's nodes
            for shard, module in sharding_calls(fn):
                for optimizer, modules in optimizers:
                    if optimizer.lineno >= shard.lineno or fn.exclusive(optimizer, shard):
                        continue
                    if not any(module == m or m.startswith(module + ".") or module.startswith(m + ".")
                               for m in modules):
                        continue
                    if any(later.lineno > shard.lineno and not fn.exclusive(later, shard)
                           for later, _ in optimizers):
                        continue  # built again from the sharded parameters
                    yield Report(shard, f"{last_part(text(shard.func))}() gives '{module}' new parameter tensors, but "
                                        f"the optimizer at line {optimizer.lineno} was built from the old ones: it "
                                        f"steps tensors the model no longer uses; build it after sharding")
                    break
