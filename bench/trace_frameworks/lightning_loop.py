"""Lightning: automatic optimization with a scheduler, dropout + batch norm, validation each epoch."""
import torch
import lightning as L
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class Model(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 3))
        self.criterion = nn.CrossEntropyLoss()

    def training_step(self, batch, i):
        x, y = batch
        return self.criterion(self.net(x), y)

    def validation_step(self, batch, i):
        x, y = batch
        self.log("val", self.criterion(self.net(x), y))

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=1e-3)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, 1)]


g = torch.Generator().manual_seed(0)
data = TensorDataset(torch.randn(64, 8, generator=g), torch.randint(0, 3, (64,), generator=g))
L.Trainer(max_epochs=5, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
          accumulate_grad_batches=2, limit_val_batches=2, val_check_interval=4).fit(
    Model(), DataLoader(data, batch_size=8), DataLoader(data, batch_size=8))
