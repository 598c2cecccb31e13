"""Benchmark: the study report computed from the database for 100,000 ratings and 30,000 verdicts.

Run as ``python -m tests.perf.bench_report``. It sets Django up on its own database: a SQLite
file under a fresh temporary folder (``var/`` is never touched), or, when ``DATABASE_URL``
names a PostgreSQL server, a database ``xrec_bench_report`` that it creates there and drops at
the end. It refuses to start if ``xrec_bench_report`` already exists, so it never drops a
database it did not create. The cache (file-based) lives in the temporary folder too.
Options: ``--repeats`` (warm runs, default 3), ``--profile`` (print cProfile's top entries of
one more warm run before the result).

Data, written with ``recommendations.shared.bulk.insert_rows`` (COPY on PostgreSQL): 3,000 dataset
users with 10 interactions each over 3,000 items; one recommender run with top-10 lists
(30,000 recommendations); two generation runs explaining the same top 5 (15,000
recommendations, 30,000 explanations with their prompts); one Likert campaign on the 4
criteria of ``default_rubric()`` with k = 3, whose pool holds every explanation plus 2
attention checks, where 300 annotators submitted 25,000 assignments of 8,334 items (the last
item has one annotator) and 100,000 ratings, plus 600 attention-check assignments without
ratings; 5% of the annotators are flagged and 2% excluded. Ratings are 1-10: an item's quality,
the run (the second is better), the criterion and the annotator's leniency, plus noise. One
pairwise judge run (``SUCCEEDED``, default rubric) with 30,000 verdicts: every explained
recommendation in both orders, following the same item qualities, with a bias towards the
first slot and 3% unparsed answers (``parsed`` null, ``parse_error`` set). One gender probe on
the second run: 2,000 explanations, 4,000 answers, 4% unparsed.

Figures, on the last line as one JSON object:

- ``cold_seconds``: the first ``study_report`` after loading (fresh connection);
- ``seconds``: the median of ``--repeats`` warm runs after it; ``runs_seconds`` lists them;
  ``goal_met`` is ``seconds < 1.0``;
- ``sections``: median seconds per section of those runs (``judge_pairwise_section``,
  ``human_likert_section``, ``probe_section``, ``meta_section``, ...), timed by wrapping the
  section builders;
- ``statistics``: median seconds per statistic of ``annotation.study.stats`` over all its
  calls in one run, ``statistics_seconds`` their sum, and ``other_seconds`` the rest of the
  run (queries, row handling, set-up);
- ``cached_first_seconds`` / ``cached_seconds``: ``study_report_cached`` missing, then
  hitting the cache, once both runs' text metrics are computed. Text metrics are not part of
  the goal: they are a worker job per run (``explanations.services.text_metrics``), timed
  here as ``text_metrics_seconds`` (both runs' jobs, run in this process) without embeddings,
  because embedding 30,000 texts on the CPU takes minutes.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import io
import json
import pstats
import random
import statistics
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tests.perf.bench_annotate import describe_machine, load_average
from tests.perf.database import bench_django

SEED = 20_240_702
BENCH_DATABASE = "xrec_bench_report"
GOAL_SECONDS = 1.0
REPORT_SEED = 0

N_USERS = 3_000
N_ITEMS = 3_000
HISTORY = 10
TOP_K = 10
DEPTH = 5
OVERLAP = 3
ANNOTATORS = 300
ASSIGNMENTS = 25_000  # x 4 criteria = 100,000 ratings
ATTENTION_ITEMS = 2
FLAGGED_SHARE = 0.05
EXCLUDED_SHARE = 0.02
PROBED_EXPLANATIONS = 2_000

# Mean rating of each generation run, offset of each criterion: the second run is better.
RUN_MEANS = [5.2, 6.3]
CRITERION_OFFSETS = {"reasonability": 0.0, "attractiveness": -0.3, "non_redundancy": 0.4, "faithfulness": -0.6}
# The judge answers "first" this often whatever it thinks, and fails the format this often.
JUDGE_FIRST_BIAS = 0.12
JUDGE_UNPARSED = 0.03
PROBE_UNPARSED = 0.04

GENRES = ["Drama", "Comedy", "Horror", "Action", "Romance", "Thriller", "Sci-Fi", "Animation"]
OCCUPATIONS = ["student", "engineer", "writer", "artist", "doctor", "educator", "retired", "other"]
WORDS = [
    "story", "characters", "pacing", "soundtrack", "atmosphere", "humour", "twist", "direction", "cast",
    "visuals", "drama", "suspense", "dialogue", "ending", "world", "style", "heart", "tension",
]  # fmt: skip
EXPLAIN_SYSTEM = (
    "You explain movie recommendations to the person they are for, in at most 75 words, "
    "using only what their history and the movie's details show."
)


def log(message: str) -> None:
    print(f"[bench_report] {message}", flush=True)


# --- database set-up -------------------------------------------------------------------------


# --- synthetic data --------------------------------------------------------------------------


@dataclass
class Study:
    recommender_run_id: int
    generation_run_ids: list[int]
    rows: dict[str, int]


def _ids(model: Any, key: str, **filters: Any) -> dict[Any, int]:
    return dict(model.objects.filter(**filters).values_list(key, "pk"))


def _clip(value: float, low: int, high: int) -> int:
    return max(low, min(high, round(value)))


def load_study(rng: random.Random) -> Study:
    """Write the dataset, runs, campaign with its ratings, the judge run and the probe."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction
    from django.utils import timezone

    from annotation.models import Assignment, Campaign, CampaignItem, Criterion, Participant, Rating, Submission
    from explanations.judging import default_rubric, pairwise_messages
    from explanations.models import (
        AttributeProbe,
        Explanation,
        GenerationRun,
        Generator,
        JudgeRun,
        JudgeVerdict,
        ProbeAnswer,
    )
    from explanations.services.generators import prompt_templates_ensure_builtin
    from recommendations.models import Dataset, DatasetUser, Interaction, Item, Recommendation, RecommenderRun
    from recommendations.shared.bulk import insert_rows

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
        genres = [rng.sample(GENRES, rng.choice([1, 2, 2, 3])) for _ in range(N_ITEMS)]
        insert_rows(
            Item,
            ["dataset", "external_id", "title", "attributes"],
            ((dataset.pk, str(index), titles[index], {"genres": genres[index]}) for index in range(N_ITEMS)),
        )
        item_ids = _ids(Item, "external_id", dataset=dataset)
        genders = [rng.choice("FM") for _ in range(N_USERS)]
        profiles = [
            {"age": rng.randint(18, 70), "gender": gender, "occupation": rng.choice(OCCUPATIONS)} for gender in genders
        ]
        insert_rows(
            DatasetUser,
            ["dataset", "external_id", "profile"],
            ((dataset.pk, str(user), profiles[user]) for user in range(N_USERS)),
        )
        user_ids = _ids(DatasetUser, "external_id", dataset=dataset)
        histories = [rng.sample(range(N_ITEMS), HISTORY) for _ in range(N_USERS)]
        insert_rows(
            Interaction,
            ["dataset", "user", "item", "rating", "timestamp"],
            (
                (dataset.pk, user_ids[str(user)], item_ids[str(item)], float(rng.randint(1, 5)), 1_000_000_000 + step)
                for user, history in enumerate(histories)
                for step, item in enumerate(history)
            ),
        )
        done("interactions", N_USERS * HISTORY)

        run = RecommenderRun.objects.create(
            dataset=dataset,
            algorithm="SVD",
            k=TOP_K,
            status=RecommenderRun.Status.SUCCEEDED,
            started_at=now,
            finished_at=now,
            metrics={"rmse": 0.93, "precision@10": 0.04},
        )
        lists = []
        for history in histories:
            seen = set(history)
            lists.append([item for item in rng.sample(range(N_ITEMS), TOP_K + HISTORY) if item not in seen][:TOP_K])
        insert_rows(
            Recommendation,
            ["run", "user", "item", "rank", "score"],
            (
                (run.pk, user_ids[str(user)], item_ids[str(item)], rank, 5.0 - rank / 10)
                for user, top in enumerate(lists)
                for rank, item in enumerate(top, 1)
            ),
        )
        recommendation_of = {
            (user_pk, rank): pk
            for pk, user_pk, rank in Recommendation.objects.filter(run=run).values_list("pk", "user_id", "rank")
        }
        done("recommendations", N_USERS * TOP_K)

        # (recommendation pk, dataset user index, item index) of every explained recommendation.
        explained = [
            (recommendation_of[(user_ids[str(user)], rank)], user, top[rank - 1])
            for user, top in enumerate(lists)
            for rank in range(1, DEPTH + 1)
        ]

        def context(user: int, item: int) -> dict[str, Any]:
            """What the judge prompt shows: profile, history and the recommended movie."""
            profile = profiles[user]
            return {
                "profile_text": f"a {profile['age']}-year-old {profile['occupation']}",
                "domain": "movie",
                "domain_plural": "movies",
                "verb_past": "watched",
                "history": [
                    {"title": titles[seen], "attributes_text": ", ".join(genres[seen]), "rating": 4}
                    for seen in histories[user]
                ],
                "item": {"title": titles[item], "attributes_text": ", ".join(genres[item])},
            }

        def history_text(user: int, item: int) -> str:
            """What the explanation prompt shows, as the built-in template words it."""
            profile = profiles[user]
            lines = [f"The person is a {profile['age']}-year-old {profile['occupation']}."]
            lines.append("The movies they watched most recently:")
            lines += [f"- {titles[seen]} ({', '.join(genres[seen])}): rated 4" for seen in histories[user]]
            lines.append(f"Recommended movie: {titles[item]} ({', '.join(genres[item])})")
            return "\n".join(lines)

        def explanation_text(user: int, item: int) -> str:
            liked = titles[rng.choice(histories[user])].rsplit(" (", 1)[0]
            filler = " ".join(rng.choices(WORDS, k=45))
            return f"Since you enjoyed {liked}, you may like {titles[item]}: its {filler}."

        template = prompt_templates_ensure_builtin()[0]
        generation_runs = []
        for index in range(len(RUN_MEANS)):
            generator = Generator.objects.create(name=f"bench-generator-{index}", model=f"/models/bench-{index}")
            generation_runs.append(
                GenerationRun.objects.create(
                    recommender_run=run,
                    generator=generator,
                    template=template,
                    depth=DEPTH,
                    status=GenerationRun.Status.SUCCEEDED,
                    n_total=len(explained),
                    started_at=now,
                    finished_at=now,
                )
            )
        texts: dict[tuple[int, int], str] = {}  # (generation run pk, recommendation pk) -> text
        explanation_rows = []
        for generation in generation_runs:
            for position, (recommendation, user, item) in enumerate(explained):
                text = texts[(generation.pk, recommendation)] = explanation_text(user, item)
                user_message = history_text(user, item)
                prompt = [{"role": "system", "content": EXPLAIN_SYSTEM}, {"role": "user", "content": user_message}]
                tokens = (len(user_message) // 4, len(text) // 4)
                explanation_rows.append(
                    (generation.pk, recommendation, position // 8, Explanation.Status.DONE, prompt, text, *tokens)
                )
        explanation_fields = ["generation_run", "recommendation", "chunk", "status", "prompt", "text"]
        explanation_fields += ["prompt_tokens", "completion_tokens", "latency_ms", "finish_reason", "error"]
        insert_rows(
            Explanation,
            [*explanation_fields, "attempts", "generated_at"],
            ((*row, 180.0, "stop", "", 1, now) for row in explanation_rows),
        )
        del explanation_rows
        explanation_of = {
            (run_id, recommendation): pk
            for pk, run_id, recommendation in Explanation.objects.filter(generation_run__in=generation_runs)
            .order_by("pk")
            .values_list("pk", "generation_run_id", "recommendation_id")
        }
        # Each explanation's quality, shared by the annotators and the judge.
        run_index = {generation.pk: index for index, generation in enumerate(generation_runs)}
        quality = {pk: rng.gauss(RUN_MEANS[run_index[run_id]], 1.2) for (run_id, _), pk in explanation_of.items()}
        done("explanations", len(explanation_of))

        rubric = default_rubric()
        campaign = Campaign.objects.create(
            name="bench study",
            recommender_run=run,
            overlap=OVERLAP,
            items_per_annotator=200,
            status=Campaign.Status.CLOSED,
            closed_at=now,
            attention_checks=ATTENTION_ITEMS,
        )
        campaign.generation_runs.set(generation_runs)
        criteria = [
            Criterion.objects.create(
                campaign=campaign, position=position, name=c["name"], question=c["question"], anchors=c["anchors"]
            )
            for position, c in enumerate(rubric)
        ]
        pool = sorted((pk, recommendation) for (_, recommendation), pk in explanation_of.items())
        covered = rng.sample(range(len(pool)), -(-ASSIGNMENTS // OVERLAP))
        live_of = {index: min(OVERLAP, ASSIGNMENTS - OVERLAP * rank) for rank, index in enumerate(covered)}
        regular = CampaignItem.Kind.REGULAR
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
                    regular,
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
        attention = [
            CampaignItem.objects.create(
                campaign=campaign,
                kind=CampaignItem.Kind.ATTENTION,
                recommendation_id=recommendation,
                explanation_id=explanation,
                shown_user_id=user_ids[str(rng.randrange(N_USERS))],
                accepted={"fits_user": "no"},
                shuffle_key=rng.randrange(2**31),
                n_live=ANNOTATORS,
            ).pk
            for explanation, recommendation in rng.sample(pool, ATTENTION_ITEMS)
        ]
        done("campaign items", len(pool) + ATTENTION_ITEMS)

        user_model = get_user_model()
        names = [f"annotator{index:04d}" for index in range(ANNOTATORS)]
        fields = ["password", "is_superuser", "username", "first_name", "last_name", "email", "is_staff", "is_active"]
        insert_rows(
            user_model,
            [*fields, "date_joined"],
            ((f"!{uuid.uuid4().hex}", False, name, "", "", "", False, True, now) for name in names),
        )
        accounts = _ids(user_model, "username", username__startswith="annotator")
        flagged = set(rng.sample(range(ANNOTATORS), round(ANNOTATORS * FLAGGED_SHARE)))
        excluded = set(rng.sample(range(ANNOTATORS), round(ANNOTATORS * EXCLUDED_SHARE)))
        participant_fields = ["campaign", "user", "pseudonym", "flagged", "excluded", "checks_passed", "checks_failed"]
        participant_fields += ["platform", "crowd_hash", "crowd_session", "consented_at", "training_done_at"]
        participant_fields += ["completed_at", "n_done", "joined_at"]
        participant_rows = []
        for index, name in enumerate(names):
            # A flagged annotator failed the second attention check (max_check_failures is 1).
            failed = int(index in flagged)
            participant_rows.append(
                (campaign.pk, accounts[name], f"S{index:06d}", bool(failed), index in excluded, 2 - failed, failed)
            )
        insert_rows(
            Participant,
            participant_fields,
            ((*row, "", "", {}, now, now, now, 0, now) for row in participant_rows),
        )
        participants = [pk for _, pk in sorted(_ids(Participant, "pseudonym", campaign=campaign).items())]
        done("participants", ANNOTATORS)

        item_of = dict(
            CampaignItem.objects.filter(campaign=campaign, kind=CampaignItem.Kind.REGULAR).values_list(
                "explanation_id", "pk"
            )
        )
        leniency = [rng.gauss(0.0, 0.8) for _ in range(ANNOTATORS)]
        positions = [0] * ANNOTATORS
        assignment_rows: list[tuple[int, int, int, datetime, str, bool | None]] = []
        answers_of: dict[tuple[int, int], dict[str, int]] = {}  # (participant, item) -> answers
        # Slot j goes to annotator j mod 300: an item's k consecutive slots go to k different
        # annotators, so nobody gets an item twice. Every fourth slot is followed by an
        # attention check, as the campaign serves them, until both are answered.
        for slot in range(ASSIGNMENTS):
            annotator = slot % ANNOTATORS
            explanation = pool[covered[slot // OVERLAP]][0]
            served = now - timedelta(days=3, seconds=slot)
            positions[annotator] += 1
            answers = {
                name: _clip(quality[explanation] + offset + leniency[annotator] + rng.gauss(0.0, 1.3), 1, 10)
                for name, offset in CRITERION_OFFSETS.items()
            }
            answers_of[(participants[annotator], item_of[explanation])] = answers
            assignment_rows.append(
                (participants[annotator], item_of[explanation], positions[annotator], served, "", None)
            )
            if positions[annotator] in (4, 9):
                check = attention[positions[annotator] // 5]
                positions[annotator] += 1
                passed = annotator not in flagged or positions[annotator] < 9
                assignment_rows.append(
                    (participants[annotator], check, positions[annotator], served, "no" if passed else "yes", passed)
                )
        assignment_fields = ["participant", "item", "position", "served_at", "check_answer", "check_passed"]
        assignment_fields += ["campaign", "status", "swapped", "expires_at", "submitted_at", "seconds_on_task"]
        insert_rows(
            Assignment,
            [*assignment_fields, "visible_seconds", "revisions"],
            (
                (*row, campaign.pk, Assignment.Status.SUBMITTED, False, *lease, 40.0, 35.0, 0)
                for row in assignment_rows
                for lease in [(row[3] + timedelta(minutes=30), row[3] + timedelta(seconds=40))]
            ),
        )
        done("submitted assignments", len(assignment_rows))
        submitted = list(
            Assignment.objects.filter(campaign=campaign, item__kind=CampaignItem.Kind.REGULAR).values_list(
                "pk", "participant_id", "item_id", "submitted_at"
            )
        )
        insert_rows(
            Submission,
            ["submission_id", "assignment", "answers", "created_at"],
            (
                (uuid.UUID(int=rng.getrandbits(128), version=4), pk, answers_of[(participant, item)], at)
                for pk, participant, item, at in submitted
            ),
        )
        by_name = {criterion.name: criterion.pk for criterion in criteria}
        insert_rows(
            Rating,
            ["assignment", "criterion", "value", "choice", "created_at", "updated_at"],
            (
                (pk, by_name[name], value, "", at, at)
                for pk, participant, item, at in submitted
                for name, value in answers_of[(participant, item)].items()
            ),
        )
        done("ratings", Rating.objects.filter(assignment__campaign=campaign).count())

        judge = Generator.objects.create(name="bench-judge", model="/models/bench-judge")
        judge_run = JudgeRun.objects.create(
            judge=judge,
            mode=JudgeRun.Mode.PAIRWISE,
            rubric=rubric,
            status=JudgeRun.Status.SUCCEEDED,
            n_total=2 * len(explained),
            started_at=now,
            finished_at=now,
        )
        judge_run.generation_runs.set(generation_runs)
        a_run, b_run = (generation.pk for generation in generation_runs)

        def verdicts() -> Iterator[tuple[Any, ...]]:
            """Both orders of every explained recommendation; the judge mostly prefers the
            better explanation, calls close ones a tie, and sometimes just says "first"."""
            slots = {"first": "1", "second": "2", "tie": "tie"}
            for position, (recommendation, user, item) in enumerate(explained):
                a, b = explanation_of[(a_run, recommendation)], explanation_of[(b_run, recommendation)]
                gap = quality[b] - quality[a] + rng.gauss(0.0, 1.0)
                preferred = None if abs(gap) < 0.4 else (b if gap > 0 else a)
                for order, (first_run, second_run) in enumerate(((a_run, b_run), (b_run, a_run))):
                    first, second = (
                        explanation_of[(first_run, recommendation)],
                        explanation_of[(second_run, recommendation)],
                    )
                    messages = pairwise_messages(
                        context(user, item),
                        texts[(first_run, recommendation)],
                        texts[(second_run, recommendation)],
                        rubric,
                    )
                    if rng.random() < JUDGE_UNPARSED:
                        output, parsed, error = "Both explanations are good.", None, "no 'Winner:' line"
                    else:
                        if rng.random() < JUDGE_FIRST_BIAS:
                            winner = "first"
                        else:
                            winner = "tie" if preferred is None else ("first" if preferred == first else "second")
                        output, parsed, error = f"Winner: {slots[winner]}", {"winner": winner}, ""
                    chunk = (2 * position + order) // 8
                    yield (judge_run.pk, recommendation, first, second, chunk, messages, output, parsed, error)

        verdict_fields = ["judge_run", "recommendation", "first", "second", "chunk", "prompt", "output", "parsed"]
        verdict_fields += ["parse_error", "status", "error", "completion_tokens", "attempts", "judged_at"]
        judged = ((*row, JudgeVerdict.Status.DONE, "", 4, 1, now) for row in verdicts())
        done("judge verdicts", insert_rows(JudgeVerdict, verdict_fields, judged))

        prober = Generator.objects.create(name="bench-prober", model="/models/bench-prober")
        probe = AttributeProbe.objects.create(
            prober=prober,
            generation_run=generation_runs[1],
            target="gender",
            options=["F", "M"],
            status=AttributeProbe.Status.SUCCEEDED,
            n_total=2 * PROBED_EXPLANATIONS,
            started_at=now,
            finished_at=now,
        )
        probed = rng.sample(explained, PROBED_EXPLANATIONS)
        answer_rows: list[tuple[Any, ...]] = []
        for position, (recommendation, user, _) in enumerate(probed):
            truth = genders[user]
            for with_explanation, accuracy in ((False, 0.6), (True, 0.68)):
                if rng.random() < PROBE_UNPARSED:
                    answer, error = "", "not one of the options"
                else:
                    answer, error = (truth if rng.random() < accuracy else "FM".replace(truth, "")), ""
                explanation = explanation_of[(b_run, recommendation)]
                answer_rows.append(
                    (explanation, with_explanation, [truth], position // 8, answer, error, answer == truth)
                )
        probe_fields = ["explanation", "with_explanation", "truth", "chunk", "answer", "parse_error", "correct"]
        probe_fields += ["probe", "output", "status", "prompt", "error", "attempts", "answered_at"]
        answered = (
            (*row, probe.pk, f"Answer: {row[4] or '?'}", ProbeAnswer.Status.DONE, [], "", 1, now) for row in answer_rows
        )
        done("probe answers", insert_rows(ProbeAnswer, probe_fields, answered))

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")  # the planner's statistics, as autovacuum keeps them on a running site
    log(f"loaded in {time.perf_counter() - started:.1f} s")
    return Study(recommender_run_id=run.pk, generation_run_ids=[g.pk for g in generation_runs], rows=rows)


# --- timing ----------------------------------------------------------------------------------

SECTIONS = [
    "judge_pairwise_section",
    "judge_likert_section",
    "human_likert_section",
    "human_pairwise_section",
    "probe_section",
    "meta_section",
]
STATISTICS = [
    "discrete_summary",
    "alpha_of_answers",
    "alphas_of_answers",
    "position_bias",
    "win_tie_loss",
    "bradley_terry",
    "accuracy_with_ci",
    "majority_baseline",
    "cohen_kappa",
    "kendall_tau",
    "spearman_rho",
]


@contextmanager
def timed(module: Any, names: list[str], into: dict[str, float]) -> Iterator[None]:
    """Replace ``module.<name>`` by a wrapper that adds each call's seconds to ``into[name]``,
    and put the originals back afterwards. The report calls its helpers and the statistics
    through its module's globals, so this sees every call."""
    originals = {name: getattr(module, name) for name in names}

    def wrap(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                into[name] = into.get(name, 0.0) + time.perf_counter() - started

        return wrapper

    for name, function in originals.items():
        setattr(module, name, wrap(name, function))
    try:
        yield
    finally:
        for name, function in originals.items():
            setattr(module, name, function)


def check_report(report: dict[str, Any], study: Study) -> None:
    """Fail loudly when the report did not see the data: a fast wrong report is no result."""
    explained = N_USERS * DEPTH
    [judge] = report["judge"]["pairwise"]
    [pair] = judge["pairs"]
    assert pair["win_tie_loss"]["n"] == explained, pair["win_tie_loss"]["n"]
    assert judge["position_bias"]["counts"]["unparsed"] > 0, judge["position_bias"]
    [human] = report["human"]
    assert len(human["runs"]) == len(study.generation_run_ids)
    assert set(human["agreement"]) == set(CRITERION_OFFSETS)
    rated = sum(summary["n"] for row in human["runs"] for summary in row["criteria"].values())
    # Excluded annotators' ratings are left out, everyone else's counted.
    assert 0.95 * study.rows["ratings"] < rated < study.rows["ratings"], rated
    [probe] = report["attributes"]
    assert probe["variants"]["history"]["n"] == PROBED_EXPLANATIONS


def measure(study: Study, repeats: int, profile: bool) -> dict[str, Any]:
    from django.db import connections

    from annotation.study import attributes, human, judges, meta
    from annotation.study import report as reports
    from explanations.models import GenerationRun
    from explanations.services import text_metrics as textmetrics
    from recommendations.models import RecommenderRun

    def report() -> dict[str, Any]:
        # What a request for the report page reads before calling it.
        recommender_run = RecommenderRun.objects.select_related("dataset").get(pk=study.recommender_run_id)
        runs = list(
            GenerationRun.objects.filter(pk__in=study.generation_run_ids).select_related("generator", "template")
        )
        return reports.study_report(
            recommender_run=recommender_run, generation_runs=runs, seed=REPORT_SEED, text_metrics={}
        )

    connections.close_all()
    log("study_report, cold (first call, fresh connection)")
    started = time.perf_counter()
    check_report(report(), study)
    cold = time.perf_counter() - started
    log(f"  cold: {cold:.2f} s")

    runs: list[float] = []
    sections: dict[str, list[float]] = defaultdict(list)
    by_statistic: dict[str, list[float]] = defaultdict(list)
    for repeat in range(repeats):
        section_seconds: dict[str, float] = {}
        statistic_seconds: dict[str, float] = {}
        with ExitStack() as stack:
            stack.enter_context(timed(reports, SECTIONS, section_seconds))
            # The statistics are called from the section modules, each through its own globals.
            for module in (judges, human, attributes, meta):
                called = [name for name in STATISTICS if hasattr(module, name)]
                stack.enter_context(timed(module, called, statistic_seconds))
            started = time.perf_counter()
            report()
            runs.append(time.perf_counter() - started)
        for name, seconds in section_seconds.items():
            sections[name].append(seconds)
        for name, seconds in statistic_seconds.items():
            by_statistic[name].append(seconds)
        log(f"  warm {repeat + 1}/{repeats}: {runs[-1]:.2f} s")

    profile_text = ""
    if profile:
        profiler = cProfile.Profile()
        profiler.enable()
        report()
        profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).strip_dirs()
        stats.sort_stats("cumulative").print_stats(30)
        stats.sort_stats("tottime").print_stats(20)
        profile_text = out.getvalue()

    # Text metrics are worker jobs: the report requests them, then a worker computes them;
    # here without embeddings (see the module docstring). Then the report misses and hits.
    from explanations.services.text_metrics import text_metrics_request, text_metrics_run

    text_seconds: list[float] = []
    original_metrics = textmetrics.generation_run_text_metrics

    def text_metrics_without_embeddings(run: GenerationRun, **options: Any) -> dict[str, Any]:
        return original_metrics(run, **options | {"embeddings": False})

    recommender_run = RecommenderRun.objects.select_related("dataset").get(pk=study.recommender_run_id)
    generation_runs = list(GenerationRun.objects.filter(pk__in=study.generation_run_ids))
    textmetrics.generation_run_text_metrics = text_metrics_without_embeddings
    try:
        for generation_run in generation_runs:
            job = text_metrics_request(run=generation_run, enqueue=False)
            started = time.perf_counter()
            text_metrics_run(metrics_id=job.pk)
            text_seconds.append(time.perf_counter() - started)
    finally:
        textmetrics.generation_run_text_metrics = original_metrics
    cached: list[tuple[float, bool]] = []
    for _ in range(2):
        started = time.perf_counter()
        result = reports.study_report_cached(recommender_run=recommender_run, generation_runs=generation_runs)
        cached.append((time.perf_counter() - started, result["cached"]))
    assert not result["text_jobs"] and len(result["text"]) == len(generation_runs), result["text_jobs"]
    assert [hit for _, hit in cached] == [False, True], cached
    log(
        f"  text metrics jobs {sum(text_seconds):.2f} s; study_report_cached: miss {cached[0][0]:.2f} s, hit {cached[1][0]:.3f} s"
    )

    median_statistics = {name: statistics.median(values) for name, values in by_statistic.items()}
    seconds = statistics.median(runs)
    statistics_seconds = sum(median_statistics.values())
    return {
        "seconds": round(seconds, 3),
        "cold_seconds": round(cold, 3),
        "runs_seconds": [round(value, 3) for value in runs],
        "sections": {name: round(statistics.median(values), 3) for name, values in sections.items()},
        "statistics": {
            name: round(value, 3) for name, value in sorted(median_statistics.items(), key=lambda item: -item[1])
        },
        "statistics_seconds": round(statistics_seconds, 3),
        "other_seconds": round(seconds - statistics_seconds, 3),
        "cached_first_seconds": round(cached[0][0], 3),
        "cached_seconds": round(cached[1][0], 4),
        "text_metrics_seconds": round(sum(text_seconds), 3),
        "_profile": profile_text,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="warm runs; the median is the figure")
    parser.add_argument("--profile", action="store_true", help="print cProfile's top entries of one warm run")
    options = parser.parse_args()

    load_before = load_average()
    with bench_django("report", BENCH_DATABASE, log) as work:
        machine = describe_machine()
        log(f"machine: {machine}; load average {load_before}; temporary folder {work}")
        study = load_study(random.Random(SEED))
        figures = measure(study, options.repeats, options.profile)
        load_after = load_average()

    profile_text = figures.pop("_profile")
    if profile_text:
        print(profile_text, flush=True)
    goal_met = figures["seconds"] < GOAL_SECONDS
    log(
        f"goal study_report under {GOAL_SECONDS:.0f} s (warm median, text metrics excluded): "
        f"{'met' if goal_met else 'NOT met'} ({figures['seconds']} s)"
    )
    from annotation.study.sections import RESAMPLES

    result = {
        "bench": "report",
        "figures": figures,
        "goal": {
            "seconds": GOAL_SECONDS,
            "what": "study_report from the database, warm median; text metrics excluded (worker jobs)",
        },
        "goal_met": goal_met,
        "setup": {
            "repeats": options.repeats,
            "seed": REPORT_SEED,
            "resamples": RESAMPLES,
            "text_metrics": "worker jobs, timed without embeddings; not in seconds or cached_first_seconds",
            "rows": study.rows,
        },
        "load_average": {"before": load_before, "after": load_after},
        "machine": machine,
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
