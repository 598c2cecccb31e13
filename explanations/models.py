"""Generators, prompt templates, generation runs, explanations and adapter trainings.

Explanations hang off ``recommendations.Recommendation`` by id; nothing here is joined by
row position. LLM output is untrusted text: it is stored as generated and escaped wherever
it is shown.
"""

from __future__ import annotations

import hashlib
from pathlib import PureWindowsPath
from typing import Any, ClassVar

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from explanations.lineage import public_lineage, public_model_name, run_lineage, sample_record, subsample_record
from recommendations.models import Recommendation, RecommenderRun
from recommendations.shared.jobs import Job


def precision_field(example: str) -> models.CharField:
    """What a job's model actually ran in (an ``auto`` generator's choice), written by workers."""
    return models.CharField(max_length=200, blank=True, help_text=f"What the model actually ran in, e.g. {example}.")


class Generator(models.Model):
    """A model to generate with: backend, model, quantisation, optional adapter, decoding defaults.

    Once a run, judge run, probe or adapter training has used a generator, its
    ``LINEAGE_FIELDS`` are frozen (``clean``; the admin shows them read-only): a different model,
    adapter or decoding setting is a new generator, so that what a run's lineage names is what
    the generator still says. Its name and API key variable may still change.
    """

    LINEAGE_FIELDS = (
        "backend",
        "model",
        "quantization",
        "adapter_path",
        "adapter_training",
        "base_url",
        "max_new_tokens",
        "temperature",
        "top_p",
        "repetition_penalty",
        "seed",
    )

    class Backend(models.TextChoices):
        HF = "hf", "Local model (transformers + bitsandbytes)"
        OPENAI = "openai", "OpenAI-compatible endpoint (vLLM, TGI, hosted)"

    class Quantization(models.TextChoices):
        AUTO = "auto", "Auto: 4-bit NF4 on CUDA, the fastest precision on a CPU"
        NF4 = "nf4", "4-bit NF4"
        INT8 = "int8", "8-bit"
        NONE = "none", "None (full precision)"

    BUNDLED = "bundled:smollm2"

    name = models.CharField(max_length=100, unique=True)
    backend = models.CharField(max_length=10, choices=Backend.choices, default=Backend.HF)
    model = models.CharField(
        max_length=500,
        default=BUNDLED,
        help_text=f"hf: a local model folder, or {BUNDLED} for the bundled SmolLM2-135M-Instruct; "
        "openai: the served model's name.",
    )
    quantization = models.CharField(max_length=10, choices=Quantization.choices, default=Quantization.AUTO)
    adapter_path = models.CharField(max_length=500, blank=True, help_text="A LoRA adapter folder (hf only).")
    adapter_training = models.ForeignKey(
        "AdapterTraining", null=True, blank=True, on_delete=models.SET_NULL, related_name="generators"
    )
    base_url = models.CharField(max_length=500, blank=True, help_text="openai: e.g. http://gpu-box:8000/v1")
    api_key_env = models.CharField(
        max_length=100,
        blank=True,
        default="XREC_OPENAI_API_KEY",
        help_text="openai: the environment variable that holds the key (keys are never stored here).",
    )
    max_new_tokens = models.PositiveIntegerField(default=120)
    temperature = models.FloatField(default=0.0, help_text="0 = greedy decoding.")
    top_p = models.FloatField(default=1.0)
    repetition_penalty = models.FloatField(default=1.0, help_text="1 = off; small models loop without it.")
    seed = models.IntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def usage_count(self) -> int:
        """How many generation runs, judge runs, probes and adapter trainings used it."""
        if self.pk is None:
            return 0
        return self.runs.count() + self.judge_runs.count() + self.probes.count() + self.adapter_trainings.count()

    def lineage_changes(self) -> list[str]:
        """The ``LINEAGE_FIELDS`` whose value here differs from the stored row (none if unsaved)."""
        if self.pk is None:
            return []
        attnames = {name: f"{name}_id" if name == "adapter_training" else name for name in self.LINEAGE_FIELDS}
        stored = type(self)._default_manager.filter(pk=self.pk).values(*attnames.values()).first()
        if stored is None:
            return []
        return [name for name, attname in attnames.items() if getattr(self, attname) != stored[attname]]

    def clean(self) -> None:
        """Refuse a change to a lineage field of a generator that runs have used."""
        changed = self.lineage_changes()
        if changed and (uses := self.usage_count()):
            raise ValidationError(
                f"{self.name} is used by {uses} run{'s' if uses != 1 else ''}, so its "
                f"{', '.join(changed)} cannot change: make a new generator (Duplicate as new generator)."
            )

    def public_model(self) -> str:
        """``model`` as shown (``public_model_name``)."""
        return public_model_name(self.model)

    def adapter_name(self) -> str:
        """The adapter as shown: its folder's name, never its path (empty without one)."""
        return PureWindowsPath(self.adapter_path).name if self.adapter_path else ""

    def snapshot(self, *, adapter_sha256: str) -> dict[str, Any]:
        """What a run records of this generator (``run_lineage``): every lineage field as it is
        now, the adapter's name and ``adapter_sha256``. ``model``, ``adapter_path`` and
        ``api_key_env`` are kept so that chunks can load the model from the record
        (``generators.lineage_generator``); ``public_lineage`` never shows them."""
        return {
            "id": self.pk,
            "name": self.name,
            "backend": self.backend,
            "model": self.model,
            "quantization": self.quantization,
            "adapter_path": self.adapter_path,
            "adapter": {"name": self.adapter_name(), "sha256": adapter_sha256, "training": self.adapter_training_id}
            if self.adapter_path
            else None,
            "base_url": self.base_url,
            "api_key_env": self.api_key_env,
            "decoding": {
                "max_new_tokens": self.max_new_tokens,
                "temperature": self.temperature,
                "top_p": self.top_p,
                "repetition_penalty": self.repetition_penalty,
                "seed": self.seed,
            },
        }


