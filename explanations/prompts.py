"""Personalised prompts: what the LLM is told about a user, their history and the item.

Only the train side of the recommender run's split ever reaches a prompt: the test side is
what the recommender is judged on, and an item the user is known to have rated later must
not leak into the "history" (the original study's histories did include held-out items).
Templates use Django's template language with autoescaping off: the output is plain text
for a model, and the context holds only plain values, so a template cannot reach code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from django.template import Context, Engine

from explanations.llm.base import Messages
from explanations.texts import natural_title
from recommendations.models import Dataset, DatasetUser, Interaction, Item, Recommendation, Split

ENGINE = Engine(autoescape=False, debug=False, builtins=[], libraries={})
# Attributes that say nothing about taste: links and raw dates.
HIDDEN_ATTRIBUTES = {"imdb_url", "release_date", "url"}
DOMAIN_NOUNS: dict[str, tuple[str, str, str]] = {
    Dataset.Domain.MOVIES: ("movie", "movies", "watched"),
    Dataset.Domain.GAMES: ("game", "games", "played"),
    Dataset.Domain.NEWS: ("news article", "news articles", "read"),
    Dataset.Domain.BOOKS: ("book", "books", "read"),
    Dataset.Domain.MUSIC: ("track", "tracks", "listened to"),
    Dataset.Domain.PRODUCTS: ("product", "products", "bought"),
}
GENDERS = {"M": "male", "F": "female"}


# How many train-side interactions are searched for items related to the target, and how many
# of the most related are shown: enough to find shared genres in a long history, few enough that a
# small model is not drowned in titles.
RELATED_SCAN = 200
RELATED_SHOWN = 3


@dataclass(frozen=True)
class Controls:
    history_length: int = 10
    max_words: int = 75
    aspects: tuple[str, ...] = ()
    tone: str = "neutral"
    second_person: bool = True
    include_profile: bool = True

    def run_fields(self) -> dict[str, Any]:
        """The controls as a generation run's fields (to create or find one)."""
        return asdict(self) | {"aspects": list(self.aspects)}

    @classmethod
    def of(cls, fields: dict[str, Any]) -> Controls:
        """The controls a generation run recorded (``GenerationRun.controls()``)."""
        return cls(**fields | {"aspects": tuple(fields["aspects"])})


def attributes_text(attributes: dict[str, Any], aspects: tuple[str, ...] = ()) -> str:
    """``"genres: Action, Sci-Fi; year: 1977"``, limited to ``aspects`` when given."""
    keys = [key for key in attributes if key not in HIDDEN_ATTRIBUTES and (not aspects or key in aspects)]
    parts = []
    for key in keys:
        value = attributes[key]
        text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        if text:
            parts.append(f"{key.replace('_', ' ')}: {text}")
    return "; ".join(parts)


def profile_text(profile: dict[str, Any]) -> str:
    """``"a 24-year-old male technician"`` from whatever profile fields the dataset has."""
    words = []
    group = profile.get("age_group")
    age = profile.get("age")
    if not group and isinstance(age, int):
        words.append(f"{age}-year-old")
    if gender := GENDERS.get(str(profile.get("gender", "")), ""):
        words.append(gender)
    occupation = str(profile.get("occupation", "")).strip()
    words.append(occupation if occupation and occupation not in {"other", "none"} else "person")
    if words == ["person"] and not group:
        return ""
    article = "an" if words[0][0].lower() in "aeiou8" else "a"
    return f"{article} {' '.join(words)}" + (f" aged {group.lower()}" if group else "")


def _item_context(item: Item, aspects: tuple[str, ...]) -> dict[str, Any]:
    year = item.attributes.get("year")
    return {
        "title": item.title or item.external_id,
        "name": natural_title(item.title) if item.title else item.external_id,
        "year": year if isinstance(year, int) else "",
        "attributes": item.attributes,
        "attributes_text": attributes_text(item.attributes, aspects),
        # The facts without the year (shown beside the title instead): "genres: Action, Sci-Fi".
        "facts_text": attributes_text({k: v for k, v in item.attributes.items() if k != "year"}, aspects),
    }


def _list_values(attributes: dict[str, Any], aspects: tuple[str, ...]) -> dict[str, set[str]]:
    return {
        key: {str(v) for v in value if str(v)}
        for key, value in attributes.items()
        if isinstance(value, list) and key not in HIDDEN_ATTRIBUTES and (not aspects or key in aspects)
    }


