"""Time-sequence prediction: two LSTM cells in double precision, trained full-batch with L-BFGS
(`optimizer.step(closure)`, the closure clearing gradients and running backward), then a
prediction pass under no_grad."""
import json
import sys

import torch
from torch import nn


class Sequence(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm1, self.lstm2 = nn.LSTMCell(1, 24), nn.LSTMCell(24, 24)
        self.linear = nn.Linear(24, 1)

    def forward(self, input, future=0):
        outputs = []
        h_t = c_t = torch.zeros(input.size(0), 24, dtype=torch.double)
        h_t2 = c_t2 = torch.zeros(input.size(0), 24, dtype=torch.double)
        for input_t in input.split(1, dim=1):
            h_t, c_t = self.lstm1(input_t, (h_t, c_t))
            h_t2, c_t2 = self.lstm2(h_t, (h_t2, c_t2))
            outputs.append(self.linear(h_t2))
        for _ in range(future):
            h_t, c_t = self.lstm1(outputs[-1], (h_t, c_t))
            h_t2, c_t2 = self.lstm2(h_t, (h_t2, c_t2))
            outputs.append(self.linear(h_t2))
        return torch.cat(outputs, dim=1)


def main():
    torch.manual_seed(0)
    x = torch.arange(40, dtype=torch.double).unsqueeze(0) + torch.randint(-4, 4, (12, 1)).double()
    data = torch.sin(x / 4.0)
    input, target = data[3:, :-1], data[3:, 1:]
    test_input, test_target = data[:3, :-1], data[:3, 1:]
    seq = Sequence().double()
    criterion = nn.MSELoss()
    optimizer = torch.optim.LBFGS(seq.parameters(), lr=0.8)
    for i in range(4):
        def closure():
            optimizer.zero_grad()
            loss = criterion(seq(input), target)
            loss.backward()
            return loss
        optimizer.step(closure)
        with torch.no_grad():
            test_loss = criterion(seq(test_input, future=5)[:, :-5], test_target).item()
    with open(sys.argv[1], "w") as handle:
        json.dump({"test_loss": test_loss, "weights": [p.detach().sum().item() for p in seq.parameters()]}, handle)


if __name__ == "__main__":
    main()
