"""Template tags of the rating page."""

from django import template
from django.forms import BoundField
from django.utils.html import format_html_join
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

_CHOICE = '<label class="choice"><input type="radio" name="{}" value="{}" id="{}_{}" required{}><span>{}</span></label>'


@register.simple_tag
def radio_choices(field: BoundField) -> SafeString:
    """A criterion's (or claim's) radio buttons, its answer so far checked, every value escaped.

    Written here rather than as template loops: an item's four ten-point criteria are some 250
    variable lookups in a template, most of the rating page's rendering time (and more again
    through the widget's own templates)."""
    chosen = str(field.value())
    name, auto_id = field.html_name, field.auto_id
    checked = mark_safe(" checked")
    return format_html_join(
        "",
        _CHOICE,
        (
            (name, value, auto_id, index, checked if chosen == str(value) else "", label)
            for index, (value, label) in enumerate(field.field.choices)  # type: ignore[attr-defined]
        ),
    )