class PromptTemplate(models.Model):
    """A versioned prompt: a system and a user part in Django's template language.

    Rows are never edited in place: a changed text is a new version (``prompt_template_revise``),
    so every explanation keeps pointing at the exact prompt that produced it.
    """

    name = models.CharField(max_length=100)
    version = models.PositiveIntegerField(default=1)
    description = models.TextField(blank=True)
    system_text = models.TextField(blank=True)
    user_text = models.TextField()
    sha256 = models.CharField(max_length=64, editable=False)
    builtin = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "-version"]
        constraints = [models.UniqueConstraint(fields=["name", "version"], name="prompttemplate_unique_version")]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    @staticmethod
    def digest(system_text: str, user_text: str) -> str:
        return hashlib.sha256(f"{system_text}\x00{user_text}".encode()).hexdigest()


def lineage_field() -> models.JSONField:
    """A run's record of what it used (``run_lineage``), written once when it starts."""
    return models.JSONField(
        default=dict,
        blank=True,
        editable=False,
        help_text="What the run used, recorded when it started; its chunks load the model from it.",
    )


def _recorded_or_live(job: RecordedJob, live: Any) -> dict[str, Any]:
    # Runs started by a service always carry their record (older ones were backfilled by
    # migration 0010); only a row written directly has none, and is labelled "not recorded".
    if job.lineage:
        return public_lineage(job.lineage, precision=job.precision)
    return public_lineage(live(), precision=job.precision)


def _training_sha256(generator: Generator) -> str:
    training = generator.adapter_training
    return training.adapter_sha256 if training is not None and training.adapter_path == generator.adapter_path else ""


class ChunkedJob(Job):
    """A job made of rows answered in chunks (``services.engine.ChunkedKind``): what the
    engine reads and writes on every such job besides ``Job``'s own fields."""

    cancel_requested = models.BooleanField(default=False)
    n_total = models.PositiveIntegerField(default=0)

    class Meta(Job.Meta):
        abstract = True


