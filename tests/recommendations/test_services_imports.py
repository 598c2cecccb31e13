"""Importing writes a whole dataset in one transaction; bad input changes nothing."""

import zipfile
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from recommendations.importers import ImportFailed
from recommendations.models import Dataset, DatasetUser, ImportJob, Interaction, Item
from recommendations.services import dataset_import_files, import_job_run, import_job_start
from recommendations.tasks import import_job_run_task
from tests.conftest import table_counts
from tests.recommendations.datafiles import ML100K, write, write_zip

pytestmark = pytest.mark.django_db


@pytest.fixture
def existing(tmp_path: Path) -> Dataset:
    """A dataset already in the database, which failed imports must leave as it is."""
    return dataset_import_files(format="movielens-100k", path=write(tmp_path / "ml", ML100K), name="existing").dataset


def test_import_writes_every_row_with_its_links(tmp_path: Path) -> None:
    result = dataset_import_files(format="movielens-100k", path=write(tmp_path / "ml", ML100K), name="ml")

    dataset = result.dataset
    assert (dataset.n_users, dataset.n_items, dataset.n_interactions) == (3, 3, 4)
    assert (dataset.rating_min, dataset.rating_max, dataset.is_implicit) == (1.0, 5.0, False)
    assert dataset.import_seconds is not None and dataset.import_seconds > 0
    history = list(Interaction.objects.history_of(DatasetUser.objects.get(dataset=dataset, external_id="1")))
    assert [(i.item.title, i.rating, i.timestamp) for i in history] == [
        ("Toy Story", 5.0, 874965758),
        ("GoldenEye", 3.0, 876893171),
    ]
    toy = Item.objects.get(dataset=dataset, external_id="1")
    assert toy.attributes["genres"] == ["Animation", "Children's", "Comedy"]
    assert DatasetUser.objects.get(dataset=dataset, external_id="3").profile["zip_code"] == "02138"


def test_bundled_movielens_100k_import() -> None:
    dataset = dataset_import_files(format="movielens-100k", path=None, name="ml-100k").dataset

    assert (dataset.n_users, dataset.n_items, dataset.n_interactions) == (943, 1682, 100_000)
    assert Interaction.objects.filter(dataset=dataset).count() == 100_000
    assert Item.objects.filter(dataset=dataset).count() == 1682
    assert DatasetUser.objects.filter(dataset=dataset).count() == 943


def _ml100k_with(tmp_path: Path, **changes: str) -> Path:
    return write(tmp_path / "bad", ML100K | {name.replace("_", "."): text for name, text in changes.items()})


