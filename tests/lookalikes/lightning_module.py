"""Lightning: automatic optimisation, and manual optimisation with accumulation."""
import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn


class Classifier(pl.LightningModule):
    def __init__(self, backbone, num_classes):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.out_dim, num_classes)
        self.temperature = nn.Parameter(torch.ones([]))

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self.head(self.backbone(x)) / self.temperature
        loss = F.cross_entropy(logits, y)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/loss", F.cross_entropy(self.head(self.backbone(x)), y))

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=1e-3)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.trainer.max_epochs)
        return {"optimizer": optimizer, "lr_scheduler": scheduler}


class ManualGAN(pl.LightningModule):
    def __init__(self, generator, discriminator):
        super().__init__()
        self.automatic_optimization = False
        self.generator = generator
        self.discriminator = discriminator

    def training_step(self, batch, batch_idx):
        opt_g, opt_d = self.optimizers()
        z = torch.randn(batch.shape[0], 128, device=self.device)
        loss_d = F.softplus(self.discriminator(self.generator(z).detach())).mean() + F.softplus(
            -self.discriminator(batch)).mean()
        self.manual_backward(loss_d / 2)
        if (batch_idx + 1) % 2 == 0:
            self.clip_gradients(opt_d, gradient_clip_val=1.0)
            opt_d.step()
            opt_d.zero_grad()
        loss_g = F.softplus(-self.discriminator(self.generator(z))).mean()
        opt_g.zero_grad()
        self.manual_backward(loss_g)
        opt_g.step()