class GenerationRunQuerySet(models.QuerySet["GenerationRun"]):
    def listed(self) -> GenerationRunQuerySet:
        """Runs a researcher picks from: not the one-participant runs of first-person campaigns
        (``parent`` set), which live under their campaign."""
        return self.filter(parent__isnull=True)


class GenerationRun(ChunkedJob):
    """Explanations for the top ``depth`` recommendations of a sample of users of one run."""

    class Sample(models.TextChoices):
        ALL = "all", "All users"
        FIRST = "first", "First N users"
        RANDOM = "random", "Seeded random N users"
        STRATIFIED = "stratified", "N users stratified by activity"

    class Tone(models.TextChoices):
        NEUTRAL = "neutral", "Neutral"
        WARM = "warm", "Warm"
        ENTHUSIASTIC = "enthusiastic", "Enthusiastic"

    recommender_run = models.ForeignKey(RecommenderRun, on_delete=models.CASCADE, related_name="generation_runs")
    generator = models.ForeignKey(Generator, on_delete=models.PROTECT, related_name="runs")
    template = models.ForeignKey(PromptTemplate, on_delete=models.PROTECT, related_name="runs")
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="first_person_runs",
        help_text="First-person runs: the campaign's run whose generator, prompt and controls this one repeats "
        "for one participant's own recommendations.",
    )
    depth = models.PositiveSmallIntegerField(default=1, help_text="Explain the top `depth` items of each list.")
    sample = models.CharField(max_length=20, choices=Sample.choices, default=Sample.RANDOM)
    sample_size = models.PositiveIntegerField(default=50)
    seed = models.IntegerField(default=0)
    history_length = models.PositiveSmallIntegerField(default=10)
    max_words = models.PositiveSmallIntegerField(default=75)
    aspects = models.JSONField(default=list, blank=True, help_text="Item attributes to focus on, e.g. genres, year.")
    tone = models.CharField(max_length=20, choices=Tone.choices, default=Tone.NEUTRAL)
    second_person = models.BooleanField(default=True)
    include_profile = models.BooleanField(default=True)
    chunk_size = models.PositiveSmallIntegerField(default=8, help_text="Explanations per batched generate call.")
    precision = precision_field("float32 on cpu (set by workers)")
    lineage = lineage_field()

    objects: ClassVar[GenerationRunQuerySet] = GenerationRunQuerySet.as_manager()  # type: ignore[assignment]

    class Meta(ChunkedJob.Meta):
        pass

    def __str__(self) -> str:
        return f"generation #{self.pk} ({self.generator} on run {self.recommender_run_id})"

    def public_lineage(self) -> dict[str, Any]:
        """The recorded lineage as shown (``public_lineage``)."""
        return _recorded_or_live(
            self,
            lambda: run_lineage(
                generator=self.generator,
                adapter_sha256=_training_sha256(self.generator),
                recommender_run=self.recommender_run,
                seed=self.seed,
                template=self.template,
                sample=sample_record(self.sample, self.sample_size),
                recorded="not recorded",
            ),
        )

    def controls(self) -> dict[str, Any]:
        return {
            "history_length": self.history_length,
            "max_words": self.max_words,
            "aspects": list(self.aspects),
            "tone": self.tone,
            "second_person": self.second_person,
            "include_profile": self.include_profile,
        }


