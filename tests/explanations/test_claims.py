"""The claim splitter: sentences and clauses, never inside quotes, parentheses, numbers or
after abbreviations; spans that point back into the text; cuts a researcher can move."""

import pytest

from explanations.claims import claims_from_cuts, default_cuts, split_claims


@pytest.mark.parametrize(
    ("text", "claims"),
    [
        (
            "You loved Star Wars (1977). Return of the Jedi (1983) continues its story.",
            ["You loved Star Wars (1977).", "Return of the Jedi (1983) continues its story."],
        ),
        (
            "It is a sci-fi adventure because you rated Alien 5 and it has the same director.",
            ["It is a sci-fi adventure", "you rated Alien 5", "it has the same director."],
        ),
        (
            "An action and adventure film, like Romeo and Juliet in spirit; you will enjoy it!",
            ["An action and adventure film, like Romeo and Juliet in spirit", "you will enjoy it!"],
        ),
        (
            'Dr. Strangelove and "Dr. No. And it goes on." are classics, e.g. for you. Rated 4.5 by J. R. R. fans.',
            ['Dr. Strangelove and "Dr. No. And it goes on." are classics, e.g. for you.', "Rated 4.5 by J. R. R. fans."],
        ),
        ("Why not? Try it", ["Why not?", "Try it"]),
        ("She said \u201cit is great.\u201d You agree.", ["She said \u201cit is great.\u201d", "You agree."]),
        ("", []),
        ("   ...   ", []),
    ],
)  # fmt: skip
def test_explanations_are_cut_at_sentences_and_clauses(text: str, claims: list[str]) -> None:
    found = split_claims(text)

    assert [claim.text for claim in found] == claims
    assert all(text[claim.start : claim.end] == claim.text for claim in found)


def test_a_researcher_can_move_the_cuts() -> None:
    text = "It is funny and it is short. You liked Airplane!"
    cuts = default_cuts(text)

    assert [claim.text for claim in claims_from_cuts(text, cuts)] == [
        "It is funny",
        "it is short.",
        "You liked Airplane!",
    ]
    merged = [cut for cut in cuts if not text[cut:].startswith("and it is short")]
    assert [claim.text for claim in claims_from_cuts(text, merged)] == [
        "It is funny and it is short.",
        "You liked Airplane!",
    ]
    # Cuts out of range, repeated or unsorted are ignored or put in order.
    assert [c.text for c in claims_from_cuts(text, [29, -3, 29, 400, 6])] == [
        "It is",
        "funny and it is short.",
        "You liked Airplane!",
    ]
