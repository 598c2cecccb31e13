import json
import os
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError, CommandParser
from django.urls import reverse

from annotation.models import Campaign, PrivacyFlag
from annotation.services.campaigns import campaign_create, campaign_open, campaign_reference_item_add
from annotation.services.privacy import privacy_flag_decide
from annotation.study.report import study_report_cached
from annotation.study.tables import report_tables
from explanations.judging import default_rubric
from explanations.models import (
    AdapterTraining,
    AttributeProbe,
    Explanation,
    GenerationRun,
    Generator,
    JudgeRun,
    PromptTemplate,
    TextMetrics,
)
from explanations.prompts import Controls
from explanations.querysets import generation_run_text_stats, judge_run_stats, probe_stats
from explanations.services.adapters import adapter_training_run, adapter_training_start
from explanations.services.generation import GENERATION, generation_run_start
from explanations.services.generators import (
    bundled_model_prepare,
    generator_ensure_bundled,
    prompt_templates_ensure_builtin,
)
from explanations.services.judging import JUDGE, judge_run_start
from explanations.services.probing import PROBE, probe_start
from explanations.services.text_metrics import text_metrics_request, text_metrics_run
from recommendations.models import Dataset, DatasetUser, Interaction, Item, Recommendation, RecommenderRun, Split
from recommendations.services import dataset_import_files
from recommendations.services.training import recommender_run_create, recommender_run_execute
from xrec_site.management.commands.createdemousers import DEFAULT_PASSWORD
from xrec_site.management.staged import StagedCommand
from xrec_site.roles import demo_users_create

DEMO_DATASET = "movielens-100k"
DEMO_INSTRUCTIONS = """You will read short explanations of movie recommendations.

- On the right you see what **this user** rated recently; titles the explanation names are highlighted.
- Rate each explanation on every question, from 1 (worst) to 10 (best).
- Use the keyboard: digits answer, Enter submits and moves on.
"""
DEMO_CONSENT = (
    "This is a demonstration study. Your answers are stored under a pseudonym and used only to show "
    "how xrec works. You may stop at any time."
)


