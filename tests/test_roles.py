"""Site roles are permission bundles kept in sync by migrate; demo accounts use them."""

import pytest
from django.contrib.auth.models import Group

from xrec_site.roles import ROLE_PERMISSIONS, demo_users_create, roles_sync, user_role_grant, user_roles

pytestmark = pytest.mark.django_db


def _perms(role: str) -> set[str]:
    return {f"{p.content_type.app_label}.{p.codename}" for p in Group.objects.get(name=role).permissions.all()}


def test_migrate_creates_the_three_groups_with_their_permissions() -> None:
    assert set(Group.objects.values_list("name", flat=True)) >= {"annotator", "researcher", "admin"}
    for role, expected in ROLE_PERMISSIONS.items():
        assert _perms(role) == set(expected)


def test_sync_restores_permissions_changed_by_hand() -> None:
    Group.objects.get(name="researcher").permissions.clear()

    roles_sync()
    roles_sync()

    assert _perms("researcher") == set(ROLE_PERMISSIONS["researcher"])


def test_demo_users_get_one_role_each_and_staff_only_where_needed() -> None:
    from django.contrib.auth import get_user_model

    demo_users_create(password="pw-123456")
    demo_users_create(password="pw-123456")  # idempotent

    users = {u.username: u for u in get_user_model().objects.all()}
    assert set(users) == {"annotator", "researcher", "admin"}
    assert {name: sorted(user_roles(u)) for name, u in users.items()} == {
        "annotator": ["annotator"],
        "researcher": ["researcher"],
        "admin": ["admin"],
    }
    assert not users["annotator"].is_staff and users["researcher"].is_staff and users["admin"].is_staff
    assert not any(u.is_superuser for u in users.values())
    assert users["admin"].check_password("pw-123456")


def test_unknown_role_is_refused() -> None:
    from tests.factories import UserFactory

    with pytest.raises(ValueError, match="unknown role 'owner'"):
        user_role_grant(user=UserFactory(), role="owner")
