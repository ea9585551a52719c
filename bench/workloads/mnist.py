"""MNIST-style classifier (pytorch/examples style): Adadelta, StepLR per epoch, dropout, a test
pass under no_grad each epoch. Synthetic 28x28 images. Writes its final state to argv[1]."""
import json
import sys

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, 1)
        self.conv2 = nn.Conv2d(8, 16, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(2304, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(self.dropout1(x), 1)
        x = self.dropout2(F.relu(self.fc1(x)))
        return F.log_softmax(self.fc2(x), dim=1)


def train(model, loader, optimizer):
    model.train()
    for data, target in loader:
        optimizer.zero_grad()
        loss = F.nll_loss(model(data), target)
        loss.backward()
        optimizer.step()
    return loss.item()


def test(model, loader):
    model.eval()
    correct = 0
    with torch.no_grad():
        for data, target in loader:
            correct += model(data).argmax(dim=1).eq(target).sum().item()
    return correct


def main():
    torch.manual_seed(1)
    images, labels = torch.randn(640, 1, 28, 28), torch.randint(0, 10, (640,))
    train_loader = DataLoader(TensorDataset(images[:512], labels[:512]), batch_size=32, shuffle=True)
    test_loader = DataLoader(TensorDataset(images[512:], labels[512:]), batch_size=64)
    model = Net()
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    for epoch in range(3):
        loss = train(model, train_loader, optimizer)
        correct = test(model, test_loader)
        scheduler.step()
    with open(sys.argv[1], "w") as handle:
        json.dump({"loss": loss, "correct": correct,
                   "weights": [p.detach().double().sum().item() for p in model.parameters()]}, handle)


if __name__ == "__main__":
    main()
