"""Any OpenAI-compatible chat completions endpoint: vLLM, TGI, llama.cpp's server, hosted APIs.

Standard library only. ``BackendSpec.base_url`` is the server's root or its API root; the
endpoint is found by these rules (a trailing slash is ignored):

- ``…/chat/completions`` is used as it is;
- ``…/v1`` (any API root ending in a version) gets ``/chat/completions`` appended;
- anything else gets ``/v1/chat/completions`` appended.

So ``http://gpu:8000``, ``http://gpu:8000/v1`` and ``http://gpu:8000/v1/chat/completions`` all
reach the same endpoint.

Each prompt is one request; a batch keeps up to ``spec.concurrency`` requests in flight. A request
is tried ``spec.max_retries + 1`` times in all when the connection fails, times out, or the server
answers 429 or 5xx, waiting an exponential backoff with jitter between tries, or the server's
``Retry-After`` when it sends one. Any other 4xx fails at once: retrying a bad key or a bad model
name cannot help. ``spec.timeout_seconds`` bounds the connection and each wait for data (a socket
timeout), not a whole answer that keeps arriving.

``score`` asks for a short answer (``SCORE_MAX_TOKENS`` tokens, greedy) with ``logprobs: true``
and ``top_logprobs: 20``, since a chat endpoint cannot be made to continue an answer prefix.
It finds the token that follows the answer prefix in what came back (or the answer's first
token, when the model left the prefix out) and scores each option by the best log-probability,
among that position's top alternatives, of a token that starts the option (``"1"`` for ``" 1"``,
``"t"`` or ``"tie"`` for ``" tie"``). An option no alternative starts gets a floor
(``FLOOR_MARGIN`` below the least likely alternative listed). So only the first token of an
option counts: options that share a first token (``"1"`` and ``"10"`` with many tokenizers)
score the same. A server that sends no log-probabilities (some hosted models, older servers)
raises ``ScoringUnavailable``, and the caller falls back to parsing the answer as text.
"""

from __future__ import annotations

import email.utils
import functools
import http.client
import json
import random
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

from .base import BackendError, BackendSpec, Completion, DecodingParams, Messages, OptionScores, ScoringUnavailable

# Backoff before try n+1 is about BACKOFF_BASE_SECONDS * 2**(n-1), capped; tests shrink it.
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 30.0
# A server may ask for any wait; a worker should not sleep for hours on its word.
RETRY_AFTER_CAP_SECONDS = 120.0
EXCERPT_CHARS = 300
SCORE_MAX_TOKENS = 8
TOP_LOGPROBS = 20  # the most OpenAI's API allows
FLOOR_MARGIN = 2.0  # nats below the least likely listed alternative, for options not listed

T = TypeVar("T")