class Command(StagedCommand):
    help = (
        "Run the demo pipeline on the embedded default, then serve the site with a worker. "
        "With --no-serve, run the pipeline only and print a JSON summary as the last line."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--no-serve", action="store_true", help="run the pipeline and exit")
        parser.add_argument("--fresh", action="store_true", help="re-import the demo dataset even if present")
        parser.add_argument(
            "--llm-users",
            type=int,
            default=int(os.environ.get("XREC_DEMO_LLM_USERS", "16")),
            help="users in the teacher run (the base-vs-tuned comparison uses half as many)",
        )
        parser.add_argument(
            "--generator",
            default=os.environ.get("XREC_DEMO_GENERATOR", ""),
            help="a local (hf) generator to explain and tune instead of the bundled SmolLM2 "
            "(register one with `manage.py prepare_model`)",
        )
        parser.add_argument(
            "--judge",
            default=os.environ.get("XREC_DEMO_JUDGE", ""),
            help="the generator that judges and probes (any backend, e.g. a vLLM server); default: --generator",
        )
        parser.add_argument("--host", default=os.environ.get("XREC_DEMO_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("XREC_DEMO_PORT", "8000")))

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        self.seconds: dict[str, float] = {}
        password = os.environ.get("XREC_DEMO_PASSWORD", DEFAULT_PASSWORD)
        with self._stage("migrate", "migrating the database"):
            call_command("migrate", interactive=False, verbosity=0)
            logins = demo_users_create(password=password)

        dataset = Dataset.objects.filter(name=DEMO_DATASET).first()
        if dataset is None or options["fresh"]:
            with self._stage("import", "importing MovieLens-100K from the recbole package"):
                dataset = dataset_import_files(
                    format="movielens-100k", path=None, name=DEMO_DATASET, replace=True
                ).dataset
        run = (
            RecommenderRun.objects.listed()
            .filter(dataset=dataset, algorithm="SVD", status=RecommenderRun.Status.SUCCEEDED)
            .order_by("-id")
            .first()
        )
        if run is None:
            with self._stage("recommender", "training SVD and ranking the top 10 for every user"):
                run = recommender_run_create(created_by=None, dataset=dataset, algorithm="SVD", seed=0)
                recommender_run_execute(run_id=run.pk)
                run.refresh_from_db()
            if run.status != RecommenderRun.Status.SUCCEEDED:
                raise CommandError(f"the demo's SVD run failed: {run.error}")
        base_generator, judge = self._generators(options["generator"], options["judge"])
        explanations = self._explanation_stage(run, options["llm_users"], base_generator)
        base = f"http://{options['host']}:{options['port']}"
        compared = [
            GenerationRun.objects.get(pk=explanations["compare"][label]["generation_run"])
            for label in ("base", "tuned")
        ]
        with self._stage("campaigns", "opening the annotation campaigns"):
            annotation = self._annotation_stage(compared, base)
        judging = self._judge_stage(compared, base, judge)
        self.seconds["total"] = round(time.perf_counter() - started, 2)
        summary = {
            "counts": self._counts(),
            "dataset": {
                "name": dataset.name,
                "users": dataset.n_users,
                "items": dataset.n_items,
                "interactions": dataset.n_interactions,
                "import_seconds": round(dataset.import_seconds or 0, 2),
            },
            "recommender": {
                "run": run.pk,
                "algorithm": run.algorithm,
                "rmse": round(run.metrics["rating"]["rmse"], 4),
                f"ndcg@{run.k}": round(run.metrics["topk"]["ndcg"], 4),
                "top_item_user_share": round(run.metrics["catalogue"]["top_item_user_share"], 4),
            },
            "explanations": explanations,
            "annotation": annotation,
            "evaluation": judging,
            "urls": {
                "home": base + reverse("home"),
                "login": base + reverse("login"),
                "dataset": base + reverse("recommendations:dataset_detail", args=[dataset.pk]),
                "import": base + reverse("recommendations:import"),
                "run": base + reverse("recommendations:run_detail", args=[run.pk]),
                "explanations": base + reverse("explanations:run_list"),
                "admin": base + reverse("admin:index"),
            },
            "logins": {username: {"role": role, "password": password} for username, role in logins.items()},
            "quality": self._quality(compared[0], judging),
            "seconds": self.seconds,
        }
        if options["no_serve"]:
            self.stdout.write(json.dumps(summary))
            return
        self._serve(summary, options["host"], options["port"])

    @staticmethod
    def _counts() -> dict[str, int]:
        """How many rows of each kind the database holds now (after this or earlier demos)."""
        return {
            "datasets": Dataset.objects.count(),
            "items": Item.objects.count(),
            "dataset_users": DatasetUser.objects.count(),
            "interactions": Interaction.objects.count(),
            "site_users": get_user_model().objects.count(),
            "splits": Split.objects.count(),
            "recommender_runs": RecommenderRun.objects.count(),
            "recommendations": Recommendation.objects.count(),
        }

    def _generators(self, generator: str, judge: str) -> tuple[Generator, Generator]:
        """The demo's base generator (the bundled model unless named) and its judge."""
        if generator:
            base = Generator.objects.filter(name=generator).first()
            if base is None or base.backend != Generator.Backend.HF or base.adapter_path:
                raise CommandError(
                    f"--generator {generator}: no local (hf) generator without an adapter by that name; "
                    "register one with `manage.py prepare_model`"
                )
        else:
            with self._stage("model", "preparing the bundled SmolLM2-135M-Instruct (once)"):
                bundled_model_prepare()
            base = generator_ensure_bundled()
        chosen = Generator.objects.filter(name=judge).first() if judge else base
        if chosen is None:
            raise CommandError(f"--judge {judge}: no generator by that name")
        return base, chosen

    def _explanation_stage(self, run: RecommenderRun, n_users: int, base: Generator) -> dict[str, Any]:
        """Self-distillation on the base model: teacher run, LoRA adapter, base vs tuned."""
        template = prompt_templates_ensure_builtin()[0]  # xrec-default, the improved template
        training = (
            AdapterTraining.objects.filter(base_generator=base, status=AdapterTraining.Status.SUCCEEDED)
            .order_by("-id")
            .first()
        )
        if training is None:
            with self._stage("teacher", f"teacher run: explaining the top item for {n_users} random users"):
                teacher = self._generate(run, base, template, seed=0, size=n_users)
            with self._stage("adapter", "training a LoRA adapter on the teacher's filtered explanations"):
                training = adapter_training_start(
                    created_by=None,
                    base_generator=base,
                    source_run=teacher,
                    options={"epochs": 1, "learning_rate": 5e-4, "batch_size": 4, "max_length": 512},
                    enqueue=False,
                )
                adapter_training_run(training_id=training.pk)
                training.refresh_from_db()
            if training.status != AdapterTraining.Status.SUCCEEDED:
                raise CommandError(f"the demo's adapter training failed: {training.error}")
        tuned = training.generators.get()
        compared = {}
        for label, generator in (("base", base), ("tuned", tuned)):
            generation = GenerationRun.objects.listed().filter(generator=generator, template=template, seed=1).first()
            if generation is None:
                with self._stage(label, f"explaining with the {label} generator"):
                    generation = self._generate(run, generator, template, seed=1, size=max(1, n_users // 2))
            compared[label] = {"generation_run": generation.pk} | {
                key: round(value, 3) for key, value in generation_run_text_stats(generation).items()
            }
        return {
            "generators": Generator.objects.count(),
            "generation_runs": GenerationRun.objects.count(),
            "explanations": Explanation.objects.filter(status=Explanation.Status.DONE).count(),
            "adapter": {
                "training": training.pk,
                "examples": training.n_examples,
                "filtered": training.n_filtered,
                "validation_loss_first": training.validation_losses[0][1] if training.validation_losses else None,
                "validation_loss_last": training.validation_losses[-1][1] if training.validation_losses else None,
            },
            "compare": compared,
        }

    def _judge_stage(self, runs: list[GenerationRun], base_url: str, judge: Generator) -> dict[str, Any]:
        """The automatic perspectives on base vs tuned, with ``judge`` as judge and prober (the
        bundled 135M model by default, a weak judge: the point is the pipeline; reused if present)."""
        results: dict[str, Any] = {}
        for mode in (JudgeRun.Mode.PAIRWISE, JudgeRun.Mode.LIKERT):
            run = JudgeRun.objects.filter(judge=judge, mode=mode, generation_runs=runs[0]).first()
            if run is None:
                with self._stage(f"judge_{mode}", f"judging base vs tuned ({mode})"):
                    run = judge_run_start(
                        created_by=None,
                        judge=judge,
                        generation_runs=runs,
                        rubric=default_rubric(),
                        mode=mode,
                        enqueue=False,
                    )
                    JUDGE.run_here(run)
            results[f"judge_{mode}"] = {"judge_run": run.pk, "phase": run.phase, "stats": judge_run_stats(run)}
        probes = {}
        for generation in runs:
            probe = AttributeProbe.objects.filter(prober=judge, generation_run=generation, target="item:genres").first()
            if probe is None:
                with self._stage("probes", f"probing genres from generation run #{generation.pk}"):
                    probe = probe_start(
                        created_by=None, prober=judge, generation_run=generation, target="item:genres", enqueue=False
                    )
                    PROBE.run_here(probe)
            probes[str(generation.pk)] = {"probe": probe.pk, "phase": probe.phase, "stats": probe_stats(probe)}
        results["probes"] = probes
        results["judge_runs_page"] = base_url + reverse("explanations:judge_list")
        query = "&".join([f"recommender_run={runs[0].recommender_run_id}", *(f"runs={run.pk}" for run in runs)])
        results["report"] = f"{base_url}{reverse('annotation:study')}?{query}"
        for generation in runs:  # what a default-queue worker does when the report asks for them
            job = text_metrics_request(run=generation, enqueue=False)
            if job.status == TextMetrics.Status.PENDING:
                with self._stage("text_metrics", f"text metrics of generation run #{generation.pk}"):
                    text_metrics_run(metrics_id=job.pk)
        with self._stage("report", "computing the study report (judge, probes, text metrics)"):
            report = study_report_cached(recommender_run=runs[0].recommender_run, generation_runs=runs)
        results["report_tables"] = [table.name for table in report_tables(report) if table.rows]
        return results

    def _quality(self, base_run: GenerationRun, judging: dict[str, Any]) -> dict[str, float | None]:
        """What the demo's output is worth, as shares in 0-1: the base generator's run against
        its word limit and its facts (the text metrics), and how many of the judge's and the
        probes' answers could be used."""
        metrics = (
            TextMetrics.objects.filter(generation_run=base_run, reference_run=None, status=TextMetrics.Status.SUCCEEDED)
            .order_by("-id")
            .values_list("metrics", flat=True)
            .first()
        ) or {}
        over = (metrics.get("length") or {}).get("over_limit")
        judged = [judging[f"judge_{mode}"]["stats"] for mode in (JudgeRun.Mode.PAIRWISE, JudgeRun.Mode.LIKERT)]
        answered = [variant for probe in judging["probes"].values() for variant in probe["stats"]["variants"].values()]

        def share(part: int, whole: int) -> float | None:
            return round(part / whole, 4) if whole else None

        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 4)

        return {
            "within_word_limit": None if over is None else round(1 - over, 4),
            "hallucinated_title_rate": rounded((metrics.get("grounding") or {}).get("hallucination_rate")),
            "grounded_share": rounded((metrics.get("grounding") or {}).get("grounded_share")),
            "echo_rate": rounded(metrics.get("echo_rate")),
            "judge_parsed_share": share(
                sum(s["done"] - s["unparsed"] for s in judged), sum(s["done"] + s["failed"] for s in judged)
            ),
            "probe_parsed_share": share(
                sum(v["done"] - v["unparsed"] for v in answered), sum(v["done"] + v["failed"] for v in answered)
            ),
        }

    def _annotation_stage(self, runs: list[GenerationRun], base_url: str) -> dict[str, Any]:
        """A Likert campaign (k = 3) and a pairwise campaign on base vs tuned, opened after their
        privacy review; and a claims campaign left in review for the researcher to check (privacy
        findings, re-identification, the split) and open. Reused if present."""
        campaigns: dict[str, Any] = {}
        for mode in (Campaign.Mode.LIKERT, Campaign.Mode.PAIRWISE, Campaign.Mode.CLAIMS):
            name = f"Demo: base vs tuned SmolLM2 ({mode})"
            campaign = Campaign.objects.filter(name=name).first()
            if campaign is None:
                self.stdout.write(f"opening the {mode} annotation campaign…")
                campaign = campaign_create(
                    created_by=None,
                    name=name,
                    generation_runs=runs,
                    mode=mode,
                    overlap=3,
                    items_per_annotator=8 if mode == Campaign.Mode.LIKERT else 6,
                    # ML-100K: four titles single out no user; five single out 39% (the campaign
                    # page's re-identification estimate).
                    history_length=4 if mode == Campaign.Mode.CLAIMS else None,
                    attention_checks=2,
                    check_every=4,
                    instructions=DEMO_INSTRUCTIONS,
                    consent_text=DEMO_CONSENT,
                )
                first = Explanation.objects.filter(generation_run=runs[0], status=Explanation.Status.DONE).first()
                if mode == Campaign.Mode.LIKERT and first is not None:
                    campaign_reference_item_add(
                        campaign=campaign,
                        explanation=first,
                        kind="training",
                        accepted={
                            criterion.name: [criterion.scale_min, criterion.scale_max]
                            for criterion in campaign.criteria.all()
                        },
                        feedback="Any answer is accepted on this practice item: it is here to show you the page. "
                        "Read the user's history on the right before you rate.",
                    )
            if mode != Campaign.Mode.CLAIMS:
                self._review(campaign)
            link = base_url + reverse("annotation:crowd_entry", args=[campaign.public_token])
            campaigns[str(mode)] = {
                "campaign": campaign.pk,
                "items": campaign.items.filter(kind="regular").count(),
                "page": base_url + reverse("annotation:campaign_detail", args=[campaign.pk]),
                "status": str(campaign.status),
                "annotator_link": f"{link}?PROLIFIC_PID=demo-worker-1&STUDY_ID=demo&SESSION_ID=s1",
            }
        campaigns["first_person"] = self._first_person_campaign(runs, base_url)
        return campaigns

    def _first_person_campaign(self, runs: list[GenerationRun], base_url: str) -> dict[str, Any]:
        """An open first-person campaign over the same runs: whoever follows its link rates 15
        films, and the running worker explains their own two recommendations. Reused if present."""
        name = "Demo: your own recommendations (first person)"
        campaign = Campaign.objects.filter(name=name).first()
        if campaign is None:
            self.stdout.write("opening the first-person campaign…")
            campaign = campaign_create(
                created_by=None,
                name=name,
                generation_runs=runs,
                audience=Campaign.Audience.FIRST_PERSON,
                elicit_count=15,
                first_person_k=2,
                instructions=DEMO_INSTRUCTIONS,
                consent_text=DEMO_CONSENT,
            )
            self._review(campaign)
        link = base_url + reverse("annotation:crowd_entry", args=[campaign.public_token])
        return {
            "campaign": campaign.pk,
            "page": base_url + reverse("annotation:campaign_detail", args=[campaign.pk]),
            "status": str(campaign.status),
            "participant_link": f"{link}?PROLIFIC_PID=demo-participant-1&STUDY_ID=demo&SESSION_ID=s1",
        }

    def _review(self, campaign: Campaign) -> None:
        """Decide the campaign's privacy findings as a careful researcher would without reading
        them (exclude every item that shows one; accept a finding in the demo's own
        instructions) and open it."""
        for flag in campaign.privacy_flags.filter(decision=PrivacyFlag.Decision.PENDING):
            decision = PrivacyFlag.Decision.EXCLUDED if flag.n_items else PrivacyFlag.Decision.ACCEPTED
            privacy_flag_decide(flag=flag, decision=decision, decided_by=None)
            self.stdout.write(f"  privacy: {flag.kind} in {flag.source} ({flag.match!r}): {decision}")
        campaign_open(campaign=campaign)

    def _generate(
        self, run: RecommenderRun, generator: Generator, template: PromptTemplate, *, seed: int, size: int
    ) -> GenerationRun:
        # Seeded random users: the teacher (seed 0) and the compared runs (seed 1) draw apart.
        generation = generation_run_start(
            created_by=None,
            recommender_run=run,
            generator=generator,
            template=template,
            sample=GenerationRun.Sample.RANDOM,
            sample_size=size,
            seed=seed,
            chunk_size=8,
            # A 135M model ignores word limits; asking for 40 keeps its token cap (72) under the
            # teacher filter's 75 words, so the filter drops echoes and refusals, not length.
            controls=Controls(max_words=40),
            enqueue=False,
        )
        GENERATION.run_here(generation)
        return generation

    def _serve(self, summary: dict[str, Any], host: str, port: int) -> None:
        call_command("collectstatic", interactive=False, verbosity=0)
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        worker_log = settings.VAR_DIR / "worker.log"
        with worker_log.open("ab") as log:
            worker = subprocess.Popen([*manage, "worker", "--loglevel=INFO"], stdout=log, stderr=subprocess.STDOUT)
        web = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "xrec_site.wsgi",
                "--config=python:xrec_site.gunicorn_config",
                f"--bind={host}:{port}",
                "--workers=2",
                "--access-logfile=-",
                "--log-level=warning",
            ],
            # The demo serves plain HTTP: no redirect to HTTPS, and cookies a browser sends over HTTP.
            env=os.environ | {"DJANGO_SECURE_SSL_REDIRECT": "0", "DJANGO_SECURE_COOKIES": "0"},
        )
        self.stdout.write(f"\nxrec is running at {summary['urls']['home']} (Ctrl-C stops it)")
        self.stdout.write(f"  worker log: {worker_log}")
        for username, login in summary["logins"].items():
            self.stdout.write(f"  {login['role']:<11} {username} / {login['password']}")
        likert = summary["annotation"]["likert"]
        self.stdout.write(f"  annotator link (Likert campaign, as a Prolific worker): {likert['annotator_link']}")
        self.stdout.write(f"  campaign page (researcher): {likert['page']}")
        claims = summary["annotation"]["claims"]
        self.stdout.write(f"  claims campaign to review and open (researcher): {claims['page']}")
        first_person = summary["annotation"]["first_person"]
        self.stdout.write(
            f"  first-person link (rate 15 films, then your own explanations): {first_person['participant_link']}"
        )
        self.stdout.write(f"  study report (researcher): {summary['evaluation']['report']}")
        try:
            web.wait()
        except KeyboardInterrupt:
            pass
        finally:
            for process in (web, worker):
                process.terminate()
            for process in (web, worker):
                process.wait(timeout=30)
