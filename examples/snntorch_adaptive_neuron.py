"""Train a small snnTorch-style network built around spikerobust's adaptive-threshold neuron.

The hidden layer is :class:`spikerobust.nn.AdaptiveLeaky` (the LSNN neuron of docs/lsnn.md, with an
snnTorch surrogate), stepped in snnTorch's single-step style, written out on purpose, next to an
``snntorch.Leaky`` output layer, on a task generated offline: which of two input channels carries a
burst of activity. The loss, printed every few steps, goes down. E.g. ``--steps 60 --hidden 64``.
"""

from __future__ import annotations

import argparse

import snntorch as snn
import snntorch.surrogate as surrogate
import torch
from torch import nn

from spikerobust.nn import AdaptiveLeaky


def burst_task(n: int, t_steps: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``[T, n, 2]``: noise plus a burst on channel ``y`` in a random window; labels ``[n]``."""
    y = torch.randint(0, 2, (n,), generator=generator)
    x = 0.3 * torch.randn(t_steps, n, 2, generator=generator)
    start = torch.randint(0, t_steps // 2, (n,), generator=generator)
    for i in range(n):
        x[start[i] : start[i] + t_steps // 4, i, y[i]] += 1.5
    return x, y


class Net(nn.Module):
    """Linear → AdaptiveLeaky (recurrent) → Linear → snntorch.Leaky, one time step at a time."""

    def __init__(self, d_in: int, hidden: int, n_classes: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_in, hidden)
        self.alif = AdaptiveLeaky(n_hidden=hidden, recurrent=True, surrogate=surrogate.fast_sigmoid(slope=5))
        self.fc2 = nn.Linear(hidden, n_classes)
        self.out = snn.Leaky(beta=0.9, reset_mechanism="none")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        state = self.alif.init_leaky()  # (v, z, b, r), sized on the first step
        mem2 = self.out.init_leaky()
        mems, spikes = [], []
        for t in range(x.shape[0]):
            spk1, state = self.alif(self.fc1(x[t]), state)
            _, mem2 = self.out(self.fc2(spk1), mem2)
            mems.append(mem2)
            spikes.append(spk1)
        return torch.stack(mems), torch.stack(spikes)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40, help="optimiser steps (40)")
    parser.add_argument("--batch", type=int, default=32, help="batch size (32)")
    parser.add_argument("--time", type=int, default=40, help="time steps per sample (40)")
    parser.add_argument("--hidden", type=int, default=32, help="adaptive neurons (32)")
    parser.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate (1e-2)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the network and the task (0)")
    args = parser.parse_args(argv)
    g = torch.Generator().manual_seed(torch.manual_seed(args.seed).initial_seed())  # same seed: network and task
    opt = torch.optim.Adam((net := Net(2, args.hidden, 2)).parameters(), lr=args.lr)
    x_test, y_test = burst_task(200, args.time, g)
    for step in range(1, args.steps + 1):
        x, y = burst_task(args.batch, args.time, g)
        mem, spikes = net(x)
        loss = nn.functional.cross_entropy(mem.mean(0), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step == 1 or step % 5 == 0:
            print(f"step {step:3d}  loss {loss.item():.4f}  hidden rate {spikes.mean().item():.3f}")
    with torch.no_grad():
        acc = (net(x_test)[0].mean(0).argmax(1) == y_test).float().mean().item()
    print(f"held-out accuracy {acc:.3f}")


if __name__ == "__main__":
    main()