def related_history(
    item: Item, recent: list[Interaction], aspects: tuple[str, ...] = (), shown: int = RELATED_SHOWN
) -> list[dict[str, Any]]:
    """Of the user's train-side interactions ``recent`` (newest first, ``recent_train``), the
    items that share the most list-valued attributes (genres, tags…) with ``item``: among the
    ``RELATED_SCAN`` most recent other than ``item``, at most ``shown``, most shared values
    first, then the higher rated, then the more recent. Each comes with the values it shares,
    named (``shared_text``: "Action, Sci-Fi"), so a prompt can state the link as a fact."""
    target = _list_values(item.attributes, aspects)
    if not any(target.values()):
        return []
    scored = []
    for age, interaction in enumerate([i for i in recent if i.item_id != item.pk][:RELATED_SCAN]):
        own = _list_values(interaction.item.attributes, aspects)
        shared = [value for key, values in target.items() for value in sorted(values & own.get(key, set()))]
        if shared:
            rating = interaction.rating if interaction.rating is not None else 0.0
            scored.append((-len(shared), -rating, age, interaction, shared))
    scored.sort(key=lambda entry: entry[:3])
    return [
        _item_context(interaction.item, aspects)
        | {
            "rating": None if interaction.rating is None else f"{interaction.rating:g}",
            "shared": shared,
            "shared_text": ", ".join(shared),
        }
        for *_, interaction, shared in scored[:shown]
    ]


def recent_train(user: DatasetUser, split: Split | None, length: int) -> list[Interaction]:
    """The user's ``length`` most recent train-side interactions with their items, newest first.

    ``split`` None (lists imported without one) is the user's whole history: all the outside
    recommender could have seen."""
    history = Interaction.objects.history_of(user)
    if split is not None:
        history = history.in_train_of(split)
    return list(history.order_by("-timestamp", "-id")[:length])


def history_for(user: DatasetUser, split: Split | None, length: int) -> list[Interaction]:
    """The user's ``length`` most recent train-side interactions, oldest first."""
    return list(reversed(recent_train(user, split, length)))


def prompt_context(recommendation: Recommendation, split: Split | None, controls: Controls) -> dict[str, Any]:
    """Everything a template may use, as plain values."""
    user, item, dataset = recommendation.user, recommendation.item, recommendation.item.dataset
    noun, nouns, verb = DOMAIN_NOUNS.get(dataset.domain, ("item", "items", "chose"))
    # One read serves the history shown and the search for related items (+1: the recommended
    # item itself is skipped there, should it be in the history).
    recent = recent_train(user, split, max(controls.history_length, RELATED_SCAN + 1))
    history = [
        _item_context(interaction.item, controls.aspects)
        | {"rating": None if interaction.rating is None else f"{interaction.rating:g}"}
        for interaction in reversed(recent[: controls.history_length])
    ]
    return {
        "user_id": user.external_id,
        "profile": user.profile if controls.include_profile else {},
        "profile_text": profile_text(user.profile) if controls.include_profile else "",
        "history": history,
        "related": related_history(item, recent, controls.aspects),
        "item": _item_context(item, controls.aspects),
        "domain": noun,
        "domain_plural": nouns,
        "verb_past": verb,
        "rating_max": f"{dataset.rating_max:g}" if dataset.rating_max is not None else "",
        "max_words": controls.max_words,
        "tone": controls.tone,
        "aspects": list(controls.aspects),
        "aspects_text": ", ".join(a.replace("_", " ") for a in controls.aspects),
        "second_person": controls.second_person,
    }


def render(system_text: str, user_text: str, context: dict[str, Any]) -> Messages:
    """Chat messages from a template's two parts; an empty system part is left out."""
    messages: Messages = []
    system = ENGINE.from_string(system_text).render(Context(context)).strip() if system_text else ""
    if system:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": ENGINE.from_string(user_text).render(Context(context)).strip()})
    return messages


# --- built-in templates ----------------------------------------------------------------------

_TONE = (
    "{% if tone == 'warm' %}Be warm and friendly.{% elif tone == 'enthusiastic' %}Be enthusiastic."
    "{% else %}Keep a neutral, factual tone.{% endif %}"
)
_HISTORY = (
    "{% for h in history %}- {{ h.title }}{% if h.attributes_text %} ({{ h.attributes_text }}){% endif %}"
    "{% if h.rating %}: rated {{ h.rating }}{% endif %}\n{% endfor %}"
)

_RELATED = (
    "{% for r in related %}- {{ r.name }}{% if r.year %} ({{ r.year }}){% endif %}: also {{ r.shared_text }}"
    "{% if r.rating %}; they rated it {{ r.rating }}{% if rating_max %} out of {{ rating_max }}{% endif %}"
    "{% endif %}\n{% endfor %}"
)

