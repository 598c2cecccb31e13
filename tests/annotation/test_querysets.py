"""Finding the titles an explanation names, and cutting it into escaped pieces."""

from annotation.markdown import render_markdown
from annotation.querysets import highlighted, mentioned_spans, title_variants


def test_title_variants_drop_the_year_and_move_a_trailing_article() -> None:
    assert title_variants("Usual Suspects, The (1995)") == [
        "Usual Suspects, The (1995)",
        "Usual Suspects, The",
        "The Usual Suspects",
        "Usual Suspects",
    ]
    assert title_variants("Up") == []  # too short to match reliably


def test_mentions_are_found_case_insensitively_on_word_boundaries_longest_first() -> None:
    text = "Since you loved the usual suspects and Toy Story 2, try Toy Story (1995)."

    spans = mentioned_spans(text, ["Usual Suspects, The (1995)", "Toy Story (1995)", "Toy Story 2 (1999)", "Story"])

    assert [text[a:b] for a, b in spans] == ["the usual suspects", "Toy Story 2", "Toy Story (1995)"]
    assert mentioned_spans("Tangled up", ["Tang (1999)"]) == []


def test_highlighted_pieces_cover_the_text_exactly() -> None:
    text = "<b>Heat</b> and Heat"

    pieces = highlighted(text, mentioned_spans(text, ["Heat (1995)"]))

    assert "".join(piece for piece, _ in pieces) == text
    assert [piece for piece, mention in pieces if mention] == ["Heat", "Heat"]


def test_markdown_is_rendered_and_sanitised() -> None:
    html = render_markdown(
        "**Read** the [guide](https://example.org). <script>alert(1)</script>"
        '<img src=x onerror="alert(1)"> [bad](javascript:alert(1))'
    )

    assert "<strong>Read</strong>" in html
    assert 'href="https://example.org"' in html and 'rel="noopener noreferrer"' in html
    assert "<script" not in html and "onerror" not in html and "javascript:" not in html and "<img" not in html
