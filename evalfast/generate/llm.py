"""Golden-set queries from an LLM over any OpenAI-compatible endpoint (OpenAI, vLLM, llama.cpp server, Ollama).

One chat-completions call per prompt asks for a few search queries a reader might type to find it. Every raw
answer is cached as one JSON file per request, so an interrupted run resumes where it stopped and a re-run makes
no calls. The API key is read from the environment and never written to a file or an error message.
"""

from __future__ import annotations

import dataclasses
import email.utils
import hashlib
import json
import math
import os
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from evalfast.atomic import write_text
from evalfast.data.prompts import Prompt
from evalfast.errors import EvalfastError

if TYPE_CHECKING:
    import openai

TEMPLATE_VERSION = 1
SYSTEM_MESSAGE = "You write the short search queries that readers type to find creative writing prompts."
PROMPT_TEMPLATE = (
    "Writing prompt\n"
    "Title: {title}\n"
    "{text}\n\n"
    "Write {n} concise search queries (2 to 8 words each) that a reader might type to find this writing prompt. "
    "Answer with the queries only, one per line, with no numbering, quotes or other text."
)
MAX_RETRY_AFTER = 60.0  # seconds; a longer Retry-After is cut to this
MAX_QUERIES_PER_PROMPT = 3
MIN_WORDS, MAX_WORDS = 2, 20
NO_KEY = "EMPTY"  # what vLLM and llama.cpp accept when they need no key


@dataclass(frozen=True)
class LLMConfig:
    """Where and how to ask for queries; ``timeout`` and ``backoff`` are in seconds."""

    base_url: str  # e.g. http://127.0.0.1:8000/v1
    model: str
    api_key_env: str = "OPENAI_API_KEY"  # the key is read from this variable; unset sends "EMPTY"
    concurrency: int = 4  # requests in flight
    queries_per_prompt: int = 3  # asked for and kept at most, 1 to 3
    timeout: float = 60.0  # per request
    max_retries: int = 6  # per prompt, on 429, 5xx, timeouts and connection errors
    backoff: float = 1.0  # first retry delay, doubled each retry, with jitter; Retry-After wins when sent
    temperature: float = 0.0

    def __post_init__(self) -> None:
        if not 1 <= self.queries_per_prompt <= MAX_QUERIES_PER_PROMPT:
            raise EvalfastError(f"queries_per_prompt is {self.queries_per_prompt}; set it to 1, 2 or 3")
        if self.concurrency < 1:
            raise EvalfastError(f"concurrency is {self.concurrency}; set it to 1 or more")
        if self.max_retries < 0:
            raise EvalfastError(f"max_retries is {self.max_retries}; set it to 0 or more")
        if self.timeout <= 0 or self.backoff < 0:
            raise EvalfastError("timeout must be positive and backoff not negative; fix the LLM settings")


@dataclass(frozen=True)
class GeneratedQuery:
    """One query an LLM wrote for the prompt ``prompt_id``."""

    prompt_id: str
    text: str


@dataclass
class LLMProgress:
    """Counts after each finished prompt; ``calls`` counts requests sent, retries included."""

    prompts_done: int
    prompts_total: int
    calls: int = 0
    retries: int = 0
    cache_hits: int = 0
    prompts_without_queries: int = 0


_LIST_MARKER = re.compile(r"^(?:\(?\d{1,2}[.):]|[-*•·–—+])\s*")
_LABEL = re.compile(r"^(?:search\s+)?query\s*\d*\s*[:\-–]\s*", re.IGNORECASE)
_QUOTES = "\"'`“”‘’«»*_"
_TRAILING = ".,;:!?…" + _QUOTES
_CONVERSATION = re.compile(
    r"^(?:sure|certainly|of course|absolutely|okay|ok|here (?:are|is)|here['’]s|below are|these are|i hope|"
    r"hope (?:this|these)|let me know|these queries|note)\b",
    re.IGNORECASE,
)
_REQUEST_PHRASES = ("can you", "could you", "show me", "find me", "recommend me", "recommend", "i want",
                    "i'm looking for", "i am looking for", "give me", "please", "search for")
_REQUEST = re.compile(r"^(?:" + "|".join(re.escape(p).replace("'", "['’]") for p in _REQUEST_PHRASES)
                      + r")\b[\s,:]*", re.IGNORECASE)
_URL = re.compile(r"https?://|www\.", re.IGNORECASE)


def _without_reasoning(answer: str) -> str:
    """The answer after a reasoning model's <think>...</think> (or before an unclosed <think>)."""
    return answer.rpartition("</think>")[2].split("<think>")[0]


def _clean_line(line: str) -> str | None:
    """The query in one answer line, or None when the line is not a well-formed query."""
    line = _LIST_MARKER.sub("", line.replace("**", "").strip())  # markdown bold, then the list marker
    line = _LABEL.sub("", line).strip().strip(_QUOTES).strip()
    if not line or line.endswith(":") or _CONVERSATION.match(line):
        return None
    line = line.rstrip(_TRAILING).strip()
    while (shorter := _REQUEST.sub("", line, count=1)) != line:
        line = shorter
    words = line.strip(_QUOTES).split()
    if not MIN_WORDS <= len(words) <= MAX_WORDS or not any(c.isalpha() for c in line) or _URL.search(line):
        return None
    return " ".join(words)


