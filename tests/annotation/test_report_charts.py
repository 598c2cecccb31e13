"""The study page's calibration plot, from hand-made report dicts: bins, geometry, escaping."""

import re
from typing import Any

from django.template.loader import render_to_string

from annotation.report_charts import (
    CALIBRATION_LEFT,
    CALIBRATION_SIDE,
    CALIBRATION_TOP,
    calibration_plot,
    report_charts,
)

SCRIPT = "<script>alert(1)</script>"


def _report(calibration: list[dict[str, Any]], judges: dict[int, str] | None = None) -> dict[str, Any]:
    """The parts of a ``study_report`` that ``report_charts`` reads, with no other sections."""
    likert = [{"judge_run": run, "judge": name, "runs": []} for run, name in (judges or {}).items()]
    return {
        "human": [],
        "judge": {"pairwise": [], "likert": likert},
        "meta": {"correlations": [], "item_kappa": [], "calibration": calibration},
        "seed": 0,
    }


def _points(pairs: list[tuple[int, float]], judge_run: int = 7, criterion: str = "reasonability") -> list[dict]:
    return [{"judge_run": judge_run, "criterion": criterion, "judge": j, "human": h} for j, h in pairs]


def _svg(group: dict[str, Any]) -> str:
    return render_to_string("annotation/study.html#calibration-chart", {"group": group})


def test_each_judge_score_is_one_bin_at_the_mean_human_score_with_its_count() -> None:
    points = _points([(2, 1.0), (2, 3.0), (4, 5.0), (5, 4.0), (5, 4.5), (5, 5.0)])

    chart = calibration_plot(points)

    assert chart is not None
    assert [(b["judge"], b["mean"], b["n"]) for b in chart["bins"]] == [(2, "2.00", 2), (4, "5.00", 1), (5, "4.50", 3)]
    assert chart["n"] == 6
    # One rating has no interval; two or more have one around the mean.
    assert chart["bins"][1]["error"] is None
    for b in (chart["bins"][0], chart["bins"][2]):
        assert float(b["error"]["low"]) <= float(b["mean"]) <= float(b["error"]["high"])
        assert b["error"]["y1"] <= b["y"] <= b["error"]["y2"]  # SVG y grows downwards
    # Both axes span the integers 1..5 that cover every judge score and human mean.
    assert [t["label"] for t in chart["x_ticks"]] == [t["label"] for t in chart["y_ticks"]] == [1, 2, 3, 4, 5]


def test_the_svg_draws_every_bin_the_diagonal_axes_and_the_number_of_points() -> None:
    chart = calibration_plot(_points([(2, 1.0), (2, 3.0), (4, 5.0), (5, 4.0), (5, 4.5), (5, 5.0)]))

    svg = _svg({"title": "Judge #7 j: reasonability", "chart": chart})

    bins = re.findall(r'<circle [^>]*data-judge="(\d+)" data-mean="([\d.]+)" data-n="(\d+)"', svg)
    assert bins == [("2", "2.00", "2"), ("4", "5.00", "1"), ("5", "4.50", "3")]
    assert svg.count('class="error-bar"') == 2
    assert svg.count('class="diagonal"') == 1 and 'class="calibration-curve"' in svg
    assert ">judge score</text>" in svg and ">mean human score</text>" in svg
    assert ">6 explanations</text>" in svg and ">n=3</text>" in svg
    assert svg.count('text-anchor="middle">5</text>') == 1  # the last x tick


def test_a_calibrated_judge_lies_on_the_diagonal() -> None:
    chart = calibration_plot(_points([(1, 1.0), (3, 3.0), (3, 3.0), (7, 7.0)]))

    assert chart is not None
    diagonal = chart["diagonal"]
    assert (diagonal["x1"], diagonal["y1"]) == (CALIBRATION_LEFT, CALIBRATION_TOP + CALIBRATION_SIDE)
    assert (diagonal["x2"], diagonal["y2"]) == (CALIBRATION_LEFT + CALIBRATION_SIDE, CALIBRATION_TOP)
    for b in chart["bins"]:
        # On y = x a point is as far right of the left axis as it is above the bottom axis.
        assert b["x"] - CALIBRATION_LEFT == CALIBRATION_TOP + CALIBRATION_SIDE - b["y"]


def test_one_chart_per_judge_run_and_criterion_titled_with_the_judge() -> None:
    points = (
        _points([(3, 4.0)], judge_run=9, criterion="faithfulness")
        + _points([(3, 4.0), (4, 4.0)], judge_run=2, criterion="reasonability")
        + _points([(5, 2.0)], judge_run=2, criterion="attractiveness")
    )

    charts = report_charts(_report(points, judges={2: "small-judge", 9: "big-judge"}))["calibration"]

    assert [(c["title"].split(",")[0], c["chart"]["n"]) for c in charts] == [
        ("Judge #2 small-judge: attractiveness", 1),
        ("Judge #2 small-judge: reasonability", 2),
        ("Judge #9 big-judge: faithfulness", 1),
    ]


def test_judge_and_criterion_names_are_escaped_in_the_svg() -> None:
    report = _report(_points([(3, 4.0), (4, 4.0)], judge_run=1, criterion=SCRIPT), judges={1: SCRIPT})
    (group,) = report_charts(report)["calibration"]

    svg = _svg(group)

    assert "<script" not in svg
    assert svg.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 4  # judge and criterion, in h3 and aria-label


def test_a_report_without_calibration_points_has_no_calibration_chart() -> None:
    assert calibration_plot([]) is None
    assert report_charts(_report([]))["calibration"] == []