class Explanation(models.Model):
    """One generated explanation of one recommendation, with its prompt and cost."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    generation_run = models.ForeignKey(GenerationRun, on_delete=models.CASCADE, related_name="explanations")
    recommendation = models.ForeignKey(Recommendation, on_delete=models.CASCADE, related_name="explanations")
    chunk = models.PositiveIntegerField(help_text="The task chunk this row belongs to.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    prompt = models.JSONField(default=list, blank=True, help_text="The exact chat messages sent.")
    text = models.TextField(blank=True, help_text="The explanation, cut to the run's word limit (texts.limit_words).")
    # db_default: rows written by bulk COPY/INSERT with an explicit column list may leave it out.
    raw_text = models.TextField(
        blank=True,
        default="",
        db_default="",
        help_text="The model's whole output when the word limit cut it; empty when it is the text.",
    )
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True, help_text="This row's share of its batch's wall time.")
    finish_reason = models.CharField(max_length=20, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    generated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["generation_run", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["generation_run", "recommendation"], name="explanation_unique_recommendation"
            )
        ]
        indexes = [models.Index(fields=["generation_run", "chunk", "status"], name="explanation_run_chunk")]

    def __str__(self) -> str:
        return f"explanation {self.pk} ({self.status})"


class AdapterTraining(Job):
    """LoRA instruction tuning of a generator's base model: on a teacher's explanations, or
    (a judge) on human pairwise preferences."""

    class Source(models.TextChoices):
        GENERATION_RUN = "generation_run", "Another generation run's explanations"
        JSONL = "jsonl", "An uploaded JSONL file"
        PREFERENCES = "preferences", "Human pairwise preferences (a judge)"
        RATED = "rated", "The explanations people rated best in a campaign"

    base_generator = models.ForeignKey(Generator, on_delete=models.PROTECT, related_name="adapter_trainings")
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.GENERATION_RUN)
    source_run = models.ForeignKey(
        GenerationRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="adapter_trainings"
    )
    source_path = models.CharField(
        max_length=500, blank=True, help_text="JSONL: the stored upload. Preferences: the stored JSON."
    )
    source_description = models.CharField(
        max_length=300, blank=True, help_text="Where preferences came from, e.g. the campaign and criteria."
    )
    filter_max_words = models.PositiveSmallIntegerField(
        default=75, help_text="Drop teacher outputs longer than this many words."
    )
    filter_refusals = models.BooleanField(
        default=True,
        help_text="Drop teacher outputs that refuse or apologise. Echoes of the prompt are always dropped.",
    )
    r = models.PositiveSmallIntegerField(default=8)
    alpha = models.PositiveSmallIntegerField(default=16)
    dropout = models.FloatField(default=0.05)
    target_modules = models.JSONField(
        default=list, help_text="Empty: q, k, v, o, gate, up and down projections, as in the original study."
    )
    epochs = models.PositiveSmallIntegerField(default=1)
    learning_rate = models.FloatField(default=2e-4)
    batch_size = models.PositiveSmallIntegerField(default=4)
    max_length = models.PositiveIntegerField(default=512)
    validation_fraction = models.FloatField(default=0.1)
    seed = models.IntegerField(default=0)
    n_examples = models.PositiveIntegerField(default=0)
    n_filtered = models.PositiveIntegerField(default=0)
    n_train = models.PositiveIntegerField(default=0)
    n_validation = models.PositiveIntegerField(default=0)
    train_losses = models.JSONField(default=list, blank=True)
    validation_losses = models.JSONField(default=list, blank=True)
    adapter_path = models.CharField(max_length=500, blank=True)
    adapter_sha256 = models.CharField(max_length=64, blank=True)
    precision = precision_field("nf4 QLoRA on cuda (set by the worker)")

    class Meta(Job.Meta):
        pass

    def __str__(self) -> str:
        return f"adapter training #{self.pk} on {self.base_generator}"

    def adapter_name(self) -> str:
        """The trained adapter as shown: its folder's name, never its path (empty until trained)."""
        return PureWindowsPath(self.adapter_path).name if self.adapter_path else ""

    def mark_succeeded(self) -> None:
        self.status, self.finished_at, self.phase = self.Status.SUCCEEDED, timezone.now(), "done"
        self.save(update_fields=["status", "finished_at", "phase"])


class AnswerMode(models.TextChoices):
    """How a judge or probe gets a closed answer from its model."""

    LIKELIHOOD = "likelihood", "Likelihood: score every option after the answer prefix"
    TEXT = "text", "Text: generate an answer and parse it strictly"


FALLBACK_FIELD_HELP = "Set when likelihood could not be used and answers were parsed as text instead, and why."


