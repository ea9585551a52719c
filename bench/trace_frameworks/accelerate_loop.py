"""accelerate: gradient accumulation with accelerator.accumulate, clipping, a scheduler, an EMA teacher."""
import copy
import torch
from accelerate import Accelerator
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

accelerator = Accelerator(gradient_accumulation_steps=4, cpu=True)
model = nn.Sequential(nn.Linear(8, 32), nn.GELU(), nn.Dropout(0.1), nn.Linear(32, 1))
teacher = copy.deepcopy(model).eval().requires_grad_(False)
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 10))
g = torch.Generator().manual_seed(0)
loader = DataLoader(TensorDataset(torch.randn(256, 8, generator=g), torch.randn(256, 1, generator=g)), batch_size=8,
                    shuffle=True)
model, opt, loader, sched = accelerator.prepare(model, opt, loader, sched)
for epoch in range(3):
    model.train()
    for x, y in loader:
        with accelerator.accumulate(model):
            out = model(x)
            loss = nn.functional.mse_loss(out, y) + 0.1 * nn.functional.mse_loss(out, teacher(x))
            accelerator.backward(loss)
            if accelerator.sync_gradients:
                accelerator.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
        with torch.no_grad():
            for t, s in zip(teacher.parameters(), accelerator.unwrap_model(model).parameters()):
                t.mul_(0.99).add_(s, alpha=0.01)
