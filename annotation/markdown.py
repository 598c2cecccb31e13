"""Campaign instructions and consent text: Markdown rendered, then sanitised.

Researchers write the Markdown, but it is shown to crowd workers, so the HTML passes an
allow-list (nh3) before it is marked safe: no scripts, no event handlers, no styles, and
links get ``rel="noopener noreferrer"``.
"""

import functools

import markdown
import nh3
from django.utils.safestring import SafeString, mark_safe

ALLOWED_TAGS = {
    "p", "br", "hr", "em", "strong", "code", "pre", "blockquote", "ul", "ol", "li",
    "h1", "h2", "h3", "h4", "a", "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip


@functools.lru_cache(maxsize=128)
def render_markdown(text: str) -> SafeString:
    """Sanitised HTML of ``text``; cached, since every rating page shows the same instructions."""
    html = markdown.markdown(text or "", extensions=["tables"], output_format="html")
    clean = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes={"a": {"href", "title"}},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer",
    )
    return mark_safe(clean)  # noqa: S308 - sanitised by nh3 just above
