"""Benchmark: creating a claims campaign over 30,000 explanations, against a Likert one over the same.

Run as ``python -m tests.perf.bench_review``. It sets Django up on its own database as
``bench_report`` does (a SQLite file under a fresh temporary folder, or a database
``xrec_bench_review`` on the PostgreSQL server of ``DATABASE_URL``, created and dropped here)
and writes that benchmark's data (``bench_report.load_study``: 3,000 users, two generation runs
of 15,000 explanations each with their prompts). Each explanation then gets three more
sentences, so it makes five claims ("… It has a strong cast and it keeps you guessing because
the story twists. …").

Timed, each on a fresh campaign over every explanation of both runs (30,000 pool items and 2
attention checks), in this order:

- ``likert_create_seconds``: ``campaign_create`` of a Likert campaign: sampling, items and the
  privacy scan of everything annotators would see (the baseline);
- ``claims_create_seconds``: the same as a claims campaign, which also splits every explanation
  and writes its claims; ``claims_over_likert`` is the ratio of the two;
- ``reidentification_seconds``: the campaign page's re-identification estimate for the claims
  campaign;
- ``split_page_seconds``: the claims preview page (first page, 25 items) as a researcher GETs it.

Figures on the last line as one JSON object, with the machine.
"""

from __future__ import annotations

import json
import os
import random
import time
from typing import Any

from tests.perf.bench_annotate import describe_machine, load_average
from tests.perf.bench_report import SEED, load_study
from tests.perf.database import bench_django

BENCH_DATABASE = "xrec_bench_review"
MORE_SENTENCES = " It has a strong cast and it keeps you guessing because the story twists. Enjoy it!"


def log(message: str) -> None:
    print(f"[bench_review] {message}", flush=True)


def measure(generation_run_ids: list[int]) -> dict[str, Any]:
    from django.db.models import F, Value
    from django.db.models.functions import Concat
    from django.test import Client
    from django.urls import reverse

    from annotation.models import Campaign, ItemClaim
    from annotation.services.campaigns import campaign_create
    from annotation.services.privacy import campaign_reidentification
    from explanations.models import Explanation, GenerationRun
    from tests.factories import UserFactory
    from xrec_site.roles import RESEARCHER, roles_sync

    runs = list(GenerationRun.objects.filter(pk__in=generation_run_ids).order_by("pk"))
    Explanation.objects.filter(generation_run__in=runs).update(text=Concat(F("text"), Value(MORE_SENTENCES)))
    figures: dict[str, Any] = {}
    campaigns = {}
    for mode in (Campaign.Mode.LIKERT, Campaign.Mode.CLAIMS):
        started = time.perf_counter()
        campaigns[mode] = campaign_create(created_by=None, name=f"bench {mode}", generation_runs=runs, mode=mode)
        figures[f"{mode}_create_seconds"] = round(time.perf_counter() - started, 2)
        log(f"  {mode} campaign: {figures[f'{mode}_create_seconds']} s")
    claims = campaigns[Campaign.Mode.CLAIMS]
    figures["pool_items"] = claims.items.filter(kind="regular").count()
    figures["claims"] = ItemClaim.objects.filter(item__campaign=claims).count()
    figures["privacy_flags"] = claims.privacy_flags.count()
    figures["claims_over_likert"] = round(figures["claims_create_seconds"] / figures["likert_create_seconds"], 2)

    started = time.perf_counter()
    estimate = campaign_reidentification(claims)
    figures["reidentification_seconds"] = round(time.perf_counter() - started, 2)
    figures["longest_safe_length"] = estimate["longest_safe_length"]

    roles_sync()
    client = Client()
    researcher: Any = UserFactory(username="bench-researcher", role=RESEARCHER)
    client.force_login(researcher)
    url = reverse("annotation:campaign_claims", args=[claims.pk])
    client.get(url, secure=True)  # templates compiled, permissions cached
    started = time.perf_counter()
    response = client.get(url, secure=True)
    figures["split_page_seconds"] = round(time.perf_counter() - started, 3)
    assert response.status_code == 200, response.status_code
    assert b"Adjust the split" in response.content
    return figures


def main() -> None:
    load_before = load_average()
    with bench_django("review", BENCH_DATABASE, log) as work:
        machine = describe_machine()
        log(f"machine: {machine}; load average {load_before}; temporary folder {work}")
        database = "postgresql" if os.environ.get("DATABASE_URL") else "sqlite"
        study = load_study(random.Random(SEED))
        figures = measure(study.generation_run_ids)
    print(json.dumps({"benchmark": "review", "database": database, "machine": machine} | figures), flush=True)


if __name__ == "__main__":
    main()
