"""LLM query generation against a real local HTTP server that speaks the chat-completions API.

The server answers from a per-test script of behaviours (answer, HTTP status, stall, delay) and records every
request, so retries, resume and key handling are checked over the wire. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import json
import re
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytest.importorskip("openai")

from evalfast.data.prompts import Prompt  # noqa: E402
from evalfast.errors import EvalfastError  # noqa: E402
from evalfast.generate.llm import (PROMPT_TEMPLATE, TEMPLATE_VERSION, GeneratedQuery, LLMConfig,  # noqa: E402
                                   LLMProgress, _retry_delay, clean_queries, generate_llm_queries)

KEY_ENV = "EVALFAST_TEST_LLM_KEY"
SECRET = "sk-test-7f3a9c-very-secret"


# --- the fake endpoint -------------------------------------------------------------------------------------

@dataclass
class Answer:
    """200 with this text; None answers from the prompt id found in the request (see ``default_answer``)."""

    text: str | None = None
    delay: float = 0.0


@dataclass
class Status:
    """An error status with a JSON error body; ``echo_key`` puts the Authorization header in the body."""

    code: int
    headers: dict[str, str] = field(default_factory=dict)
    echo_key: bool = False


@dataclass
class Stall:
    """Say nothing for ``seconds`` (longer than the client timeout), then answer to a client that left."""

    seconds: float


@dataclass
class Raw:
    """200 with a body that is not a chat completion (a web page where the API should be)."""

    body: str
    content_type: str = "text/html"


Behaviour = Answer | Status | Stall | Raw


def prompt_id_in(body: dict) -> str:
    return re.search(r"\bp\d+\b", body["messages"][-1]["content"]).group(0)


def default_answer(body: dict) -> str:
    """A deterministic answer per prompt, numbered and chatty like a real model's."""
    pid = prompt_id_in(body)
    return f"Here are 3 queries:\n1. stories about {pid} dragons\n2. \"{pid} sea voyage prompt\"\n3) {pid} lost maps."


class FakeEndpoint:
    """POST /v1/chat/completions served from ``script`` (consumed in order), then ``fallback``."""

    def __init__(self) -> None:
        self.script: deque[Behaviour] = deque()
        self.fallback: Behaviour = Answer()
        self.requests: list[dict] = []  # {"body", "authorization"}
        self.finished: list[str] = []  # prompt ids in the order their answers were sent
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        self.url = ""

    def next_behaviour(self, body: dict, authorization: str) -> Behaviour:
        with self.lock:
            self.requests.append({"body": body, "authorization": authorization})
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return self.script.popleft() if self.script else self.fallback

    def done(self, prompt_id: str | None) -> None:
        with self.lock:
            self.in_flight -= 1
            if prompt_id is not None:
                self.finished.append(prompt_id)

    @property
    def calls(self) -> int:
        return len(self.requests)


