"""DCGAN: a generator and a discriminator with their own Adam optimizers, the discriminator
trained on real and detached fake batches, the generator through the discriminator."""
import json
import sys

import torch
from torch import nn

NZ = 16


def generator():
    return nn.Sequential(nn.ConvTranspose2d(NZ, 32, 4, 1, 0, bias=False), nn.BatchNorm2d(32), nn.ReLU(True),
                         nn.ConvTranspose2d(32, 16, 4, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(True),
                         nn.ConvTranspose2d(16, 3, 4, 2, 1, bias=False), nn.Tanh())


def discriminator():
    return nn.Sequential(nn.Conv2d(3, 16, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
                         nn.Conv2d(16, 32, 4, 2, 1, bias=False), nn.BatchNorm2d(32), nn.LeakyReLU(0.2, inplace=True),
                         nn.Conv2d(32, 1, 4, 1, 0, bias=False), nn.Sigmoid())


def main():
    torch.manual_seed(999)
    netG, netD = generator(), discriminator()
    criterion = nn.BCELoss()
    optimizerD = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optimizerG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real_label, fake_label = 1.0, 0.0
    for epoch in range(2):
        for i in range(8):
            real = torch.rand(16, 3, 16, 16) * 2 - 1
            netD.zero_grad()
            label = torch.full((16,), real_label)
            errD_real = criterion(netD(real).view(-1), label)
            errD_real.backward()
            fake = netG(torch.randn(16, NZ, 1, 1))
            label.fill_(fake_label)
            errD_fake = criterion(netD(fake.detach()).view(-1), label)
            errD_fake.backward()
            optimizerD.step()
            netG.zero_grad()
            label.fill_(real_label)
            errG = criterion(netD(fake).view(-1), label)
            errG.backward()
            optimizerG.step()
    with open(sys.argv[1], "w") as handle:
        json.dump({"errD": (errD_real + errD_fake).item(), "errG": errG.item(),
                   "weights": [p.detach().double().sum().item() for p in netG.parameters()]}, handle)


if __name__ == "__main__":
    main()
