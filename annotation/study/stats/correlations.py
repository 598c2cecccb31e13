"""Rank correlations between paired values, for comparing systems' scores across signals."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.stats  # type: ignore[import-untyped]

from annotation.study.stats.bootstrap import finite_array


@dataclass(frozen=True)
class Correlation:
    """A rank correlation with its p-value; both None where it is undefined."""

    statistic: float | None
    pvalue: float | None
    n: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _correlation(
    x: Sequence[float] | npt.ArrayLike, y: Sequence[float] | npt.ArrayLike, method: Callable[..., Any]
) -> Correlation:
    xs, ys = finite_array(x, "x"), finite_array(y, "y")
    if xs.size != ys.size:
        raise ValueError(f"x and y differ in length ({xs.size} and {ys.size})")
    if xs.size < 3 or np.ptp(xs) == 0 or np.ptp(ys) == 0:
        return Correlation(None, None, int(xs.size))
    result = method(xs, ys)
    return Correlation(float(result.statistic), float(result.pvalue), int(xs.size))


def kendall_tau(x: Sequence[float] | npt.ArrayLike, y: Sequence[float] | npt.ArrayLike) -> Correlation:
    """Kendall's tau-b of paired values and its two-sided p-value (``scipy.stats.kendalltau``
    defaults: exact for small samples without ties, asymptotic otherwise). None-valued for
    fewer than 3 pairs or a constant input."""
    return _correlation(x, y, scipy.stats.kendalltau)


def spearman_rho(x: Sequence[float] | npt.ArrayLike, y: Sequence[float] | npt.ArrayLike) -> Correlation:
    """Spearman's rho (ties take average ranks) and its two-sided p-value
    (``scipy.stats.spearmanr``). None-valued for fewer than 3 pairs or a constant input."""
    return _correlation(x, y, scipy.stats.spearmanr)
