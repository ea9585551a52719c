"""Word-level language model: an LSTM trained with truncated backpropagation through time and an
update written by hand (`p.data.add_(p.grad, alpha=-lr)`, no optimizer), gradient clipping, the
learning rate annealed when validation stops improving. Synthetic tokens."""
import json
import math
import sys

import torch
from torch import nn


class RNNModel(nn.Module):
    def __init__(self, ntoken=50, ninp=32, nhid=32):
        super().__init__()
        self.drop = nn.Dropout(0.2)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = nn.LSTM(ninp, nhid, 2, dropout=0.2)
        self.decoder = nn.Linear(nhid, ntoken)

    def forward(self, input, hidden):
        output, hidden = self.rnn(self.drop(self.encoder(input)), hidden)
        return self.decoder(self.drop(output)).view(-1, 50), hidden

    def init_hidden(self, bsz):
        weight = next(self.parameters())
        return weight.new_zeros(2, bsz, 32), weight.new_zeros(2, bsz, 32)


def repackage_hidden(h):
    return tuple(v.detach() for v in h)


def main():
    torch.manual_seed(1111)
    train_data, val_data = torch.randint(0, 50, (200, 8)), torch.randint(0, 50, (60, 8))
    model, criterion, lr, bptt = RNNModel(), nn.NLLLoss(), 20.0, 20
    best_val = None
    for epoch in range(3):
        model.train()
        hidden = model.init_hidden(8)
        for i in range(0, train_data.size(0) - 1, bptt):
            data, targets = train_data[i:i + bptt], train_data[i + 1:i + 1 + bptt].reshape(-1)
            data = data[:len(targets) // 8]
            model.zero_grad()
            hidden = repackage_hidden(hidden)
            output, hidden = model(data, hidden)
            loss = criterion(torch.log_softmax(output, dim=-1), targets)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
            for p in model.parameters():
                p.data.add_(p.grad, alpha=-lr)
        model.eval()
        with torch.no_grad():
            hidden = model.init_hidden(8)
            output, hidden = model(val_data[:-1], hidden)
            val_loss = criterion(torch.log_softmax(output, dim=-1), val_data[1:].reshape(-1)).item()
        if best_val is None or val_loss < best_val:
            best_val = val_loss
        else:
            lr /= 4.0
    with open(sys.argv[1], "w") as handle:
        json.dump({"loss": loss.item(), "val_ppl": math.exp(best_val),
                   "weights": [p.detach().double().sum().item() for p in model.parameters()]}, handle)


if __name__ == "__main__":
    main()