def completion(model: str, text: str) -> dict:
    return {"id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


def make_handler(endpoint: FakeEndpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep test output quiet
            pass

        def send_json(self, code: int, payload: dict, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path != "/v1/chat/completions":
                self.send_json(404, {"error": {"message": "no such route"}})
                return
            behaviour = endpoint.next_behaviour(body, self.headers.get("Authorization", ""))
            answered = None
            try:
                if isinstance(behaviour, Status):
                    detail = self.headers.get("Authorization", "") if behaviour.echo_key else "try later"
                    self.send_json(behaviour.code, {"error": {"message": f"failed: {detail}"}}, behaviour.headers)
                    return
                if isinstance(behaviour, Raw):
                    data = behaviour.body.encode()
                    self.send_response(200)
                    self.send_header("Content-Type", behaviour.content_type)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                if isinstance(behaviour, Stall):
                    time.sleep(behaviour.seconds)
                time.sleep(getattr(behaviour, "delay", 0.0))
                text = getattr(behaviour, "text", None)
                self.send_json(200, completion(body["model"], default_answer(body) if text is None else text))
                answered = prompt_id_in(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (stall past its timeout)
            finally:
                endpoint.done(answered)

    return Handler


@pytest.fixture
def server() -> Iterator[Callable[[], FakeEndpoint]]:
    """Start fake endpoints on 127.0.0.1 (port 0), each in a background thread; stop them all afterwards."""
    started: list[ThreadingHTTPServer] = []

    def start() -> FakeEndpoint:
        endpoint = FakeEndpoint()
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(endpoint))
        httpd.daemon_threads = True
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        started.append(httpd)
        endpoint.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
        return endpoint

    yield start
    for httpd in started:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(autouse=True)
def no_key(monkeypatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)


def make_prompts(n: int) -> list[Prompt]:
    return [Prompt(f"p{i}", ("fantasy",), ("magic",), f"Title of p{i}", f"A short prompt, number p{i}.")
            for i in range(n)]


def config_for(endpoint: FakeEndpoint, **overrides) -> LLMConfig:
    settings = {"model": "test-model", "api_key_env": KEY_ENV, "concurrency": 1, "timeout": 5.0,
                "max_retries": 3, "backoff": 0.01}
    return LLMConfig(base_url=endpoint.url, **{**settings, **overrides})


def expected(prompts: list[Prompt], per_prompt: int = 3) -> list[GeneratedQuery]:
    texts = ["stories about {} dragons", "{} sea voyage prompt", "{} lost maps"][:per_prompt]
    return [GeneratedQuery(p.id, t.format(p.id)) for p in prompts for t in texts]


def run(prompts: list[Prompt], config: LLMConfig, cache_dir: Path) -> tuple[list[GeneratedQuery], list[LLMProgress]]:
    progress: list[LLMProgress] = []
    return generate_llm_queries(prompts, config, cache_dir, on_progress=progress.append), progress


# --- clean_queries -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("answer, limit, queries", [
    ("1. dragon heist stories\n2) cozy mystery prompts\n3. time travel romance", 3,
     ["dragon heist stories", "cozy mystery prompts", "time travel romance"]),
    ("- dragon heist\n* haunted lighthouse\n• space pirates\n– grief and healing", 4,
     ["dragon heist", "haunted lighthouse", "space pirates", "grief and healing"]),
    ("Sure! Here are 3 search queries:\n\n\"haunted lighthouse story\"\n'ghost ship prompt'.\n“sea monsters”!", 3,
     ["haunted lighthouse story", "ghost ship prompt", "sea monsters"]),
    ("Can you show me stories about dragons?\nPlease, find me a heist prompt\nI'm looking for cozy mysteries", 3,
     ["stories about dragons", "a heist prompt", "cozy mysteries"]),
    ("could you please recommend me prompts about grief\nI want space opera\nsearch for: time loops", 3,
     ["prompts about grief", "space opera", "time loops"]),
    ("Query 1: lonely robot story\n**Query 2:** robot friendship\n`android dreams`", 3,
     ["lonely robot story", "robot friendship", "android dreams"]),
    ("dragon heist\nDragon Heist.\nDRAGON HEIST!\nsea witch", 3, ["dragon heist", "sea witch"]),
    ("one\ndragons\n42 77\n" + "word " * 21 + "\nhttps://example.com dragon prompts\nsee www.x.org now\nmoon fable", 3,
     ["moon fable"]),
    ("alpha beta\ngamma delta\nepsilon zeta\neta theta", 2, ["alpha beta", "gamma delta"]),
    ("Queries for this prompt:\nLet me know if you need more.\nI hope these help!\nsea witch curse", 3,
     ["sea witch curse"]),
    ("<think>\nThe user wants queries. Maybe dragons.\n</think>\n\ndragon heist stories", 3, ["dragon heist stories"]),
    ("The user wants queries about dragons, so:\n</think>\ndragon heist", 3, ["dragon heist"]),
    ("dragon heist\n<think>\nmore thoughts that were cut off", 3, ["dragon heist"]),
    ("Here's what I came up with.\nHere’s another set\nsea witch curse", 3, ["sea witch curse"]),
    ("Sure!", 3, []),
    ("", 3, []),
    ("recommendations for dragon stories", 3, ["recommendations for dragon stories"]),
])
def test_clean_queries(answer: str, limit: int, queries: list[str]) -> None:
    assert clean_queries(answer, limit) == queries


def test_prompt_template_fields() -> None:
    text = PROMPT_TEMPLATE.format(title="T", text="X", n=2)
    assert "T" in text and "X" in text and "2" in text and TEMPLATE_VERSION == 1


@pytest.mark.parametrize("headers, attempt, low, high", [
    ({"retry-after": "0"}, 3, 0.0, 0.0),
    ({"retry-after": "2.5"}, 0, 2.5, 2.5),
    ({"retry-after": "3600"}, 0, 60.0, 60.0),  # capped
    ({"retry-after-ms": "250"}, 0, 0.25, 0.25),
    ({"retry-after": "soon"}, 2, 4.0, 5.0),  # unreadable: backoff 1 * 2**2, jitter up to 25 %
    (None, 0, 1.0, 1.25),
    (None, 3, 8.0, 10.0),
])
def test_retry_delay(headers, attempt: int, low: float, high: float) -> None:
    assert low <= _retry_delay(headers, attempt, backoff=1.0) <= high


@pytest.mark.parametrize("overrides", [{"queries_per_prompt": 0}, {"queries_per_prompt": 4}, {"concurrency": 0},
                                       {"max_retries": -1}, {"timeout": 0}])
def test_config_is_checked(overrides: dict) -> None:
    with pytest.raises(EvalfastError):
        LLMConfig(base_url="http://127.0.0.1:1/v1", model="m", **overrides)


# --- generation over HTTP ----------------------------------------------------------------------------------

def test_answers_are_cleaned(server, tmp_path) -> None:
    endpoint = server()
    endpoint.script.extend([
        Answer("1. Dragon heist stories\n2. dragon heist stories!\n3. Please find me a heist prompt"),
        Answer("Sure! Here you go:\n- \"haunted lighthouse\"\n- ghost ship at sea.\n- sea monsters\n- extra one"),
        Answer("Sure!"),
    ])
    prompts = make_prompts(3)
    queries, progress = run(prompts, config_for(endpoint, queries_per_prompt=2), tmp_path)
    assert queries == [GeneratedQuery("p0", "Dragon heist stories"), GeneratedQuery("p0", "a heist prompt"),
                       GeneratedQuery("p1", "haunted lighthouse"), GeneratedQuery("p1", "ghost ship at sea")]
    assert progress[-1] == LLMProgress(prompts_done=3, prompts_total=3, calls=3, retries=0, cache_hits=0,
                                       prompts_without_queries=1)
    sent = endpoint.requests[0]["body"]
    assert sent["model"] == "test-model" and sent["temperature"] == 0.0
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]
    assert "Title of p0" in sent["messages"][1]["content"] and "Write 2 " in sent["messages"][1]["content"]


