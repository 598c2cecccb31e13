"""Steam and MIND, as RecBole atomic files, import and train end to end with implicit models."""

import random
from pathlib import Path

import pytest

from recommendations.models import Item, Recommendation, RecommenderRun
from recommendations.services import dataset_import_files
from recommendations.services.splits import split_parts
from recommendations.services.training import recommender_run_create, recommender_run_execute
from tests.recommendations.datafiles import write

pytestmark = pytest.mark.django_db


def _steam(folder: Path, n_users: int = 12, n_games: int = 15) -> Path:
    """RecBole's Steam layout: play logs keyed by product_id, games keyed by id."""
    rng = random.Random(1)
    inter = ["user_id:token\tplay_hours:float\tproduct_id:token\ttimestamp:float"]
    for user in range(n_users):
        for position, game in enumerate(rng.sample(range(n_games), 6)):
            inter.append(f"s{user}\t{rng.uniform(0, 90):.1f}\t{game}\t{1_500_000_000 + 1000 * user + position}")
    item = ["id:token\tapp_name:token_seq\tgenres:token_seq\tprice:float"]
    item += [f"{game}\tGame {game}\tAction Indie\t{game % 4 * 4.99:.2f}" for game in range(n_games)]
    return write(folder, {"steam.inter": "\n".join(inter) + "\n", "steam.item": "\n".join(item) + "\n"})


def _mind(folder: Path, n_users: int = 12, n_news: int = 20) -> Path:
    """MIND impressions: label 1 is a click, 0 a headline shown and not clicked."""
    rng = random.Random(2)
    inter = ["user_id:token\titem_id:token\tlabel:float\ttimestamp:float"]
    for user in range(n_users):
        for position, news in enumerate(rng.sample(range(n_news), 8)):
            label = 1 if position % 2 == 0 else 0
            inter.append(f"U{user}\tN{news}\t{label}\t{1_570_000_000 + 600 * user + position}")
    item = ["item_id:token\tcategory:token\ttitle:token_seq"]
    item += [f"N{news}\t{'sports' if news % 2 else 'news'}\tHeadline {news}" for news in range(n_news)]
    return write(folder, {"mind.inter": "\n".join(inter) + "\n", "mind.item": "\n".join(item) + "\n"})


def _train(dataset, **kwargs) -> RecommenderRun:
    run = recommender_run_create(created_by=None, dataset=dataset, algorithm="BPR", k=5, **kwargs)
    recommender_run_execute(run_id=run.pk)
    run.refresh_from_db()
    return run


def test_steam_play_logs_train_bpr_for_every_player(tmp_path: Path) -> None:
    folder = _steam(tmp_path / "steam")
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
    folder = _mind(tmp_path / "mind")
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