class OpenAIBackend:
    """Chat completions over HTTP; holds no connection between calls, so ``close`` is trivial."""

    def __init__(self, spec: BackendSpec) -> None:
        self.spec = spec
        self.url = endpoint_url(spec.base_url)
        self.precision = f"as served at {self.url}"
        if not spec.model:
            raise BackendError(f"no model name given for {self.url}")
        self.headers = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": "xrec"}
        if spec.api_key:
            self.headers["Authorization"] = f"Bearer {spec.api_key}"

    def generate(self, prompts: Sequence[Messages], params: DecodingParams) -> list[Completion]:
        """One completion per prompt, in order; the first request that fails for good raises.

        ``prompt_tokens`` and ``completion_tokens`` are the server's ``usage`` (0 when it sends
        none); ``finish_reason`` is the server's, ``"unknown"`` when it sends none.
        """
        return self._in_parallel([functools.partial(self._complete, messages, params) for messages in prompts])

    def _in_parallel(self, requests: Sequence[Callable[[], T]]) -> list[T]:
        """Each request's result in order, with up to ``spec.concurrency`` in flight; the first
        one that fails for good raises."""
        if not requests:
            return []
        workers = max(1, min(self.spec.concurrency, len(requests)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="xrec-openai") as pool:
            futures = [pool.submit(request) for request in requests]
            try:
                return [future.result() for future in futures]
            except BaseException:
                # Requests already in flight finish on their own; the rest are not sent.
                for future in futures:
                    future.cancel()
                raise

    def close(self) -> None:
        pass

    def score(
        self, prompts: Sequence[Messages], prefixes: Sequence[str], options: Sequence[Sequence[str]]
    ) -> list[OptionScores]:
        """Each option scored by its first token among the top log-probabilities after the
        answer prefix (module docstring). Raises ``ScoringUnavailable`` when the server sends
        no log-probabilities, ``BackendError`` as ``generate`` does."""
        if not len(prompts) == len(prefixes) == len(options):
            raise ValueError("one prefix and one list of options per prompt")
        return self._in_parallel(
            [
                functools.partial(self._score_one, messages, prefix, list(choices))
                for messages, prefix, choices in zip(prompts, prefixes, options, strict=True)
            ]
        )

    def _score_one(self, messages: Messages, prefix: str, choices: list[str]) -> OptionScores:
        if not choices:
            raise ValueError("a question needs at least one option")
        body = {
            "model": self.spec.model,
            "messages": list(messages),
            "max_tokens": SCORE_MAX_TOKENS,
            "temperature": 0,
            "logprobs": True,
            "top_logprobs": TOP_LOGPROBS,
        }
        payload = self._post(json.dumps(body).encode())
        try:
            content = json.loads(payload)["choices"][0].get("logprobs") or {}
            positions = content.get("content") or []
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise BackendError(f"{self.url} gave an answer that is no chat completion: {_excerpt(payload)}") from exc
        if not positions:
            raise ScoringUnavailable(f"{self.url} returned no log-probabilities for {self.spec.model}")
        try:
            alternatives = _answer_position(positions, prefix)
            seen = {str(entry["token"]): float(entry["logprob"]) for entry in alternatives}
        except (KeyError, TypeError, ValueError) as exc:
            raise BackendError(f"{self.url} sent log-probabilities in an unknown shape: {_excerpt(payload)}") from exc
        if not seen:
            raise ScoringUnavailable(f"{self.url} returned no top log-probabilities for {self.spec.model}")
        floor = min(seen.values()) - FLOOR_MARGIN
        logprobs = []
        for choice in choices:
            wanted = choice.strip().casefold()
            matches = [
                value for token, value in seen.items() if token.strip() and wanted.startswith(token.strip().casefold())
            ]
            logprobs.append(max(matches, default=floor))
        return OptionScores.from_logprobs(choices, logprobs)

    def _complete(self, messages: Messages, params: DecodingParams) -> Completion:
        body = {
            "model": self.spec.model,
            "messages": list(messages),
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "seed": params.seed,
        }
        if params.repetition_penalty != 1.0:
            # Not part of OpenAI's own API, but vLLM and TGI read it from the body.
            body["repetition_penalty"] = params.repetition_penalty
        return self._parse(self._post(json.dumps(body).encode()))

    def _post(self, data: bytes) -> bytes:
        attempts = self.spec.max_retries + 1
        failure, answered = "", False
        for attempt in range(1, attempts + 1):
            request = urllib.request.Request(self.url, data=data, headers=self.headers, method="POST")  # noqa: S310 (scheme checked in endpoint_url)
            wait = backoff_seconds(attempt)
            try:
                with urllib.request.urlopen(request, timeout=self.spec.timeout_seconds) as response:  # noqa: S310
                    return bytes(response.read())
            except urllib.error.HTTPError as exc:
                failure, answered = f"answered {exc.code}: {_excerpt(_body(exc))}", True
                if exc.code != 429 and exc.code < 500:
                    raise BackendError(f"{self.url} {failure}") from exc
                wait = retry_after_seconds(exc.headers.get("Retry-After"), default=wait)
            except urllib.error.URLError as exc:
                failure, answered = self._describe(exc.reason), False
            except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
                # Raised while reading the answer, after the connection was made.
                failure, answered = self._describe(exc), False
            if attempt < attempts:
                time.sleep(wait)
        if answered:
            raise BackendError(f"{self.url} {failure} (after {attempts} attempts)")
        raise BackendError(f"cannot reach {self.url}: {failure} after {attempts} attempts")

    def _describe(self, reason: object) -> str:
        if isinstance(reason, TimeoutError):
            return f"no answer within {self.spec.timeout_seconds:g} s"
        if isinstance(reason, ConnectionRefusedError):
            return "connection refused"
        return str(reason) or type(reason).__name__

    def _parse(self, payload: bytes) -> Completion:
        try:
            answer = json.loads(payload)
            choice = answer["choices"][0]
            text = choice["message"]["content"] or ""
            usage = answer.get("usage") or {}
            return Completion(
                text=str(text).strip(),
                prompt_tokens=int(usage.get("prompt_tokens") or 0),
                completion_tokens=int(usage.get("completion_tokens") or 0),
                finish_reason=str(choice.get("finish_reason") or "unknown"),
            )
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise BackendError(f"{self.url} gave an answer that is no chat completion: {_excerpt(payload)}") from exc


def _normal(text: str) -> str:
    return "".join(text.split()).casefold()


def _answer_position(positions: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    """The top alternatives at the first non-blank token after ``prefix`` in the answer, or at
    the answer's first non-blank token when the prefix is not in it."""
    wanted, written = _normal(prefix), ""
    start = 0
    if wanted:
        for index, position in enumerate(positions):
            written += _normal(str(position["token"]))
            if written.endswith(wanted):
                start = index + 1
                break
    for position in positions[start:]:
        if str(position["token"]).strip():
            alternatives = position.get("top_logprobs") or [
                {"token": position["token"], "logprob": position["logprob"]}
            ]
            return list(alternatives)
    return []


def endpoint_url(base_url: str) -> str:
    """The chat completions URL for ``base_url`` (rules in the module docstring)."""
    url = base_url.strip().rstrip("/")
    if not re.match(r"https?://[^/]", url):
        raise BackendError(f"base URL {base_url!r} is not an http:// or https:// URL")
    if url.endswith("/chat/completions"):
        return url
    if re.search(r"/v\d+$", url):
        return f"{url}/chat/completions"
    return f"{url}/v1/chat/completions"


def backoff_seconds(attempt: int) -> float:
    """Wait after failed try ``attempt``: doubling from the base, capped, less up to half at random.

    The jitter spreads the retries of a batch's requests so they do not hit a recovering server
    together.
    """
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
    return ceiling * (0.5 + random.random() / 2)  # noqa: S311 (jitter, not a secret)


def retry_after_seconds(value: str | None, *, default: float) -> float:
    """A ``Retry-After`` header (seconds or an HTTP date) as seconds, capped; ``default`` if absent."""
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return default
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_SECONDS)


def _body(error: urllib.error.HTTPError) -> bytes:
    try:
        return bytes(error.read())
    except (OSError, http.client.HTTPException):
        return b""


def _excerpt(payload: bytes) -> str:
    text = payload.decode("utf-8", errors="replace").strip()
    return text if len(text) <= EXCERPT_CHARS else f"{text[:EXCERPT_CHARS]}…"
