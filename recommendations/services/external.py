"""Recommender runs of kind "external": ranked lists computed elsewhere, imported whole.

The file is read and checked first (``recommendations.external``), then every user and item is
looked up in the dataset; an unknown one is refused with its line and nothing is written. The
run records where its lists came from (model label, file name, sha256, rows, layout), so every
explanation, campaign and report built on it can say so. When a split is named, the lists are
scored against its test side like a trained run's, and the number of recommended pairs the user
already has on the train side is reported (a sign that the lists were made on other data).
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.db import transaction
from django.utils import timezone

from recommendations.external import ExternalLists, read_lists
from recommendations.importers import ImportFailed
from recommendations.models import Dataset, DatasetUser, Interaction, Item, Recommendation, RecommenderRun
from recommendations.services.splits import SplitError, split_get_or_create, split_parts
from recommendations.services.training import list_metrics
from recommendations.shared.bulk import insert_rows

MAX_LIST = 1000  # as for trained runs' K


def external_run_import(
    *,
    dataset: Dataset,
    name: str,
    data: bytes,
    file_name: str,
    label: str = "",
    split_options: dict[str, Any] | None = None,
    relevance_threshold: float = 4.0,
    created_by: Any = None,
) -> RecommenderRun:
    """Import ranked lists from ``data`` as a SUCCEEDED run named ``name`` on ``dataset``.

    ``label`` names the model that made them (LightGCN, SASRec...); ``split_options`` (as for
    training) names the split to score them against. Raises ImportFailed, naming the line, for
    a bad file, an unknown user or item, a list longer than 1000 or a split that cannot be
    made; nothing is written then.
    """
    name = name.strip()
    if not name or len(name) > 200:
        raise ImportFailed("give the run a name of 1 to 200 characters")
    lists = read_lists(data, name=file_name)
    users, items = _lookup(dataset, lists, file_name)
    longest = max(len(ranked.items) for ranked in lists.lists)
    if longest > MAX_LIST:
        ranked = next(r for r in lists.lists if len(r.items) == longest)
        raise ImportFailed(f"{file_name} line {ranked.line}: {longest} items for one user; at most {MAX_LIST}")
    split = None
    if split_options:
        try:
            split = split_get_or_create(dataset=dataset, **split_options)
        except SplitError as exc:
            raise ImportFailed(f"cannot score against that split: {exc}") from None

    recommended = {users[ranked.user]: [items[item] for item in ranked.items] for ranked in lists.lists}
    now = timezone.now()
    with transaction.atomic():
        run = RecommenderRun.objects.create(
            created_by=created_by,
            dataset=dataset,
            kind=RecommenderRun.Kind.EXTERNAL,
            name=name,
            algorithm=(label.strip() or "external")[:40],
            split=split,
            split_options=dict(split_options or {}),
            k=longest,
            relevance_threshold=relevance_threshold,
            source={
                "label": label.strip(),
                "file": file_name,
                "sha256": hashlib.sha256(data).hexdigest(),
                "rows": lists.n_rows,
                "users": len(lists.lists),
                "layout": lists.layout,
                "scores": "from the file" if lists.scored else "1/rank (the file gave ranks only)",
            },
            started_at=now,
        )
        rows: list[tuple[int, int, int, int, float]] = []
        for ranked in lists.lists:
            scores = ranked.scores or [1.0 / rank for rank in range(1, len(ranked.items) + 1)]
            user = users[ranked.user]
            rows.extend(
                (run.pk, user, items[item], rank, score)
                for rank, (item, score) in enumerate(zip(ranked.items, scores, strict=True), 1)
            )
        insert_rows(Recommendation, ["run", "user", "item", "rank", "score"], rows)
        test = None
        results: dict[str, Any] = {"rating": None, "feedback": {"kind": "external"}}
        if split is not None:
            _, test = split_parts(split)
            results |= {"n_train": split.n_train, "n_test": split.n_test}
        results["n_recommended_seen"] = _seen_pairs(dataset, recommended, split)
        run.mark_succeeded(metrics=list_metrics(run, recommended, test) | results)
    return run


def _lookup(dataset: Dataset, lists: ExternalLists, file_name: str) -> tuple[dict[str, int], dict[str, int]]:
    """External id → primary key of the dataset's users and items the file names; an unknown
    one is refused with the first line it appears on."""
    named_users = {ranked.user for ranked in lists.lists}
    named_items = {item for ranked in lists.lists for item in ranked.items}
    users = dict(
        DatasetUser.objects.filter(dataset=dataset, external_id__in=named_users).values_list("external_id", "pk")
    )
    items = dict(Item.objects.filter(dataset=dataset, external_id__in=named_items).values_list("external_id", "pk"))
    for ranked in lists.lists:
        if ranked.user not in users:
            raise ImportFailed(f"{file_name} line {ranked.line}: no user {ranked.user!r} in {dataset.name}")
        for item, line in zip(ranked.items, ranked.item_lines, strict=True):
            if item not in items:
                raise ImportFailed(f"{file_name} line {line}: no item {item!r} in {dataset.name}")
    return users, items


def _seen_pairs(dataset: Dataset, recommended: dict[int, list[int]], split: Any) -> int:
    """Recommended pairs the user already interacted with (on the train side, with a split)."""
    history = Interaction.objects.of_dataset(dataset).filter(user_id__in=list(recommended))
    if split is not None:
        history = history.in_train_of(split)
    pairs = set(history.values_list("user_id", "item_id"))
    return sum((user, item) in pairs for user, items in recommended.items() for item in items)
