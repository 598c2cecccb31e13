"""The OpenAI-compatible backend, against a scripted chat completions server in a thread."""

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from explanations.llm import BackendError, BackendSpec, DecodingParams, ScoringUnavailable, load_backend, unload_all
from explanations.llm import openai as openai_backend
from explanations.llm.openai import OpenAIBackend, endpoint_url, retry_after_seconds

PROMPT = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "why this film"}]


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # None: a completion that echoes the last message; bytes: sent as they are
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class FakeServer:
    """Answers /v1/chat/completions from a script of replies, then with echoing completions."""

    def __init__(self) -> None:
        self.script: list[Reply] = []
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self.delay_for: dict[str, float] = {}  # by last message content
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append((self.path, dict(self.headers), body))
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    reply = server.script.pop(0) if server.script else Reply()
                done = False
                try:
                    time.sleep(reply.delay + server.delay_for.get(body["messages"][-1]["content"], 0.0))
                    # No longer in flight once the answer is ready: the client may send its next
                    # request as soon as it reads this one, before this thread would get further.
                    with server.lock:
                        server.in_flight -= 1
                    done = True
                    self._send(reply, body)
                except OSError:
                    pass  # the client gave up (a timeout test)
                finally:
                    if not done:
                        with server.lock:
                            server.in_flight -= 1

            def _send(self, reply: Reply, request: dict[str, Any]) -> None:
                payload = reply.body if reply.body is not None else completion(request)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def completion(request: dict[str, Any]) -> dict[str, Any]:
    words = request["messages"][-1]["content"].split()
    finish = "length" if request["max_tokens"] < 3 else "stop"
    return {
        "choices": [
            {"message": {"role": "assistant", "content": f" re: {' '.join(words)} \n"}, "finish_reason": finish}
        ],
        "usage": {"prompt_tokens": 10 * len(request["messages"]), "completion_tokens": 3},
    }


