"""Every published run under ``docs/results/*/`` agrees with itself, and the README quotes it correctly.

For each folder: ``results.json`` is the source; ``report.md`` must print its numbers (each
method's clean accuracy and every Table 1 cell, m = 0.5 among them, rounded as the report prints
them), ``config.json`` must be its config, its figures must be there and no model file may be.
The README's "Results at the paper's size" section must quote the linked folders' numbers and the
paper's Table 1 exactly (see :mod:`spikerobust.experiments.publish` for the table convention).
The checker itself is tested on a tiny run in ``tests/experiments/test_publish.py``.
"""

import re
from pathlib import Path

import pytest

from spikerobust.experiments.publish import README_SECTION, check_published, check_readme

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = sorted(p for p in (ROOT / "docs" / "results").glob("*/") if p.is_dir())


@pytest.mark.parametrize("folder", PUBLISHED or [pytest.param(None, marks=pytest.mark.skip(
    reason="no published run under docs/results/ yet (spikerobust publish RUN docs/results/NAME)"))],
    ids=lambda p: p.name if p else "none")
def test_published_results_match_their_report(folder):
    assert check_published(folder) == []


def test_readme_quotes_the_published_numbers():
    readme = ROOT / "README.md"
    headings = [line for line in readme.read_text().splitlines() if re.match(r"#+\s", line)]
    if not any(README_SECTION.lower() in h.lower() for h in headings):
        pytest.skip(f'the README has no "{README_SECTION}" section yet')
    assert check_readme(readme, ROOT) == []
