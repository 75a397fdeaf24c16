"""report.md from a hand-made results dict: composition table, per-class section, paper labels."""

from __future__ import annotations

import pytest

from spikerobust.experiments import make_config
from spikerobust.experiments.report import PAPER_GRID, composition_table, differences_from_paper, render_report

COMP = {"composition": "paper", "lead_in": 90, "split_records": {"train": 3, "val": 3, "test": 3},
        "per_class": {"N": {"beats": 10, "records": 2, "per_split": {"train": 8, "val": 1, "test": 1},
                            "largest": [["100", 7], ["101", 3]]},
                      "V": {"beats": 10, "records": 3, "per_split": {"train": 8, "val": 1, "test": 1},
                            "largest": [["105", 5], ["106", 4], ["119", 1]]}}}


def _results(points, directions):
    pc = {"clean": {"classes": ["N", "V"], "sensitivity": [1.0, 0.5], "ppv": [2 / 3, 1.0], "support": [2, 2],
                    "confusion": [[2, 0], [1, 1]], "accuracy": 0.75},
          "mismatch": {"level": 0.5, "n_draws": 3, "classes": ["N", "V"], "sensitivity": [0.5, 0.25],
                       "ppv": [0.4, 0.5], "confusion": [[1.0, 1.0], [1.5, 0.5]], "accuracy": 0.375}}
    method = {"method": {"method": "standard"}, "val_accuracy": 0.8, "test_accuracy": 0.75, "best_epoch": 2,
              "train_s": 6.0, "landscape": {"alphas": [0.0], "smoothed": [0.1], "flatness": 0.1234},
              "per_class": pc}
    cfg = make_config("ecg", "paper", overrides={"landscape_points": points, "landscape_directions": directions,
                                                 "methods": {"standard": {"method": "standard"}}})
    data = {"description": "MIT-BIH ...", "sizes": {"train": 16, "val": 2, "test": 2}, "classes": ["N", "V"],
            "model": "lsnn_ecg", "model_kwargs": {}, "composition": COMP}
    return {"methods": {"standard": method}, "data": data, "elapsed_s": 60.0}, cfg


def test_composition_table_lists_beats_and_records():
    table = composition_table(COMP)
    assert "| N | 10 | 2 | 8 / 1 / 1 | 100 (7), 101 (3) |" in table
    assert "| V | 10 | 3 | 8 / 1 / 1 | 105 (5), 106 (4), 119 (1) |" in table


def test_per_class_section_and_confusion():
    res, cfg = _results(*PAPER_GRID)
    text = render_report(res, cfg)
    assert "## Per-class results" in text
    # Se and PPV in % with one decimal: clean 100.0 / 66.7, mean at m = 0.5: 50.0 / 40.0
    assert "| standard | N | 2 | 100.0 | 66.7 | 50.0 | 40.0 |" in text
    assert "| standard: V | 1 / 1.5 | 1 / 0.5 |" in text
    assert 'Composition "paper"' in text and "| N | 10 | 2 |" in text


def test_flatness_is_labelled_by_grid():
    same = render_report(*_results(*PAPER_GRID))
    assert "| method | ours | paper |" in same
    other = render_report(*_results(25, 3))
    assert "| method | ours | paper |" not in other
    assert "a different grid (50 α × 5 directions)" in other


def test_differences_name_composition_and_seeds():
    cfg = make_config("ecg", "paper", overrides={"composition": "random", "n_draws": 30, "seeds": 1})
    diffs = differences_from_paper(cfg, {"description": "MIT-BIH", "composition": None})
    text = "; ".join(diffs)
    assert 'composition "random"' in text and "mismatch draws 30 (paper 100)" in text
    assert "two seeds" in text
    same = differences_from_paper(make_config("ecg", "paper"), {"description": "MIT-BIH", "composition": COMP})
    assert not any("neurons" in d or "epochs" in d or "seeds" in d for d in same)
    assert any("90 samples before the annotation" in d for d in same)  # our one assumption is named
