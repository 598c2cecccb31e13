"""First-person beside third-person ratings in the study report.

A first-person campaign's participants rated explanations of their own recommendations; a
third-person campaign's annotators rated explanations written for dataset users. Both rate the
same generators (a first-person run repeats a campaign run, ``GenerationRun.parent``), so
the report sets each generator's first-person figure beside its third-person one, per criterion
(Likert: the mean rating) or per pair of runs (pairwise: the first run's win rate, ties half).

Intervals: first-person figures resample participants, the unit whose ratings are not
independent (each rates only their own recommendations, so items are nested in participants);
third-person figures resample items and annotators (``clustered_mean``). The two samples share
no one, so the difference's interval is the normal approximation from the two intervals'
standard errors.
"""

from __future__ import annotations

import math
from typing import Any

Z95 = 1.959963984540054


def _standard_error(interval: dict[str, Any]) -> float | None:
    if interval.get("low") is None or interval.get("high") is None:
        return None
    return (interval["high"] - interval["low"]) / (2 * Z95)


def difference(first: dict[str, Any], third: dict[str, Any]) -> dict[str, Any]:
    """first minus third, with a 95% interval when both sides have one."""
    if first.get("estimate") is None or third.get("estimate") is None:
        return {"estimate": None, "low": None, "high": None}
    estimate = first["estimate"] - third["estimate"]
    errors = [error for error in (_standard_error(first), _standard_error(third)) if error is not None]
    if len(errors) < 2:
        return {"estimate": estimate, "low": None, "high": None}
    half = Z95 * math.sqrt(sum(error * error for error in errors))
    return {"estimate": estimate, "low": estimate - half, "high": estimate + half}


def _figures(section: dict[str, Any]) -> dict[tuple[str, str], tuple[str, dict[str, Any]]]:
    """(run or pair, criterion) → (what is measured, its interval) of one human section."""
    if section["mode"] == "pairwise":
        return {
            (f"{pair['a']} vs {pair['b']}", pair["criterion"]): (f"win rate of {pair['a']}", pair["win_rate_by_item"])
            for pair in section["pairs"]
        }
    return {
        (run["run"], criterion): ("mean rating", summary["mean_by_item"])
        for run in section["runs"]
        for criterion, summary in run["criteria"].items()
    }


def first_vs_third(first_person: list[dict[str, Any]], third_person: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per first-person figure and third-person campaign of the same mode that has it
    (same run or pair, criterion and scale); a figure no third-person campaign has gets one row
    with that side empty."""
    rows = []
    third_figures = [(third, _figures(third)) for third in third_person]
    for first in first_person:
        matches = [(third, figures) for third, figures in third_figures if third["mode"] == first["mode"]]
        for key, (measure, mine) in _figures(first).items():
            found = False
            for third, figures in matches:
                theirs = figures.get(key)
                if theirs is None or first.get("scales", {}).get(key[1]) != third.get("scales", {}).get(key[1]):
                    continue
                found = True
                rows.append(_row(first, third, key, measure, mine, theirs[1]))
            if not found:
                rows.append(_row(first, None, key, measure, mine, None))
    return rows


def _row(
    first: dict[str, Any],
    third: dict[str, Any] | None,
    key: tuple[str, str],
    measure: str,
    mine: dict[str, Any],
    theirs: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "first_person_campaign": f"#{first['campaign']} {first['name']}",
        "third_person_campaign": f"#{third['campaign']} {third['name']}" if third else None,
        "run": key[0],
        "criterion": key[1],
        "measure": measure,
        "first_person": mine,
        "participants": first.get("participants"),
        "third_person": theirs,
        "difference": difference(mine, theirs) if theirs else None,
    }
