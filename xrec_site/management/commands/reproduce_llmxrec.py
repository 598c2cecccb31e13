"""`manage.py reproduce_llmxrec`: the LLMXRec study's pipeline on the data present, ending in
its tables.

For each dataset (MovieLens-100K from the recbole wheel; Steam and MIND from their RecBole atomic
files when given; or any dataset already imported, by name) it trains the study's recommender
(BPR, from the ``implicit`` library), imports lists computed elsewhere (RecBole's LightGCN and
SASRec top-K files), explains the top item of ``--users`` seeded random users with every
generator in the study's prompt and in xrec's, judges the runs pairwise in both orders (the
study's single-order win rate is read off the same verdicts), probes what the study probed, and
prints the cross-study tables as Markdown and then, as its last line, JSON with ``"tables"``.

What was made before with the same settings is reused, so a second call only prints. Every job
runs in this process (no worker is needed); a failed job stops the command with its error.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

from django.core.management import call_command
from django.core.management.base import CommandError, CommandParser
from django.urls import reverse

from annotation.study.cross import cross_study_tables
from annotation.study.report import study_report_cached
from annotation.study.tables import to_markdown
from explanations.judging import default_rubric
from explanations.models import (
    AnswerMode,
    AttributeProbe,
    ChunkedJob,
    GenerationRun,
    Generator,
    JudgeRun,
    PromptTemplate,
)
from explanations.probing import NUMBER_PREFIX, POPULARITY_FIXED, PROFILE, USER_TARGETS
from explanations.prompts import Controls
from explanations.services.engine import ChunkedKind
from explanations.services.generation import GENERATION, generation_run_start
from explanations.services.generators import (
    GenerationError,
    bundled_model_prepare,
    generator_ensure_bundled,
    prompt_templates_ensure_builtin,
)
from explanations.services.judging import JUDGE, judge_run_start
from explanations.services.probing import PROBE, probe_start
from recommendations.algorithms import IMPLICIT_ALGORITHMS
from recommendations.importers import ImportFailed
from recommendations.models import Dataset, DatasetUser, Item, RecommenderRun
from recommendations.services import dataset_import_files
from recommendations.services.external import external_run_import
from recommendations.services.training import TrainingError, recommender_run_create, recommender_run_execute
from recommendations.shared.jobs import Job
from xrec_site.management.staged import StagedCommand


@dataclass(frozen=True)
class StudyDataset:
    """One of the study's datasets: how xrec names and imports it, and which of the study's
    prompts explains it."""

    name: str
    format: str
    domain: str
    prompt: str
    options: dict[str, Any] = field(default_factory=dict)
    positive_threshold: float | None = None


STUDY_DATASETS = {
    "ml-100k": StudyDataset("movielens-100k", "movielens-100k", "movies", "llmxrec-movielens"),
    # RecBole's Steam files key play logs by product_id and games by id.
    "steam": StudyDataset("steam", "recbole", "games", "llmxrec-steam", {"map": {"item": "product_id", "item_key": "id"}}),
    # MIND's label is 1 for a click and 0 for a headline shown and not clicked: clicks are the positives.
    "mind": StudyDataset("mind", "recbole", "news", "llmxrec-mind", {"map": {"rating": "label"}}, positive_threshold=1.0),
}  # fmt: skip
PROMPTS = ("study", "xrec")
# A profile answer is a JSON object of three fields: it needs more tokens than one label.
PROFILE_TOKENS = 48
K = 10
J = TypeVar("J", bound=ChunkedJob)


@dataclass
class Study:
    """One column of the tables: a recommender run and the generation runs that explained it."""

    dataset: Dataset
    run: RecommenderRun
    generation_runs: list[GenerationRun] = field(default_factory=list)
    judge_run: int | None = None
    probes: dict[str, int] = field(default_factory=dict)


class Command(StagedCommand):
    help = (
        "Reproduce the LLMXRec study on the datasets present: recommenders, explanations, judge, probes, "
        'and the cross-study tables (Markdown, then JSON with "tables" on the last line).'
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--datasets",
            nargs="+",
            default=["ml-100k"],
            metavar="DATASET",
            help="ml-100k (from the recbole wheel), steam=DIR and mind=DIR (RecBole atomic files), or the name "
            "of a dataset already imported (default: ml-100k)",
        )
        parser.add_argument("--users", type=int, default=8, help="seeded random users whose top item is explained")
        parser.add_argument(
            "--recommenders",
            nargs="+",
            default=["BPR"],
            choices=list(IMPLICIT_ALGORITHMS),
            help="implicit-feedback models to train on every dataset (default: BPR, the study's own)",
        )
        parser.add_argument(
            "--lists",
            nargs="*",
            default=[],
            metavar="DATASET:MODEL=FILE",
            help="top-K lists computed elsewhere, e.g. ml-100k:LightGCN=lightgcn.atomic (CSV, JSONL or "
            "RecBole's top-K), scored against the same split as the trained models",
        )
        parser.add_argument(
            "--generators",
            nargs="+",
            default=[],
            metavar="NAME",
            help="generators that write the explanations (default: the bundled SmolLM2-135M-Instruct)",
        )
        parser.add_argument(
            "--prompts",
            nargs="+",
            default=list(PROMPTS),
            choices=PROMPTS,
            help="study: the study's prompt for the dataset's domain; xrec: xrec's grounded prompt (default: both)",
        )
        parser.add_argument("--judge", default="", help="the generator that judges and probes (default: the first)")
        parser.add_argument("--max-words", type=int, default=40, help="the word limit the prompts ask for")
        parser.add_argument("--price-tolerance", type=float, default=1.0, help="a price answer this close is right")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--fresh", action="store_true", help="re-import datasets that are already present")

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        self.seconds = {}
        if options["users"] < 1:
            raise CommandError("--users must be at least 1")
        with self._stage("migrate", "migrating the database"):
            call_command("migrate", interactive=False, verbosity=0)
        # Everything named is checked before anything is imported, trained or converted.
        lists = _lists(options["lists"])
        named = _named_generators([*options["generators"], *filter(None, [options["judge"]])])
        keys = [entry.partition("=")[0] for entry in options["datasets"]]
        unknown = set(lists) - set(keys)
        if unknown:
            raise CommandError(f"--lists names datasets not in --datasets: {', '.join(sorted(unknown))}")
        datasets = [self._dataset(entry, fresh=options["fresh"]) for entry in options["datasets"]]
        generators = [named[name] for name in options["generators"]] or [self._bundled()]
        judge = named[options["judge"]] if options["judge"] else generators[0]
        studies = []
        for key, dataset in datasets:
            runs = [self._trained(dataset, algorithm, options["seed"]) for algorithm in options["recommenders"]]
            runs += [self._imported(dataset, label, path, options["seed"]) for label, path in lists.get(key, [])]
            for run in runs:
                study = Study(dataset, run)
                for generator in generators:
                    for template in _templates(dataset, options["prompts"]):
                        study.generation_runs.append(self._explained(run, generator, template, options))
                self._judged(study, judge)
                self._probed(study, judge, options["price_tolerance"])
                studies.append(study)
        with self._stage("report", "computing the study reports"):
            reports = [
                study_report_cached(recommender_run=study.run, generation_runs=study.generation_runs)
                for study in studies
            ]
        tables = cross_study_tables(reports)
        spec = ";".join(f"{s.run.pk}:{','.join(str(g.pk) for g in s.generation_runs)}" for s in studies)
        self.seconds["total"] = round(time.perf_counter() - started, 2)
        self.stdout.write("\n" + to_markdown([table for table in tables if table.rows]))
        empty = [table.name for table in tables if not table.rows]
        if empty:
            self.stdout.write(
                f"No figures for {', '.join(empty)}: nothing of the kind was run, or none of its answers could be "
                "used (each study's report says which).\n"
            )
        summary = {
            "studies": spec,
            "page": f"{reverse('annotation:cross_study')}?{urlencode({'studies': spec})}",
            "runs": [_study_summary(study) for study in studies],
            "tables": [asdict(table) for table in tables],
            "seconds": self.seconds,
        }
        self.stdout.write(json.dumps(summary))

    def _dataset(self, entry: str, *, fresh: bool) -> tuple[str, Dataset]:
        """(key, dataset) for one --datasets entry, importing a study dataset once."""
        key, _, path = entry.partition("=")
        study = STUDY_DATASETS.get(key)
        if study is None:
            dataset = Dataset.objects.filter(name=entry).first()
            if dataset is None:
                raise CommandError(
                    f"--datasets {entry}: not ml-100k, steam=DIR or mind=DIR, and no dataset has that name"
                )
            return entry, dataset
        dataset = Dataset.objects.filter(name=study.name).first()
        if dataset is not None and not fresh:
            return key, dataset
        if not path and study.format != "movielens-100k":
            raise CommandError(f"--datasets {key}: give the folder of its RecBole atomic files, as {key}=DIR")
        with self._stage(f"import_{key}", f"importing {study.name}"):
            try:
                result = dataset_import_files(
                    format=study.format,
                    path=Path(path) if path else None,
                    name=study.name,
                    options=study.options,
                    domain=study.domain,
                    replace=dataset is not None,
                )
            except ImportFailed as exc:
                raise CommandError(f"importing {key} failed, nothing changed: {exc}") from None
        return key, result.dataset

    def _bundled(self) -> Generator:
        with self._stage("model", "preparing the bundled SmolLM2-135M-Instruct (once)"):
            bundled_model_prepare()
        return generator_ensure_bundled()

    def _trained(self, dataset: Dataset, algorithm: str, seed: int) -> RecommenderRun:
        """The dataset's run of ``algorithm`` with the study's settings (default hyperparameters,
        the leave-last-out split), trained once."""
        study = STUDY_DATASETS.get(_key(dataset))
        # Rated data are all positives, as in RecBole's defaults, unless the study dataset says
        # otherwise (MIND: a click); an implicit dataset has nothing to hold a threshold against.
        threshold = None if dataset.is_implicit or study is None else study.positive_threshold
        existing = (
            RecommenderRun.objects.filter(
                dataset=dataset,
                kind=RecommenderRun.Kind.TRAINED,
                algorithm=algorithm,
                seed=seed,
                k=K,
                positive_threshold=threshold,
                hyperparameters={},
                split__mode=_split(seed)["mode"],
                split__seed=seed,
                status=RecommenderRun.Status.SUCCEEDED,
            )
            .order_by("-id")
            .first()
        )
        if existing is not None:
            return existing
        with self._stage(f"train_{dataset.name}_{algorithm}", f"training {algorithm} on {dataset.name}"):
            try:
                run = recommender_run_create(
                    created_by=None,
                    dataset=dataset,
                    algorithm=algorithm,
                    split_options=_split(seed),
                    seed=seed,
                    k=K,
                    positive_threshold=threshold,
                )
            except TrainingError as exc:
                raise CommandError(f"{algorithm} on {dataset.name}: {exc}") from None
            recommender_run_execute(run_id=run.pk)
            run.refresh_from_db()
        if run.status != RecommenderRun.Status.SUCCEEDED:
            raise CommandError(f"{algorithm} on {dataset.name} failed: {run.error}")
        return run

    def _imported(self, dataset: Dataset, label: str, path: Path, seed: int) -> RecommenderRun:
        """Lists from ``path`` as an external run scored against the trained runs' split,
        imported once per file content."""
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        existing = RecommenderRun.objects.filter(
            dataset=dataset, kind=RecommenderRun.Kind.EXTERNAL, algorithm=label[:40], source__sha256=digest
        ).first()
        if existing is not None:
            return existing
        with self._stage(f"lists_{dataset.name}_{label}", f"importing {label}'s lists for {dataset.name}"):
            try:
                return external_run_import(
                    dataset=dataset,
                    name=f"{label} top-{K} ({path.name})",
                    data=data,
                    file_name=path.name,
                    label=label,
                    split_options=_split(seed),
                )
            except ImportFailed as exc:
                raise CommandError(f"--lists {label}: import failed, nothing changed: {exc}") from None

    def _explained(
        self, run: RecommenderRun, generator: Generator, template: PromptTemplate, options: dict[str, Any]
    ) -> GenerationRun:
        """The top item of ``--users`` seeded random users explained by ``generator`` in
        ``template``, without the user's profile (the profile probe would measure copying)."""
        controls = Controls(max_words=options["max_words"], include_profile=False)
        chosen = {
            "recommender_run": run,
            "generator": generator,
            "template": template,
            "sample": GenerationRun.Sample.RANDOM,
            "sample_size": options["users"],
            "seed": options["seed"],
        }
        existing = (
            GenerationRun.objects.filter(
                **chosen, **controls.run_fields(), depth=1, status=GenerationRun.Status.SUCCEEDED
            )
            .order_by("-id")
            .first()
        )
        if existing is not None:
            return existing
        return self._run(
            f"explain_{run.pk}",
            f"explaining {run.dataset.name} / {run.algorithm} with {generator.name} ({template})",
            lambda: generation_run_start(created_by=None, **chosen, controls=controls, enqueue=False),
            GENERATION,
        )

    def _run(self, key: str, message: str, start: Callable[[], J], kind: ChunkedKind) -> J:
        """Start a job with ``start`` and run all of it here, timed as stage ``key``; a job
        that cannot start or does not succeed stops the command with the reason."""
        with self._stage(key, message):
            try:
                job = start()
            except GenerationError as exc:
                raise CommandError(f"{message}: {exc}") from None
            kind.run_here(job)
        if job.status != Job.Status.SUCCEEDED:
            raise CommandError(f"{job} failed: {job.error}")
        return job

    def _judged(self, study: Study, judge: Generator) -> None:
        """A pairwise judge run over the study's generation runs, both orders (none for one run)."""
        if len(study.generation_runs) < 2:
            return
        wanted = {run.pk for run in study.generation_runs}
        for candidate in JudgeRun.objects.filter(
            judge=judge,
            mode=JudgeRun.Mode.PAIRWISE,
            status=JudgeRun.Status.SUCCEEDED,
            generation_runs=study.generation_runs[0],
        ).prefetch_related("generation_runs"):
            if {run.pk for run in candidate.generation_runs.all()} == wanted:
                study.judge_run = candidate.pk
                return
        run = self._run(
            f"judge_{study.run.pk}",
            f"judging {len(wanted)} runs pairwise, in both orders",
            lambda: judge_run_start(
                created_by=None,
                judge=judge,
                generation_runs=study.generation_runs,
                rubric=default_rubric(),
                mode=JudgeRun.Mode.PAIRWISE,
                enqueue=False,
            ),
            JUDGE,
        )
        study.judge_run = run.pk

    def _probed(self, study: Study, prober: Generator, price_tolerance: float) -> None:
        """The study's probes on every generation run: the profile in one JSON answer where
        users have one, the popularity groups, and the price where items have one."""
        for generation in study.generation_runs:
            for target, mode, tolerance in _targets(study.dataset, price_tolerance):
                probe = AttributeProbe.objects.filter(
                    prober=prober,
                    generation_run=generation,
                    target=target,
                    answer_mode=mode,
                    tolerance=tolerance,
                    status=AttributeProbe.Status.SUCCEEDED,
                ).first()
                if probe is None:
                    probe = self._run(
                        f"probe_{target}",
                        f"probing {target} on generation run #{generation.pk}",
                        partial(
                            probe_start,
                            created_by=None,
                            prober=prober,
                            generation_run=generation,
                            target=target,
                            answer_mode=mode,
                            tolerance=tolerance,
                            max_new_tokens=PROFILE_TOKENS if target == PROFILE else 16,
                            enqueue=False,
                        ),
                        PROBE,
                    )
                study.probes[f"{generation.pk}:{target}"] = probe.pk


