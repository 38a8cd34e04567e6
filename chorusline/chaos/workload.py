"""The clients of a chaos run: realistic chat turns, each recorded as an ``Op``.

A client behaves like a careful product integration: it streams its turns into stored
conversations (``POST /v1/conversations/{id}/messages``) under an ``Idempotency-Key``,
retries a turn whose outcome it cannot know with the *same* key (that is the contract
the checker holds the server to: no duplicate, nothing lost), honours ``Retry-After``,
and moves on after a definite refusal. The disconnect-storm and slow-reader workloads
are the same client hanging up at a random chunk or reading slowly.

Every stream is bounded by ``stream_bound``: a stream still open then is recorded as
``hung`` (a violation), never waited on forever.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import trio

from chorusline.chaos.history import CLIENT_CUT, DONE, EOF, ERROR, HUNG, History, Op

PROMPTS = (
    "Say hello in one short sentence.",
    "Name three colours.",
    "What is two plus two?",
    "Write one line about the sea.",
    "Give me a word that rhymes with cat.",
    "Count from one to five.",
)
#: The longest a client waits on ``Retry-After`` before trying again.
MAX_BACKOFF = 4.0


@dataclass(frozen=True)
class Workload:
    """What the clients do; a scenario picks these, the command line scales them."""

    clients: int = 4
    conversations_per_client: int = 2
    max_tokens: int = 12
    #: Retries under the same key of a turn with an unknown outcome.
    retries: int = 6
    #: Fraction of streams the client hangs up on at a random chunk.
    cut_fraction: float = 0.0
    #: Seconds a slow reader waits before reading each line of a stream.
    read_delay: float = 0.0
    #: A stream must end within this many seconds of its invoke.
    stream_bound: float = 90.0


@dataclass
class Client:
    """One simulated user: its conversations, its random choices, its history."""

    number: int
    http: httpx.AsyncClient
    history: History
    workload: Workload
    rng: random.Random
    epoch: Callable[[], int]
    conversations: list[str]
    turns: int = 0

    async def run(self, stop: trio.Event) -> None:
        """Turns until ``stop``; a turn in flight when it is set runs to its end."""
        while not stop.is_set():
            await self.turn()

    async def turn(self) -> None:
        self.turns += 1
        conversation = self.rng.choice(self.conversations)
        content = (f"[{self.history.scenario} c{self.number} t{self.turns}] "
                   f"{self.rng.choice(PROMPTS)}")
        key = f"chaos-{uuid.uuid4().hex}"
        for attempt in range(1, self.workload.retries + 2):
            op = self.history.begin(client=self.number, conversation_id=conversation,
                                    idempotency_key=key, content=content, attempt=attempt,
                                    epoch=self.epoch())
            await self.attempt(op)
            self.history.settled(op)
            if op.status == 429:  # refused: honour Retry-After, then a new turn
                await trio.sleep(backoff(op.retry_after, attempt))
            if op.type != "info":
                return
            await trio.sleep(backoff(op.retry_after, attempt))

    async def attempt(self, op: Op) -> None:
        body = {"content": op.content, "stream": True, "max_tokens": self.workload.max_tokens,
                "temperature": 0, "stream_options": {"include_usage": True}}
        headers = {"Idempotency-Key": op.idempotency_key}
        cut_at = (self.rng.randint(1, self.workload.max_tokens)
                  if self.rng.random() < self.workload.cut_fraction else None)
        with trio.move_on_after(self.workload.stream_bound) as bound:
            try:
                async with self.http.stream(
                        "POST", f"conversations/{op.conversation_id}/messages",
                        json=body, headers=headers) as response:
                    await self.receive(op, response, cut_at)
            except (httpx.HTTPError, OSError) as error:
                op.error = op.error or type(error).__name__
                if op.ended is None and op.acknowledged:
                    op.ended = EOF
                op.finish("info")
        if bound.cancelled_caught:
            op.ended = HUNG if op.acknowledged else None
            op.error = op.error or "no answer within the stream bound"
            op.finish("info")

    async def receive(self, op: Op, response: httpx.Response, cut_at: int | None) -> None:
        op.status = response.status_code
        op.request_id = response.headers.get("x-request-id")
        op.retry_after = response.headers.get("retry-after")
        if response.status_code != 200:
            await response.aread()
            op.error = error_code(response.content)
            op.finish("fail" if response.status_code < 500 else "info")
            return
        op.ack_mono = time.monotonic()
        op.limit_requests = _int(response.headers.get("x-ratelimit-limit-requests"))
        op.limit_tokens = _int(response.headers.get("x-ratelimit-limit-tokens"))
        async for line in response.aiter_lines():
            if self.workload.read_delay:
                await trio.sleep(self.workload.read_delay)
            if not line.startswith("data: "):
                continue
            data = line[len("data: "):]
            if data == "[DONE]":
                op.ended = DONE
                op.finish("ok")
                return
            event = json.loads(data)
            if "error" in event:
                op.ended, op.error = ERROR, str(event["error"].get("code"))
                op.finish("info")
                return
            take_chunk(op, event)
            if cut_at is not None and op.chunks >= cut_at:
                op.ended = CLIENT_CUT
                op.finish("info")
                return
        op.ended = EOF
        op.finish("info")


def take_chunk(op: Op, event: dict[str, Any]) -> None:
    for choice in event.get("choices") or ():
        delta = choice.get("delta") or {}
        if delta.get("content"):
            op.text += delta["content"]
            op.chunks += 1
        if choice.get("finish_reason"):
            op.finish_reason = choice["finish_reason"]
    usage = event.get("usage")
    if usage:
        op.prompt_tokens = usage.get("prompt_tokens")
        op.completion_tokens = usage.get("completion_tokens")


def error_code(body: bytes) -> str | None:
    try:
        error = json.loads(body).get("error") or {}
    except (ValueError, AttributeError):
        return None
    return str(error.get("code") or error.get("type"))


def backoff(retry_after: str | None, attempt: int) -> float:
    """``Retry-After`` when the server gave one, else exponential (0.5, 1, 2, 4, 4 s...):
    long enough in all for a retry to land after a restarted server is back."""
    try:
        wanted = float(retry_after) if retry_after else 0.25 * 2 ** attempt
    except ValueError:
        wanted = 0.25 * 2 ** attempt
    return min(max(wanted, 0.05), MAX_BACKOFF)


def _int(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None


async def open_clients(http: httpx.AsyncClient, history: History, workload: Workload,
                       seed: int, epoch: Callable[[], int]) -> list[Client]:
    """The clients of one scenario, each with its own new conversations (so the checker
    reads back exactly what this scenario wrote)."""
    clients = []
    for number in range(workload.clients):
        conversations = []
        for _ in range(workload.conversations_per_client):
            response = await http.post("conversations", json={
                "title": f"chaos {history.scenario} client {number}"})
            response.raise_for_status()
            conversations.append(response.json()["id"])
        clients.append(Client(number, http, history, workload,
                              random.Random(seed * 1000 + number), epoch, conversations))
    return clients
