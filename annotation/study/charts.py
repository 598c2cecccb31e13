"""Server-side SVG geometry for the study page: bars with error bars, a win heatmap, and a
judge calibration plot.

Plain numbers for the template to draw (no JavaScript, no CDN): every coordinate is computed
here, every label is escaped by the template.
"""

from __future__ import annotations

import math
from typing import Any

from annotation.study.report import decisive_pairs

BAR_HEIGHT = 18
LABEL_WIDTH = 260
PLOT_WIDTH = 360
# The calibration plot: a square plot area (equal scales, so y = x is the 45-degree diagonal)
# with room on the left and below for ticks and axis labels.
CALIBRATION_SIDE = 240
CALIBRATION_LEFT = 56
CALIBRATION_TOP = 12
CALIBRATION_BOTTOM = 44


def interval_bars(rows: list[tuple[str, dict[str, Any]]]) -> dict[str, Any] | None:
    """Horizontal bars from a shared zero line, one per (label, interval), with the interval
    drawn as an error bar; negative values (Bradley-Terry strengths) extend left."""
    points = [(label, i) for label, i in rows if i and i.get("estimate") is not None]
    if not points:
        return None
    values = [v for _, i in points for v in (i["estimate"], i.get("low"), i.get("high")) if v is not None]
    low, high = min(0.0, *values), max(0.0, *values)
    span = (high - low) or 1.0

    def x(value: float) -> float:
        return LABEL_WIDTH + PLOT_WIDTH * (value - low) / span

    bars = []
    for index, (label, interval) in enumerate(points):
        y = 6 + index * (BAR_HEIGHT + 6)
        left, right = sorted((x(0.0), x(interval["estimate"])))
        bars.append(
            {
                "label": label,
                "value": f"{interval['estimate']:.3g}",
                "x": round(left, 1),
                "y": y,
                "width": round(max(right - left, 1.0), 1),
                "error": None
                if interval.get("low") is None
                else {"x1": round(x(interval["low"]), 1), "x2": round(x(interval["high"]), 1), "y": y + BAR_HEIGHT / 2},
            }
        )
    return {
        "bars": bars,
        "height": 12 + len(points) * (BAR_HEIGHT + 6),
        "width": LABEL_WIDTH + PLOT_WIDTH + 60,
        "zero": round(x(0.0), 1),
        "label_x": LABEL_WIDTH - 6,
        "bar_height": BAR_HEIGHT,
    }


