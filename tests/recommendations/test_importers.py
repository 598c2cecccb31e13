"""Each importer reads its format into plain rows, without touching the database."""

import json
from pathlib import Path

import pytest

from recommendations import importers
from recommendations.importers import ImportFailed
from recommendations.importers.base import split_title_year
from tests.recommendations.datafiles import ATOMIC, ML1M, ML100K, write, write_zip


def test_movielens_100k_folder_reads_ratings_items_genres_and_profiles(tmp_path: Path) -> None:
    parsed = importers.read("movielens-100k", write(tmp_path / "ml-100k", ML100K, encoding="latin-1"))

    assert parsed.interactions[0] == ("1", "1", 5.0, 874965758)
    assert len(parsed.interactions) == 4
    assert parsed.items["1"] == (
        "Toy Story",
        {
            "genres": ["Animation", "Children's", "Comedy"],
            "year": 1995,
            "release_date": "01-Jan-1995",
            "imdb_url": "http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)",
        },
    )
    assert parsed.items["3"][0] == "Misérables, Les"  # Latin-1 decoded
    assert parsed.users["3"] == {"age": 23, "gender": "M", "occupation": "writer", "zip_code": "02138"}
    assert parsed.domain == "movies" and "GroupLens" in parsed.licence_note


def test_movielens_100k_zip_with_grouplens_top_folder(tmp_path: Path) -> None:
    archive = write_zip(
        tmp_path / "ml-100k.zip", ML100K | {"README": "x", "u1.base": "x"}, prefix="ml-100k/", encoding="latin-1"
    )

    parsed = importers.read("movielens-100k", archive)

    assert len(parsed.items) == 3 and len(parsed.users) == 3 and len(parsed.interactions) == 4


def test_bundled_movielens_100k_has_the_published_counts() -> None:
    parsed = importers.read("movielens-100k", None)

    assert (len(parsed.users), len(parsed.items), len(parsed.interactions)) == (943, 1682, 100_000)
    assert parsed.items["1"] == ("Toy Story", {"year": 1995, "genres": ["Animation", "Children's", "Comedy"]})
    assert parsed.users["1"] == {"age": 24, "gender": "M", "occupation": "technician", "zip_code": "85711"}
    assert {row[2] for row in parsed.interactions} == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert parsed.format == "movielens-100k"


@pytest.mark.parametrize("as_zip", [False, True])
def test_movielens_1m_decodes_age_and_occupation_codes(tmp_path: Path, as_zip: bool) -> None:
    path = (
        write_zip(tmp_path / "ml-1m.zip", ML1M, prefix="ml-1m/", encoding="latin-1")
        if as_zip
        else write(tmp_path / "ml-1m", ML1M, encoding="latin-1")
    )

    parsed = importers.read("movielens-1m", path)

    assert parsed.interactions == [
        ("1", "1193", 5.0, 978300760),
        ("1", "661", 3.0, 978302109),
        ("2", "1193", 4.0, 978298413),
    ]
    assert parsed.items["661"] == (
        "James and the Giant Peach",
        {"genres": ["Animation", "Children's", "Musical"], "year": 1996},
    )
    assert parsed.users["1"] == {
        "age": 1,
        "age_group": "Under 18",
        "gender": "F",
        "occupation": "K-12 student",
        "zip_code": "48067",
    }
    assert parsed.users["2"]["occupation"] == "self-employed"


@pytest.mark.parametrize("target", ["folder", "inter_file", "zip"])
def test_recbole_atomic_files_from_folder_inter_file_or_zip(tmp_path: Path, target: str) -> None:
    folder = write(tmp_path / "toy", ATOMIC)
    path = {
        "folder": folder,
        "inter_file": folder / "toy.inter",
        "zip": write_zip(tmp_path / "toy.zip", ATOMIC),
    }[target]

    parsed = importers.read("recbole", path)

    assert parsed.interactions == [("u1", "i1", 4.0, 100), ("u1", "i2", 2.0, 200), ("u2", "i1", 5.0, 150)]
    assert parsed.items["i1"] == (
        "The Witcher 3",
        {"categories": ["RPG", "Open-World"], "price": 29.99, "brand": "CDPR"},
    )
    # A token stays text (zip codes keep their leading zero); age is a number.
    assert parsed.users["u1"] == {"age": 31, "zip_code": "02139"}


