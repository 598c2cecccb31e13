"""Benchmark: 50 annotators rating at once against a real server, on a campaign of realistic size.

Run as ``python -m tests.perf.bench_annotate`` with ``DATABASE_URL`` naming a PostgreSQL server
(the campaign locks rows; SQLite is not what a crowd study runs on); without one it uses
``XREC_BENCH_POSTGRES_URL`` or the local server at 127.0.0.1:5432. It creates a database
``xrec_bench_annotate`` there and drops it at the end; it refuses to start if that database
already exists, so it never drops one it did not create. Options: ``--routing`` (``random``, the
default, or ``uncertainty``: the campaign is routed and its priorities refreshed once before the
load, timed as ``routing_refresh_seconds``), ``--seconds`` (measured load, default 60),
``--annotators`` (default 50), ``--think-ms`` (mean pause between an annotator's actions,
default 2000: about ten times the pace of people reading a history and rating three criteria, so
the server is loaded; 0 finds the throughput limit).

Data, written with ``recommendations.shared.bulk.insert_rows`` (COPY): 10,000 dataset users with 30
interactions each (300,000) over 4,000 items and a leave-last-out split; one recommender run with
top-10 lists (100,000 recommendations); two generation runs explaining the top 5 (100,000
explanations); one Likert campaign (3 criteria, k = 3) whose pool holds every explanation plus
2 attention checks; 1,000 earlier annotators with 100,000 submitted assignments, their
submissions and 300,000 ratings. Then gunicorn serves the site and each simulated annotator,
signed in through a session row, opens the campaign, and answers item after item the way the
browser does: an htmx POST of the answer form that swaps in the next item, with a full page
load (a reload) before every fourth item.

Figures, on the last line as one JSON object, from the ``Server-Timing`` header each response
carries (Django's own time, without network or queueing in front of the workers):
``p50_ms``/``p95_ms``/``p99_ms`` over all measured requests, the same per kind (``page``: the
rating page GET; ``submit``: the answer POST, which also claims and renders the next item;
``next``: the campaign entry GET that redirects to the current item), ``client_p95_ms``
(wall time seen by the client), ``requests_per_second``, and ``goal_met`` for the goal
server-side p95 < 50 ms and p99 < 150 ms. After the load it checks that no item has more than k
live assignments and every ``n_live`` matches (``overlap_violations``), and times the
researcher's campaign page data (``monitor_seconds``: progress, annotators, alpha over all rows).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from tests.perf.database import create_bench_database, drop_bench_database
from tests.perf.machine import describe_machine as describe_host

SEED = 20_240_617
BENCH_DATABASE = "xrec_bench_annotate"
GOAL_P95_MS = 50.0
GOAL_P99_MS = 150.0

N_USERS = 10_000
N_ITEMS = 4_000
PER_USER = 30
TOP_K = 10
DEPTH = 5
N_GENERATION_RUNS = 2
OVERLAP = 3
EARLIER_ANNOTATORS = 1_000
EARLIER_ASSIGNMENTS = 100_000
RELOAD_EVERY = 4
# Unmeasured seconds at the start: every worker compiles its templates on its first request.
WARMUP_SECONDS = 5.0
# Sync workers, one request each at a time. Requests are CPU-bound (Python, and PostgreSQL on
# the same 2 cores): one worker per core plus one to cover waits on the database. More workers
# only time-slice the cores; a request waiting for a worker queues in the socket backlog, which
# the client-side figures include and the server-side ones do not.
GUNICORN_WORKERS = 3

CRITERIA = [
    ("reasonability", "Is the explanation reasonable?"),
    ("attractiveness", "Does the explanation make the item attractive?"),
    ("non_redundancy", "Is the explanation free of repetition and filler?"),
]
WORDS = [
    "story", "characters", "pacing", "soundtrack", "atmosphere", "humour", "twist", "direction", "cast",
    "visuals", "drama", "suspense", "dialogue", "ending", "world", "style", "heart", "tension",
]  # fmt: skip


def log(message: str) -> None:
    print(f"[bench_annotate] {message}", flush=True)


# --- database set-up -------------------------------------------------------------------------


def describe_machine() -> str:
    from django.db import connection

    version = ".".join(map(str, connection.get_database_version()))
    return f"{describe_host()}, {connection.vendor} {version}"


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


# --- synthetic data --------------------------------------------------------------------------


@dataclass
class Study:
    campaign_id: int
    sessions: list[str]  # one session key per simulated annotator
    rows: dict[str, int]


def _ids(model: Any, key: str, **filters: Any) -> dict[Any, int]:
    return dict(model.objects.filter(**filters).values_list(key, "pk"))


def _users(prefix: str, count: int) -> list[int]:
    """``count`` site accounts without a usable password; their ids in order."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from recommendations.shared.bulk import insert_rows

    user_model = get_user_model()
    now = timezone.now()
    names = [f"{prefix}{index:05d}" for index in range(count)]
    fields = ["password", "is_superuser", "username", "first_name", "last_name", "email", "is_staff", "is_active"]
    insert_rows(
        user_model,
        [*fields, "date_joined"],
        ((f"!{uuid.uuid4().hex}", False, name, "", "", "", False, True, now) for name in names),
    )
    by_name = _ids(user_model, "username", username__startswith=prefix)
    return [by_name[name] for name in names]


