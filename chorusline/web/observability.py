"""Operational routes: ``/metrics`` (Prometheus) and ``/openapi.json``.

Each app owns its own ``CollectorRegistry`` (kept in ``app.extensions``) rather than
prometheus_client's global one, so several apps in one process (the test suite starts
one per test) never clash over metric names or mix their counts.

Three kinds of figures, each measured where it is cheapest and exact:

* HTTP request counts and rate-limit refusals come from an ``after_request`` hook, so
  every route (conversations included) is counted the same way, by its URL *rule*
  (``/v1/conversations/<conversation_id>``) rather than its path, which would give one
  time series per id.
* Latencies and token counts come from the completion code itself, through a
  ``TurnObserver`` (see ``observe_turn``), because only it sees the tokens arrive.
* Engine and actor state (queue depth, running sequences, KV usage, restarts, dead
  letters, the router's fallbacks) is read from ``chat.admin.snapshot()`` at scrape time
  by a custom collector, so nothing has to be pushed from the actors and a scrape always
  shows the current state.

Every engine figure, and the turn latencies and token counts, carry a ``model`` label:
each served model has its own engine (``/chat/engines/<model>``).

``/metrics`` is unauthenticated, as Prometheus scrapers expect; it exposes only
aggregate figures (no keys, users or content). Restrict it at the network if needed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from quart import Response, current_app, g, has_request_context, request
from quart_trio import QuartTrio

from chorusline.chat import ChatService
from chorusline.protocols import openai as wire
from chorusline.web.openapi_spec import build_spec

log = logging.getLogger("chorusline.web.metrics")

EXTENSION = "chorusline.metrics"
#: Seconds; TTFT on a 2-core CPU ranges from tens of milliseconds to tens of seconds
#: under load, so the buckets span both.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                   7.5, 10.0, 20.0, 40.0, 80.0)
#: Per-token gaps are much shorter than whole requests.
TOKEN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2,
                 0.3, 0.5, 0.75, 1.0, 2.5, 5.0)
#: Where each model's engine driver lives: ``/chat/engines/<model>/driver``.
ENGINES_PATH = "/chat/engines/"


class Metrics:
    """The per-app metric objects; created once by ``register``."""

    def __init__(self, chat: ChatService) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "chorusline_http_requests", "HTTP requests answered, by route rule and status.",
            ["method", "route", "status"], registry=r)
        self.rate_limited = Counter(
            "chorusline_rate_limit_refusals",
            "Requests refused with 429 by a rate-limit bucket, by route rule.",
            ["route"], registry=r)
        self.ttft = Histogram(
            "chorusline_time_to_first_token_seconds",
            "From the request's arrival to the first generated token.",
            ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.itl = Histogram(
            "chorusline_inter_token_latency_seconds",
            "Gap between successive generated tokens (a batch's gap spread over its tokens).",
            ["model"], buckets=TOKEN_BUCKETS, registry=r)
        self.e2e = Histogram(
            "chorusline_e2e_request_latency_seconds",
            "From the request's arrival to its last token (or its end, if cut short).",
            ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.prompt_tokens = Counter(
            "chorusline_prompt_tokens", "Prompt tokens of completed turns.", ["model"],
            registry=r)
        self.generation_tokens = Counter(
            "chorusline_generation_tokens", "Tokens generated (all choices).", ["model"],
            registry=r)
        r.register(SnapshotCollector(chat))


class SnapshotCollector(Collector):
    """Reads the actor tree at scrape time. A snapshot that fails (the system is
    shutting down or crashed) is reported as ``chorusline_actor_system_up 0`` instead
    of failing the whole scrape, so the HTTP figures stay visible exactly when needed."""

    def __init__(self, chat: ChatService) -> None:
        self.chat = chat

    def describe(self) -> Iterable[Metric]:
        # Describing would call collect (and so snapshot) at registration time; the
        # chat service need not be running then (unit tests build apps over stubs).
        return []

    def collect(self) -> Iterator[Metric]:
        try:
            snapshot = self.chat.admin.snapshot()
        except Exception as exc:  # a scrape must never become a 500
            log.warning("actor snapshot failed during scrape: %r", exc)
            yield GaugeMetricFamily("chorusline_actor_system_up",
                                    "1 when the actor tree could be read.", value=0)
            return
        yield GaugeMetricFamily("chorusline_actor_system_up",
                                "1 when the actor tree could be read.", value=1)
        info = GaugeMetricFamily("chorusline_model_info", "A served model (always 1), "
                                 "with what it can do.",
                                 labels=["model", "capabilities", "context_window"])
        for served in self.chat.models:
            info.add_metric([served.name, ",".join(served.capabilities),
                             str(served.context_window)], 1.0)
        yield info
        nodes = list(_walk(snapshot.get("tree", {})))
        drivers = {model: n for n in nodes if (model := _driver_model(n)) is not None}
        yield from _engine_figures(drivers)
        router = next((n for n in nodes if n.get("path") == "/chat/router"), {})
        fallbacks = CounterMetricFamily(
            "chorusline_model_fallbacks", "Turns answered by a fallback model instead of "
            "the one asked for, since the router started.", labels=["from_model", "to_model"])
        for entry in router.get("fallbacks", []) or []:
            fallbacks.add_metric([str(entry["from"]), str(entry["to"])], float(entry["count"]))
        yield fallbacks
        yield GaugeMetricFamily(
            "chorusline_actor_restarts",
            "Restarts summed over live actors (a gauge: a stopped actor takes its count "
            "with it).", value=float(sum(int(n.get("restarts", 0) or 0) for n in nodes)))
        yield GaugeMetricFamily("chorusline_actors", "Live actors in the tree.",
                                value=float(len(nodes)))
        yield GaugeMetricFamily(
            "chorusline_mailbox_depth", "Messages waiting in all actor mailboxes.",
            value=float(sum(int(n.get("mailbox_depth", 0) or 0) for n in nodes)))
        letters = snapshot.get("dead_letters", {})
        yield CounterMetricFamily("chorusline_dead_letters",
                                  "Messages that reached no actor since the system started.",
                                  value=float(letters.get("count", 0) or 0))


def _engine_figures(drivers: dict[str, dict[str, Any]]) -> Iterator[Metric]:
    """Each model's engine driver figures, one series per model."""
    for name, key, doc in (
            ("chorusline_queue_depth", "queue_depth",
             "Requests admitted and waiting for an engine slot."),
            ("chorusline_inflight_requests", "inflight",
             "Requests the scheduler has handed to the engine and not yet finished."),
            ("chorusline_running_sequences", "running",
             "Sequences in the engine's running batch."),
            ("chorusline_kv_cache_usage_ratio", "kv_usage",
             "Fraction of KV-cache blocks in use (0..1)."),
    ):
        gauge = GaugeMetricFamily(name, doc, labels=["model"])
        for model, node in drivers.items():
            gauge.add_metric([model], float(node.get(key, 0) or 0))
        yield gauge
    for name, key, doc in (
        ("chorusline_scheduler_steps", "steps", "Engine steps the scheduler has run."),
        ("chorusline_scheduler_requeued", "requeued",
         "Requests requeued after an engine restart."),
        ("chorusline_admission_refusals", "refused",
         "Requests refused by admission control (503 overloaded)."),
    ):
        counter = CounterMetricFamily(name, doc + " Resets when the scheduler restarts.",
                                      labels=["model"])
        for model, node in drivers.items():
            counter.add_metric([model], float(node.get(key, 0) or 0))
        yield counter