@pytest.fixture
def server() -> Iterator[FakeServer]:
    fake = FakeServer()
    thread = threading.Thread(target=fake.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield fake
    fake.httpd.shutdown()
    fake.httpd.server_close()


@pytest.fixture(autouse=True)
def _quick_backoff(monkeypatch):
    monkeypatch.setattr(openai_backend, "BACKOFF_BASE_SECONDS", 0.001)


def backend_for(server: FakeServer, **options: Any) -> OpenAIBackend:
    return OpenAIBackend(BackendSpec(kind="openai", model="tiny-chat", base_url=server.url, **options))


def test_a_request_carries_the_model_messages_decoding_and_key(server):
    backend = backend_for(server, api_key="sk-test")

    [answer] = backend.generate([PROMPT], DecodingParams(max_new_tokens=7, temperature=0.5, top_p=0.9, seed=3))

    [(path, headers, body)] = server.requests
    assert path == "/v1/chat/completions"
    assert headers["Authorization"] == "Bearer sk-test"
    assert body == {
        "model": "tiny-chat",
        "messages": PROMPT,
        "max_tokens": 7,
        "temperature": 0.5,
        "top_p": 0.9,
        "seed": 3,
    }
    assert answer.text == "re: why this film"
    assert (answer.prompt_tokens, answer.completion_tokens, answer.finish_reason) == (20, 3, "stop")


def test_no_key_sends_no_authorization_header(server):
    backend_for(server).generate([PROMPT], DecodingParams())

    assert "Authorization" not in server.requests[0][1]


def test_the_servers_finish_reason_is_passed_through(server):
    server.script = [
        Reply(),
        Reply(body={"choices": [{"message": {"content": "x"}, "finish_reason": "content_filter"}]}),
        Reply(body={"choices": [{"message": {"content": None}, "finish_reason": None}]}),
    ]
    backend = backend_for(server, concurrency=1)

    answers = backend.generate([PROMPT, PROMPT, PROMPT], DecodingParams(max_new_tokens=2))

    assert [a.finish_reason for a in answers] == ["length", "content_filter", "unknown"]
    assert (answers[1].text, answers[1].prompt_tokens, answers[1].completion_tokens) == ("x", 0, 0)
    assert answers[2].text == ""


def test_a_503_is_retried_and_the_retry_answers(server):
    server.script = [Reply(status=503, body=b"warming up")]

    [answer] = backend_for(server).generate([PROMPT], DecodingParams())

    assert answer.text == "re: why this film"
    assert len(server.requests) == 2


def test_a_429_waits_as_long_as_retry_after_says(server, monkeypatch):
    # A backoff of minutes would time the test out: the server's Retry-After: 0 must win.
    monkeypatch.setattr(openai_backend, "BACKOFF_BASE_SECONDS", 300.0)
    server.script = [Reply(status=429, body=b"slow down", headers={"Retry-After": "0"})]

    [answer] = backend_for(server).generate([PROMPT], DecodingParams())

    assert answer.text == "re: why this film"
    assert len(server.requests) == 2


def test_a_401_fails_at_once_with_the_status_and_the_servers_words(server):
    server.script = [Reply(status=401, body=b'{"error": "invalid api key"}')]

    with pytest.raises(BackendError, match=r"answered 401: .*invalid api key"):
        backend_for(server, api_key="wrong").generate([PROMPT], DecodingParams())

    assert len(server.requests) == 1


def test_5xx_after_every_retry_fails_with_the_last_answer(server):
    server.script = [Reply(status=500, body=b"boom")] * 3

    with pytest.raises(BackendError, match=r"answered 500: boom \(after 3 attempts\)"):
        backend_for(server, max_retries=2).generate([PROMPT], DecodingParams())

    assert len(server.requests) == 3


def test_a_closed_port_fails_quickly_naming_the_url_and_attempts():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    backend = OpenAIBackend(BackendSpec(kind="openai", model="m", base_url=f"http://127.0.0.1:{port}", max_retries=3))
    started = time.monotonic()

    with pytest.raises(BackendError) as error:
        backend.generate([PROMPT], DecodingParams())

    assert str(error.value) == (
        f"cannot reach http://127.0.0.1:{port}/v1/chat/completions: connection refused after 4 attempts"
    )
    assert time.monotonic() - started < 2


def test_a_server_slower_than_the_timeout_fails_as_unanswered(server):
    server.script = [Reply(delay=1.0), Reply(delay=1.0)]
    started = time.monotonic()

    with pytest.raises(BackendError, match=r"cannot reach .*: no answer within 0.2 s after 2 attempts"):
        backend_for(server, timeout_seconds=0.2, max_retries=1).generate([PROMPT], DecodingParams())

    assert time.monotonic() - started < 1.5


def test_an_answer_that_is_no_completion_fails_without_retry(server):
    server.script = [Reply(body=b"<html>gateway</html>")]

    with pytest.raises(BackendError, match="no chat completion: <html>gateway</html>"):
        backend_for(server).generate([PROMPT], DecodingParams())

    assert len(server.requests) == 1


def test_a_batch_runs_concurrency_requests_at_once_and_keeps_prompt_order(server):
    prompts = [[{"role": "user", "content": f"prompt {index}"}] for index in range(8)]
    # Later prompts answer sooner, so completion order is the reverse of prompt order.
    server.delay_for = {f"prompt {index}": 0.05 * (8 - index) for index in range(8)}
    backend = backend_for(server, concurrency=4)

    answers = backend.generate(prompts, DecodingParams())

    assert [answer.text for answer in answers] == [f"re: prompt {index}" for index in range(8)]
    assert server.max_in_flight == 4


def test_an_empty_batch_sends_nothing(server):
    assert backend_for(server).generate([], DecodingParams()) == []
    assert server.requests == []


@pytest.mark.parametrize(
    "base_url",
    [
        "http://gpu:8000",
        "http://gpu:8000/",
        "http://gpu:8000/v1",
        "http://gpu:8000/v1/",
        "http://gpu:8000/v1/chat/completions",
    ],
)
def test_the_base_url_may_or_may_not_name_the_api_root(base_url):
    assert endpoint_url(base_url) == "http://gpu:8000/v1/chat/completions"


def test_an_api_root_with_a_path_keeps_it():
    assert endpoint_url("https://llm.example.org/openai/v1") == "https://llm.example.org/openai/v1/chat/completions"


@pytest.mark.parametrize("base_url", ["", "gpu:8000", "file:///etc/passwd", "ftp://gpu/v1"])
def test_a_base_url_that_is_not_http_is_refused(base_url):
    with pytest.raises(BackendError, match="not an http"):
        OpenAIBackend(BackendSpec(kind="openai", model="m", base_url=base_url))


def test_retry_after_is_read_as_seconds_or_a_date_and_capped():
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)

    assert retry_after_seconds("2.5", default=9.0) == 2.5
    assert 25 < retry_after_seconds(soon, default=9.0) <= 30
    assert retry_after_seconds("next week", default=9.0) == 9.0
    assert retry_after_seconds(None, default=9.0) == 9.0
    assert retry_after_seconds("86400", default=9.0) == openai_backend.RETRY_AFTER_CAP_SECONDS


