"""The algorithms xrec offers, and validation of their hyperparameters.

Two families: Surprise's, which learn explicit ratings, and the implicit-feedback models of
``implicit_models`` (BPR, ALS, item-KNN, popularity), which learn which items a user chose.
Surprise checks almost nothing when an algorithm is built (``SVD(n_factors="ten")`` fails
only inside ``fit``), so every value is checked here against the parameter's type, taken
from the algorithm's own signature (for the implicit models, from their table of defaults),
and against the ranges that make sense.
"""

from __future__ import annotations

import inspect
from typing import Any

import surprise
from surprise import AlgoBase

from recommendations import implicit_models

ALGORITHMS: dict[str, type[AlgoBase]] = {
    "SVD": surprise.SVD,
    "SVDpp": surprise.SVDpp,
    "NMF": surprise.NMF,
    "SlopeOne": surprise.SlopeOne,
    "CoClustering": surprise.CoClustering,
    "KNNBasic": surprise.KNNBasic,
    "KNNWithMeans": surprise.KNNWithMeans,
    "KNNWithZScore": surprise.KNNWithZScore,
    "KNNBaseline": surprise.KNNBaseline,
    "BaselineOnly": surprise.BaselineOnly,
    "NormalPredictor": surprise.NormalPredictor,
}
IMPLICIT_ALGORITHMS = tuple(implicit_models.DEFAULTS)
ALL_ALGORITHMS = (*ALGORITHMS, *IMPLICIT_ALGORITHMS)

# Set by xrec itself, never by the user.
RESERVED = {"random_state", "verbose"}
# Whole numbers that must be at least 1; the mean of the initial factors may be any number; every
# other number (rates, regularisation, spreads) must be at least 0.
POSITIVE = {"n_factors", "n_epochs", "k", "min_k", "n_cltr_u", "n_cltr_i", "factors", "iterations", "K"}
# Parameters whose value is one of a few words.
WORDS: dict[str, tuple[str, ...]] = {"similarity": tuple(implicit_models.SIMILARITIES)}
SIGNED = {"init_mean"}
# Nested option dictionaries: key -> allowed type, or the tuple of allowed strings.
SIM_OPTIONS: dict[str, Any] = {
    "name": ("cosine", "msd", "pearson", "pearson_baseline"),
    "user_based": bool,
    "min_support": int,
    "shrinkage": int,
}
BSL_OPTIONS: dict[str, Any] = {
    "method": ("als", "sgd"),
    "n_epochs": int,
    "reg_u": float,
    "reg_i": float,
    "reg": float,
    "learning_rate": float,
}
NESTED = {"sim_options": SIM_OPTIONS, "bsl_options": BSL_OPTIONS}


class HyperparameterError(ValueError):
    """A hyperparameter that the algorithm would reject or misuse; the message says which."""


def is_implicit(algorithm: str) -> bool:
    """Whether ``algorithm`` learns from implicit feedback (no ratings needed)."""
    return algorithm in implicit_models.DEFAULTS


def defaults(algorithm: str) -> dict[str, Any]:
    """The user-settable parameters of ``algorithm`` with their library's defaults."""
    if is_implicit(algorithm):
        return dict(implicit_models.DEFAULTS[algorithm])
    signature = inspect.signature(_algorithm_class(algorithm))
    return {
        name: parameter.default
        for name, parameter in signature.parameters.items()
        if parameter.kind is parameter.POSITIONAL_OR_KEYWORD and name not in RESERVED
    }


def _algorithm_class(algorithm: str) -> type[AlgoBase]:
    try:
        return ALGORITHMS[algorithm]
    except KeyError:
        raise HyperparameterError(
            f"unknown algorithm {algorithm!r}; choose one of {', '.join(ALL_ALGORITHMS)}"
        ) from None


def _number(name: str, value: Any, kind: type) -> int | float:
    # bool is an int in Python; True is no number of factors.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise HyperparameterError(f"{name} must be a number, got {value!r}")
    if kind is int:
        if isinstance(value, float) and not value.is_integer():
            raise HyperparameterError(f"{name} must be a whole number, got {value!r}")
        value = int(value)
    else:
        value = float(value)
    low = 1 if name in POSITIVE else 0
    if name not in SIGNED and value < low:
        raise HyperparameterError(f"{name} must be at least {low}, got {value!r}")
    return value


def _typed(name: str, value: Any, kind: Any) -> Any:
    if isinstance(kind, tuple):
        if value not in kind:
            raise HyperparameterError(f"{name} must be one of {', '.join(kind)}, got {value!r}")
        return value
    if kind is bool:
        if not isinstance(value, bool):
            raise HyperparameterError(f"{name} must be true or false, got {value!r}")
        return value
    return _number(name, value, kind)


def _nested(name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise HyperparameterError(f"{name} must be an object, got {value!r}")
    spec = NESTED[name]
    unknown = sorted(set(value) - set(spec))
    if unknown:
        raise HyperparameterError(f"{name} has unknown keys {', '.join(unknown)}; known: {', '.join(spec)}")
    return {key: _typed(f"{name}.{key}", item, spec[key]) for key, item in value.items()}


def validate(algorithm: str, hyperparameters: dict[str, Any]) -> dict[str, Any]:
    """Return ``hyperparameters`` checked and normalised for ``algorithm``.

    Raises HyperparameterError naming the first bad parameter: an unknown name, a value of
    the wrong type, a number out of range, or an inconsistent combination.
    """
    if not isinstance(hyperparameters, dict):
        raise HyperparameterError("hyperparameters must be a JSON object")
    known = defaults(algorithm)
    unknown = sorted(set(hyperparameters) - set(known))
    if unknown:
        accepted = ", ".join(known) or "none"
        raise HyperparameterError(f"{algorithm} has no parameter {', '.join(unknown)}; it accepts: {accepted}")
    cleaned: dict[str, Any] = {}
    for name, value in hyperparameters.items():
        default = known[name]
        if name in NESTED:
            cleaned[name] = _nested(name, value)
        elif name in WORDS:
            cleaned[name] = _typed(name, value, WORDS[name])
        elif default is None:  # per-parameter learning rates and regularisation: number or unset
            cleaned[name] = None if value is None else _number(name, value, float)
        elif isinstance(default, bool):
            cleaned[name] = _typed(name, value, bool)
        else:
            # Counts are whole numbers; every other number is real, even where Surprise's
            # default happens to be written as an integer (init_mean=0, init_high=1).
            cleaned[name] = _number(name, value, int if name in POSITIVE else float)
    merged = known | cleaned
    if "min_k" in merged and "k" in merged and merged["min_k"] > merged["k"]:
        raise HyperparameterError(f"min_k ({merged['min_k']}) cannot exceed k ({merged['k']})")
    if "init_low" in merged and merged["init_low"] >= merged["init_high"]:
        raise HyperparameterError(f"init_low ({merged['init_low']}) must be below init_high ({merged['init_high']})")
    return cleaned


def build(algorithm: str, hyperparameters: dict[str, Any], *, seed: int) -> AlgoBase:
    """An unfitted, quiet instance of Surprise's ``algorithm``, seeded wherever Surprise takes a
    seed (the implicit models are fitted by ``implicit_models.fit``)."""
    cls = _algorithm_class(algorithm)
    params = validate(algorithm, hyperparameters)
    accepted = inspect.signature(cls).parameters
    if "random_state" in accepted:
        params["random_state"] = seed
    if "verbose" in accepted:
        params["verbose"] = False
    return cls(**params)