@pytest.mark.parametrize("transient", [
    pytest.param([Status(429, {"Retry-After": "0"})], id="429"),
    pytest.param([Status(500)], id="500"),
    pytest.param([Status(503), Status(502)], id="503-502"),
    pytest.param([Stall(1.5)], id="stall-past-timeout"),
])
def test_transient_failures_are_retried(server, tmp_path, transient: list[Behaviour]) -> None:
    endpoint = server()
    endpoint.script.extend(transient)
    prompts = make_prompts(2)
    queries, progress = run(prompts, config_for(endpoint, timeout=0.5), tmp_path)
    assert queries == expected(prompts)
    assert progress[-1].retries == len(transient)
    assert progress[-1].calls == endpoint.calls == len(prompts) + len(transient)


def test_retry_after_is_honoured(server, tmp_path) -> None:
    endpoint = server()
    endpoint.script.append(Status(429, {"Retry-After": "0"}))
    start = time.monotonic()
    queries, _ = run(make_prompts(1), config_for(endpoint, backoff=5.0), tmp_path)
    assert time.monotonic() - start < 2.0  # the 5 s backoff was not used
    assert len(queries) == 3


def test_gives_up_after_max_retries(server, tmp_path) -> None:
    endpoint = server()
    endpoint.fallback = Status(500)
    with pytest.raises(EvalfastError, match=r"HTTP 500 for prompt p0 after 2 retries; 0 of 1 prompts .*re-run"):
        run(make_prompts(1), config_for(endpoint, max_retries=2), tmp_path)
    assert endpoint.calls == 3