def load_study(rng: random.Random, annotators: int, routing: str = "random") -> Study:
    """Write the dataset, runs, campaign, earlier annotators' work and the bench annotators'
    accounts and sessions; return the campaign id and one session key per annotator."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.auth.models import Group
    from django.contrib.sessions.backends.db import SessionStore
    from django.db import connection, transaction
    from django.db.models import Count, OuterRef, Subquery
    from django.db.models.functions import Coalesce
    from django.utils import timezone

    from annotation.models import (
        Assignment,
        Campaign,
        CampaignItem,
        Criterion,
        Participant,
        Rating,
        Submission,
    )
    from explanations.models import Explanation, GenerationRun, Generator
    from explanations.services.generators import prompt_templates_ensure_builtin
    from recommendations.models import (
        Dataset,
        DatasetUser,
        Interaction,
        Item,
        Recommendation,
        RecommenderRun,
        Split,
        SplitTestInteraction,
    )
    from recommendations.shared.bulk import insert_rows
    from xrec_site.roles import ANNOTATOR

    now = timezone.now()
    rows: dict[str, int] = {}
    started = time.perf_counter()

    def done(label: str, count: int) -> None:
        rows[label] = count
        log(f"  +{time.perf_counter() - started:5.1f}s {label}: {count:,}")

    with transaction.atomic():
        dataset = Dataset.objects.create(
            name="bench", domain=Dataset.Domain.MOVIES, import_format="csv", rating_min=1, rating_max=5
        )
        titles = [
            f"{' '.join(rng.sample(WORDS, 2)).title()} {index} ({rng.randint(1950, 2020)})" for index in range(N_ITEMS)
        ]
        insert_rows(
            Item,
            ["dataset", "external_id", "title", "attributes"],
            (
                (dataset.pk, str(index), title, {"genres": rng.sample(["Drama", "Comedy", "Horror", "Action"], 2)})
                for index, title in enumerate(titles)
            ),
        )
        item_ids = _ids(Item, "external_id", dataset=dataset)
        insert_rows(
            DatasetUser,
            ["dataset", "external_id", "profile"],
            ((dataset.pk, str(user), {"age": rng.randint(18, 70)}) for user in range(N_USERS)),
        )
        user_ids = _ids(DatasetUser, "external_id", dataset=dataset)
        done("items", N_ITEMS)

        histories: list[list[int]] = []
        interactions = []
        for user in range(N_USERS):
            seen = rng.sample(range(N_ITEMS), PER_USER)
            histories.append(seen)
            clock = rng.randint(900_000_000, 1_000_000_000)
            for item in seen:
                clock += rng.randint(60, 86_400)
                interactions.append(
                    (dataset.pk, user_ids[str(user)], item_ids[str(item)], float(rng.randint(1, 5)), clock)
                )
        insert_rows(Interaction, ["dataset", "user", "item", "rating", "timestamp"], interactions)
        done("interactions", len(interactions))

        split = Split.objects.create(dataset=dataset, mode=Split.Mode.LEAVE_LAST_OUT, min_interactions=5)
        with connection.cursor() as cursor:
            # Each user's last interaction is their test row, as leave-last-out computes it.
            cursor.execute(
                f"""INSERT INTO {SplitTestInteraction._meta.db_table} (split_id, interaction_id)
                SELECT %s, id FROM (
                    SELECT DISTINCT ON (user_id) id FROM {Interaction._meta.db_table}
                    WHERE dataset_id = %s ORDER BY user_id, timestamp DESC, id DESC
                ) AS last""",
                [split.pk, dataset.pk],
            )
        Split.objects.filter(pk=split.pk).update(
            n_train=len(interactions) - N_USERS, n_test=N_USERS, n_test_users=N_USERS
        )
        run = RecommenderRun.objects.create(
            dataset=dataset,
            split=split,
            algorithm="SVD",
            k=TOP_K,
            status=RecommenderRun.Status.SUCCEEDED,
            started_at=now,
            finished_at=now,
        )
        recommended: list[tuple[int, int, int, int, float]] = []  # user, item index, user pk, rank, score
        for user, history in enumerate(histories):
            rated = set(history)
            unseen = [item for item in rng.sample(range(N_ITEMS), TOP_K + PER_USER) if item not in rated]
            for rank, item in enumerate(unseen[:TOP_K], 1):
                recommended.append((user, item, user_ids[str(user)], rank, 5.0 - rank / 10))
        insert_rows(
            Recommendation,
            ["run", "user", "item", "rank", "score"],
            ((run.pk, user_pk, item_ids[str(item)], rank, score) for _, item, user_pk, rank, score in recommended),
        )
        recommendation_ids = {
            (user_pk, rank): pk
            for pk, user_pk, rank in Recommendation.objects.filter(run=run).values_list("pk", "user_id", "rank")
        }
        done("recommendations", len(recommended))

        template = prompt_templates_ensure_builtin()[0]
        generation_runs = []
        for index in range(N_GENERATION_RUNS):
            generator = Generator.objects.create(name=f"bench-generator-{index}", model=f"/models/bench-{index}")
            generation_runs.append(
                GenerationRun.objects.create(
                    recommender_run=run,
                    generator=generator,
                    template=template,
                    depth=DEPTH,
                    status=GenerationRun.Status.SUCCEEDED,
                    n_total=N_USERS * DEPTH,
                    started_at=now,
                    finished_at=now,
                )
            )
        explanations: list[tuple[Any, ...]] = []
        for generation in generation_runs:
            for user, item, user_pk, rank, _ in recommended:
                if rank > DEPTH:
                    continue
                # About 60 words; most name a title from the user's history, as real ones do.
                liked = titles[rng.choice(histories[user][:-1])].rsplit(" (", 1)[0]
                filler = " ".join(rng.choices(WORDS, k=45))
                text = f"Since you enjoyed {liked}, you may like {titles[item]}: its {filler}."
                explanations.append(
                    (
                        generation.pk,
                        recommendation_ids[(user_pk, rank)],
                        0,
                        Explanation.Status.DONE,
                        [],
                        text,
                        0,
                        "",
                        "stop",
                        now,
                    )
                )
        insert_rows(
            Explanation,
            [
                "generation_run",
                "recommendation",
                "chunk",
                "status",
                "prompt",
                "text",
                "attempts",
                "error",
                "finish_reason",
                "generated_at",
            ],
            explanations,
        )
        done("explanations", len(explanations))

        campaign = Campaign.objects.create(
            name="bench study",
            recommender_run=run,
            overlap=OVERLAP,
            items_per_annotator=1_000_000,  # annotators never run out during the bench
            instructions="Rate **each** explanation on its own. Read the user's history first.",
            attention_checks=2,
            routing=routing,
        )
        campaign.generation_runs.set(generation_runs)
        criteria = [
            Criterion.objects.create(
                campaign=campaign,
                position=position,
                name=name,
                question=question,
                anchors={"1": "Not at all", "10": "Completely"},
            )
            for position, (name, question) in enumerate(CRITERIA)
        ]
        pool = list(
            Explanation.objects.filter(generation_run__in=generation_runs)
            .order_by("pk")
            .values_list("pk", "recommendation_id")
        )
        # The earlier annotators used every slot of a random third of the pool: slot j of their
        # work is copy j % k of the (j // k)-th covered item.
        covered = sorted(rng.sample(range(len(pool)), -(-EARLIER_ASSIGNMENTS // OVERLAP)))
        live_of = {index: min(OVERLAP, EARLIER_ASSIGNMENTS - OVERLAP * rank) for rank, index in enumerate(covered)}
        insert_rows(
            CampaignItem,
            [
                "campaign",
                "kind",
                "recommendation",
                "explanation",
                "accepted",
                "feedback",
                "shuffle_key",
                "n_live",
                "priority",
            ],
            (
                (
                    campaign.pk,
                    CampaignItem.Kind.REGULAR,
                    recommendation,
                    explanation,
                    {},
                    "",
                    rng.randrange(2**31),
                    live_of.get(index, 0),
                    0,
                )
                for index, (explanation, recommendation) in enumerate(pool)
            ),
        )
        for explanation, recommendation in rng.sample(pool, 2):
            CampaignItem.objects.create(
                campaign=campaign,
                kind=CampaignItem.Kind.ATTENTION,
                recommendation_id=recommendation,
                explanation_id=explanation,
                shown_user_id=user_ids[str(rng.randrange(N_USERS))],
                accepted={"fits_user": "no"},
                shuffle_key=rng.randrange(2**31),
            )
        done("campaign items", len(pool) + 2)

        earlier = _users("earlier", EARLIER_ANNOTATORS)
        bench_users = _users("bench", annotators)
        insert_rows(
            Participant,
            [
                "campaign",
                "user",
                "pseudonym",
                "platform",
                "crowd_hash",
                "crowd_session",
                "training_done_at",
                "n_done",
                "checks_passed",
                "checks_failed",
                "flagged",
                "excluded",
                "joined_at",
            ],
            (
                (campaign.pk, user, f"S{index:06d}", "", "", {}, now, 0, 0, 0, False, False, now)
                for index, user in enumerate(earlier + bench_users)
            ),
        )
        participant_of = _ids(Participant, "user_id", campaign=campaign)
        group = Group.objects.get(name=ANNOTATOR)
        get_user_model().groups.through.objects.bulk_create(
            [get_user_model().groups.through(user_id=user, group_id=group.pk) for user in earlier + bench_users]
        )
        done("participants", len(earlier) + len(bench_users))

        item_of = {
            explanation: pk
            for pk, explanation in CampaignItem.objects.filter(
                campaign=campaign, kind=CampaignItem.Kind.REGULAR
            ).values_list("pk", "explanation_id")
        }
        covered_items = [item_of[pool[index][0]] for index in covered]
        positions = dict.fromkeys(earlier, 0)
        assignments = []
        # Slot j goes to annotator j mod 1,000: the k copies of an item go to k different
        # annotators, and no annotator gets an item twice.
        for slot in range(EARLIER_ASSIGNMENTS):
            user = earlier[slot % EARLIER_ANNOTATORS]
            positions[user] += 1
            served = now - timedelta(days=3, seconds=slot)
            assignments.append(
                (
                    campaign.pk,
                    participant_of[user],
                    covered_items[slot // OVERLAP],
                    Assignment.Status.SUBMITTED,
                    positions[user],
                    False,
                    served,
                    served + timedelta(minutes=30),
                    served + timedelta(seconds=40),
                    40.0,
                    "",
                    0,
                )
            )
        insert_rows(
            Assignment,
            [
                "campaign",
                "participant",
                "item",
                "status",
                "position",
                "swapped",
                "served_at",
                "expires_at",
                "submitted_at",
                "seconds_on_task",
                "check_answer",
                "revisions",
            ],
            assignments,
        )
        # Each participant's count of answered pool items, as rating_submit keeps it.
        answered = (
            Assignment.objects.filter(participant=OuterRef("pk"), status=Assignment.Status.SUBMITTED)
            .values("participant")
            .annotate(n=Count("id"))
            .values("n")
        )
        Participant.objects.filter(campaign=campaign).update(n_done=Coalesce(Subquery(answered), 0))
        done("submitted assignments", len(assignments))
        submitted = list(Assignment.objects.filter(campaign=campaign).values_list("pk", "submitted_at"))
        answers = [{name: rng.randint(1, 10) for name, _ in CRITERIA} for _ in submitted]
        insert_rows(
            Submission,
            ["submission_id", "assignment", "answers", "created_at"],
            (
                (uuid.UUID(int=rng.getrandbits(128), version=4), pk, answer, at)
                for (pk, at), answer in zip(submitted, answers, strict=True)
            ),
        )
        done("submissions", len(submitted))
        insert_rows(
            Rating,
            ["assignment", "criterion", "value", "choice", "created_at", "updated_at"],
            (
                (pk, criterion.pk, answer[criterion.name], "", at, at)
                for (pk, at), answer in zip(submitted, answers, strict=True)
                for criterion in criteria
            ),
        )
        done("ratings", len(submitted) * len(criteria))

    sessions: list[str] = []
    for account in get_user_model().objects.filter(pk__in=bench_users).order_by("pk"):
        session = SessionStore()
        session[SESSION_KEY] = str(account.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = account.get_session_auth_hash()
        session.create()
        sessions.append(str(session.session_key))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # the planner's statistics, as a running site would have them
    log(f"loaded in {time.perf_counter() - started:.1f} s")
    return Study(campaign_id=campaign.pk, sessions=sessions, rows=rows)


# --- the server ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(port: int, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    command = [
        str(Path(sys.executable).with_name("gunicorn")),
        "xrec_site.wsgi",
        "--config=python:xrec_site.gunicorn_config",
        f"--bind=127.0.0.1:{port}",
        f"--workers={GUNICORN_WORKERS}",
        "--preload",
        "--timeout=60",
        "--graceful-timeout=5",
    ]
    from django.conf import settings

    with log_path.open("ab") as server_log:
        process = subprocess.Popen(command, cwd=settings.BASE_DIR, env=env, stdout=server_log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited:\n{log_path.read_text()}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"gunicorn did not answer:\n{log_path.read_text()}")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# --- simulated annotators --------------------------------------------------------------------

FORM_ACTION = re.compile(r'<form id="answer-form" method="post" action="([^"]+)"')
HIDDEN = re.compile(r'<input type="hidden" name="(csrfmiddlewaretoken|submission_id)" value="([^"]*)"')
RADIO = re.compile(r'<input type="radio" name="([a-z_]+)" value="([^"]+)"')
SERVER_TIMING = re.compile(r"app;dur=([0-9.]+)")


@dataclass
class Sample:
    kind: str
    status: int
    server_ms: float
    client_ms: float
    started: float


class Annotator:
    """One browser: a session cookie, the CSRF cookie, and the form on screen."""

    def __init__(self, port: int, session_key: str, campaign_id: int, rng: random.Random) -> None:
        self.port, self.campaign_id, self.rng = port, campaign_id, rng
        self.cookies = {"sessionid": session_key}
        self.samples: list[Sample] = []
        self.errors: list[str] = []
        self.form: dict[str, Any] | None = None
        self.url = ""

    def request(self, kind: str, method: str, path: str, body: str | None = None, **headers: str) -> tuple[Any, str]:
        headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        started = time.perf_counter()
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            text = response.read().decode()
        finally:
            connection.close()
        client_ms = (time.perf_counter() - started) * 1000
        timing = SERVER_TIMING.search(response.getheader("Server-Timing") or "")
        self.samples.append(Sample(kind, response.status, float(timing[1]) if timing else -1.0, client_ms, started))
        for header in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]
        return response, text

    def read_form(self, html: str) -> None:
        action = FORM_ACTION.search(html)
        if action is None:
            raise RuntimeError(f"no answer form in the page: {html[:300]!r}")
        fields = dict(HIDDEN.findall(html))
        choices: dict[str, list[str]] = {}
        for name, value in RADIO.findall(html):
            choices.setdefault(name, []).append(value)
        self.form = {"action": action[1], "fields": fields, "choices": choices}

    def start(self) -> None:
        response, _ = self.request("next", "GET", f"/annotate/{self.campaign_id}/")
        if response.status != 302:
            raise RuntimeError(f"campaign entry answered {response.status}")
        self.url = urlsplit(response.getheader("Location")).path
        self.reload()

    def reload(self) -> None:
        response, html = self.request("page", "GET", self.url)
        if response.status != 200:
            raise RuntimeError(f"rating page answered {response.status}")
        self.read_form(html)

    def answer(self) -> None:
        assert self.form is not None
        data = {name: self.rng.choice(values) for name, values in self.form["choices"].items()}
        data |= self.form["fields"]
        data["visible_ms"] = str(self.rng.randint(5_000, 40_000))
        response, html = self.request(
            "submit",
            "POST",
            self.form["action"],
            urlencode(data),
            **{"HX-Request": "true", "HX-Target": "task", "HX-Current-URL": f"http://127.0.0.1:{self.port}{self.url}"},
            **{"X-CSRFToken": self.cookies.get("csrftoken", "")},
        )
        pushed = response.getheader("HX-Push-Url")
        if response.status != 200 or not pushed:
            raise RuntimeError(f"submit answered {response.status} without a next item: {html[:300]!r}")
        self.url = pushed
        self.read_form(html)

    def work(self, stop_at: float, think_ms: float) -> None:
        try:
            self.start()
            answered = 0
            while time.perf_counter() < stop_at:
                time.sleep(self.rng.uniform(0.5, 1.5) * think_ms / 1000)
                if answered and answered % RELOAD_EVERY == 0:
                    self.reload()
                self.answer()
                answered += 1
        except Exception as exc:  # recorded, reported, and the run fails
            self.errors.append(f"{type(exc).__name__}: {exc}")


def cpu_seconds(server_pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) used so far by the gunicorn master and workers, and by the
    PostgreSQL backends connected to the bench database."""
    tick = os.sysconf("SC_CLK_TCK")
    server = database = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # the process ended meanwhile
            continue
        fields = stat.rsplit(")", 1)[1].split()
        used = int(fields[11]) + int(fields[12])
        if server_pid in (int(entry.name), int(fields[1])):
            server += used
        elif command.startswith("postgres: ") and f" {BENCH_DATABASE} " in command:
            database += used
    return server / tick, database / tick


