"""What does an ECG split reward? A logistic regression on the raw beat windows, per composition and split.

For each MIT-BIH composition (``paper``: the authors' first-beats-in-record-order choice;
``random``: a seeded random choice over all records) and each split (``random`` beats or
``record``: patient-wise), fit scikit-learn's logistic regression on the flattened 100 x 2 windows
of the training split and print its test accuracy, with the number of records each class comes
from. A linear model doing much better on one composition than on another says the split rewards
something other than the beat shape (here: recognising the few patients a class comes from).

Examples:
    OMP_NUM_THREADS=1 python examples/ecg_composition_check.py --data-dir ../shared/data/mitdb
    python examples/ecg_composition_check.py --data-dir DIR --compositions paper --splits random
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--data-dir", required=True, help="folder with the MIT-BIH records (100.hea ...)")
    parser.add_argument("--compositions", default="paper,random", help="comma list of paper, random")
    parser.add_argument("--splits", default="random,record", help="comma list of random, record")
    parser.add_argument("--per-class", type=int, default=3350, help="beats per class (3350 as the paper)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from sklearn.linear_model import LogisticRegression

    from spikerobust.datasets import MITBIH

    for comp in args.compositions.split(","):
        for split in args.splits.split(","):
            sets = {s: MITBIH(args.data_dir, split=s, composition=comp, split_mode=split,
                              beats_per_class=args.per_class, seed=args.seed) for s in ("train", "test")}
            x = {s: d.data.reshape(len(d), -1) for s, d in sets.items()}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # lbfgs convergence notes
                clf = LogisticRegression(max_iter=2000).fit(x["train"], sets["train"].targets)
            acc = float(np.mean(clf.predict(x["test"]) == sets["test"].targets))
            all_recs = np.concatenate([d.records for d in sets.values()])
            all_y = np.concatenate([d.targets for d in sets.values()])
            recs = ", ".join(f"{c} {len(set(all_recs[all_y == k]))}" for k, c in enumerate(sets["train"].classes))
            print(f"composition {comp:6s} split {split:6s}: train {len(sets['train'])}, test {len(sets['test'])}; "
                  f"records per class: {recs}; logistic regression test accuracy {100 * acc:.1f} %")


if __name__ == "__main__":
    main()