def test_recbole_implicit_file_without_rating_column(tmp_path: Path) -> None:
    folder = write(
        tmp_path / "clicks", {"clicks.inter": "user_id:token\titem_id:token\ttimestamp:float\na\tx\t1\nb\tx\t2\n"}
    )

    parsed = importers.read("recbole", folder)

    assert parsed.is_implicit and parsed.interactions == [("a", "x", None, 1), ("b", "x", None, 2)]
    assert parsed.items["x"] == ("x", {})  # implied by the interactions


def test_recbole_mapping_names_a_different_rating_column(tmp_path: Path) -> None:
    folder = write(
        tmp_path / "steam", {"steam.inter": "user_id:token\tproduct_id:token\tplay_hours:float\nu\tg\t12.5\n"}
    )

    parsed = importers.read("recbole", folder, options={"map": {"item": "product_id", "rating": "play_hours"}})

    assert parsed.interactions == [("u", "g", 12.5, None)]


def test_csv_default_columns_with_item_and_user_files(tmp_path: Path) -> None:
    (tmp_path / "ratings.csv").write_text(
        "user,item,rating,timestamp\nalice,b1,4.5,2024-01-02T03:04:05Z\nbob,b1,3,1700000000\n"
    )
    (tmp_path / "items.csv").write_text('item,title,genres,year,price\nb1,"Dune, Part One",Sci-Fi|Adventure,1965,9.5\n')
    (tmp_path / "users.jsonl").write_text('{"user": "alice", "age": 34, "country": "NZ"}\n{"user": "bob"}\n')

    parsed = importers.read(
        "csv",
        tmp_path / "ratings.csv",
        options={"items": str(tmp_path / "items.csv"), "users": str(tmp_path / "users.jsonl")},
    )

    assert parsed.interactions == [("alice", "b1", 4.5, 1704164645), ("bob", "b1", 3.0, 1700000000)]
    assert parsed.items["b1"] == ("Dune, Part One", {"genres": ["Sci-Fi", "Adventure"], "year": 1965, "price": 9.5})
    assert parsed.users == {"alice": {"age": 34, "country": "NZ"}, "bob": {}}


def test_csv_mapping_and_delimiter(tmp_path: Path) -> None:
    (tmp_path / "r.tsv").write_text("uid\tiid\tstars\tts\n7\t9\t2\t10\n")

    parsed = importers.read(
        "csv",
        tmp_path / "r.tsv",
        options={"map": importers.parse_mapping("user=uid,item=iid,rating=stars,timestamp=ts"), "delimiter": "\t"},
    )

    assert parsed.interactions == [("7", "9", 2.0, 10)]


def test_jsonl_interactions_without_ratings_are_implicit(tmp_path: Path) -> None:
    rows = [{"user": "u1", "item": "n1", "timestamp": 5}, {"user": "u1", "item": "n2", "timestamp": 6}]
    (tmp_path / "clicks.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")

    parsed = importers.read("csv", tmp_path / "clicks.jsonl")

    assert parsed.is_implicit and [r[:2] for r in parsed.interactions] == [("u1", "n1"), ("u1", "n2")]
    assert any("implicit" in w for w in parsed.warnings)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("user=uid,colour=red", "unknown role 'colour'"),
        ("user", "is not ROLE=COLUMN"),
    ],
)
def test_bad_mapping_is_refused(text: str, message: str) -> None:
    with pytest.raises(ImportFailed, match=message):
        importers.parse_mapping(text)


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Toy Story (1995)", ("Toy Story", 1995)),
        ("Seven (Se7en) (1995)", ("Seven (Se7en)", 1995)),
        ("unknown", ("unknown", None)),
    ],
)
def test_split_title_year(title: str, expected: tuple[str, int | None]) -> None:
    assert split_title_year(title) == expected


def test_unknown_format_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ImportFailed, match="unknown format 'netflix'"):
        importers.read("netflix", tmp_path)


def test_csv_format_refuses_a_zip_with_a_clear_message(tmp_path: Path) -> None:
    archive = write_zip(tmp_path / "ratings.zip", {"r.csv": "user,item\na,b\n"})

    with pytest.raises(ImportFailed, match=r"ratings\.zip: give the interactions file itself"):
        importers.read("csv", archive)
