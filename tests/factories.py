"""factory_boy factories for site accounts (shared by every app's tests)."""

from typing import Any

import factory
from django.contrib.auth import get_user_model

from xrec_site.roles import user_role_grant

PASSWORD = "correct horse battery staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.org")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def role(obj: Any, create: bool, extracted: Any, **kwargs: Any) -> None:
        obj.save()
        if create and extracted:
            user_role_grant(user=obj, role=extracted)