def test_the_api_key_stays_out_of_the_specs_repr():
    assert "sk-secret" not in repr(BackendSpec(kind="openai", model="m", base_url="http://x", api_key="sk-secret"))


def test_load_backend_reuses_the_backend_for_the_same_spec(server):
    try:
        spec = BackendSpec(kind="openai", model="tiny-chat", base_url=server.url)
        backend = load_backend(spec)
        assert load_backend(BackendSpec(kind="openai", model="tiny-chat", base_url=server.url)) is backend
        assert load_backend(BackendSpec(kind="openai", model="other", base_url=server.url)) is not backend
    finally:
        unload_all()


def with_logprobs(*positions: tuple[str, dict[str, float]]) -> dict[str, Any]:
    """A completion whose tokens and top alternatives are ``positions`` (token, {alternative: logprob})."""
    return {
        "choices": [
            {
                "message": {"role": "assistant", "content": "".join(token for token, _ in positions)},
                "finish_reason": "length",
                "logprobs": {
                    "content": [
                        {
                            "token": token,
                            "logprob": top.get(token, -1.0),
                            "top_logprobs": [{"token": t, "logprob": v} for t, v in top.items()],
                        }
                        for token, top in positions
                    ]
                },
            }
        ]
    }


def test_options_are_scored_by_the_alternatives_after_the_answer_prefix(server):
    server.script = [
        Reply(
            body=with_logprobs(
                ("Winner", {"Winner": -0.1}),
                (":", {":": -0.01}),
                (" ", {" ": -0.2}),
                ("2", {"2": -0.3, "1": -1.5, "t": -3.0, "Tie": -4.0}),
            )
        )
    ]
    backend = backend_for(server)

    [score] = backend.score([PROMPT], ["Winner:"], [[" 1", " 2", " tie"]])

    [(_, _, body)] = server.requests
    assert body["logprobs"] is True and body["top_logprobs"] == 20 and body["temperature"] == 0
    assert score.logprobs == (-1.5, -0.3, -3.0)  # "t" and "Tie" both start "tie": the better counts
    assert sum(score.probabilities) == pytest.approx(1.0)
    assert score.options[score.best] == " 2"


def test_an_answer_without_the_prefix_is_scored_at_its_first_token_and_absent_options_get_a_floor(server):
    server.script = [Reply(body=with_logprobs(("F", {"F": -0.2, "female": -2.0})))]

    [score] = backend_for(server).score([PROMPT], ["Answer:"], [[" F", " M"]])

    assert score.logprobs == (-0.2, -2.0 - openai_backend.FLOOR_MARGIN)


def test_a_server_without_logprobs_cannot_score(server):
    backend = backend_for(server)  # the default reply is a completion with no logprobs

    with pytest.raises(ScoringUnavailable, match="no log-probabilities"):
        backend.score([PROMPT], ["Winner:"], [[" 1", " 2"]])
    assert issubclass(ScoringUnavailable, BackendError)
