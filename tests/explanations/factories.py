from pathlib import Path

from explanations.models import Generator, PromptTemplate
from explanations.services.generators import prompt_templates_ensure_builtin
from recommendations.models import RecommenderRun
from recommendations.services.training import recommender_run_create, recommender_run_execute
from tests.recommendations.factories import rated_dataset


def trained_run(*, n_users: int = 12, k: int = 3) -> RecommenderRun:
    """A finished SVD run over a small seeded dataset (leave-last-out split)."""
    dataset = rated_dataset(n_users=n_users, n_items=20, per_user=8)
    run = recommender_run_create(
        created_by=None, dataset=dataset, algorithm="SVD", k=k, hyperparameters={"n_factors": 4}
    )
    recommender_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == RecommenderRun.Status.SUCCEEDED, run.error
    return run


def template(name: str = "xrec-default") -> PromptTemplate:
    prompt_templates_ensure_builtin()
    return PromptTemplate.objects.filter(name=name).order_by("-version").first()  # type: ignore[return-value]


def tiny_generator(model_dir: Path, *, name: str = "tiny", quantization: str = "none") -> Generator:
    return Generator.objects.create(
        name=name, backend=Generator.Backend.HF, model=str(model_dir), quantization=quantization, max_new_tokens=12
    )
