"""Hyperparameters are checked against each Surprise algorithm before anything runs."""

import pytest

from recommendations import algorithms
from recommendations.algorithms import ALGORITHMS, HyperparameterError


def test_every_surprise_algorithm_is_offered() -> None:
    assert set(ALGORITHMS) == {
        "SVD", "SVDpp", "NMF", "SlopeOne", "CoClustering", "KNNBasic", "KNNWithMeans",
        "KNNWithZScore", "KNNBaseline", "BaselineOnly", "NormalPredictor",
    }  # fmt: skip


def test_defaults_come_from_the_signature_without_reserved_names() -> None:
    assert algorithms.defaults("SVD")["n_factors"] == 100
    assert "random_state" not in algorithms.defaults("SVD") and "verbose" not in algorithms.defaults("KNNBasic")
    assert algorithms.defaults("SlopeOne") == {}


@pytest.mark.parametrize(
    ("algorithm", "params", "message"),
    [
        ("SVD", {"n_factors": "ten"}, "n_factors must be a number, got 'ten'"),
        ("SVD", {"n_factors": 0}, "n_factors must be at least 1"),
        ("SVD", {"n_epochs": 2.5}, "n_epochs must be a whole number"),
        ("SVD", {"n_factors": True}, "n_factors must be a number, got True"),
        ("SVD", {"lr_all": -0.1}, "lr_all must be at least 0"),
        ("SVD", {"biased": "yes"}, "biased must be true or false"),
        ("SVD", {"learning_rate": 0.1}, "SVD has no parameter learning_rate; it accepts: n_factors"),
        ("SVD", {"random_state": 3}, "SVD has no parameter random_state"),
        ("SlopeOne", {"k": 3}, "SlopeOne has no parameter k; it accepts: none"),
        ("KNNBasic", {"sim_options": {"name": "jaccard"}}, "sim_options.name must be one of cosine, msd"),
        ("KNNBasic", {"sim_options": {"colour": 1}}, "sim_options has unknown keys colour"),
        ("KNNBasic", {"sim_options": "cosine"}, "sim_options must be an object"),
        ("KNNBasic", {"k": 5, "min_k": 10}, r"min_k \(10\) cannot exceed k \(5\)"),
        ("KNNBaseline", {"bsl_options": {"method": "adam"}}, "bsl_options.method must be one of als, sgd"),
        ("NMF", {"init_low": 2, "init_high": 1}, r"init_low \(2\.0\) must be below init_high"),
        ("Word2Vec", {}, "unknown algorithm 'Word2Vec'"),
    ],
)
def test_bad_hyperparameters_are_refused_with_the_reason(algorithm: str, params: dict, message: str) -> None:
    with pytest.raises(HyperparameterError, match=message):
        algorithms.validate(algorithm, params)


def test_values_are_normalised() -> None:
    cleaned = algorithms.validate("SVD", {"n_factors": 50.0, "init_mean": -0.5, "lr_bu": None, "reg_all": 1})

    assert cleaned == {"n_factors": 50, "init_mean": -0.5, "lr_bu": None, "reg_all": 1.0}
    assert isinstance(cleaned["n_factors"], int) and isinstance(cleaned["reg_all"], float)


def test_build_seeds_and_silences_the_algorithm() -> None:
    svd = algorithms.build("SVD", {"n_factors": 7}, seed=42)
    knn = algorithms.build("KNNBasic", {"k": 5, "sim_options": {"name": "pearson", "user_based": False}}, seed=1)

    assert (svd.n_factors, svd.random_state, svd.verbose) == (7, 42, False)
    assert (knn.k, knn.sim_options, knn.verbose) == (5, {"name": "pearson", "user_based": False}, False)
