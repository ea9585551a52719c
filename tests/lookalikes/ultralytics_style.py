"""ultralytics/yolov5-style: counter-difference accumulation, AMP scaler, EMA on the boundary."""
import math

import numpy as np
import torch
from torch import nn


class Trainer:
    def __init__(self, model, loader, epochs, nbs=64, batch_size=16):
        self.model = model
        self.loader = loader
        self.epochs = epochs
        self.accumulate = max(round(nbs / batch_size), 1)
        self.optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.937, nesterov=True)
        lf = lambda x: (1 - x / epochs) * (1.0 - 0.01) + 0.01  # noqa: E731
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda=lf)
        self.scaler = torch.amp.GradScaler("cuda", enabled=True)
        self.ema = None

    def optimizer_step(self):
        self.scaler.unscale_(self.optimizer)
        nn.utils.clip_grad_norm_(self.model.parameters(), max_norm=10.0)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad()
        if self.ema:
            self.ema.update(self.model)

    def train(self):
        nb = len(self.loader)
        nw = max(round(3 * nb), 100)
        last_opt_step = -1
        self.optimizer.zero_grad()
        for epoch in range(self.epochs):
            self.scheduler.step()
            self.model.train()
            for i, batch in enumerate(self.loader):
                ni = i + nb * epoch
                if ni <= nw:
                    xi = [0, nw]
                    self.accumulate = max(1, int(np.interp(ni, xi, [1, 64 / 16]).round()))
                with torch.autocast("cuda", enabled=True):
                    loss, loss_items = self.model(batch)
                self.scaler.scale(loss).backward()
                if ni - last_opt_step >= self.accumulate:
                    self.optimizer_step()
                    last_opt_step = ni
            self.validate()

    def validate(self):
        self.model.eval()
        with torch.no_grad():
            return sum(self.model(b)[0].item() for b in self.loader) / max(len(self.loader), 1)
