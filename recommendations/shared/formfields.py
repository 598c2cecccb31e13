"""Form fields every app's forms share."""

from typing import Any

from django import forms

# The range of a 32-bit signed integer column (IntegerField on PostgreSQL). SQLite holds more,
# but a value it holds and PostgreSQL refuses would make the two configurations differ.
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
# PositiveSmallIntegerField / SmallIntegerField on PostgreSQL.
SMALL_INT_MAX = 2**15 - 1
# BigIntegerField on both.
BIG_INT_MIN, BIG_INT_MAX = -(2**63), 2**63 - 1


class DbIntegerField(forms.IntegerField):
    """An integer form field whose value always fits the database column it is saved in.

    Without bounds, a seed of 10**20 passes the form and then fails at the database: an
    OverflowError on SQLite, "integer out of range" on PostgreSQL, a 500 either way. Bounds
    not given default to a 32-bit column's; fields saved into small-integer columns pass
    ``max_value=SMALL_INT_MAX`` or less.
    """

    def __init__(self, *, min_value: int | None = None, max_value: int | None = None, **kwargs: Any) -> None:
        super().__init__(
            min_value=INT_MIN if min_value is None else min_value,
            max_value=INT_MAX if max_value is None else max_value,
            **kwargs,
        )


class DbModelMultipleChoiceField(forms.ModelMultipleChoiceField):
    """A choice of several rows by id that refuses an id no column can hold.

    Django checks each id with an exact lookup (which copes with any integer) but then
    fetches them with ``pk__in``, which raises OverflowError on SQLite for an id past 64 bits:
    ``?runs=10**25`` was a 500. Such an id is an invalid choice like any unknown one.
    """

    def _check_values(self, value: Any) -> Any:
        for pk in value:
            try:
                number = int(pk)
            except (TypeError, ValueError):
                continue  # Django's own check names it
            if not BIG_INT_MIN <= number <= BIG_INT_MAX:
                raise forms.ValidationError(
                    self.error_messages["invalid_pk_value"], code="invalid_pk_value", params={"pk": pk}
                )
        return super()._check_values(value)  # type: ignore[misc]  # private in the stubs, public in Django since 1.x
