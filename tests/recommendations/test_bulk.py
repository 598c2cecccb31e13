"""insert_rows writes plain tuples; a field the caller leaves out gets its model default."""

from datetime import timedelta

import pytest
from django.db import IntegrityError
from django.utils import timezone

from recommendations.models import Dataset, Item
from recommendations.shared.bulk import insert_rows

pytestmark = pytest.mark.django_db


def test_left_out_fields_get_their_defaults_per_row() -> None:
    before = timezone.now()
    written = insert_rows(
        Dataset,
        ["name", "source", "licence_note", "import_format"],
        ((f"d{index}", "", "", "csv") for index in range(3)),
    )

    datasets = list(Dataset.objects.order_by("name"))
    assert written == 3 and [d.name for d in datasets] == ["d0", "d1", "d2"]
    # A callable default (timezone.now) is called for each row, as Dataset() would.
    assert all(before <= d.imported_at <= timezone.now() + timedelta(seconds=1) for d in datasets)
    assert {(d.domain, d.n_users, d.is_implicit) for d in datasets} == {(Dataset.Domain.OTHER, 0, False)}

    insert_rows(Item, ["dataset", "external_id", "title"], [(datasets[0].pk, "i1", "One")])
    insert_rows(Item, ["dataset", "external_id", "title", "attributes"], [(datasets[0].pk, "i2", "Two", {"y": 1})])
    # JSON defaults go through the field's adaptation like given values do; given values win.
    assert dict(Item.objects.values_list("external_id", "attributes")) == {"i1": {}, "i2": {"y": 1}}


def test_a_field_without_a_default_is_still_required() -> None:
    with pytest.raises(IntegrityError):
        insert_rows(Dataset, ["name", "source", "licence_note"], [("d", "", "")])
