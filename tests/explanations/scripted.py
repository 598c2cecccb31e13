"""A scripted LLM backend for tests: a real class implementing the backend interface, whose
answers the test fixes. It is put in the process's backend cache under a generator's spec,
exactly where a worker would find a loaded model."""

from collections.abc import Callable, Sequence

from explanations import llm
from explanations.judging import answer_lines
from explanations.llm import BackendSpec, Completion, DecodingParams, Messages, OptionScores, ScoringUnavailable
from explanations.models import Generator
from explanations.services.generators import generator_spec


def _normal(text: str) -> str:
    return "".join(text.split()).casefold()


class ScriptedBackend:
    """A backend whose answer to each prompt is ``answer(user_message)``; counts its calls.

    Scored, an option is likely (log-probability -0.1) when ``answer`` has a line that is the
    prefix followed by the option, and unlikely (-5) otherwise, so a judge scripted to write
    ``Winner: 1`` puts most of its probability on `` 1``. With ``logprobs=False`` it is a server
    that cannot score.
    """

    def __init__(self, spec: BackendSpec, answer: Callable[[str], str], *, logprobs: bool = True) -> None:
        self.spec, self.answer, self.prompts, self.logprobs = spec, answer, 0, logprobs
        self.precision = "scripted"

    def generate(self, prompts: Sequence[Messages], params: DecodingParams) -> list[Completion]:
        self.prompts += len(prompts)
        return [Completion(self.answer(p[-1]["content"]), 100, 4, "stop") for p in prompts]

    def score(
        self, prompts: Sequence[Messages], prefixes: Sequence[str], options: Sequence[Sequence[str]]
    ) -> list[OptionScores]:
        if not self.logprobs:
            raise ScoringUnavailable("http://judge.invalid/v1 returned no log-probabilities for judge")
        self.prompts += len({id(p) for p in prompts})
        scores = []
        for prompt, prefix, choices in zip(prompts, prefixes, options, strict=True):
            lines = {_normal(line) for line in answer_lines(self.answer(prompt[-1]["content"]))}
            scores.append(
                OptionScores.from_logprobs(choices, [-0.1 if _normal(prefix + c) in lines else -5.0 for c in choices])
            )
        return scores

    def close(self) -> None:
        pass


def scripted_judge(
    answer: Callable[[str], str], name: str = "scripted-judge", *, logprobs: bool = True
) -> tuple[Generator, ScriptedBackend]:
    """A generator whose backend answers each prompt with ``answer(last user message)``."""
    judge = Generator.objects.create(
        name=name, backend=Generator.Backend.OPENAI, model="judge", base_url="http://judge.invalid/v1"
    )
    spec = generator_spec(judge)
    backend = ScriptedBackend(spec, answer, logprobs=logprobs)
    llm._backends[spec] = backend
    return judge, backend
