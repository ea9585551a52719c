"""Variational autoencoder: reconstruction + KL loss summed over the batch, Adam, a test pass
under no_grad each epoch."""
import json
import sys

import torch
import torch.nn.functional as F
from torch import nn


class VAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 128)
        self.fc21, self.fc22 = nn.Linear(128, 8), nn.Linear(128, 8)
        self.fc3, self.fc4 = nn.Linear(8, 128), nn.Linear(128, 784)

    def forward(self, x):
        h = F.relu(self.fc1(x.view(-1, 784)))
        mu, logvar = self.fc21(h), self.fc22(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z)))), mu, logvar


def loss_function(recon, x, mu, logvar):
    bce = F.binary_cross_entropy(recon, x.view(-1, 784), reduction="sum")
    return bce - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


def main():
    torch.manual_seed(1)
    batches = [torch.rand(32, 1, 28, 28) for _ in range(10)]
    model = VAE()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(3):
        model.train()
        for data in batches[:8]:
            optimizer.zero_grad()
            recon, mu, logvar = model(data)
            loss = loss_function(recon, data, mu, logvar)
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            test_loss = sum(loss_function(*model(d)[:1], d, *model(d)[1:]).item() for d in batches[8:])
    with open(sys.argv[1], "w") as handle:
        json.dump({"loss": loss.item(), "weights": [p.detach().double().sum().item() for p in model.parameters()]},
                  handle)


if __name__ == "__main__":
    main()