class JudgeRun(ChunkedJob):
    """An LLM judge over the explanations of two or more generation runs of one recommender run.

    Pairwise: every pair of runs' explanations of a recommendation is judged in both orders.
    Likert: each explanation is scored on ``rubric`` (criteria as the annotators see them).
    Verdict rows are written up front as PENDING and judged in chunks, like generation.
    """

    class Mode(models.TextChoices):
        PAIRWISE = "pairwise", "Pairwise, both orders"
        LIKERT = "likert", "Likert scores on the rubric"

    judge = models.ForeignKey(Generator, on_delete=models.PROTECT, related_name="judge_runs")
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.PAIRWISE)
    answer_mode = models.CharField(max_length=12, choices=AnswerMode.choices, default=AnswerMode.LIKELIHOOD)
    fallback = models.CharField(max_length=200, blank=True, help_text=FALLBACK_FIELD_HELP)
    generation_runs = models.ManyToManyField(GenerationRun, related_name="judge_runs")
    rubric = models.JSONField(default=list, help_text="[{name, question, scale_min, scale_max, anchors}]")
    sample_size = models.PositiveIntegerField(default=0, help_text="Recommendations to judge; 0 = all.")
    seed = models.IntegerField(default=0)
    chunk_size = models.PositiveSmallIntegerField(default=8)
    max_new_tokens = models.PositiveSmallIntegerField(default=40)
    n_held_out = models.PositiveIntegerField(
        default=0, help_text="Recommendations left out because the judge was tuned on their human preferences."
    )
    precision = precision_field("float32 on cpu (set by workers)")
    lineage = lineage_field()

    class Meta(ChunkedJob.Meta):
        pass

    def __str__(self) -> str:
        return f"judge run #{self.pk} ({self.judge}, {self.mode})"

    def public_lineage(self) -> dict[str, Any]:
        """The recorded lineage of the judge as shown (``public_lineage``)."""

        def live() -> dict[str, Any]:
            first = self.generation_runs.select_related("recommender_run__split").order_by("pk").first()
            return run_lineage(
                generator=self.judge,
                adapter_sha256=_training_sha256(self.judge),
                recommender_run=first.recommender_run if first else None,
                seed=self.seed,
                sample=subsample_record(self.sample_size),
                recorded="not recorded",
            )

        return _recorded_or_live(self, live)


class JudgeVerdict(models.Model):
    """One judge call: an explanation (Likert), or two shown as 1 and 2 (pairwise).

    ``parsed`` is ``{"winner": "first"|"second"|"tie"}`` or ``{"scores": {...}}``, or null with
    ``parse_error`` saying why the answer did not follow the format. Answered by likelihood,
    ``parsed`` is the most likely option and ``probabilities`` the distribution it came from:
    ``{"first": p, "second": p, "tie": p}`` (pairwise) or ``{criterion: {"distribution":
    {score: p}, "expected": e}}`` (Likert); null for text answers.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    judge_run = models.ForeignKey(JudgeRun, on_delete=models.CASCADE, related_name="verdicts")
    recommendation = models.ForeignKey(Recommendation, on_delete=models.CASCADE, related_name="+")
    first = models.ForeignKey(Explanation, on_delete=models.CASCADE, related_name="+")
    second = models.ForeignKey(
        Explanation, null=True, blank=True, on_delete=models.CASCADE, related_name="+", help_text="Pairwise only."
    )
    chunk = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    prompt = models.JSONField(default=list, blank=True)
    output = models.TextField(blank=True)
    parsed = models.JSONField(null=True, blank=True)
    probabilities = models.JSONField(null=True, blank=True)
    parse_error = models.CharField(max_length=200, blank=True)
    error = models.TextField(blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    judged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["judge_run", "id"]
        constraints = [
            models.UniqueConstraint(fields=["judge_run", "first", "second"], name="verdict_unique_pair"),
            models.UniqueConstraint(
                fields=["judge_run", "first"], condition=models.Q(second__isnull=True), name="verdict_unique_single"
            ),
        ]
        indexes = [models.Index(fields=["judge_run", "chunk", "status"], name="verdict_run_chunk")]

    def __str__(self) -> str:
        return f"verdict {self.pk} ({self.status})"


class QuestionJob(ChunkedJob):
    """A job that asks a generator closed questions in chunks (attribute probes, claim checks):
    how it answers, what it samples, and what it recorded of the generator (``asker``)."""

    answer_mode = models.CharField(max_length=12, choices=AnswerMode.choices, default=AnswerMode.LIKELIHOOD)
    fallback = models.CharField(max_length=200, blank=True, help_text=FALLBACK_FIELD_HELP)
    seed = models.IntegerField(default=0)
    precision = precision_field("float32 on cpu (set by workers)")
    lineage = lineage_field()

    class Meta(ChunkedJob.Meta):
        abstract = True

    # Each subclass has these fields (its own related names and help texts), and names the
    # foreign key to the generator that answers.
    generation_run: GenerationRun
    sample_size: int
    asker_field: str

    @property
    def asker(self) -> Generator:
        generator: Generator = getattr(self, self.asker_field)
        return generator

    def public_lineage(self) -> dict[str, Any]:
        """The recorded lineage of the generator that answers, as shown (``public_lineage``)."""
        return _recorded_or_live(
            self,  # type: ignore[arg-type]
            lambda: run_lineage(
                generator=self.asker,
                adapter_sha256=_training_sha256(self.asker),
                recommender_run=self.generation_run.recommender_run,
                seed=self.seed,
                sample=subsample_record(self.sample_size),
                recorded="not recorded",
            ),
        )


class AnswerRow(models.Model):
    """One question of a ``QuestionJob``, answered in its chunk: the prompt, the raw output,
    why it did not parse, or why the backend failed."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    chunk = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    prompt = models.JSONField(default=list, blank=True)
    output = models.TextField(blank=True)
    parse_error = models.CharField(max_length=200, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)

    class Meta:
        abstract = True