def _named_generators(names: list[str]) -> dict[str, Generator]:
    found = {generator.name: generator for generator in Generator.objects.filter(name__in=names)}
    missing = [name for name in dict.fromkeys(names) if name not in found]
    if missing:
        raise CommandError(f"no generator named {', '.join(missing)} (register one with `manage.py prepare_model`)")
    return found


def _key(dataset: Dataset) -> str:
    """The study key of a dataset imported under a study dataset's name, else ""."""
    return next((key for key, study in STUDY_DATASETS.items() if study.name == dataset.name), "")


def _split(seed: int) -> dict[str, Any]:
    # The study's protocol: each user's last interaction is the test event.
    return {"mode": "leave_last_out", "seed": seed}


def _lists(entries: list[str]) -> dict[str, list[tuple[str, Path]]]:
    """--lists entries DATASET:MODEL=FILE as dataset key → [(model, path)]."""
    found: dict[str, list[tuple[str, Path]]] = {}
    for entry in entries:
        head, equals, path = entry.partition("=")
        dataset, colon, model = head.partition(":")
        if not (equals and colon and dataset and model.strip() and path):
            raise CommandError(f"--lists {entry}: expected DATASET:MODEL=FILE, e.g. ml-100k:LightGCN=top10.atomic")
        if not Path(path).is_file():
            raise CommandError(f"--lists: no file {path}")
        found.setdefault(dataset, []).append((model.strip(), Path(path)))
    return found


