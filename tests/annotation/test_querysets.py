"""Cutting an explanation into escaped pieces around the titles it names; sanitised Markdown.

Finding the titles is tested with the text metrics (``explanations.textmetrics``)."""

from annotation.markdown import render_markdown
from annotation.querysets import highlighted
from explanations.textmetrics import mentioned_spans


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
