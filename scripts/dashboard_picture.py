"""Draw what the two Grafana dashboards show, from a real Prometheus scraping a real run.

Grafana is not installable here, so this runs the monitoring stack of tests/monitoring (the
demo's sidecars and the operator story, scraped every second by Debian's Prometheus), runs every
panel's query over the run, and draws the panels where the dashboard JSON places them (its
24-column grid), one PNG per dashboard: docs/images/dashboard-sidecars.png and
docs/images/dashboard-metering.png. Lines are the series each query returned, labelled by the
panel's legend format; stat panels show the last values. Needs matplotlib
(`.venv/bin/pip install --group pictures`) and the prometheus package.

Usage: `python scripts/dashboard_picture.py [--out docs/images] [--pace 0.4]`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.monitoring.stack import Stack, concrete, running_stack  # noqa: E402

DASHBOARDS = {
    "sidecars": REPO / "charts" / "entitlement-sidecar" / "files" / "dashboard.json",
    "metering": REPO / "charts" / "entitlement-operator" / "files" / "dashboard.json",
}
ROW_HEIGHT = 0.42  # inches per Grafana grid row
WIDTH = 18.0  # inches for 24 columns


def legend(template: str, labels: dict[str, str]) -> str:
    """A legendFormat filled with a series' labels, as Grafana does."""
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template) or "value"


def panel_series(stack: Stack, panel: dict[str, Any]) -> list[tuple[str, list[float], list[float]]]:
    """(label, times, values) of every series the panel's queries return."""
    out = []
    for target in panel["targets"]:
        for series in stack.query_range(concrete(target["expr"])):
            times = [float(t) for t, _ in series["values"]]
            values = [float(v) for _, v in series["values"]]
            out.append((legend(target.get("legendFormat", ""), series["metric"]), times, values))
    return out


def stacked(
    series: list[tuple[str, list[float], list[float]]],
) -> tuple[list[datetime], list[list[float]]]:
    """The series on one time axis (a missing sample counts 0), for a stacked panel."""
    times = sorted({t for _, ts, _ in series for t in ts})
    layers = []
    for _, ts, values in series:
        at = dict(zip(ts, values, strict=True))
        layers.append([at.get(t, 0.0) for t in times])
    return [datetime.fromtimestamp(t, tz=UTC) for t in times], layers


def draw(stack: Stack, name: str, path: Path, out: Path) -> Path:
    """One PNG with every panel of the dashboard at its grid position."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    dashboard = json.loads(path.read_text())
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in dashboard["panels"])
    figure = plt.figure(figsize=(WIDTH, rows * ROW_HEIGHT + 1.2))
    figure.suptitle(
        f"{dashboard['title']}  (drawn from Prometheus, {len(dashboard['panels'])} panels)",
        fontsize=14,
        fontweight="bold",
    )
    top = 1 - 0.9 / figure.get_figheight()
    grid = figure.add_gridspec(rows, 24, hspace=2.8, wspace=1.2, top=top)
    start = datetime.fromtimestamp(stack.started, tz=UTC)
    end = datetime.fromtimestamp(stack.ended, tz=UTC)
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        axes = figure.add_subplot(
            grid[pos["y"] : pos["y"] + pos["h"] - 1, pos["x"] : pos["x"] + pos["w"]]
        )
        axes.set_title(panel["title"], fontsize=10, loc="left")
        series = panel_series(stack, panel)
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
        if panel["type"] == "stat":
            axes.axis("off")
            text = "\n".join(f"{label}: {values[-1]:g}" for label, _, values in series)
            axes.text(0.01, 0.5, text or "no data", fontsize=11, va="center", family="monospace")
            continue
        custom = panel.get("fieldConfig", {}).get("defaults", {}).get("custom", {})
        if custom.get("stacking", {}).get("mode") == "normal" and series:
            stamps, layers = stacked(series)
            axes.stackplot(stamps, layers, labels=[label for label, _, _ in series], alpha=0.8)
        else:
            for label, times, values in series:
                stamps = [datetime.fromtimestamp(t, tz=UTC) for t in times]
                axes.plot(stamps, values, label=label, linewidth=1.4)
        axes.set_xlim(start, end)
        axes.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
        axes.tick_params(labelsize=7)
        if unit == "s":
            axes.set_ylabel("seconds", fontsize=8)
        if series:
            axes.legend(fontsize=7, loc="upper left", ncols=2 if len(series) > 4 else 1)
        else:
            axes.text(0.5, 0.5, "no data", transform=axes.transAxes, ha="center")
    target = out / f"dashboard-{name}.png"
    figure.savefig(target, dpi=80)
    plt.close(figure)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    parser.add_argument("--pace", type=float, default=0.4, help="real seconds between ticks")
    args = parser.parse_args(argv)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("matplotlib is missing: .venv/bin/pip install --group pictures", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    with running_stack(pace=args.pace) as stack:
        for note in stack.notes:
            print(note)
        for name, path in DASHBOARDS.items():
            print(draw(stack, name, path, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