def win_heatmap(pairs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Row system's share of wins against the column system, from pairwise win/tie/loss."""
    if not pairs:
        return None
    systems = sorted({p["a"] for p in pairs} | {p["b"] for p in pairs})
    share: dict[tuple[str, str], float | None] = {}
    for pair in pairs:
        wtl = pair["win_tie_loss"]
        share[(pair["a"], pair["b"])] = wtl["a"]["estimate"]
        share[(pair["b"], pair["a"])] = wtl["b"]["estimate"]
    cell = 56
    cells = []
    for row, a in enumerate(systems):
        for column, b in enumerate(systems):
            value = share.get((a, b))
            cells.append(
                {
                    "x": LABEL_WIDTH + column * cell,
                    "y": 20 + row * cell,
                    "size": cell - 2,
                    "text": "" if value is None else f"{value:.2f}",
                    # White (0) to blue (1); the diagonal and missing pairs stay grey.
                    "fill": "#eeeeee"
                    if value is None
                    else f"rgb({int(255 - 200 * value)},{int(255 - 150 * value)},255)",
                }
            )
    return {
        "systems": [
            {"label": s, "y": 20 + i * cell + cell / 2, "x": LABEL_WIDTH + i * cell + cell / 2}
            for i, s in enumerate(systems)
        ],
        "cells": cells,
        "width": LABEL_WIDTH + len(systems) * cell + 10,
        "height": 30 + len(systems) * cell,
        "label_x": LABEL_WIDTH - 6,
        "cell": cell,
    }


def _ticks(low: int, high: int) -> list[int]:
    """Integer ticks from ``low`` to ``high``, at most about ten of them."""
    step = max(1, math.ceil((high - low) / 10))
    return list(range(low, high + 1, step))


def calibration_plot(group: dict[str, Any]) -> dict[str, Any] | None:
    """Mean human score per judge score, for one judge run and criterion.

    ``group`` is one ``meta.calibration`` entry: ``bins`` of (``judge`` score, ``human``: the
    mean human score of the explanations the judge gave that score, an interval dict) and
    ``n`` explanations in all. Each bin is drawn at (judge score, mean human score) with its
    95% interval (none for a bin of one) and its count. Both axes share one integer range
    covering every judge score and interval, so the diagonal is y = x: a calibrated judge's
    bins lie on it (drawn only when the group's ``same_scale`` says the judge and the
    humans answered on one scale). None when there are no bins.
    """
    found = [b for b in group.get("bins", []) if b["human"]["estimate"] is not None]
    if not found:
        return None
    values = [float(b["judge"]) for b in found] + [
        float(b["human"][key]) for b in found for key in ("estimate", "low", "high") if b["human"][key] is not None
    ]
    low, high = math.floor(min(values)), math.ceil(max(values))
    high = max(high, low + 1)

    def x(value: float) -> float:
        return round(CALIBRATION_LEFT + CALIBRATION_SIDE * (value - low) / (high - low), 1)

    def y(value: float) -> float:
        return round(CALIBRATION_TOP + CALIBRATION_SIDE * (high - value) / (high - low), 1)

    bins = []
    for b in found:
        mean, interval = b["human"]["estimate"], b["human"]
        bins.append(
            {
                "judge": b["judge"],
                "mean": f"{mean:.2f}",
                "n": interval["n"],
                "x": x(b["judge"]),
                "y": y(mean),
                "error": None
                if interval["low"] is None or interval["high"] is None
                else {
                    "y1": y(interval["high"]),
                    "y2": y(interval["low"]),
                    "low": f"{interval['low']:.2f}",
                    "high": f"{interval['high']:.2f}",
                },
            }
        )
    bottom = CALIBRATION_TOP + CALIBRATION_SIDE
    return {
        "bins": bins,
        "curve": " ".join(f"{b['x']},{b['y']}" for b in bins),
        "n": group["n"],
        "x_ticks": [{"x": x(t), "label": t} for t in _ticks(low, high)],
        "y_ticks": [{"y": y(t), "label": t} for t in _ticks(low, high)],
        "diagonal": {"x1": x(low), "y1": y(low), "x2": x(high), "y2": y(high)}
        if group.get("same_scale", True)
        else None,
        "left": CALIBRATION_LEFT,
        "right": CALIBRATION_LEFT + CALIBRATION_SIDE,
        "top": CALIBRATION_TOP,
        "bottom": bottom,
        "middle": CALIBRATION_LEFT + CALIBRATION_SIDE / 2,
        "width": CALIBRATION_LEFT + CALIBRATION_SIDE + 70,
        "height": bottom + CALIBRATION_BOTTOM,
    }


def report_charts(report: dict[str, Any]) -> dict[str, Any]:
    """The page's charts: human means per criterion, judge strengths, judge win matrix, and
    one judge calibration plot per (Likert judge run, criterion) with human ratings."""
    charts: dict[str, Any] = {"human": [], "judge_strengths": [], "judge_wins": [], "calibration": []}
    for section in report["human"]:
        if section["mode"] == "likert":
            criteria = sorted({name for row in section["runs"] for name in row["criteria"]})
            for name in criteria:
                rows = [(row["run"], row["criteria"][name]["mean"]) for row in section["runs"]]
                if chart := interval_bars(rows):
                    charts["human"].append({"title": f"{section['name']}: {name} (mean, 95% interval)", "chart": chart})
    for judge in report["judge"]["pairwise"]:
        # A judge with no usable verdict, or whose orders never agreed, is named in words
        # (``meta.empty``): a chart of all-zero wins and strengths would read as a finding.
        if not judge.get("usable", 1) or not decisive_pairs(judge):
            continue
        if judge["bradley_terry"]:
            rows = list(judge["bradley_terry"]["strengths"].items())
            if chart := interval_bars(rows):
                charts["judge_strengths"].append(
                    {"title": f"Judge #{judge['judge_run']}: Bradley-Terry strength", "chart": chart}
                )
        if heatmap := win_heatmap(judge["pairs"]):
            charts["judge_wins"].append(
                {"title": f"Judge #{judge['judge_run']}: share of wins (row vs column)", "chart": heatmap}
            )
    for group in report["meta"]["calibration"]:
        if chart := calibration_plot(group):
            title = (
                f"Judge #{group['judge_run']} {group['judge']}: {group['criterion']}, mean human score per judge score"
            )
            charts["calibration"].append({"title": title, "chart": chart})
    return charts
