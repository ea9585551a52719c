"""Data loaders: which loaders the training loops consume, how each was built (its sampler, its
dataset), and whether the data a rank sees is its own share."""
from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Iterator, List, Optional

from .dataflow import sources_of
from .model import FunctionFacts, Kind, Loop, Unpacked
from .syntax import argument, dotted, last_part, name_words, names_in
from .values import Origin, callee_of, origins

_WRAPPING_ITERATORS = {"enumerate", "tqdm", "tqdm.tqdm", "iter", "zip"}
# samplers that draw from the whole dataset on every rank
_WHOLE_DATASET_SAMPLERS = {"RandomSampler", "SequentialSampler", "SubsetRandomSampler", "WeightedRandomSampler"}
# words of names that split data between processes (`rank`, `world_size`, `num_shards`...)
_RANK_WORDS = {"rank", "ranks", "world", "shard", "shards", "sharded", "replica", "replicas", "node", "nodes",
               "process", "partition", "partitioner", "distributed", "dp"}
_STREAMING_WORDS = {"iterable", "stream", "streaming", "web", "wds", "shard", "shards"}


@dataclass
class TrainedLoader:
    loader: ast.AST  # the expression that names the loader in ``fn``
    loop: Loop  # the loop that trains on it
    per_epoch: bool  # consumed once per iteration of an enclosing loop (an epoch loop)


def loaders_trained_on(fn: FunctionFacts) -> Iterator[TrainedLoader]:
    """The loaders ``fn`` trains on: the iterable of a loop that runs backward(), and the
    arguments of a helper that trains, called from a top-level loop (``for epoch ...:
    train_one_epoch(model, loader, ...)``)."""
    for loop in fn.loops:
        if isinstance(loop.node, ast.For) and fn.events_in(loop, Kind.BACKWARD):
            for loader in _iterated(loop.node.iter):
                yield TrainedLoader(loader, loop, loop.parent is not None)
        if loop.parent is None:
            helpers = {id(b.node): b.node for b in fn.events_in(loop, Kind.BACKWARD)
                       if b.via and isinstance(b.node, ast.Call)}  # a spliced event stands at its call
            for call in helpers.values():
                for passed in call.args:
                    yield TrainedLoader(passed, loop, True)


def _iterated(iterable: ast.AST) -> List[ast.AST]:
    """The loaders in ``enumerate(tqdm(loader))``, ``iter(loader)``, ``zip(a, b)``."""
    if isinstance(iterable, ast.Call) and dotted(iterable.func) in _WRAPPING_ITERATORS:
        if dotted(iterable.func) == "zip":
            return [inner for arg in iterable.args for inner in _iterated(arg)]
        return _iterated(iterable.args[0]) if iterable.args else []
    return [iterable]


# framework calls that hand back a loader with a distributed sampler added
_PREPARING = {"prepare", "prepare_data_loader", "setup_dataloaders"}


def data_loaders_of(fn: FunctionFacts, loader: ast.AST) -> List[Origin]:
    """The ``DataLoader(...)`` calls of this file that may have built ``loader``; none when the
    loader is also re-bound to what accelerate or Fabric prepared from it."""
    sources = origins(fn, loader)
    if any(last_part(callee_of(s)) in _PREPARING for s in sources) or any(
            isinstance(value, Unpacked) and last_part(dotted(getattr(value.value, "func", None)) or "") in _PREPARING
            for value in fn.all_bindings(dotted(loader) or "")):
        return []
    return [made for made in sources if last_part(callee_of(made)) == "DataLoader"]


def sampler_of(made: Origin) -> Optional[ast.AST]:
    """The ``sampler=`` (or ``batch_sampler=``) a DataLoader was given; None when none was."""
    call = made.expr
    for position, keyword in ((3, "sampler"), (4, "batch_sampler")):
        value = argument(call, position, keyword)
        if value is not None and not (isinstance(value, ast.Constant) and value.value is None):
            return value
    return None


def draws_from_whole_dataset(made: Origin) -> bool:
    """Whether every rank running this DataLoader would iterate the whole dataset: no sampler or
    only samplers that ignore the rank, and nothing in how the dataset or loader is built that
    names a rank, a shard or a partition, nor a streaming/iterable dataset (those shard
    themselves). Anything trainlint cannot see counts as rank-aware."""
    sampler = sampler_of(made)
    if sampler is not None:
        sources = origins(made.fn, sampler)
        if not sources or any(last_part(callee_of(s)) not in _WHOLE_DATASET_SAMPLERS for s in sources):
            return False
    if _mentions(made.fn, made.expr, _RANK_WORDS):
        return False
    dataset = argument(made.expr, 0, "dataset")
    if dataset is None:
        return False
    sources = origins(made.fn, dataset)
    if not sources:
        return False
    for source in sources:
        if _split_by_rank(source.fn, source.expr) or _iterable_dataset(source):
            return False
    return True


def _split_by_rank(fn: FunctionFacts, expr: ast.AST) -> bool:
    """Whether ``expr``, or a value of ``fn`` it is computed from, names a rank, a shard or a
    partition (``mine = chunks[dist.get_rank()]; Dataset(items=mine)``); in the values it is
    computed from, a test that only chooses between them (``augment if args.disable_dp else
    plain``) splits nothing."""
    if _mentions(fn, expr, _RANK_WORDS):
        return True
    return any(_mentions(fn, value.value if isinstance(value, Unpacked) else value, _RANK_WORDS, values_only=True)
               for name in sources_of(fn, names_in(expr, values_only=True), values_only=True)
               for value in fn.assignments.get(name, ()))


def _mentions(fn: FunctionFacts, expr: ast.AST, words: set, values_only: bool = False) -> bool:
    names = set(names_in(expr, values_only))
    for node in ast.walk(expr):
        if isinstance(node, ast.Call) and dotted(node.func) is None and isinstance(node.func, ast.Attribute):
            names.add(node.func.attr)  # `load_dataset(...).shard(...)`
        elif isinstance(node, ast.keyword) and node.arg:
            names.add(node.arg)
    return any(set(name_words(part)) & words for name in names for part in name.split("."))


def _iterable_dataset(source: Origin) -> bool:
    """A dataset trainlint cannot see is map-style only when it is built by a class: an
    ``IterableDataset`` subclass of this file, a streaming/web dataset, or anything that is not a
    constructor call counts as iterable."""
    if not isinstance(source.expr, ast.Call):
        return True
    callee = callee_of(source)
    if set(name_words(callee)) & _STREAMING_WORDS:
        return True
    cls = source.fn.file.class_bases.get(last_part(callee))
    return cls is not None and any("Iterable" in base for base in cls)