def _walk(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if not node:
        return
    yield node
    for child in node.get("children", []):
        yield from _walk(child)


def _driver_model(node: dict[str, Any]) -> str | None:
    """The model whose engine driver ``node`` is (``/chat/engines/<model>/driver``)."""
    path = node.get("path")
    if not isinstance(path, str) or not path.startswith(ENGINES_PATH):
        return None
    model, _, rest = path[len(ENGINES_PATH):].partition("/")
    return model if rest == "driver" and "queue_depth" in node else None


class TurnObserver:
    """Latency and token bookkeeping for one completion, fed by the completion code.

    ``progress`` takes the running total of completion tokens after each batch (chunks
    carry running totals, not increments); the first increase is the first token. The
    gap before each later batch is spread evenly over that batch's new tokens, so a
    batch of k tokens gives k inter-token samples and the histogram stays per token.
    ``finish`` may be called more than once (normal end and the body's ``aclose``); only
    the first call counts, so a turn is never counted twice.
    """

    def __init__(self, metrics: Metrics | None, started: float) -> None:
        self.metrics = metrics
        self.started = started
        #: The model answering: set by the completion code once the turn has started.
        self.model = ""
        self.last: float | None = None
        self.tokens = 0
        self.finished = False

    def progress(self, completion_tokens: int) -> None:
        new = completion_tokens - self.tokens
        if new <= 0 or self.metrics is None:
            return
        now = time.perf_counter()
        if self.last is None:
            self.metrics.ttft.labels(model=self.model).observe(now - self.started)
            new -= 1  # the first token has no predecessor
            self.last, previous = now, now
        else:
            previous, self.last = self.last, now
        gap = (now - previous) / new if new > 0 else 0.0
        itl = self.metrics.itl.labels(model=self.model)
        for _ in range(new):
            itl.observe(gap)
        self.tokens = completion_tokens

    def finish(self, prompt_tokens: int, completion_tokens: int) -> None:
        if self.finished:
            return
        self.finished = True
        if self.metrics is None:
            return
        model = self.model
        self.metrics.e2e.labels(model=model).observe(time.perf_counter() - self.started)
        self.metrics.prompt_tokens.labels(model=model).inc(max(prompt_tokens, 0))
        self.metrics.generation_tokens.labels(model=model).inc(max(completion_tokens, 0))


def observe_turn() -> TurnObserver:
    """A TurnObserver for the current request, timed from its arrival.

    Call it while the request context is alive (before returning a streaming body);
    the observer keeps what it needs, since the body is sent after the context is gone.
    Without a registered app it observes nothing, so the completion code never has to
    ask whether metrics are on.
    """
    if not has_request_context():
        return TurnObserver(None, time.perf_counter())
    metrics = current_app.extensions.get(EXTENSION)
    started = g.get("chorusline_started", None)
    return TurnObserver(metrics if isinstance(metrics, Metrics) else None,
                        started if isinstance(started, float) else time.perf_counter())


def register(app: QuartTrio, chat: ChatService) -> None:
    """Add the operational routes to ``app``."""
    metrics = Metrics(chat)
    app.extensions[EXTENSION] = metrics
    spec_bytes = wire.json_bytes(build_spec(chat.model_name))

    @app.before_request
    async def stamp_arrival() -> None:
        g.chorusline_started = time.perf_counter()

    @app.after_request
    async def count_response(response: Response) -> Response:
        rule = request.url_rule
        route = rule.rule if rule is not None else "unmatched"
        metrics.requests.labels(method=request.method, route=route,
                                status=str(response.status_code)).inc()
        if response.status_code == 429:
            metrics.rate_limited.labels(route=route).inc()
        return response

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        # The classic 0.0.4 text format: every Prometheus version and the client's own
        # parser read it. Generated on the event loop because the snapshot reads actor
        # state that only the trio thread may touch (and it is fast).
        return Response(generate_latest(metrics.registry), status=200,
                        content_type=CONTENT_TYPE_PLAIN_0_0_4)

    @app.get("/openapi.json")
    async def openapi() -> Response:
        return Response(spec_bytes, status=200, mimetype="application/json")