@pytest.mark.parametrize("concurrency", [1, 3])
def test_resume_after_a_failed_run(server, tmp_path, concurrency: int) -> None:
    prompts, answered_first = make_prompts(7), 3
    broken = server()
    broken.script.extend(Answer() for _ in range(answered_first))
    broken.fallback = Status(500)
    cache = tmp_path / "cache"
    with pytest.raises(EvalfastError, match=f"{answered_first} of 7 prompts are finished and cached"):
        run(prompts, config_for(broken, concurrency=concurrency, max_retries=1), cache)
    assert len(list(cache.glob("*.json"))) == answered_first

    healthy = server()
    resumed, progress = run(prompts, config_for(healthy, concurrency=concurrency), cache)
    assert healthy.calls == len(prompts) - answered_first
    assert progress[-1].cache_hits == answered_first
    assert sorted(prompt_id_in(r["body"]) for r in healthy.requests) == sorted(
        set(p.id for p in prompts) - {prompt_id_in(r["body"]) for r in broken.requests[:answered_first]})

    uninterrupted, _ = run(prompts, config_for(healthy, concurrency=concurrency), tmp_path / "fresh")
    assert resumed == uninterrupted == expected(prompts)

    calls_before = healthy.calls
    again, progress = run(prompts, config_for(healthy, concurrency=concurrency), cache)
    assert again == resumed and healthy.calls == calls_before
    assert progress[-1].calls == 0 and progress[-1].cache_hits == len(prompts)


def test_interrupted_run_asks_nothing_twice(server, tmp_path) -> None:
    endpoint = server()
    prompts = make_prompts(8)

    def interrupt(progress: LLMProgress) -> None:  # Ctrl-C arrives while other requests are in flight
        if progress.prompts_done == 2:
            raise KeyboardInterrupt

    endpoint.script.extend(Answer(delay=0.02) for _ in range(8))
    with pytest.raises(KeyboardInterrupt):
        generate_llm_queries(prompts, config_for(endpoint, concurrency=3), tmp_path, on_progress=interrupt)
    first_run = endpoint.calls
    assert 2 <= first_run < len(prompts) and len(list(tmp_path.glob("*.json"))) == first_run

    queries, _ = run(prompts, config_for(endpoint, concurrency=3), tmp_path)
    assert queries == expected(prompts) and endpoint.calls == len(prompts)


def test_cache_key_covers_model_and_temperature(server, tmp_path) -> None:
    endpoint = server()
    prompts = make_prompts(2)
    run(prompts, config_for(endpoint), tmp_path)
    run(prompts, config_for(endpoint, model="other-model"), tmp_path)
    run(prompts, config_for(endpoint, temperature=0.7), tmp_path)
    run(prompts, config_for(endpoint, temperature=0.7), tmp_path)  # all hits
    assert endpoint.calls == 6
    records = [json.loads(path.read_text()) for path in tmp_path.glob("*.json")]
    assert len(records) == 6 and {r["model"] for r in records} == {"test-model", "other-model"}
    assert all(set(r) == {"model", "answer"} for r in records)


