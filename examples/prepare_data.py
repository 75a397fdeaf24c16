"""Build (and cache) the datasets, report their class counts and cold vs cached build time, and
optionally train a standard LSNNClassifier briefly on MIT-BIH or FSDD to check the pipeline.

Examples:
    python examples/prepare_data.py --mitdb ../shared/data/mitdb --fsdd ../shared/data/fsdd/recordings
    python examples/prepare_data.py --mitdb ../shared/data/mitdb --train ecg --epochs 3
    python examples/prepare_data.py --fsdd ../shared/data/fsdd/recordings --train fsdd --standardize
    python examples/prepare_data.py --synthetic-only
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from spikerobust.datasets import FSDD, MITBIH, SyntheticECG, feature_stats, time_first_collate

logger = logging.getLogger("prepare_data")


def timed(make):
    t0 = time.perf_counter()
    ds = make()
    return ds, time.perf_counter() - t0


def build_all(name, make_split, splits):
    """Build every split twice (cold cache, then warm) and report counts and times."""
    cold, warm, counts = 0.0, 0.0, {}
    for s in splits:
        ds, t = timed(lambda: make_split(s))
        cold += t
        counts[s] = ds.class_counts()
    for s in splits:
        warm += timed(lambda: make_split(s))[1]
    extra = {}
    if hasattr(ds, "split_records"):
        extra["split_records"] = ds.split_records
    logger.info("%s: cold %.2f s, cached %.3f s (%.0fx)", name, cold, warm, cold / max(warm, 1e-9))
    return {"counts": counts, "cold_s": round(cold, 3), "cached_s": round(warm, 4),
            "speedup": round(cold / max(warm, 1e-9), 1), **extra}


def train_short(train, test, epochs, hidden, lr, batch, seed):
    """A short plain (non-robust) training of LSNNClassifier; returns the test accuracy."""
    from torch.nn import functional as F
    from torch.utils.data import DataLoader

    from spikerobust.nn import LSNNClassifier

    torch.manual_seed(seed)
    d_in = train.data.shape[2]
    model = LSNNClassifier(d_in, n_hidden=hidden, n_classes=len(train.classes))
    opt = torch.optim.Adam(model.parameters(), lr)
    g = torch.Generator().manual_seed(seed)
    loader = DataLoader(train, batch_size=batch, shuffle=True, generator=g, collate_fn=time_first_collate)
    for epoch in range(epochs):
        model.train()
        for x, y in loader:
            logits, reg = model(x, return_aux_loss=True)
            loss = F.cross_entropy(logits, y) + reg
            opt.zero_grad()
            loss.backward()
            opt.step()
        acc = evaluate(model, test, batch)
        logger.info("epoch %d: test accuracy %.4f", epoch + 1, acc)
    return acc


@torch.no_grad()
def evaluate(model, ds, batch):
    model.eval()
    x = torch.from_numpy(np.asarray(ds.data, dtype=np.float32)).transpose(0, 1)
    y = torch.from_numpy(np.asarray(ds.targets))
    correct = 0
    for i in range(0, len(y), batch):
        out = model(x[:, i : i + batch])
        logits = out[0] if isinstance(out, tuple) else out
        correct += int((logits.argmax(1) == y[i : i + batch]).sum())
    return correct / len(y)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mitdb", type=Path, help="folder with the MIT-BIH records")
    ap.add_argument("--fsdd", type=Path, help="FSDD recordings folder")
    ap.add_argument("--cache-dir", type=Path, default=None,
                    help="cache folder (default: a fresh temporary one, so the cold time is really cold)")
    ap.add_argument("--synthetic-only", action="store_true")
    ap.add_argument("--train", choices=["ecg", "ecg-records", "fsdd"], default=None)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--standardize", action="store_true",
                    help="standardise each input feature with training-set statistics before training")
    ap.add_argument("--out", type=Path, default=None, help="write the report as JSON")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    cache = args.cache_dir or Path(tempfile.mkdtemp(prefix="spikerobust-cache-"))
    report = {"cache_dir": str(cache)}

    report["synthetic_ecg"] = build_all(
        "synthetic ECG", lambda s: SyntheticECG(split=s, beats_per_class=3350, seed=args.seed), ("train", "val", "test"))
    if not args.synthetic_only and args.mitdb:
        report["mitbih_all_beats"] = build_all(
            "MIT-BIH all beats", lambda s: MITBIH(args.mitdb, split=s, beats_per_class=None, cache_dir=cache), ("all",))
        report["mitbih_random"] = build_all(
            "MIT-BIH 80/10/10", lambda s: MITBIH(args.mitdb, split=s, cache_dir=cache), ("train", "val", "test"))
        report["mitbih_record"] = build_all(
            "MIT-BIH record-wise",
            lambda s: MITBIH(args.mitdb, split=s, split_mode="record", cache_dir=cache), ("train", "val", "test"))
    if not args.synthetic_only and args.fsdd:
        report["fsdd"] = build_all("FSDD", lambda s: FSDD(args.fsdd, split=s, cache_dir=cache), ("train", "test"))

    if args.train:
        if args.train.startswith("ecg"):
            mode = "record" if args.train == "ecg-records" else "random"
            tr = MITBIH(args.mitdb, split="train", split_mode=mode, cache_dir=cache)
            te = MITBIH(args.mitdb, split="test", split_mode=mode, cache_dir=cache)
        else:
            tr, te = FSDD(args.fsdd, split="train", cache_dir=cache), FSDD(args.fsdd, split="test", cache_dir=cache)
        if args.standardize:
            stats = feature_stats(tr.data)
            for ds in (tr, te):
                ds.data = ((ds.data - stats[0]) / stats[1]).astype(np.float32)
        t0 = time.perf_counter()
        acc = train_short(tr, te, args.epochs, args.hidden, args.lr, args.batch, args.seed)
        report["training"] = {"task": args.train, "epochs": args.epochs, "hidden": args.hidden, "lr": args.lr,
                              "standardize": args.standardize, "test_accuracy": acc, "seconds": round(time.perf_counter() - t0, 1)}
    text = json.dumps(report, indent=1)
    if args.out:
        args.out.write_text(text)
    logger.info("%s", text)
    return report


if __name__ == "__main__":
    main()
