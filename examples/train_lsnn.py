"""Train a small LSNN on a temporal task generated offline (which channel carries a burst).

Examples:
    python examples/train_lsnn.py --epochs 3
"""

from __future__ import annotations

import argparse
import logging

import torch
import torch.nn.functional as F

from spikerobust.datasets import burst_task
from spikerobust.nn import LSNNClassifier


def main(argv=None) -> float:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--n-train", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.manual_seed(args.seed)
    x, y = burst_task(args.n_train, seed=args.seed)
    xt, yt = burst_task(512, seed=args.seed + 1)
    model = LSNNClassifier(2, n_hidden=args.hidden, n_classes=2)
    opt = torch.optim.Adam(model.parameters(), args.lr)
    acc = 0.0
    for epoch in range(args.epochs):
        perm = torch.randperm(args.n_train)
        for i in range(0, args.n_train, args.batch):
            idx = perm[i : i + args.batch]
            logits, reg = model(x[:, idx], return_aux_loss=True)
            loss = F.cross_entropy(logits, y[idx]) + reg
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            acc = (model(xt).argmax(1) == yt).float().mean().item()
        print(f"epoch {epoch + 1}: loss {loss.item():.4f}  test accuracy {100 * acc:.1f} %")
    return acc


if __name__ == "__main__":
    main()
