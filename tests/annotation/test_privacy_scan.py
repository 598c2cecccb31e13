"""The privacy scan (personal-data shapes, profile echoes) and the re-identification count."""

import pytest

from annotation.privacy import longest_below, profile_echoes, reidentification, scan


@pytest.mark.parametrize(
    ("text", "kind", "match"),
    [
        ("Write to jane.doe+films@example.co.uk for more.", "email", "jane.doe+films@example.co.uk"),
        ("See https://example.com/u/42?x=1 for the trailer", "url", "https://example.com/u/42?x=1"),
        ("or www.example.org today", "url", "www.example.org"),
        ("Call +1 (555) 123-4567 now", "phone", "+1 (555) 123-4567"),
        ("Ring 020 7946 0958 after six", "phone", "020 7946 0958"),
        ("She lives at 221 Baker Street, London", "street_address", "221 Baker Street"),
        ("Her SSN is 078-05-1120.", "id_number", "078-05-1120"),
        ("Card 4111 1111 1111 1111 was used", "id_number", "4111 1111 1111 1111"),
        ("IBAN GB82 WEST 1234 5698 7654 32 on file", "id_number", "GB82 WEST 1234 5698 7654 32"),
    ],
)
def test_personal_data_shapes_are_found(text: str, kind: str, match: str) -> None:
    found = scan(text)

    assert [(finding.kind, finding.match) for finding in found] == [(kind, match)]
    assert found[0].context(text, width=3) in text and match in found[0].context(text, width=3)


@pytest.mark.parametrize(
    "text",
    [
        "Since you enjoyed Star Wars (1977) and rated it 5, you may like Return of the Jedi (1983).",
        "Miracle on 34th Street is a 1947 classic; it runs 96 minutes.",
        "Made between 1995-1996, with 12 Monkeys and Apollo 13 from the same years.",
        "A card-like 4111 1111 1111 1112 that fails the Luhn check.",
        "Rated 4.5 out of 5 by 1,024 viewers.",
    ],
)
def test_ordinary_explanations_are_not_flagged(text: str) -> None:
    assert scan(text) == []


def test_overlapping_matches_keep_the_more_specific_kind() -> None:
    found = scan("ID 078-05-1120 and mail bob@example.com")

    assert [finding.kind for finding in found] == ["id_number", "email"]


def test_the_users_own_profile_values_are_found_as_whole_words() -> None:
    profile = {"age": 24, "gender": "M", "occupation": "technician", "zip_code": "85711", "other": "other"}
    text = "As a 24-year-old Technician in 85711 you'll like this; 240 others did, and other technicians too."

    found = profile_echoes(text, profile)

    assert [finding.match for finding in found] == ["24", "Technician", "85711"]


def test_a_profile_with_nothing_distinctive_echoes_nothing() -> None:
    assert profile_echoes("Mostly for other fans: M and F alike.", {"gender": "M", "occupation": "other"}) == []


def test_reidentification_counts_items_whose_shown_titles_single_out_one_user() -> None:
    owners = {"A": {1, 2, 3}, "B": {1, 2}, "C": {1}, "D": {2, 3}}
    shown = [
        ["A", "B", "C"],  # A: 3 users; A+B: {1, 2}; A+B+C: {1}: unique from length 3
        ["C"],  # C alone: user 1 only; still unique at every length (it shows one title)
        ["D", "A"],  # D: {2, 3}; D+A: {2, 3}: never unique
        ["X"],  # a title nobody else has matches nobody: not singled out
    ]

    curve = reidentification(shown, owners, max_length=3)

    assert [point["unique_share"] for point in curve] == [0.25, 0.25, 0.5]
    assert curve[0]["items"] == 4
    assert longest_below(curve, 0.3) == 2
    assert longest_below(curve, 0.2) == 0
    assert longest_below(curve, 0.9) == 3
    assert reidentification([], owners, max_length=2)[0]["unique_share"] is None


def test_a_number_inside_a_title_the_explanation_names_is_not_an_echo() -> None:
    text = "You rated Apollo 13 highly; at 13 you will like it."

    found = profile_echoes(text, {"age": 13}, titles=["Apollo 13"])

    assert [(finding.match, finding.start) for finding in found] == [("13", text.index("at 13") + 3)]
