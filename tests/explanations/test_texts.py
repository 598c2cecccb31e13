"""Word limits enforced in code and echoes of the prompt: the checks generation, the teacher
filter and the text metrics share."""

import pytest

from explanations.texts import copies_prompt, limit_words, token_budget, word_count

PROMPT = [
    {"role": "system", "content": "You write short explanations of recommendations."},
    {"role": "user", "content": "Recommended movie: Heat (1995); genres: Action, Crime, Thriller."},
]


@pytest.mark.parametrize(
    ("text", "limit", "finished", "expected"),
    [
        ("You will like Heat.", 10, True, "You will like Heat."),
        ("  You  will\n\nlike Heat.  ", 10, True, "You will like Heat."),
        # Over the limit: the whole sentences that fit.
        (
            "You liked Alien. Heat is a crime film too. It is long and has many words in it.",
            9,
            True,
            "You liked Alien. Heat is a crime film too.",
        ),
        # Cut by the token cap: the unfinished sentence goes even when short.
        ("You liked Alien. Heat is a crime", 20, False, "You liked Alien."),
        # A finished sentence cut by the cap at its full stop stays.
        ("You liked Alien.", 20, False, "You liked Alien."),
        # No sentence fits: the words within the limit, back to the last comma in the second half.
        (
            "Heat suits you, a fan of crime films like Alien and Seven and many more",
            10,
            True,
            "Heat suits you, a fan of crime films like Alien…",
        ),
        ("Heat suits you as a fan of crime films like Alien and Seven", 5, True, "Heat suits you as a…"),
        # Abbreviations and initials do not end a sentence; a closing quote or bracket stays with it.
        (
            'Mr. Smith liked "Heat." Dr. No is next. More words follow here now.',
            8,
            True,
            'Mr. Smith liked "Heat." Dr. No is next.',
        ),
        ("", 10, True, ""),
    ],
)
def test_limit_words_cuts_at_the_last_full_sentence_within_the_limit(text, limit, finished, expected) -> None:
    cut = limit_words(text, limit, finished=finished)

    assert cut == expected
    assert word_count(cut) <= limit


def test_the_token_budget_leaves_room_for_the_word_limit() -> None:
    assert token_budget(40) == 72 and token_budget(75) == 128


def test_an_echo_is_eight_words_copied_from_the_prompt_whatever_case_and_punctuation() -> None:
    assert copies_prompt(
        "As you know, YOU write short explanations of recommendations. Recommended movie: Heat", PROMPT
    )
    assert copies_prompt("Recommended movie: Heat (1995); genres: Action, Crime, Thriller. Watch it.", PROMPT)
    assert not copies_prompt("Heat is an action and crime thriller, like Alien, which you rated 5.", PROMPT)
