"""A stack of nn.TransformerEncoderLayer on a toy sequence task, watched by gradscope.

    python examples/python/transformer.py [--steps 40] [--layers 4] [--out runs/transformer]

The task: classify a sequence of random tokens by whether its first token appears again later.
Writes runs/transformer with report.html; each layer's self-attention, feed-forward linears and
LayerNorms appear on the gradient-flow figure by their module names.
"""

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
import loop  # noqa: E402


class Encoder(nn.Module):
    def __init__(self, vocab=32, d=64, layers=4, length=16):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(length, d) * 0.02)
        layer = nn.TransformerEncoderLayer(d, nhead=4, dim_feedforward=128, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d, 2)

    def forward(self, tokens):
        return self.head(self.encoder(self.embed(tokens) + self.pos)[:, 0])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--every", type=int, default=10)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--out", default="runs/transformer")
    a = p.parse_args(argv)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    net = Encoder(layers=a.layers)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-4)

    def batch():
        tokens = torch.randint(0, 32, (64, 16), generator=gen)
        return tokens, (tokens[:, 1:] == tokens[:, :1]).any(1).long()
    loop.train(net, opt, batch, nn.functional.cross_entropy, a.steps, a.out, every=a.every, loss="cross_entropy",
               data="first-token")


if __name__ == "__main__":
    main()
