"""The claim splitter: sentences and clauses, never inside quotes, parentheses, numbers or
after abbreviations; spans that point back into the text; cuts a researcher can move."""

import pytest

from explanations.claims import (
    SplitError,
    claims_from_cuts,
    claims_from_pieces,
    default_cuts,
    marked_spans,
    split_claims,
    word_pieces,
)


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


def test_pieces_written_out_by_a_researcher_are_found_in_order_with_any_spacing() -> None:
    text = "Hello there!  You liked Heat.\nIt is a thriller and it has Pacino."

    claims = claims_from_pieces(text, ["You liked Heat.", "", "It is a thriller and it has Pacino."])

    assert [(c.text, text[c.start : c.end]) for c in claims] == [
        ("You liked Heat.", "You liked Heat."),
        ("It is a thriller and it has Pacino.", "It is a thriller and it has Pacino."),
    ]
    spaced = claims_from_pieces("a  b\nc", ["a b c"])
    assert spaced[0].text == "a  b\nc" and (spaced[0].start, spaced[0].end) == (0, 6)


@pytest.mark.parametrize(
    ("pieces", "error"),
    [
        (["It is a thriller", "You liked Heat."], "Claim 2 .* not found after claim 1"),
        (["Heat was bad."], "Claim 1 .* not found in the explanation"),
        (["", "  "], "at least one claim"),
    ],
)
def test_pieces_out_of_order_or_not_in_the_text_are_refused(pieces, error) -> None:
    with pytest.raises(SplitError, match=error):
        claims_from_pieces("You liked Heat. It is a thriller.", pieces)


def test_marked_spans_are_checked_sorted_and_merged() -> None:
    assert marked_spans([[5, 8], [0, 2], [2, 4], [7, 9]], 10) == [[0, 4], [5, 9]]
    assert marked_spans([], 3) == []
    for bad in ([[0, 11]], [[3, 3]], [[-1, 2]], [[0, 1, 2]], [["0", 1]], [[True, 2]], "[[0, 1]]", [[0, 1]] * 21):
        with pytest.raises(SplitError):
            marked_spans(bad, 10)


def test_word_pieces_keep_offsets_of_words_and_the_text_between() -> None:
    pieces = word_pieces("It's  Heat, 1995!")

    assert "".join(piece for piece, *_ in pieces) == "It's  Heat, 1995!"
    assert [(piece, start, end) for piece, start, end in pieces if start is not None] == [
        ("It's", 0, 4),
        ("Heat", 6, 10),
        ("1995", 12, 16),
    ]
