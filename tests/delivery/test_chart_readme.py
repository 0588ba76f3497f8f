"""Each chart's README.md is generated from its values.yaml comments and never drifts."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.delivery.helm import EXAMPLE_CHART, OPERATOR_CHART, REPO, SIDECAR_CHART

CHARTS = [SIDECAR_CHART, OPERATOR_CHART, EXAMPLE_CHART]


def test_committed_readmes_match_the_values() -> None:
    """`scripts/chart_readme.py --check` finds every chart's README.md as it would generate it."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "chart_readme.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("chart", CHARTS, ids=lambda c: c.name)
def test_readme_lists_every_top_level_value_with_its_default(chart: Path) -> None:
    """Every top-level key of values.yaml has a row, with its type and description."""
    readme = (chart / "README.md").read_text()
    rows = dict(re.findall(r"^\| `([^`]+)` \| (\w[^|]*?) \|", readme, flags=re.MULTILINE))
    values = yaml.safe_load((chart / "values.yaml").read_text())
    assert set(values) <= set(rows)
    assert rows["nameOverride"] == "string"
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    assert f"Version {meta['version']}" in readme
