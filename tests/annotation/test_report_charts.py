"""The study page's calibration plot, from hand-made report dicts: geometry, escaping."""

import re
from typing import Any

from django.template.loader import render_to_string

from annotation.study.charts import (
    CALIBRATION_LEFT,
    CALIBRATION_SIDE,
    CALIBRATION_TOP,
    calibration_plot,
    report_charts,
)

SCRIPT = "<script>alert(1)</script>"


def _report(calibration: list[dict[str, Any]]) -> dict[str, Any]:
    """The parts of a ``study_report`` that ``report_charts`` reads, with no other sections."""
    return {
        "human": [],
        "judge": {"pairwise": [], "likert": []},
        "meta": {"correlations": [], "item_kappa": [], "calibration": calibration},
        "seed": 0,
    }


def _group(
    bins: list[tuple[int, float, float | None, float | None, int]],
    judge_run: int = 7,
    criterion: str = "reasonability",
    judge: str = "j",
) -> dict[str, Any]:
    """One ``meta.calibration`` entry from (judge score, mean, low, high, n) bins."""
    return {
        "judge_run": judge_run,
        "judge": judge,
        "criterion": criterion,
        "n": sum(b[4] for b in bins),
        "bins": [
            {"judge": score, "human": {"estimate": mean, "low": low, "high": high, "n": n, "confidence": 0.95}}
            for score, mean, low, high, n in bins
        ],
    }


BINS = [(2, 2.0, 1.0, 3.0, 2), (4, 5.0, None, None, 1), (5, 4.5, 4.0, 5.0, 3)]


def _svg(group: dict[str, Any]) -> str:
    return render_to_string("annotation/study.html#calibration-chart", {"group": group})


def test_each_bin_is_drawn_at_its_judge_score_and_mean_with_its_interval_and_count() -> None:
    chart = calibration_plot(_group(BINS))

    assert chart is not None
    assert [(b["judge"], b["mean"], b["n"]) for b in chart["bins"]] == [(2, "2.00", 2), (4, "5.00", 1), (5, "4.50", 3)]
    assert chart["n"] == 6
    # A bin without bounds has no error bar; the others' bars span their intervals.
    assert chart["bins"][1]["error"] is None
    for b in (chart["bins"][0], chart["bins"][2]):
        assert float(b["error"]["low"]) <= float(b["mean"]) <= float(b["error"]["high"])
        assert b["error"]["y1"] <= b["y"] <= b["error"]["y2"]  # SVG y grows downwards
    # Both axes span the integers 1..5 that cover every judge score and interval.
    assert [t["label"] for t in chart["x_ticks"]] == [t["label"] for t in chart["y_ticks"]] == [1, 2, 3, 4, 5]


def test_the_svg_draws_every_bin_the_diagonal_axes_and_the_number_of_points() -> None:
    chart = calibration_plot(_group(BINS))

    svg = _svg({"title": "Judge #7 j: reasonability", "chart": chart})

    bins = re.findall(r'<circle [^>]*data-judge="(\d+)" data-mean="([\d.]+)" data-n="(\d+)"', svg)
    assert bins == [("2", "2.00", "2"), ("4", "5.00", "1"), ("5", "4.50", "3")]
    assert svg.count('class="error-bar"') == 2
    assert svg.count('class="diagonal"') == 1 and 'class="calibration-curve"' in svg
    assert ">judge score</text>" in svg and ">mean human score</text>" in svg
    assert ">6 explanations</text>" in svg and ">n=3</text>" in svg
    assert svg.count('text-anchor="middle">5</text>') == 1  # the last x tick


def test_a_calibrated_judge_lies_on_the_diagonal() -> None:
    chart = calibration_plot(_group([(1, 1.0, None, None, 1), (3, 3.0, 3.0, 3.0, 2), (7, 7.0, None, None, 1)]))

    assert chart is not None
    diagonal = chart["diagonal"]
    assert (diagonal["x1"], diagonal["y1"]) == (CALIBRATION_LEFT, CALIBRATION_TOP + CALIBRATION_SIDE)
    assert (diagonal["x2"], diagonal["y2"]) == (CALIBRATION_LEFT + CALIBRATION_SIDE, CALIBRATION_TOP)
    for b in chart["bins"]:
        # On y = x a point is as far right of the left axis as it is above the bottom axis.
        assert b["x"] - CALIBRATION_LEFT == CALIBRATION_TOP + CALIBRATION_SIDE - b["y"]


def test_one_chart_per_judge_run_and_criterion_titled_with_the_judge() -> None:
    groups = [
        _group([(3, 4.0, None, None, 1)], judge_run=2, criterion="attractiveness", judge="small-judge"),
        _group([(3, 4.0, None, None, 1), (4, 4.0, None, None, 1)], judge_run=2, judge="small-judge"),
        _group([(3, 4.0, None, None, 1)], judge_run=9, criterion="faithfulness", judge="big-judge"),
    ]

    charts = report_charts(_report(groups))["calibration"]

    assert [(c["title"].split(",")[0], c["chart"]["n"]) for c in charts] == [
        ("Judge #2 small-judge: attractiveness", 1),
        ("Judge #2 small-judge: reasonability", 2),
        ("Judge #9 big-judge: faithfulness", 1),
    ]


def test_judge_and_criterion_names_are_escaped_in_the_svg() -> None:
    report = _report([_group([(3, 4.0, None, None, 1), (4, 4.0, None, None, 1)], criterion=SCRIPT, judge=SCRIPT)])
    (group,) = report_charts(report)["calibration"]

    svg = _svg(group)

    assert "<script" not in svg
    assert svg.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 4  # judge and criterion, in h3 and aria-label


def test_a_report_without_calibration_points_has_no_calibration_chart() -> None:
    assert calibration_plot(_group([])) is None
    assert report_charts(_report([]))["calibration"] == []


def test_no_diagonal_when_the_judge_and_the_humans_used_different_scales() -> None:
    group = _group(BINS) | {"same_scale": False}

    chart = calibration_plot(group)

    assert chart is not None and chart["diagonal"] is None
    svg = _svg({"title": "Judge #7 j: reasonability", "chart": chart})
    assert 'class="diagonal"' not in svg and "different scales" in svg