def drive(
    port: int, server_pid: int, study: Study, seconds: float, think_ms: float
) -> tuple[list[Sample], list[str], dict[str, float]]:
    """Run every annotator for ``WARMUP_SECONDS + seconds``; return the requests that started
    after the warm-up, the annotators' errors, and the CPU seconds the server and the database
    used in the measured window."""
    started = time.perf_counter()
    measured_from = started + WARMUP_SECONDS
    stop_at = measured_from + seconds
    used: dict[str, float] = {}

    def meter() -> None:
        time.sleep(max(0.0, measured_from - time.perf_counter()))
        server, database = cpu_seconds(server_pid)
        time.sleep(max(0.0, stop_at - time.perf_counter()))
        server_end, database_end = cpu_seconds(server_pid)
        used.update(server=server_end - server, database=database_end - database)

    metering = threading.Thread(target=meter, daemon=True)
    metering.start()
    annotators = [
        Annotator(port, key, study.campaign_id, random.Random(f"{SEED}:{index}"))
        for index, key in enumerate(study.sessions)
    ]
    threads = [threading.Thread(target=a.work, args=(stop_at, think_ms), daemon=True) for a in annotators]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + WARMUP_SECONDS + 120)
    metering.join()
    samples = [s for a in annotators for s in a.samples if s.started >= measured_from]
    errors = [error for a in annotators for error in a.errors]
    return samples, errors, used


