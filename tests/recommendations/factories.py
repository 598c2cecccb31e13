import factory

from recommendations.models import Dataset, DatasetUser, Interaction, Item


class DatasetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Dataset

    name = factory.Sequence(lambda n: f"dataset-{n}")
    domain = Dataset.Domain.MOVIES
    import_format = "csv"


class ItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Item

    dataset = factory.SubFactory(DatasetFactory)
    external_id = factory.Sequence(str)
    title = factory.Sequence(lambda n: f"Item {n}")
    attributes = factory.LazyFunction(lambda: {"genres": ["Drama"], "year": 1999})


class DatasetUserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DatasetUser

    dataset = factory.SubFactory(DatasetFactory)
    external_id = factory.Sequence(str)
    profile = factory.LazyFunction(lambda: {"age": 30, "gender": "F"})


class InteractionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Interaction

    dataset = factory.SubFactory(DatasetFactory)
    user = factory.SubFactory(DatasetUserFactory, dataset=factory.SelfAttribute("..dataset"))
    item = factory.SubFactory(ItemFactory, dataset=factory.SelfAttribute("..dataset"))
    rating = 4.0
    timestamp = factory.Sequence(lambda n: 880_000_000 + n)


def rated_dataset(
    *,
    name: str = "rated",
    n_users: int = 30,
    n_items: int = 25,
    per_user: int = 8,
    seed: int = 0,
    timestamps: bool = True,
    ratings: bool = True,
) -> Dataset:
    """A small explicit dataset written through the real import path, seeded.

    Every user rates ``per_user`` distinct items on a 1-5 scale at increasing times
    (``ratings=False``: the same events without ratings, an implicit dataset).
    """
    import random

    from recommendations.importers import ParsedDataset
    from recommendations.services import dataset_import

    rng = random.Random(seed)
    parsed = ParsedDataset(format="csv", source="factory", domain="movies")
    parsed.items = {
        str(i): (f"Item {i}", {"genres": [rng.choice(["Drama", "Comedy", "Horror"])]}) for i in range(n_items)
    }
    parsed.users = {str(u): {"age": 20 + u} for u in range(n_users)}
    clock = 1_000_000
    for user in range(n_users):
        for item in rng.sample(range(n_items), per_user):
            clock += rng.randint(1, 100)
            rating = float(rng.randint(1, 5))
            parsed.interactions.append(
                (str(user), str(item), rating if ratings else None, clock if timestamps else None)
            )
    return dataset_import(parsed=parsed, name=name)
