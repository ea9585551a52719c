"""DeepSpeed: the engine owns backward, step, zero_grad and accumulation."""
import deepspeed
import torch
from torch.utils.data.distributed import DistributedSampler


def train(args, model, dataset):
    sampler = DistributedSampler(dataset)
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.micro_batch, sampler=sampler)
    model_engine, optimizer, _, lr_scheduler = deepspeed.initialize(
        args=args, model=model, model_parameters=model.parameters())
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        model_engine.train()
        for step, (inputs, labels) in enumerate(loader):
            inputs = inputs.to(model_engine.local_rank)
            labels = labels.to(model_engine.local_rank)
            loss = torch.nn.functional.cross_entropy(model_engine(inputs), labels)
            model_engine.backward(loss)
            model_engine.step()
            if model_engine.is_gradient_accumulation_boundary():
                print(epoch, step, loss.item())