# --- figures ---------------------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (``share`` in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(-(-share * len(ordered) // 100)) - 1))]


def summary(samples: list[Sample]) -> dict[str, float]:
    server = [s.server_ms for s in samples]
    client = [s.client_ms for s in samples]
    return {
        "n": len(samples),
        "p50_ms": round(percentile(server, 50), 2),
        "p95_ms": round(percentile(server, 95), 2),
        "p99_ms": round(percentile(server, 99), 2),
        "max_ms": round(max(server), 2),
        "mean_ms": round(statistics.fmean(server), 2),
        "client_p50_ms": round(percentile(client, 50), 2),
        "client_p95_ms": round(percentile(client, 95), 2),
        "client_p99_ms": round(percentile(client, 99), 2),
    }


def overlap_violations(campaign_id: int) -> int:
    """Items with more than k live assignments, or whose ``n_live`` differs from their count."""
    from django.db.models import Count, Q

    from annotation.models import Assignment, Campaign, CampaignItem

    overlap = Campaign.objects.get(pk=campaign_id).overlap
    live = Count("assignments", filter=~Q(assignments__status=Assignment.Status.EXPIRED))
    items = CampaignItem.objects.filter(campaign_id=campaign_id, kind=CampaignItem.Kind.REGULAR).annotate(live=live)
    return sum(1 for item in items.iterator() if item.live > overlap or item.live != item.n_live)


