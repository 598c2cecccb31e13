from pathlib import Path

import pytest

from tests.explanations.tiny import build_tiny_llama


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama on disk, built once per test session."""
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(autouse=True)
def _fresh_backends():
    # Backends are cached per process like in a worker; tests must not see each other's.
    from explanations.llm import unload_all

    yield
    unload_all()