def _templates(dataset: Dataset, prompts: list[str]) -> list[PromptTemplate]:
    """The newest built-in of each chosen prompt: the study's for the dataset's domain (skipped
    for a domain the study had no prompt for) and xrec's grounded default."""
    builtin = {template.name: template for template in prompt_templates_ensure_builtin()}
    study = {study.domain: study.prompt for study in STUDY_DATASETS.values()}.get(dataset.domain)
    chosen = []
    for prompt in prompts:
        if prompt == "xrec":
            chosen.append(builtin["xrec-default"])
        elif study is not None:
            chosen.append(builtin[study])
    if not chosen:
        raise CommandError(f"{dataset.name}: the study had no prompt for {dataset.domain}; add --prompts xrec")
    return chosen


def _targets(dataset: Dataset, price_tolerance: float) -> list[tuple[str, str, float | None]]:
    """(target, answer mode, tolerance) of the study's probes that ``dataset`` has values for."""
    targets: list[tuple[str, str, float | None]] = []
    if DatasetUser.objects.filter(dataset=dataset, profile__has_any_keys=list(USER_TARGETS)).exists():
        targets.append((PROFILE, AnswerMode.TEXT, None))
    targets.append((POPULARITY_FIXED, AnswerMode.LIKELIHOOD, None))
    if Item.objects.filter(dataset=dataset, attributes__has_key="price").exists():
        targets.append((f"{NUMBER_PREFIX}price", AnswerMode.TEXT, price_tolerance))
    return targets


def _study_summary(study: Study) -> dict[str, Any]:
    topk = (study.run.metrics or {}).get("topk") or {}
    query = {"recommender_run": study.run.pk, "runs": [run.pk for run in study.generation_runs]}
    return {
        "dataset": study.dataset.name,
        "recommender_run": study.run.pk,
        "recommender": study.run.algorithm,
        "kind": study.run.kind,
        f"ndcg@{K}": None if topk.get("ndcg") is None else round(topk["ndcg"], 4),
        "generation_runs": [run.pk for run in study.generation_runs],
        "report": f"{reverse('annotation:study')}?{urlencode(query, doseq=True)}",
        "judge_run": study.judge_run,
        "probes": study.probes,
    }
