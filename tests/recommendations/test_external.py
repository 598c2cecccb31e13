"""Imported recommendation lists: the three layouts, every refusal with its line, and the run."""

import json
import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from recommendations.external import read_lists
from recommendations.importers import ImportFailed
from recommendations.models import DatasetUser, Recommendation, RecommenderRun
from recommendations.services.external import external_run_import
from tests.recommendations.factories import rated_dataset


def test_csv_by_rank_jsonl_by_score_and_recbole_lists_read_alike() -> None:
    by_rank = read_lists(b"user,item,rank\nu1,b,2\nu1,a,1\nu2,c,1\n", name="top.csv")
    by_score = read_lists(
        b'{"user": "u1", "item": "b", "score": 0.2}\n{"user": "u1", "item": "a", "score": 0.9}\n'
        b'{"user": "u2", "item": "c", "score": 1}\n',
        name="top.jsonl",
    )
    recbole = read_lists(b"user_id:token\titem_id_list:token_seq\nu1\ta b\nu2\tc\n", name="top.topk")

    for lists, layout in ((by_rank, "csv"), (by_score, "jsonl"), (recbole, "recbole")):
        assert lists.layout == layout and lists.n_rows == 3
        assert [(r.user, r.items) for r in lists.lists] == [("u1", ["a", "b"]), ("u2", ["c"])]
    assert by_score.scored and by_score.lists[0].scores == [0.9, 0.2]
    assert not by_rank.scored and by_rank.lists[0].scores is None


def test_score_ties_keep_file_order() -> None:
    lists = read_lists(b"user,item,score\nu,x,1\nu,y,2\nu,z,1\n", name="t.csv")

    assert lists.lists[0].items == ["y", "x", "z"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"user,item,rank\nu,a,1\nu,b,1\n", "top.csv line 3: user 'u' has rank 1 twice (line 2)"),
        (b"user,item,rank\nu,a,1\nu,a,2\n", "top.csv line 3: user 'u' already has item 'a' (line 2)"),
        (b"user,item,rank\nu,a,1\nu,b,3\n", "top.csv line 2: user 'u''s ranks must run 1..2; 2 is missing"),
        (b"user,item,rank\nu,a,0\n", "top.csv line 2: rank '0' is not a whole number of at least 1"),
        (b"user,item,score\nu,a,nan\n", "top.csv line 2: score 'nan' is not a finite number"),
        (b"user,item\nu,a\n", "top.csv line 1: the header needs user, item and rank or score (found: user, item)"),
        (b"", "top.csv: the file is empty"),
        (
            b"user_id:token\titem_id_list:token_seq\nu\ta\nu\tb\n",
            "top.csv line 3: user 'u' already has a list (line 2)",
        ),
    ],
)
def test_bad_files_are_refused_with_their_line(data: bytes, message: str) -> None:
    with pytest.raises(ImportFailed) as raised:
        read_lists(data, name="top.csv")
    assert str(raised.value) == message


@pytest.mark.django_db
def test_imported_lists_become_a_run_scored_against_the_named_split(tmp_path: Path) -> None:
    rated_dataset(n_users=6, n_items=20, per_user=6)
    lines = ["user,item,rank"] + [f"{user},{(user + rank) % 20},{rank}" for user in range(6) for rank in range(1, 4)]
    path = tmp_path / "lightgcn-top3.csv"
    path.write_text("\n".join(lines) + "\n")
    out = StringIO()

    call_command(
        "import_recommendations", str(path), "--dataset", "rated", "--name", "external-topk",
        "--model", "LightGCN", "--split", "leave_last_out", stdout=out,
    )  # fmt: skip

    summary = json.loads(out.getvalue())
    run = RecommenderRun.objects.get(pk=summary["run"])
    assert (run.kind, run.name, run.algorithm, run.k, run.status) == (
        "external",
        "external-topk",
        "LightGCN",
        3,
        "succeeded",
    )
    assert run.source["rows"] == 18 and run.source["layout"] == "csv" and len(run.source["sha256"]) == 64
    assert run.split is not None and run.metrics["topk"]["n_users"] >= 1 and summary["users"] == 6
    first = Recommendation.objects.filter(run=run, user__external_id="0").order_by("rank")
    assert [(r.item.external_id, r.rank, r.score) for r in first] == [("1", 1, 1.0), ("2", 2, 0.5), ("3", 3, 1 / 3)]


@pytest.mark.django_db
def test_an_unknown_user_or_item_is_refused_with_its_line_and_nothing_is_written() -> None:
    dataset = rated_dataset(n_users=3, n_items=5, per_user=3)

    with pytest.raises(ImportFailed, match=r"top.csv line 3: no item 'nine' in rated"):
        external_run_import(dataset=dataset, name="x", data=b"user,item,rank\n0,1,1\n0,nine,2\n", file_name="top.csv")
    with pytest.raises(ImportFailed, match=r"top.csv line 2: no user 'ghost' in rated"):
        external_run_import(dataset=dataset, name="x", data=b"user,item,rank\nghost,1,1\n", file_name="top.csv")
    with pytest.raises(ImportFailed, match="a name of 1 to 200 characters"):
        external_run_import(dataset=dataset, name="x" * 201, data=b"user,item,rank\n0,1,1\n", file_name="top.csv")
    assert not RecommenderRun.objects.exists() and not Recommendation.objects.exists()


@pytest.mark.django_db
def test_without_a_split_there_are_no_top_k_metrics_and_the_command_refuses_bad_input(tmp_path: Path) -> None:
    dataset = rated_dataset(n_users=3, n_items=5, per_user=3)
    run = external_run_import(dataset=dataset, name="plain", data=b"user,item,score\n0,1,0.5\n", file_name="s.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("user,item,rank\n0,1,1\n0,2,1\n")

    assert run.split is None and run.metrics["topk"] is None and run.metrics["catalogue"]["coverage"] == 0.2
    assert DatasetUser.objects.filter(dataset=dataset).count() == 3
    with pytest.raises(
        CommandError, match=re.escape("import failed, nothing changed: bad.csv line 3: user '0' has rank 1 twice")
    ):
        call_command("import_recommendations", str(bad), "--dataset", "rated", "--name", "bad", stdout=StringIO())
    assert RecommenderRun.objects.count() == 1
