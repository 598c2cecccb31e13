"""Steam and MIND, as RecBole atomic files, import and train end to end with implicit models."""

from pathlib import Path

import pytest

from recommendations.models import Item, Recommendation, RecommenderRun
from recommendations.services import dataset_import_files
from recommendations.services.splits import split_parts
from recommendations.services.training import recommender_run_create, recommender_run_execute
from tests.recommendations.datafiles import mind_files, steam_files

pytestmark = pytest.mark.django_db


def _train(dataset, **kwargs) -> RecommenderRun:
    run = recommender_run_create(created_by=None, dataset=dataset, algorithm="BPR", k=5, **kwargs)
    recommender_run_execute(run_id=run.pk)
    run.refresh_from_db()
    return run


def test_steam_play_logs_train_bpr_for_every_player(tmp_path: Path) -> None:
    folder = steam_files(tmp_path / "steam")
    result = dataset_import_files(
        format="recbole", path=folder, name="steam", options={"map": {"item": "product_id", "item_key": "id"}}
    )
    dataset = result.dataset

    run = _train(dataset)

    assert dataset.is_implicit and Item.objects.get(dataset=dataset, external_id="3").attributes["price"] == 14.97
    assert run.status == RecommenderRun.Status.SUCCEEDED, run.error
    assert Recommendation.objects.filter(run=run).count() == 12 * 5
    assert run.metrics["topk"]["n_users"] == 12  # every player's last game is a relevant test event


def test_mind_clicks_are_positives_and_shown_headlines_are_never_recommended(tmp_path: Path) -> None:
    folder = mind_files(tmp_path / "mind")
    dataset = dataset_import_files(
        format="recbole", path=folder, name="mind", options={"map": {"rating": "label"}}
    ).dataset

    run = _train(dataset, positive_threshold=1.0, relevance_threshold=1.0)

    assert run.status == RecommenderRun.Status.SUCCEEDED, run.error
    assert run.split is not None
    train, _ = split_parts(run.split)
    clicks = train.ratings >= 1.0
    assert run.metrics["feedback"]["n_positive_pairs"] == int(clicks.sum())
    for user, item in zip(train.users.tolist(), train.items.tolist(), strict=True):
        assert not Recommendation.objects.filter(run=run, user_id=user, item_id=item).exists()
