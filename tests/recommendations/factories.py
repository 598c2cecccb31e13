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
