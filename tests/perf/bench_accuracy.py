"""Benchmark: SVD rating accuracy on MovieLens-100K, against Surprise's published figure.

Run as ``python -m tests.perf.bench_accuracy``. No Django, no database: it reads the
MovieLens-100K atomic file in the recbole wheel (``dataset_example/ml-100k/ml-100k.inter``) and
runs Surprise's ``SVD`` with its defaults (``random_state=0``) under 5-fold cross-validation
(``KFold(random_state=0, shuffle=True)``), as Surprise's own benchmark table does.

Each fold is scored twice: by ``surprise.model_selection.cross_validate`` and by
``recommendations.metrics.rating_errors`` on the predictions of a second, identical fit over
the same folds (a seeded ``KFold`` and seeded ``SVD`` reproduce them exactly). The run stops
with an error if the two disagree beyond float noise, so the figures also check our metric.

Goal: mean 5-fold RMSE within 0.01 of Surprise's published 0.934. Figures, on the last line as
one JSON object: ``svd_rmse_5fold`` and ``svd_mae_5fold`` (means over folds, by our metric),
``published_rmse``, ``abs_diff`` (|ours - published|) and ``seconds`` (the whole run).
"""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import numpy as np
from surprise import SVD, Dataset, Reader
from surprise.model_selection import KFold, cross_validate

from recommendations.metrics import rating_errors
from tests.perf.machine import describe_machine

# Surprise's README / docs benchmark table: SVD on ML-100K, 5-fold, RMSE 0.934, MAE 0.737.
PUBLISHED_RMSE = 0.934
PUBLISHED_MAE = 0.737
GOAL_ABS_DIFF = 0.01
SEED = 0
N_FOLDS = 5
# Same predictions, two code paths: anything above float rounding is a definition mismatch.
AGREEMENT_TOLERANCE = 1e-9


def log(message: str) -> None:
    print(f"[bench_accuracy] {message}", flush=True)


def ml100k_path() -> Path:
    """The ``ml-100k.inter`` file inside the installed recbole package (never downloaded)."""
    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("recbole is not installed: pip install --no-deps -r requirements-assets.txt")
    path = Path(next(iter(spec.submodule_search_locations))) / "dataset_example" / "ml-100k" / "ml-100k.inter"
    if not path.is_file():
        raise SystemExit(f"MovieLens-100K atomic file missing: {path}")
    return path


def main() -> None:
    started = time.perf_counter()
    machine = describe_machine()
    path = ml100k_path()
    log(f"machine: {machine}")
    log(f"data: {path}")
    reader = Reader(line_format="user item rating timestamp", sep="\t", skip_lines=1, rating_scale=(1, 5))
    data = Dataset.load_from_file(str(path), reader=reader)
    log(f"{len(data.raw_ratings)} ratings loaded")

    log(f"cross_validate: SVD(random_state={SEED}), {N_FOLDS} folds")
    surprise_scores = cross_validate(
        SVD(random_state=SEED),
        data,
        measures=["RMSE", "MAE"],
        cv=KFold(n_splits=N_FOLDS, random_state=SEED, shuffle=True),
        verbose=False,
    )
    log("fold-by-fold refit, scored with recommendations.metrics.rating_errors")
    ours: list[dict[str, float]] = []
    folds = KFold(n_splits=N_FOLDS, random_state=SEED, shuffle=True)
    for fold, (trainset, testset) in enumerate(folds.split(data)):
        algo = SVD(random_state=SEED)
        algo.fit(trainset)
        errors = rating_errors((p.r_ui, p.est) for p in algo.test(testset))
        theirs = (float(surprise_scores["test_rmse"][fold]), float(surprise_scores["test_mae"][fold]))
        log(
            f"fold {fold + 1}: n={errors['n']:.0f} rmse {errors['rmse']:.4f} (surprise {theirs[0]:.4f}), "
            f"mae {errors['mae']:.4f} (surprise {theirs[1]:.4f})"
        )
        if (
            abs(errors["rmse"] - theirs[0]) > AGREEMENT_TOLERANCE
            or abs(errors["mae"] - theirs[1]) > AGREEMENT_TOLERANCE
        ):
            raise SystemExit(f"fold {fold + 1}: rating_errors disagrees with surprise.accuracy")
        ours.append(errors)

    # Surprise reports the mean of per-fold figures (not one RMSE over the pooled predictions).
    rmse = float(np.mean([errors["rmse"] for errors in ours]))
    mae = float(np.mean([errors["mae"] for errors in ours]))
    abs_diff = abs(rmse - PUBLISHED_RMSE)
    seconds = time.perf_counter() - started
    log("rating_errors agrees with surprise.accuracy on every fold")
    log(f"mean RMSE {rmse:.4f} (published {PUBLISHED_RMSE}), mean MAE {mae:.4f} (published {PUBLISHED_MAE})")
    verdict = "met" if abs_diff <= GOAL_ABS_DIFF else "NOT met"
    log(f"goal RMSE within {GOAL_ABS_DIFF} of {PUBLISHED_RMSE}: {verdict} (|diff| {abs_diff:.4f}); {seconds:.1f} s")
    figures = {
        "svd_rmse_5fold": round(rmse, 4),
        "svd_mae_5fold": round(mae, 4),
        "published_rmse": PUBLISHED_RMSE,
        "abs_diff": round(abs_diff, 4),
        "seconds": round(seconds, 2),
    }
    print(json.dumps({"bench": "accuracy", "figures": figures, "machine": machine}), flush=True)


if __name__ == "__main__":
    main()
