"""The issue's commands: an implicit CSV dataset imported and trained with BPR from the shell."""

import json
import random
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from recommendations.models import Dataset, Recommendation, RecommenderRun

pytestmark = pytest.mark.django_db


def test_import_without_a_rating_column_then_train_bpr_gives_top_10_for_every_user(tmp_path: Path) -> None:
    rng = random.Random(0)
    lines = ["user,item,timestamp"]
    for user in range(25):
        for position, item in enumerate(rng.sample(range(40), 12)):
            lines.append(f"u{user},i{item},{1_600_000_000 + 100 * user + position}")
    path = tmp_path / "events.csv"
    path.write_text("\n".join(lines) + "\n")

    call_command(
        "import_dataset",
        "csv",
        str(path),
        "--name",
        "imp",
        "--map",
        "user=user,item=item,timestamp=timestamp",
        stdout=StringIO(),
    )
    out = StringIO()
    call_command("train_recommender", "--dataset", "imp", "--algorithm", "BPR", "--seed", "0", stdout=out)

    dataset = Dataset.objects.get(name="imp")
    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    run = RecommenderRun.objects.get(pk=summary["run"])
    assert dataset.is_implicit and run.status == RecommenderRun.Status.SUCCEEDED
    assert Recommendation.objects.filter(run=run).count() == 25 * 10
    assert summary["metrics"]["rmse"] is None and 0 <= summary["metrics"]["ndcg@10"] <= 1