BAD_INPUTS = {
    "missing column": (
        lambda p: (write(p / "c", {"r.csv": "user,rating\n1,4\n"}) / "r.csv", "csv"),
        r"r\.csv line 1: no item column 'item'",
    ),
    "non-numeric rating": (
        lambda p: (write(p / "c", {"r.csv": "user,item,rating\n1,2,4\n1,3,five\n"}) / "r.csv", "csv"),
        r"r\.csv line 3: rating 'five' is not a number",
    ),
    "undecodable bytes": (
        lambda p: (write(p / "c", {"r.csv": "user,item,rating\nJosé,2,4\n"}, encoding="latin-1") / "r.csv", "csv"),
        r"r\.csv line 2: not valid utf-8 .*--encoding",
    ),
    "duplicate rows": (
        lambda p: (_ml100k_with(p, u_data="1\t1\t5\t100\n2\t1\t4\t100\n1\t1\t3\t100\n"), "movielens-100k"),
        r"u\.data line 3: duplicate of line 1 \(user '1', item '1', timestamp 100\)",
    ),
    "empty file": (
        lambda p: (_ml100k_with(p, u_data=""), "movielens-100k"),
        r"u\.data: file is empty",
    ),
    "header only": (
        lambda p: (write(p / "c", {"r.csv": "user,item,rating\n"}) / "r.csv", "csv"),
        r"r\.csv: no interactions",
    ),
    "zip with unexpected member": (
        lambda p: (write_zip(p / "ml.zip", ML100K | {"payload.sh": "rm -rf /"}, prefix="ml-100k/"), "movielens-100k"),
        r"ml\.zip: unexpected member 'ml-100k/payload\.sh'",
    ),
    "zip with unsafe member": (
        lambda p: (write_zip(p / "ml.zip", ML100K | {"../u.info": "x"}), "movielens-100k"),
        r"ml\.zip: unsafe member name '\.\./u\.info'",
    ),
    "zip without required file": (
        lambda p: (write_zip(p / "ml.zip", {"u.item": ML100K["u.item"]}), "movielens-100k"),
        r"ml\.zip: no u\.data",
    ),
    "wrong field count": (
        lambda p: (_ml100k_with(p, u_data="1\t1\t5\n"), "movielens-100k"),
        r"u\.data line 1: expected 4 fields",
    ),
    "bad timestamp": (
        lambda p: (write(p / "c", {"r.csv": "user,item,rating,timestamp\n1,2,4,yesterday\n"}) / "r.csv", "csv"),
        r"r\.csv line 2: timestamp 'yesterday' is neither",
    ),
    "not a zip and not a folder": (
        lambda p: (p / "missing", "movielens-1m"),
        r"missing: no such file or folder",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_names_file_and_line_and_changes_nothing(tmp_path: Path, existing: Dataset, case: str) -> None:
    make, message = BAD_INPUTS[case]
    path, format = make(tmp_path)
    before = table_counts()

    with pytest.raises(ImportFailed, match=message):
        dataset_import_files(format=format, path=path, name="new")

    assert table_counts() == before
    assert not Dataset.objects.filter(name="new").exists()


def test_unknown_encoding_name_is_refused(tmp_path: Path, existing: Dataset) -> None:
    before = table_counts()

    with pytest.raises(ImportFailed, match="unknown encoding 'klingon'"):
        dataset_import_files(
            format="movielens-100k", path=write(tmp_path / "ml", ML100K), name="new", options={"encoding": "klingon"}
        )

    assert table_counts() == before


def test_file_over_the_size_limit_is_refused(tmp_path: Path, existing: Dataset, settings) -> None:
    settings.XREC_IMPORT_MAX_BYTES = 50
    before = table_counts()

    with pytest.raises(
        ImportFailed, match=r"u\.genre: 201 B is over the import limit of 50 B \(XREC_IMPORT_MAX_BYTES\)"
    ):
        dataset_import_files(format="movielens-100k", path=write(tmp_path / "ml", ML100K), name="new")

    assert table_counts() == before


def test_zip_member_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "big.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("u.data", "1\t1\t5\t1\n" * 10_000)  # compresses to almost nothing
        zf.writestr("u.item", ML100K["u.item"])

    with pytest.raises(ImportFailed, match=r"big\.zip:u\.data: .* over the import limit"):
        dataset_import_files(format="movielens-100k", path=archive, name="new", max_bytes=10_000)

    assert table_counts() == dict.fromkeys(["Dataset", "Item", "DatasetUser", "Interaction"], 0)


def test_reimport_of_same_name_is_refused_without_replace(tmp_path: Path, existing: Dataset) -> None:
    before = table_counts()

    with pytest.raises(ImportFailed, match="a dataset named 'existing' already exists; use --replace"):
        dataset_import_files(format="movielens-100k", path=write(tmp_path / "ml", ML100K), name="existing")

    assert table_counts() == before


def test_replace_swaps_the_dataset(tmp_path: Path, existing: Dataset) -> None:
    smaller = write(tmp_path / "small", ML100K | {"u.data": "1\t1\t5\t1\n"})

    dataset = dataset_import_files(format="movielens-100k", path=smaller, name="existing", replace=True).dataset

    assert dataset.pk != existing.pk
    assert list(Dataset.objects.values_list("name", flat=True)) == ["existing"]
    assert Interaction.objects.count() == 1
    assert Item.objects.count() == 3  # the old dataset's rows are gone


def test_failed_replace_keeps_the_old_dataset(tmp_path: Path, existing: Dataset) -> None:
    before = table_counts()

    with pytest.raises(ImportFailed):
        dataset_import_files(
            format="movielens-100k", path=_ml100k_with(tmp_path, u_data="1\t1\tbad\t1\n"), name="existing", replace=True
        )

    assert table_counts() == before
    assert Dataset.objects.get(name="existing").pk == existing.pk


def test_failure_while_writing_rolls_back_the_replace(
    tmp_path: Path, existing: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recommendations.shared.bulk import insert_rows as original

    calls = []

    def exploding_insert(model, fields, rows, **kwargs):
        calls.append(model)
        if model is Interaction:
            raise RuntimeError("disk full")
        return original(model, fields, rows, **kwargs)

    monkeypatch.setattr("recommendations.services.imports.insert_rows", exploding_insert)
    before = table_counts()

    with pytest.raises(RuntimeError, match="disk full"):
        dataset_import_files(
            format="movielens-100k", path=write(tmp_path / "ml", ML100K), name="existing", replace=True
        )

    assert Interaction in calls
    assert table_counts() == before
    assert Dataset.objects.get(name="existing").pk == existing.pk


# --- import jobs -------------------------------------------------------------------------


def _upload(name: str, text: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode())


def test_job_start_stores_uploads_and_enqueues_after_commit(admin_user, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        job = import_job_start(
            created_by=admin_user,
            format="csv",
            name="books",
            options={"delimiter": ";"},
            uploads={
                "data": _upload("evil/../../r.csv", "user;item;rating\na;b;4\n"),
                "items": _upload("i.csv", "item,title\nb,Dune\n"),
            },
        )

    assert len(callbacks) == 1
    assert job.status == ImportJob.Status.PENDING
    stored = Path(job.path)
    assert stored.name == "data.csv" and stored.read_text().startswith("user;item")  # client's name ignored
    assert Path(job.options["items"]).parent == stored.parent
    assert job.options["delimiter"] == ";"


def test_job_start_refuses_a_taken_name_and_stores_nothing(admin_user, existing: Dataset, settings) -> None:
    with pytest.raises(ImportFailed, match="already exists"):
        import_job_start(
            created_by=admin_user, format="csv", name="existing", uploads={"data": _upload("r.csv", "user,item\na,b\n")}
        )

    assert not ImportJob.objects.exists()
    assert not Path(settings.XREC_UPLOAD_DIR).exists() or not any(Path(settings.XREC_UPLOAD_DIR).iterdir())


def test_job_run_imports_and_removes_uploads(admin_user, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks():
        job = import_job_start(
            created_by=admin_user,
            format="csv",
            name="tiny",
            uploads={"data": _upload("r.csv", "user,item,rating\na,b,4\na,c,2\n")},
        )

    import_job_run_task(job.pk)

    job.refresh_from_db()
    assert job.status == ImportJob.Status.SUCCEEDED and job.percent == 100
    assert job.dataset is not None and job.dataset.n_interactions == 2
    assert job.dataset.imported_by == admin_user
    assert job.dataset.source == "uploaded r.csv"
    assert not Path(job.path).exists()


def test_job_run_records_bad_input_and_changes_no_dataset(admin_user, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks():
        job = import_job_start(
            created_by=admin_user,
            format="csv",
            name="bad",
            uploads={"data": _upload("r.csv", "user,item,rating\na,b,x\n")},
        )
    before = table_counts()

    import_job_run(job_id=job.pk)

    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED
    assert job.error == "data.csv line 2: rating 'x' is not a number"
    assert table_counts() == before


def test_second_run_of_the_same_job_changes_nothing(admin_user, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks():
        job = import_job_start(created_by=admin_user, format="movielens-100k", name="ml")
    import_job_run(job_id=job.pk)
    after_first = table_counts()
    job.refresh_from_db()
    finished_at = job.finished_at

    import_job_run(job_id=job.pk)

    job.refresh_from_db()
    assert table_counts() == after_first and job.finished_at == finished_at


def test_job_run_for_a_deleted_job_returns_quietly() -> None:
    import_job_run_task(123456)

    assert not ImportJob.objects.exists()
