"""A scripted LLM backend for tests: a real class implementing the backend interface, whose
answers the test fixes. It is put in the process's backend cache under a generator's spec,
exactly where a worker would find a loaded model."""

from collections.abc import Callable, Sequence

from explanations import llm
from explanations.llm import BackendSpec, Completion, DecodingParams, Messages
from explanations.models import Generator
from explanations.services.generators import generator_spec


class ScriptedBackend:
    """A backend whose answer to each prompt is ``answer(user_message)``; counts its calls."""

    def __init__(self, spec: BackendSpec, answer: Callable[[str], str]) -> None:
        self.spec, self.answer, self.prompts = spec, answer, 0
        self.precision = "scripted"

    def generate(self, prompts: Sequence[Messages], params: DecodingParams) -> list[Completion]:
        self.prompts += len(prompts)
        return [Completion(self.answer(p[-1]["content"]), 100, 4, "stop") for p in prompts]

    def close(self) -> None:
        pass


def scripted_judge(answer: Callable[[str], str], name: str = "scripted-judge") -> tuple[Generator, ScriptedBackend]:
    """A generator whose backend answers each prompt with ``answer(last user message)``."""
    judge = Generator.objects.create(
        name=name, backend=Generator.Backend.OPENAI, model="judge", base_url="http://judge.invalid/v1"
    )
    spec = generator_spec(judge)
    backend = ScriptedBackend(spec, answer)
    llm._backends[spec] = backend
    return judge, backend
