"""select_models turns a hand-written join into the instances the ORM would have built."""

import pytest
from django.db import connection
from django.db.models.query_utils import DeferredAttribute

from recommendations.models import Dataset, DatasetUser, Item
from recommendations.shared.select import Layout, select_models, table

pytestmark = pytest.mark.django_db


def test_rows_become_instances_with_values_converted_as_the_orm_does() -> None:
    dataset = Dataset.objects.create(name="d", source="", licence_note="", import_format="csv")
    Item.objects.create(dataset=dataset, external_id="i1", title="Heat <1995>", attributes={"genres": ["Crime"]})
    layouts = (Layout(Dataset, "d"), Layout(Item, "i", ["id", "title", "attributes"]))
    sql = (
        f"SELECT {layouts[0].columns}, {layouts[1].columns} FROM {table(Dataset)} d"
        f" INNER JOIN {table(Item)} i ON i.dataset_id = d.id WHERE i.external_id = %s"
    )

    [(read_dataset, item)] = select_models(sql, ["i1"], layouts)

    expected = Dataset.objects.get(pk=dataset.pk)
    # Every concrete field as the ORM reads it: dates parsed (SQLite stores text), JSON decoded.
    for field in Dataset._meta.concrete_fields:
        assert getattr(read_dataset, field.attname) == getattr(expected, field.attname), field.name
    assert item.title == "Heat <1995>" and item.attributes == {"genres": ["Crime"]}
    assert item._state.adding is False and item._state.db == connection.alias
    # A field the layout leaves out is deferred, read on access as with QuerySet.only.
    assert "external_id" in item.get_deferred_fields()
    assert isinstance(Item.__dict__["external_id"], DeferredAttribute)
    assert item.external_id == "i1"


def test_an_outer_joined_row_that_is_missing_is_none() -> None:
    dataset = Dataset.objects.create(name="d", source="", licence_note="", import_format="csv")
    user = DatasetUser.objects.create(dataset=dataset, external_id="u1")
    layouts = (Layout(DatasetUser, "u", ["id", "external_id"]), Layout(Item, "i", ["id", "title"]))
    sql = (
        f"SELECT {layouts[0].columns}, {layouts[1].columns} FROM {table(DatasetUser)} u"
        f" LEFT JOIN {table(Item)} i ON i.dataset_id = u.dataset_id WHERE u.id = %s"
    )

    assert [(row[0].pk, row[1]) for row in select_models(sql, [user.pk], layouts)] == [(user.pk, None)]


def test_a_layout_without_the_primary_key_is_refused() -> None:
    with pytest.raises(ValueError, match="primary key"):
        _ = Layout(Item, "i", ["title"]).fields