class AttributeProbe(QuestionJob):
    """Local attribute prediction over one generation run's explanations.

    Every sampled explanation gives two answers: from the history alone, and from the history
    plus the explanation (``ProbeAnswer.with_explanation``).
    """

    prober = models.ForeignKey(Generator, on_delete=models.PROTECT, related_name="probes")
    generation_run = models.ForeignKey(GenerationRun, on_delete=models.CASCADE, related_name="probes")
    target = models.CharField(
        max_length=100,
        help_text="age, gender, occupation, profile (the three in one JSON answer), popularity, popularity_fixed, "
        "item:<attribute> (e.g. item:genres) or number:<attribute> (e.g. number:price).",
    )
    options = models.JSONField(
        default=list,
        blank=True,
        help_text="The labels offered (categorical targets; age bands' centres by likelihood; the profile "
        "target's: field → labels).",
    )
    tolerance = models.FloatField(
        null=True, blank=True, help_text="number:<attribute> targets: an answer this close to the truth is correct."
    )
    sample_size = models.PositiveIntegerField(default=0, help_text="Explanations to probe; 0 = all.")
    chunk_size = models.PositiveSmallIntegerField(default=8)
    max_new_tokens = models.PositiveSmallIntegerField(default=16)
    asker_field = "prober"

    class Meta(QuestionJob.Meta):
        pass

    def __str__(self) -> str:
        return f"probe #{self.pk} ({self.target} on generation #{self.generation_run_id})"


class ProbeAnswer(AnswerRow):
    """One probe question about one explanation's recommendation, with the true value."""

    probe = models.ForeignKey(AttributeProbe, on_delete=models.CASCADE, related_name="answers")
    explanation = models.ForeignKey(Explanation, on_delete=models.CASCADE, related_name="+")
    with_explanation = models.BooleanField()
    truth = models.JSONField(
        default=list, help_text="The true value(s), as labels; the profile target's: field → labels."
    )
    answer = models.CharField(max_length=200, blank=True, help_text="The parsed label; empty if unparsed.")
    probabilities = models.JSONField(null=True, blank=True, help_text="Label → probability, answered by likelihood.")
    field_answers = models.JSONField(
        null=True,
        blank=True,
        help_text="The profile target: field → {answer, correct, error}, each field scored on its own.",
    )
    correct = models.BooleanField(
        null=True, blank=True, help_text="The profile target: every field the user has is right."
    )
    answered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["probe", "id"]
        constraints = [
            models.UniqueConstraint(fields=["probe", "explanation", "with_explanation"], name="probe_answer_unique")
        ]
        indexes = [models.Index(fields=["probe", "chunk", "status"], name="probe_answer_chunk")]

    def __str__(self) -> str:
        return f"probe answer {self.pk} ({self.status})"