def clean_queries(answer: str, limit: int) -> list[str]:
    """Well-formed, distinct (case-insensitively) queries from an LLM answer, one per line, at most ``limit``.

    List markers, labels, quotes, trailing punctuation, conversational lines and leading request phrases
    ("can you", "show me", "please", ...) are removed; a query keeps 2 to 20 words, a letter and no URL.
    """
    queries: list[str] = []
    seen: set[str] = set()
    for line in _without_reasoning(answer).splitlines():
        query = _clean_line(line)
        if query is not None and query.casefold() not in seen:
            seen.add(query.casefold())
            queries.append(query)
    return queries[:limit]


def _messages(prompt: Prompt, config: LLMConfig) -> list[dict[str, str]]:
    user = PROMPT_TEMPLATE.format(title=prompt.title, text=prompt.text, n=config.queries_per_prompt)
    return [{"role": "system", "content": SYSTEM_MESSAGE}, {"role": "user", "content": user}]


def _cache_key(messages: list[dict[str, str]], config: LLMConfig) -> str:
    request = {"model": config.model, "template_version": TEMPLATE_VERSION, "messages": messages,
               "queries_per_prompt": config.queries_per_prompt, "temperature": config.temperature}
    return hashlib.sha256(json.dumps(request, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def _retry_delay(headers: Mapping[str, str] | None, attempt: int, backoff: float) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): Retry-After when sent (at most 60), else backoff."""
    seconds = _retry_after(headers or {})
    if seconds is not None:
        return min(max(seconds, 0.0), MAX_RETRY_AFTER)
    return backoff * 2**attempt * random.uniform(1.0, 1.25)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """The wait a server asked for in Retry-After-Ms, or Retry-After (seconds or an HTTP date); None if none."""
    try:
        if (millis := headers.get("retry-after-ms")) is not None:
            seconds = float(millis) / 1000
        elif (value := headers.get("retry-after")) is not None:
            try:
                seconds = float(value)
            except ValueError:
                seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        else:
            return None
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) else None


def _message_text(response: object) -> str | None:
    """The answer text of a chat completion (empty when it has none); None when the response is not one."""
    try:
        message = response.choices[0].message
    except (AttributeError, IndexError, TypeError):
        return None
    return getattr(message, "content", None) or ""


class _RetriesExhausted(Exception):
    """A prompt still failing after the last retry; the run turns it into an EvalfastError once it stops."""

    def __init__(self, prompt_id: str, failure: str) -> None:
        super().__init__(f"{failure} for prompt {prompt_id}")


class _Endpoint:
    """Asks one endpoint for answers through the cache, retrying transient failures; safe across threads."""

    def __init__(self, config: LLMConfig, cache_dir: Path, total: int,
                 on_status: Callable[[str], None] | None = None) -> None:
        try:
            import openai
        except ImportError as err:
            raise EvalfastError("LLM query generation needs the openai client: pip install 'evalfast[llm]'") from err
        self.openai = openai
        self.config = config
        self.cache_dir = cache_dir
        self.key = os.environ.get(config.api_key_env) or None
        self.client = openai.OpenAI(base_url=config.base_url, api_key=self.key or NO_KEY,
                                    timeout=config.timeout, max_retries=0)
        self.progress = LLMProgress(prompts_done=0, prompts_total=total)
        self.lock = threading.Lock()
        self.stop = threading.Event()  # set when the run fails or is interrupted: no new retries
        self.on_status = on_status or (lambda _message: None)

    def count(self, **increments: int) -> None:
        with self.lock:
            for name, increment in increments.items():
                setattr(self.progress, name, getattr(self.progress, name) + increment)

    def snapshot(self) -> LLMProgress:
        with self.lock:
            return dataclasses.replace(self.progress)

    def answer(self, prompt: Prompt) -> str | None:
        """The raw answer for ``prompt`` (cached or asked), or None when the run stopped before it came."""
        messages = _messages(prompt, self.config)
        path = self.cache_dir / f"{_cache_key(messages, self.config)}.json"
        cached = self._read_cache(path)
        if cached is not None:
            self.count(cache_hits=1)
            return cached
        answer = self._ask(prompt, messages)
        if answer is not None:
            write_text(path, json.dumps({"model": self.config.model, "answer": answer}, ensure_ascii=False))
        return answer

    @staticmethod
    def _read_cache(path: Path) -> str | None:
        try:
            answer = json.loads(path.read_text(encoding="utf-8"))["answer"]
        except (OSError, ValueError, KeyError, TypeError):
            return None  # absent or unreadable: ask again and overwrite
        return answer if isinstance(answer, str) else None

    def _ask(self, prompt: Prompt, messages: list[dict[str, str]]) -> str | None:
        openai, config = self.openai, self.config
        for attempt in range(config.max_retries + 1):
            if attempt:
                self.count(retries=1)
            self.count(calls=1)
            try:
                response = self.client.chat.completions.create(model=config.model, messages=messages,
                                                               temperature=config.temperature)
            except (openai.RateLimitError, openai.InternalServerError) as err:
                failure, headers = f"HTTP {err.status_code}", err.response.headers
            except openai.APITimeoutError:
                failure, headers = f"no answer within {config.timeout:g} s", None
            except openai.APIConnectionError as err:
                failure, headers = f"connection failed ({self._one_line(str(err.__cause__ or err))})", None
            except openai.APIStatusError as err:
                raise EvalfastError(self._refusal(prompt, err)) from None  # the body may echo credentials
            except (openai.APIError, ValueError) as err:  # ValueError: a body that is not JSON
                raise EvalfastError(self._unusable(prompt, self._one_line(str(err)))) from None
            else:
                text = _message_text(response)
                if text is None:
                    raise EvalfastError(self._unusable(prompt, f"got {self._one_line(str(response), 80)!r}"))
                return text
            if attempt == config.max_retries:
                break
            delay = _retry_delay(headers, attempt, config.backoff)
            self.on_status(f"llm: prompt {prompt.id}: {failure}; retry {attempt + 1} of {config.max_retries} "
                           f"in {delay:.0f} s")
            if self.stop.wait(delay):
                break
        if self.stop.is_set():
            return None
        raise _RetriesExhausted(prompt.id, failure)

    def _refusal(self, prompt: Prompt, err: openai.APIStatusError) -> str:
        status, where = err.status_code, f"{self.config.base_url} answered HTTP {err.status_code}"
        if status in (401, 403):
            return f"{where} (not authorised); set ${self.config.api_key_env} to a key this endpoint accepts"
        if status == 404:
            return (f"{where} (not found); check the base URL (it usually ends in /v1) and that the endpoint "
                    f"serves model {self.config.model!r}")
        return f"{where} for prompt {prompt.id}: {self._one_line(err.message)}"

    def _unusable(self, prompt: Prompt, detail: str) -> str:
        return (f"{self.config.base_url} sent no chat completion for prompt {prompt.id} ({detail}); "
                "check that the base URL points at an OpenAI-compatible API (it usually ends in /v1)")

    def _one_line(self, text: str, limit: int = 300) -> str:
        return self._redact(" ".join(text.split()))[:limit]

    def _redact(self, text: str) -> str:
        return text.replace(self.key, "***") if self.key else text


def generate_llm_queries(prompts: list[Prompt], config: LLMConfig, cache_dir: Path,
                         on_progress: Callable[[LLMProgress], None] | None = None,
                         on_status: Callable[[str], None] | None = None) -> list[GeneratedQuery]:
    """Queries for every prompt, in prompt order; up to ``config.queries_per_prompt`` each, none for some.

    Answers come from ``cache_dir`` when cached, else from the endpoint, ``config.concurrency`` at a time,
    and are cached as they arrive. ``on_progress`` gets a snapshot after each prompt, in this thread;
    ``on_status`` a line before each retry's wait, from the thread that waits.
    Raises EvalfastError on a refused request (at once) or on a prompt still failing after
    ``config.max_retries`` retries (after the requests in flight finish); re-running resumes from the cache.

    Example::

        config = LLMConfig(base_url="http://127.0.0.1:8000/v1", model="Qwen/Qwen2.5-7B-Instruct")
        queries = generate_llm_queries(load_prompts("prompts.jsonl"), config, Path(".cache/llm"))
    """
    endpoint = _Endpoint(config, Path(cache_dir), len(prompts), on_status)
    queries: list[list[str]] = [[] for _ in prompts]
    waiting = iter(enumerate(prompts))
    in_flight: dict[Future, int] = {}
    failure: Exception | None = None
    with ThreadPoolExecutor(max_workers=config.concurrency, thread_name_prefix="evalfast-llm") as pool:
        try:
            while True:
                while failure is None and len(in_flight) < config.concurrency:
                    index, prompt = next(waiting, (-1, None))
                    if prompt is None:
                        break
                    in_flight[pool.submit(endpoint.answer, prompt)] = index
                if not in_flight:
                    break
                finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in finished:
                    index = in_flight.pop(future)
                    try:
                        answer = future.result()
                    except (EvalfastError, _RetriesExhausted) as err:
                        failure = failure or err
                        endpoint.stop.set()
                        continue
                    if answer is None:
                        continue  # abandoned because another prompt failed
                    queries[index] = clean_queries(answer, config.queries_per_prompt)
                    endpoint.count(prompts_done=1, prompts_without_queries=int(not queries[index]))
                    if on_progress is not None:
                        on_progress(endpoint.snapshot())
        finally:
            endpoint.stop.set()  # on Ctrl-C too: requests in flight finish and are cached, none is retried
    if isinstance(failure, _RetriesExhausted):
        raise EvalfastError(f"{config.base_url}: {failure} after {config.max_retries} retries; "
                            f"{endpoint.progress.prompts_done} of {len(prompts)} prompts are finished and cached "
                            f"in {cache_dir}; re-run the same command to resume")
    if failure is not None:
        raise failure
    return [GeneratedQuery(prompt.id, query) for prompt, texts in zip(prompts, queries, strict=True) for query in texts]
