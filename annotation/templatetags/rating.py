"""Template tags of the rating page.

The rating page is rendered on every submit (the next item's partial), so its form controls are
written here rather than through template loops or the widgets' own templates: an item's three
ten-point criteria are some 250 variable lookups and escapes in a template, most of the page's
rendering time. Every value is escaped with ``html.escape``, as Django's ``escape`` does.
"""

from html import escape

from django import template
from django.forms import BoundField
from django.utils.safestring import SafeString, mark_safe

register = template.Library()


@register.simple_tag
def radio_choices(field: BoundField) -> SafeString:
    """A criterion's (or claim's) radio buttons, its answer so far checked."""
    chosen = str(field.value())
    name, auto_id = escape(field.html_name), escape(str(field.auto_id))
    return mark_safe(  # noqa: S308 - every value below is escaped
        "".join(
            f'<label class="choice"><input type="radio" name="{name}" value="{escape(str(value))}"'
            f' id="{auto_id}_{index}" required{" checked" if chosen == str(value) else ""}>'
            f"<span>{escape(str(label))}</span></label>"
            for index, (value, label) in enumerate(field.field.choices)  # type: ignore[attr-defined]
        )
    )


@register.simple_tag
def hidden_input(field: BoundField) -> SafeString:
    """A hidden field's input, as its ``HiddenInput`` widget writes it (no value attribute when
    it has none)."""
    value = field.field.widget.format_value(field.value())
    shown = "" if value is None else f' value="{escape(str(value))}"'
    return mark_safe(  # noqa: S308 - every value is escaped
        f'<input type="hidden" name="{escape(field.html_name)}"{shown} id="{escape(str(field.auto_id))}">'
    )