class ClaimCheck(QuestionJob):
    """The automatic claim checker over one generation run's explanations: each explanation is
    cut into claims (``explanations.claims``) and the checker says, for each, how likely it is
    that the facts its generator was given support it (``CheckedClaim.p_supported``)."""

    checker = models.ForeignKey(Generator, on_delete=models.PROTECT, related_name="claim_checks")
    generation_run = models.ForeignKey(GenerationRun, on_delete=models.CASCADE, related_name="claim_checks")
    sample_size = models.PositiveIntegerField(default=0, help_text="Explanations to check; 0 = all.")
    chunk_size = models.PositiveSmallIntegerField(default=16)
    max_new_tokens = models.PositiveSmallIntegerField(default=8)
    asker_field = "checker"

    class Meta(QuestionJob.Meta):
        pass

    def __str__(self) -> str:
        return f"claim check #{self.pk} (generation #{self.generation_run_id})"


class CheckedClaim(AnswerRow):
    """One claim of one explanation, with the checker's verdict."""

    claim_check = models.ForeignKey(ClaimCheck, on_delete=models.CASCADE, related_name="claims")
    explanation = models.ForeignKey(Explanation, on_delete=models.CASCADE, related_name="+")
    position = models.PositiveSmallIntegerField(help_text="The claim's place in its explanation, from 0.")
    start = models.PositiveIntegerField()
    end = models.PositiveIntegerField()
    text = models.TextField()
    answer = models.CharField(max_length=10, blank=True, help_text="yes (supported), no, or empty if unparsed.")
    p_supported = models.FloatField(null=True, blank=True, help_text="P(yes), answered by likelihood.")
    checked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["claim_check", "id"]
        constraints = [
            models.UniqueConstraint(fields=["claim_check", "explanation", "position"], name="checked_claim_unique")
        ]
        indexes = [models.Index(fields=["claim_check", "chunk", "status"], name="checked_claim_chunk")]

    def __str__(self) -> str:
        return f"claim {self.pk} ({self.status})"


# The jobs that ask a recorded generator questions (judge runs, probes, claim checks), and those
# plus generation runs: every job whose chunks load the generator it recorded at its start.
AnsweringJob = JudgeRun | AttributeProbe | ClaimCheck
RecordedJob = GenerationRun | AnsweringJob


class TextMetrics(Job):
    """The text metrics of one generation run (``explanations.textmetrics``), computed by a worker.

    ``inputs_version`` fingerprints the explanations read (the run's and the reference run's):
    a row whose version no longer matches is stale and a new one is computed on request.
    """

    generation_run = models.ForeignKey(GenerationRun, on_delete=models.CASCADE, related_name="text_metrics")
    reference_run = models.ForeignKey(GenerationRun, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    embeddings = models.BooleanField(default=True, help_text="Personalisation and embedding similarity (MiniLM).")
    inputs_version = models.CharField(max_length=64)
    metrics = models.JSONField(null=True, blank=True)

    class Meta(Job.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["generation_run", "reference_run", "embeddings", "inputs_version"],
                condition=models.Q(reference_run__isnull=False),
                name="textmetrics_unique_with_reference",
            ),
            models.UniqueConstraint(
                fields=["generation_run", "embeddings", "inputs_version"],
                condition=models.Q(reference_run__isnull=True),
                name="textmetrics_unique_alone",
            ),
        ]

    def __str__(self) -> str:
        return f"text metrics #{self.pk} of run #{self.generation_run_id}"