def time_monitor(campaign_id: int) -> float:
    """Median wall time of ``campaign_monitor`` (progress, annotators, alpha) over 3 calls."""
    from annotation.agreement import campaign_monitor
    from annotation.models import Campaign

    campaign = Campaign.objects.get(pk=campaign_id)
    times = []
    for _ in range(3):
        started = time.perf_counter()
        campaign_monitor(campaign)
        times.append(time.perf_counter() - started)
    return round(sorted(times)[1], 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="measured load, after a warm-up")
    parser.add_argument("--annotators", type=int, default=50)
    parser.add_argument("--think-ms", type=float, default=2000.0, help="mean pause between actions")
    parser.add_argument(
        "--routing", choices=["random", "uncertainty"], default="random", help="the campaign's routing option"
    )
    options = parser.parse_args()

    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="xrec-bench-annotate-")).resolve()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "xrec_site.settings")
    # Before django.setup(): the secret key (shared with the server, which checks the session
    # hashes made here) and the broker folder go under the temporary folder.
    os.environ["XREC_VAR_DIR"] = str(work / "var")
    # The goal is stated for PostgreSQL: without a PostgreSQL DATABASE_URL (plain `make bench`),
    # use the local server the development machines and CI run.
    server_url = os.environ.get("DATABASE_URL") or ""
    if not server_url.startswith(("postgres://", "postgresql://")):
        server_url = os.environ.get("XREC_BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
        log(f"DATABASE_URL is not PostgreSQL; using {server_url}")
    load_before = load_average()
    created = False
    server = None
    try:
        os.environ["DATABASE_URL"] = create_bench_database(server_url, BENCH_DATABASE)
        created = True
        log(f"created database {BENCH_DATABASE!r} on the server of DATABASE_URL")
        import django
        from django.core.management import call_command
        from django.db import connections

        django.setup()
        call_command("migrate", verbosity=0)
        machine = describe_machine()
        log(f"machine: {machine}; load average {load_before}; temporary folder {work}")
        study = load_study(random.Random(SEED), options.annotators, options.routing)
        routing_seconds = None
        if options.routing != "random":
            # The worker's refresh, once before the load (it then runs every 20th submit).
            from annotation.models import Campaign
            from annotation.services.routing import routing_refresh

            refresh_started = time.perf_counter()
            routing_refresh(campaign=Campaign.objects.get(pk=study.campaign_id))
            routing_seconds = round(time.perf_counter() - refresh_started, 2)
            log(f"routing refresh: {routing_seconds} s")
        connections.close_all()

        port = free_port()
        env = os.environ | {
            "DATABASE_CONN_MAX_AGE": "600",
            "XREC_LOG_LEVEL": "WARNING",
            "DJANGO_DEBUG": "0",
            "DJANGO_SECURE_SSL_REDIRECT": "0",
        }
        server = start_server(port, env, work / "gunicorn.log")
        log(
            f"gunicorn: {GUNICORN_WORKERS} sync workers on port {port}; {options.annotators} annotators, "
            f"think time ~{options.think_ms:.0f} ms, {WARMUP_SECONDS:.0f} s warm-up + {options.seconds:.0f} s measured"
        )
        client_cpu = time.process_time()
        samples, errors, used = drive(port, server.pid, study, options.seconds, options.think_ms)
        # The simulated browsers share the 2 cores with the server: say how much they took.
        client_cpu = time.process_time() - client_cpu
        stop_server(server)
        server = None
        load_after = load_average()
        violations = overlap_violations(study.campaign_id)
        monitor_seconds = time_monitor(study.campaign_id)
    finally:
        if server is not None:
            stop_server(server)
        if created:
            drop_bench_database(server_url, BENCH_DATABASE)
            log(f"dropped database {BENCH_DATABASE!r}")
        shutil.rmtree(work, ignore_errors=True)

    if not samples:
        raise SystemExit(f"no request was measured; errors: {errors[:5]}")
    kinds = sorted({s.kind for s in samples})
    by_kind = {kind: summary([s for s in samples if s.kind == kind]) for kind in kinds}
    overall = summary(samples)
    bad_status = sum(1 for s in samples if s.status >= 400)
    figures: dict[str, Any] = {
        "p50_ms": overall["p50_ms"],
        "p95_ms": overall["p95_ms"],
        "p99_ms": overall["p99_ms"],
        "client_p95_ms": overall["client_p95_ms"],
        "requests": overall["n"],
        "requests_per_second": round(len(samples) / options.seconds, 1),
        "submits_per_second": round(sum(1 for s in samples if s.kind == "submit") / options.seconds, 1),
        # CPU time per measured request: what each costs, whatever else runs on the machine.
        "server_cpu_ms_per_request": round(used["server"] * 1000 / len(samples), 1),
        "database_cpu_ms_per_request": round(used["database"] * 1000 / len(samples), 1),
        "by_kind": by_kind,
        "http_errors": bad_status,
        "annotator_errors": len(errors),
        "overlap_violations": violations,
        # What the researcher's polling campaign page costs with all these rows (median of 3).
        "monitor_seconds": monitor_seconds,
        "routing": options.routing,
        # The worker's routing refresh (ranking and priorities over every rating), once.
        "routing_refresh_seconds": routing_seconds,
    }
    goal_met = overall["p95_ms"] < GOAL_P95_MS and overall["p99_ms"] < GOAL_P99_MS and not bad_status and not errors
    for error in errors[:5]:
        log(f"annotator error: {error}")
    log(f"total {time.perf_counter() - started:.1f} s; removed {work}")
    log(
        f"goal server-side p95 < {GOAL_P95_MS:.0f} ms and p99 < {GOAL_P99_MS:.0f} ms: "
        f"{'met' if goal_met else 'NOT met'} (p95 {overall['p95_ms']} ms, p99 {overall['p99_ms']} ms)"
    )
    result = {
        "bench": "annotate",
        "figures": figures,
        "goal": {"p95_ms": GOAL_P95_MS, "p99_ms": GOAL_P99_MS},
        "goal_met": goal_met,
        "setup": {
            "annotators": options.annotators,
            "think_ms": options.think_ms,
            "measured_seconds": options.seconds,
            "client_cpu_seconds": round(client_cpu, 1),
            "server": f"gunicorn {GUNICORN_WORKERS} sync workers, CONN_MAX_AGE=600",
            "rows": study.rows,
        },
        "load_average": {"before": load_before, "after": load_after},
        "machine": machine,
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
