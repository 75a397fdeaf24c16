"""Build (and cache) the datasets, report their class counts and cold vs cached build time, and
optionally train a standard LSNN briefly on MIT-BIH or FSDD to check the pipeline (``train_single``,
the Python side of ``spikerobust train``).

Examples:
    python examples/prepare_data.py --mitdb ../shared/data/mitdb --fsdd ../shared/data/fsdd/recordings
    python examples/prepare_data.py --mitdb ../shared/data/mitdb --train ecg --epochs 3
    python examples/prepare_data.py --fsdd ../shared/data/fsdd/recordings --train fsdd --standardize
    python examples/prepare_data.py --mitdb ../shared/data/mitdb --train ecg-record   # patient-wise split
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

from spikerobust.datasets import FSDD, MITBIH, SyntheticECG
from spikerobust.experiments import train_single

def build_all(name, make_split, splits):
    """Build every split twice (cold cache, then warm) and report counts and times."""
    t0 = time.perf_counter()
    built = [make_split(s) for s in splits]
    t1 = time.perf_counter()
    for s in splits:
        make_split(s)
    cold, warm = t1 - t0, time.perf_counter() - t1
    logging.info("%s: cold %.2f s, cached %.3f s (%.0fx)", name, cold, warm, cold / max(warm, 1e-9))
    return {"counts": {s: ds.class_counts() for s, ds in zip(splits, built)}, "cold_s": round(cold, 3),
            "cached_s": round(warm, 4), "speedup": round(cold / max(warm, 1e-9), 1),
            **({"split_records": built[-1].split_records} if hasattr(built[-1], "split_records") else {})}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mitdb", type=Path, help="folder with the MIT-BIH records")
    ap.add_argument("--fsdd", type=Path, help="FSDD recordings folder")
    ap.add_argument("--cache-dir", type=Path, default=None, help="cache folder (default: a fresh temporary one)")
    ap.add_argument("--synthetic-only", action="store_true")
    ap.add_argument("--train", choices=["ecg", "ecg-record", "fsdd"], default=None)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--standardize", action="store_true", help="fsdd: standardise each MFCC with training statistics")
    ap.add_argument("--out", type=Path, default=None, help="write the report as JSON")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cache = args.cache_dir or Path(tempfile.mkdtemp(prefix="spikerobust-cache-"))
    trio, mit, real = ("train", "val", "test"), args.mitdb, not args.synthetic_only
    builds = [("synthetic_ecg", lambda s: SyntheticECG(split=s, beats_per_class=3350, seed=0), trio)]
    if real and mit:
        builds += [("mitbih_all_beats", lambda s: MITBIH(mit, split=s, beats_per_class=None, cache_dir=cache), ("all",)),
                   ("mitbih_random", lambda s: MITBIH(mit, split=s, cache_dir=cache), trio),
                   ("mitbih_record", lambda s: MITBIH(mit, split=s, split_mode="record", cache_dir=cache), trio)]
    if real and args.fsdd:
        builds.append(("fsdd", lambda s: FSDD(args.fsdd, split=s, cache_dir=cache), ("train", "test")))
    report = {"cache_dir": str(cache), **{key: build_all(key, make, splits) for key, make, splits in builds}}
    if args.train:  # the library's own training: the preset's schedule, best validation epoch kept
        task, data_dir = ("speech", args.fsdd) if args.train == "fsdd" else ("ecg", args.mitdb)
        extra = {"standardize": args.standardize} if task == "speech" else {"split": args.train[4:] or "random"}
        run = train_single(task, "standard", overrides={
            "data_dir": str(data_dir), "epochs": args.epochs, "n_hidden": args.hidden, **extra,
            "out_dir": str(cache / f"train-{args.train}"), "progress": False}, overwrite=True)
        report["training"] = {"task": args.train, "epochs": args.epochs, "hidden": args.hidden, **extra,
                              "test_accuracy": run.info["test_accuracy"], "seconds": round(run.seconds["train"], 1)}
    text = json.dumps(report, indent=1)
    if args.out:
        args.out.write_text(text)
    logging.info("%s", text)
    return report


if __name__ == "__main__":
    main()