def test_api_key_is_sent_but_never_written_or_shown(server, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    endpoint = server()
    run(make_prompts(2), config_for(endpoint), tmp_path / "cache")
    assert {r["authorization"] for r in endpoint.requests} == {f"Bearer {SECRET}"}
    for path in tmp_path.rglob("*"):
        assert not path.is_file() or SECRET.encode() not in path.read_bytes()

    for behaviour in (Status(500, echo_key=True), Status(400, echo_key=True), Status(401, echo_key=True)):
        endpoint.fallback = behaviour
        with pytest.raises(EvalfastError) as caught:
            run(make_prompts(3), config_for(endpoint, max_retries=1), tmp_path / "other")
        shown = "".join(traceback.format_exception(caught.value))
        assert "sk-test" not in shown and endpoint.url in str(caught.value)


def test_without_a_key_sends_empty(server, tmp_path) -> None:
    endpoint = server()
    run(make_prompts(1), config_for(endpoint), tmp_path)
    assert endpoint.requests[0]["authorization"] == "Bearer EMPTY"


def test_prompt_order_with_concurrency(server, tmp_path) -> None:
    endpoint = server()
    prompts = make_prompts(12)
    delays = [0.12, 0.02, 0.09, 0.05, 0.01, 0.07, 0.03, 0.11, 0.04, 0.08, 0.06, 0.10]  # a shuffle, fixed
    endpoint.script.extend(Answer(delay=d) for d in delays)  # earlier requests are not answered first
    queries, progress = run(prompts, config_for(endpoint, concurrency=4), tmp_path)
    assert queries == expected(prompts)
    assert [p.prompts_done for p in progress] == list(range(1, 13))
    assert endpoint.finished != sorted(endpoint.finished, key=lambda pid: int(pid[1:]))  # out of order
    assert 2 <= endpoint.max_in_flight <= 4


@pytest.mark.parametrize("code, hint", [(401, "set \\$EVALFAST_TEST_LLM_KEY"), (403, "not authorised"),
                                        (404, "base URL"), (400, "prompt p0")])
def test_refusals_are_not_retried(server, tmp_path, code: int, hint: str) -> None:
    endpoint = server()
    endpoint.fallback = Status(code)
    with pytest.raises(EvalfastError, match=f"HTTP {code}.*{hint}"):
        run(make_prompts(3), config_for(endpoint), tmp_path)
    assert endpoint.calls == 1


@pytest.mark.parametrize("raw", [Raw("<html>welcome</html>"), Raw("not json", "application/json"),
                                 Raw("{}", "application/json")], ids=["html", "not-json", "no-choices"])
def test_non_completion_answer_is_refused(server, tmp_path, raw: Raw) -> None:
    endpoint = server()
    endpoint.fallback = raw
    with pytest.raises(EvalfastError, match="sent no chat completion for prompt p0.*OpenAI-compatible"):
        run(make_prompts(2), config_for(endpoint), tmp_path)
    assert endpoint.calls == 1 and not list(tmp_path.glob("*.json"))


def test_unreachable_endpoint_fails_with_resume_hint(tmp_path) -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as probe:
        port = probe.server_address[1]  # a port that is closed once the block ends
    config = LLMConfig(base_url=f"http://127.0.0.1:{port}/v1", model="m", api_key_env=KEY_ENV,
                       max_retries=1, backoff=0.01, timeout=2.0)
    with pytest.raises(EvalfastError, match="connection failed.*re-run"):
        generate_llm_queries(make_prompts(2), config, tmp_path)


def test_cli_writes_a_split_beir_folder_and_resumes_from_the_cache(server, tmp_path) -> None:
    from click.testing import CliRunner

    from evalfast.cli import cli
    from evalfast.data.golden import load_golden

    endpoint = server()
    library = tmp_path / "prompts.jsonl"
    library.write_text("".join(json.dumps({"id": p.id, "genres": list(p.genres), "themes": list(p.themes),
                                           "title": p.title, "text": p.text}) + "\n" for p in make_prompts(10)))
    args = ["golden", "llm", "-p", str(library), "--base-url", endpoint.url, "--model", "test-model",
            "--cache-dir", str(tmp_path / "cache"), "--split", "0.6/0.2/0.2", "--seed", "1"]
    first = CliRunner().invoke(cli, [*args, "-o", str(tmp_path / "a")])
    assert first.exit_code == 0, first.output
    assert endpoint.calls == 10
    splits = {split: load_golden(tmp_path / "a", split) for split in ("train", "dev", "test")}
    assert sum(g.n_queries for g in splits.values()) == 30
    for golden in splits.values():  # each query judged 2 for the prompt it was written for, and only that
        assert (golden.qrels.relevance == 2).all() and (golden.qrels.relevant_counts() == 1).all()
    second = CliRunner().invoke(cli, [*args, "-o", str(tmp_path / "b")])
    assert second.exit_code == 0 and endpoint.calls == 10  # all answers came from the cache
    assert (tmp_path / "a" / "queries.jsonl").read_text() == (tmp_path / "b" / "queries.jsonl").read_text()


def test_each_retry_says_what_failed_and_how_long_it_waits(server, tmp_path) -> None:
    endpoint = server()
    endpoint.script.extend([Status(503), Status(429, {"Retry-After": "0"})])
    lines: list[str] = []
    generate_llm_queries(make_prompts(1), config_for(endpoint), tmp_path, on_status=lines.append)
    assert len(lines) == 2
    assert lines[0].startswith("llm: prompt p0: HTTP 503; retry 1 of ")
    assert lines[1].startswith("llm: prompt p0: HTTP 429; retry 2 of ") and lines[1].endswith("in 0 s")
