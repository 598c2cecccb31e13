"""`manage.py reproduce_llmxrec`: the study's pipeline on small Steam and MIND atomic files and a
rated dataset with user profiles, with lists imported for one, ending in the cross-study tables."""

import json
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from explanations.models import AttributeProbe, GenerationRun, Generator, JudgeRun
from recommendations.models import Dataset, DatasetUser, Item, RecommenderRun
from tests.explanations.factories import tiny_generator
from tests.recommendations.datafiles import mind_files, steam_files
from tests.recommendations.factories import rated_dataset

pytestmark = pytest.mark.django_db


@pytest.fixture
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Generator]:
    # Imported here: both import torch.
    from explanations.llm import unload_all
    from tests.explanations.tiny import build_tiny_llama

    yield tiny_generator(build_tiny_llama(tmp_path_factory.mktemp("tiny-llama")), name="tiny")
    unload_all()


def _rated_with_profiles() -> Dataset:
    dataset = rated_dataset(name="rated", n_users=10, n_items=20, per_user=8)
    for index, user in enumerate(DatasetUser.objects.filter(dataset=dataset).order_by("pk")):
        user.profile |= {"gender": "FM"[index % 2], "occupation": ("artist", "engineer")[index % 2]}
        user.save(update_fields=["profile"])
    return dataset


def _lists(folder: Path, dataset: Dataset) -> tuple[Path, Path]:
    """Top-3 lists for every user of ``dataset``: LightGCN's as RecBole's top-K atomic file
    (items and scores, best first), SASRec's as CSV ranks."""
    items = list(Item.objects.filter(dataset=dataset).order_by("pk").values_list("external_id", flat=True))
    users = list(DatasetUser.objects.filter(dataset=dataset).values_list("external_id", flat=True))
    atomic = ["user_id:token\titem_id_list:token_seq\tscore_list:float_seq"]
    atomic += [f"{u}\t{' '.join(items[n : n + 3])}\t0.9 0.5 0.1" for n, u in enumerate(users)]
    ranks = ["user,item,rank"] + [f"{u},{items[-1 - n - r]},{r + 1}" for n, u in enumerate(users) for r in range(3)]
    lightgcn, sasrec = folder / "lightgcn_top10.atomic", folder / "sasrec_top10.csv"
    lightgcn.write_text("\n".join(atomic) + "\n")
    sasrec.write_text("\n".join(ranks) + "\n")
    return lightgcn, sasrec


def _reproduce(*args: str) -> tuple[str, dict]:
    out = StringIO()
    call_command("reproduce_llmxrec", *args, stdout=out)
    text = out.getvalue()
    return text, json.loads(text.strip().splitlines()[-1])


def test_the_study_runs_on_every_dataset_given_and_prints_its_tables(tmp_path: Path, tiny: Generator) -> None:
    lightgcn, sasrec = _lists(tmp_path, _rated_with_profiles())
    args = [
        "--datasets", "rated", f"steam={steam_files(tmp_path / 'steam')}", f"mind={mind_files(tmp_path / 'mind')}",
        "--lists", f"rated:LightGCN={lightgcn}", f"rated:SASRec={sasrec}",
        "--generators", "tiny", "--users", "3",
    ]  # fmt: skip

    text, summary = _reproduce(*args)

    studies = [(run["dataset"], run["recommender"], run["kind"]) for run in summary["runs"]]
    assert studies == [
        ("rated", "BPR", "trained"),
        ("rated", "LightGCN", "external"),
        ("rated", "SASRec", "external"),
        ("steam", "BPR", "trained"),
        ("mind", "BPR", "trained"),
    ]
    assert all(run["ndcg@10"] is not None for run in summary["runs"])  # the lists are scored on the same split
    tables = {table["name"]: table for table in summary["tables"]}
    judged = tables["cross_judge_win_rate_single_order"]
    assert [column.split(" (#")[0] for column in judged["header"]] == [
        "generator", "rated / BPR", "rated / LightGCN", "rated / SASRec", "steam / BPR", "mind / BPR",
    ]  # fmt: skip
    # One generator in two prompts: a row per prompt family (the study's prompts are one family).
    assert [row[0] for row in judged["rows"]] == ["tiny · llmxrec", "tiny · xrec-default"]
    assert all("[" in cell for row in judged["rows"] for cell in row[1:])  # every study was judged
    assert {"cross_judge_win_rate", "cross_probe_popularity_fixed"} <= set(tables)
    assert "| generator | rated / BPR (#" in text and text.index("| generator |") < text.rindex('{"studies"')

    probed = {
        (probe.generation_run.recommender_run.dataset.name, probe.target, probe.answer_mode)
        for probe in AttributeProbe.objects.select_related("generation_run__recommender_run__dataset")
    }
    assert probed == {
        ("rated", "profile", "text"), ("rated", "popularity_fixed", "likelihood"),
        ("steam", "popularity_fixed", "likelihood"), ("steam", "number:price", "text"),
        ("mind", "popularity_fixed", "likelihood"),
    }  # fmt: skip
    runs = GenerationRun.objects.select_related("template")
    assert runs.count() == 10 and not runs.filter(include_profile=True).exists()
    assert {run.template.name for run in runs} == {"xrec-default", "llmxrec-movielens", "llmxrec-steam", "llmxrec-mind"}
    assert JudgeRun.objects.count() == 5
    imported = dict(RecommenderRun.objects.filter(kind="external").values_list("algorithm", "source__layout"))
    assert imported == {"LightGCN": "recbole", "SASRec": "csv"}

    counts = [model.objects.count() for model in (Dataset, RecommenderRun, GenerationRun, JudgeRun, AttributeProbe)]
    _, again = _reproduce(*args)
    assert again["studies"] == summary["studies"] and again["tables"] == summary["tables"]
    assert [
        model.objects.count() for model in (Dataset, RecommenderRun, GenerationRun, JudgeRun, AttributeProbe)
    ] == counts


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--datasets", "nope"], "no dataset has that name"),
        (["--datasets", "steam"], "give the folder of its RecBole atomic files"),
        (["--datasets", "steam=/nonexistent/steam"], "importing steam failed, nothing changed"),
        (["--datasets", "rated", "--lists", "rated:LightGCN"], "expected DATASET:MODEL=FILE"),
        (
            ["--datasets", "rated", "--lists", "mind:LightGCN=manage.py"],
            "--lists names datasets not in --datasets: mind",
        ),
        (["--datasets", "rated", "--lists", "rated:LightGCN=/nonexistent.csv"], "--lists: no file"),
        (["--datasets", "steam=/nonexistent", "--generators", "nobody"], "no generator named nobody"),
        (["--datasets", "rated", "--judge", "nobody"], "no generator named nobody"),
        (["--datasets", "rated", "--users", "0"], "--users must be at least 1"),
    ],
)
def test_bad_arguments_are_refused_with_the_reason_and_make_nothing(args: list[str], message: str) -> None:
    rated_dataset(name="rated", n_users=4, n_items=10, per_user=6)

    with pytest.raises(CommandError, match=message):
        call_command("reproduce_llmxrec", *args, stdout=StringIO())

    assert not RecommenderRun.objects.exists() and not GenerationRun.objects.exists()
    assert Dataset.objects.count() == 1
