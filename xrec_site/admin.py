"""The user admin, narrowed for the admin role.

The admin role manages the accounts of annotators and researchers. Without a limit, its
``auth.change_user`` permission would let it make anyone a superuser, grant itself any
permission, or reset another admin's password. Superusers keep Django's full user admin.
"""

from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import AbstractUser, Group
from django.db.models import ManyToManyField, Q, QuerySet
from django.forms import ModelForm, ModelMultipleChoiceField
from django.http import HttpRequest

from xrec_site.roles import GRANTABLE_ROLES, RESEARCHER, STAFF_ROLES

User = get_user_model()

# Fields only a superuser may set: staff follows from the roles (see save_related), and single
# permissions outside the role bundles are how a role would be escalated.
_SUPERUSER_FIELDS = frozenset({"is_superuser", "is_staff", "user_permissions"})


def _is_superuser(request: HttpRequest) -> bool:
    return bool(getattr(request.user, "is_superuser", False))


admin.site.unregister(User)


@admin.register(User)
class RoleUserAdmin(UserAdmin):
    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        users = super().get_queryset(request)
        if _is_superuser(request):
            return users
        # Superusers and staff outside the grantable roles (other admins) are out of reach:
        # not listed, not editable, and their password cannot be reset from here.
        # So are accounts a superuser gave single permissions or a group outside the roles:
        # resetting their password would hand those over, and saving them would drop the group.
        researchers = User.objects.filter(groups__name=RESEARCHER).values("pk")
        return (
            users.exclude(is_superuser=True)
            .exclude(groups__in=Group.objects.exclude(name__in=GRANTABLE_ROLES))
            .exclude(user_permissions__isnull=False)
            .exclude(Q(is_staff=True) & ~Q(pk__in=researchers))
        )

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if _is_superuser(request):
            return fieldsets
        return [
            (name, {**options, "fields": [f for f in options["fields"] if f not in _SUPERUSER_FIELDS]})
            for name, options in fieldsets
        ]

    def formfield_for_manytomany(
        self, db_field: ManyToManyField[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> ModelMultipleChoiceField | None:
        if db_field.name == "groups" and not _is_superuser(request):
            kwargs["queryset"] = Group.objects.filter(name__in=GRANTABLE_ROLES)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def save_related(self, request: HttpRequest, form: ModelForm[Any], formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        if _is_superuser(request):
            return
        user: AbstractUser = form.instance
        # Researchers open the admin (read-only); annotators never do.
        staff = user.groups.filter(name__in=STAFF_ROLES).exists()
        if user.is_staff != staff:
            user.is_staff = staff
            user.save(update_fields=["is_staff"])
