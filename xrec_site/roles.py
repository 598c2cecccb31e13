"""Site roles: three groups of Django permissions, kept in sync after every migrate.

Views check permissions, never group names, so a role is only a bundle of permissions.
Researchers and admins are staff so they can open the Django admin; what they may do
there follows from the same permissions (researchers only view).
"""

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

ANNOTATOR = "annotator"
RESEARCHER = "researcher"
ADMIN = "admin"
ROLES = (ANNOTATOR, RESEARCHER, ADMIN)
STAFF_ROLES = frozenset({RESEARCHER, ADMIN})
# The roles an admin (who is not a superuser) may give or take away in the user admin.
GRANTABLE_ROLES = (ANNOTATOR, RESEARCHER)

_DATA_MODELS = (
    "dataset",
    "item",
    "datasetuser",
    "interaction",
    "importjob",
    "split",
    "splittestinteraction",
    "recommenderrun",
    "recommendation",
)

_EXPLANATION_MODELS = (
    "generator", "prompttemplate", "generationrun", "explanation", "adaptertraining", "judgerun", "judgeverdict",
    "attributeprobe", "probeanswer", "textmetrics", "claimcheck", "checkedclaim",
)  # fmt: skip

_ANNOTATION_MODELS = (
    "campaign", "criterion", "campaignitem", "participant", "assignment", "rating", "ratingrevision", "submission",
    "privacyflag", "itemclaim", "claimlabel",
)  # fmt: skip

ROLE_PERMISSIONS: dict[str, list[str]] = {
    # Annotators only take part in campaigns; what they see is limited to their own work.
    ANNOTATOR: ["annotation.annotate"],
    # Researchers read everything, train recommenders and run campaigns; importing data is for admins.
    # In the Django admin they only view: the site's own permissions (train_recommender,
    # run_campaign) let them act through the services, which keep rows consistent.
    RESEARCHER: [f"recommendations.view_{model}" for model in _DATA_MODELS]
    + ["recommendations.train_recommender"]
    + [f"explanations.view_{model}" for model in _EXPLANATION_MODELS]
    + [f"annotation.view_{model}" for model in _ANNOTATION_MODELS]
    + ["annotation.run_campaign", "annotation.annotate"],
    ADMIN: [
        f"recommendations.{action}_{model}" for model in _DATA_MODELS for action in ("view", "add", "change", "delete")
    ]
    # Admins start generation and tuning jobs (GPU time) and manage generators.
    + [
        f"explanations.{action}_{model}"
        for model in _EXPLANATION_MODELS
        for action in ("view", "add", "change", "delete")
    ]
    + [f"annotation.{action}_{model}" for model in _ANNOTATION_MODELS for action in ("view", "add", "change", "delete")]
    + ["recommendations.train_recommender", "annotation.run_campaign", "annotation.annotate"]
    # Admins manage annotator and researcher accounts in the Django admin; what they may
    # change there is narrowed further by xrec_site.admin (no staff, superuser or admin grants).
    + ["auth.view_user", "auth.add_user", "auth.change_user", "auth.view_group"],
}


def _permission(dotted: str) -> Permission:
    app_label, codename = dotted.split(".", 1)
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


@transaction.atomic
def roles_sync() -> None:
    """Create the three groups and set each one's permissions to exactly ROLE_PERMISSIONS.

    Idempotent; runs after every ``migrate``. A permission that no longer exists is a bug
    in ROLE_PERMISSIONS and raises ``Permission.DoesNotExist``.
    """
    for role, dotted_names in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.set([_permission(name) for name in dotted_names])


def user_role_grant(*, user: Any, role: str) -> None:
    """Put ``user`` in ``role``'s group; researchers and admins also become staff."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
    user.groups.add(Group.objects.get(name=role))
    if role in STAFF_ROLES and not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])


def demo_users_create(*, password: str) -> dict[str, str]:
    """Ensure one account per role, named after the role, with ``password``. Idempotent.

    Returns username → role. Existing accounts get the password reset and the role granted.
    """
    User = get_user_model()
    roles_sync()
    created = {}
    for role in ROLES:
        user, _ = User.objects.get_or_create(username=role, defaults={"email": f"{role}@example.org"})
        user.set_password(password)
        user.save()
        user_role_grant(user=user, role=role)
        created[user.get_username()] = role
    return created


def user_roles(user: Any) -> set[str]:
    if not user.is_authenticated:
        return set()
    names = set(user.groups.values_list("name", flat=True))
    if user.is_superuser:
        names.add(ADMIN)
    return names & set(ROLES)


def roles_context(request: HttpRequest) -> dict[str, Any]:
    """Template context: ``roles``, the sorted role names of the signed-in user, read only if a
    template shows them (an htmx partial, such as the next item after a rating, does not)."""
    return {"roles": SimpleLazyObject(lambda: sorted(user_roles(request.user)))}