# Built-in templates, oldest version of a name first: each is installed as the next version of
# its name, so a database keeps every earlier text and runs of two versions can be compared.
BUILTIN_TEMPLATES: list[dict[str, str]] = [
    {
        "name": "xrec-default",
        "description": "xrec's first template (v1): the train history as a list, controllable length, tone, "
        "aspects and address; asks for a link to specific past items.",
        "system_text": (
            "You explain recommendations to people. Use only the facts you are given; never invent plot, "
            "cast or facts. " + _TONE + ' {% if second_person %}Address the person directly as "you".'
            "{% else %}Write about the person in the third person.{% endif %} Answer with the explanation "
            "only, in plain prose, in at most {{ max_words }} words."
        ),
        "user_text": (
            "{% if profile_text %}The person is {{ profile_text }}.\n{% endif %}"
            "{{ domain_plural|capfirst }} they {{ verb_past }} recently, oldest first"
            "{% if rating_max %} (ratings out of {{ rating_max }}){% endif %}:\n" + _HISTORY + "\n"
            "Recommended {{ domain }}: {{ item.title }}{% if item.attributes_text %} ({{ item.attributes_text }})"
            "{% endif %}.\n{% if aspects %}Focus on: {{ aspects_text }}.\n{% endif %}"
            "In at most {{ max_words }} words, explain why this {{ domain }} suits "
            "{% if second_person %}them, speaking to them as you{% else %}this person{% endif %}, "
            "naming one or two {{ domain_plural }} from the list that it connects to."
        ),
    },
    {
        "name": "xrec-default",
        "description": "xrec's grounded template (v2): the item's title, year and attributes, and the few "
        "history items that share the most attributes with it, the shared ones named; asks the model to "
        "use only those facts and to name one of them.",
        "system_text": (
            "You write short explanations of recommendations. Use only the facts in the message. Never invent "
            "plot, actors, awards or other titles. " + _TONE + " {% if second_person %}Address the person "
            'directly as "you".{% else %}Write about the person in the third person.{% endif %} Answer in plain '
            "prose, at most {{ max_words }} words."
        ),
        "user_text": (
            "{% if profile_text %}The person is {{ profile_text }}.\n{% endif %}"
            "Recommended {{ domain }}: {{ item.name }}{% if item.year %} ({{ item.year }}){% endif %}"
            "{% if item.facts_text %}; {{ item.facts_text }}{% endif %}.\n"
            "{% if related %}{{ domain_plural|capfirst }} they {{ verb_past }} that share these facts:\n"
            + _RELATED
            + ""
            "{% else %}{{ domain_plural|capfirst }} they {{ verb_past }} recently:\n" + _HISTORY + "{% endif %}"
            "{% if aspects %}Focus on: {{ aspects_text }}.\n{% endif %}"
            "In one or two sentences, explain why {{ item.name }} suits "
            "{% if second_person %}them, speaking to them as you{% else %}this person{% endif %}. "
            "Mention what it has in common with "
            "{% if related %}{{ related.0.name }}{% else %}a {{ domain }} from the list{% endif %}."
        ),
    },
    {
        "name": "llmxrec-movielens",
        "description": "Baseline in the style of the LLMXRec study's MovieLens prompt: history with "
        "ratings, the recommended movie, a word limit. Not the paper's verbatim text.",
        "system_text": "",
        "user_text": (
            "You are a movie recommender system. The user has watched the following movies and rated them "
            "(1 to {{ rating_max|default:'5' }}):\n" + _HISTORY + "{% if profile_text %}The user is "
            "{{ profile_text }}.\n{% endif %}Based on the user's history, the system recommends the movie "
            '"{{ item.title }}"{% if item.attributes_text %} ({{ item.attributes_text }}){% endif %}. '
            "Explain why this movie is recommended to the user, in no more than {{ max_words }} words."
        ),
    },
    {
        "name": "llmxrec-steam",
        "description": "Baseline in the style of the LLMXRec study's Steam prompt (games the user played).",
        "system_text": "",
        "user_text": (
            "You are a game recommender system on a gaming platform. The user has played the following "
            "games:\n" + _HISTORY + 'The system recommends the game "{{ item.title }}"'
            "{% if item.attributes_text %} ({{ item.attributes_text }}){% endif %}. Explain why this game is "
            "recommended to the user, in no more than {{ max_words }} words."
        ),
    },
    {
        "name": "llmxrec-mind",
        "description": "Baseline in the style of the LLMXRec study's MIND prompt (news the user clicked).",
        "system_text": "",
        "user_text": (
            "You are a news recommender system. The user has recently clicked the following news "
            "articles:\n" + _HISTORY + 'The system recommends the article "{{ item.title }}"'
            "{% if item.attributes_text %} ({{ item.attributes_text }}){% endif %}. Explain why this article "
            "is recommended to the user, in no more than {{ max_words }} words."
        ),
    },
]
