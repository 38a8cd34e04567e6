"""Does the chat page add latency to a turn? Time to first token of the same turn sent
from the page in a real headless Chromium, by a plain HTTP client on the page's route,
and by the ``openai`` SDK on ``/v1/chat/completions``, alternating, in one run.

    flock /tmp/bench.lock .venv/bin/python benchmarks/page_ttft.py [--turns N] [--json PATH]

One in-process server (as ``http_load.py``). Each round sends three distinct prompts of
one shape (``user_texts``: distinct, so the prefix cache helps none of them more than the
others), one per client, each a user's first message with no system prompt, the
temperature the page sends (1.0) and no ``max_tokens``:

* **page**: the browser clicks *New chat*, types the prompt and clicks *Send*; the time
  runs in the page (``performance.now()``) from the click to the first reply text in the
  DOM, so it holds the page's own work: creating the conversation, ``fetch``, reading and
  parsing the stream and painting the first frame;
* **route**: ``httpx`` does what the page does (``POST /v1/conversations``, then the turn
  with ``stream: true``) from the click's equivalent to the first content delta;
* **sdk**: ``client.chat.completions.create(stream=True)``, to the first content delta.

page / route is what the page itself costs; route / sdk what a stored conversation turn
costs over a stateless completion. Chromium shares the machine's cores with the server,
as a user's browser on the serving machine would.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx2
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import percentile, user_texts, write_report
from benchmarks.http_load import serve_to

PERSON = ("page-bench", "page bench password")
CHROMIUM = os.environ.get("CHORUSLINE_CHROMIUM", "/usr/bin/chromium")
#: Clicks Send and resolves with the ms until the streaming reply shows text.
FIRST_TEXT_JS = """(text) => new Promise((resolve) => {
    const prompt = document.querySelector('#prompt');
    prompt.value = text;
    prompt.dispatchEvent(new Event('input'));
    const thread = document.querySelector('#thread');
    let start = 0;
    const seen = new MutationObserver(() => {
        const reply = thread.querySelector('.message.assistant.streaming .content');
        if (reply && reply.textContent.length > 0) {
            seen.disconnect();
            resolve(performance.now() - start);
        }
    });
    seen.observe(thread, {subtree: true, childList: true, characterData: true});
    start = performance.now();
    document.querySelector('#send').click();
})"""


@contextmanager
def signed_in_page(base: str) -> Iterator[Callable[[str], float]]:
    """A browser signed in on the page; yields ``turn(text)``: the TTFT of one new chat."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                             args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        page.set_default_timeout(120_000)
        page.goto(f"{base}/login")
        page.fill("#login-name", PERSON[0])
        page.fill("#login-password", PERSON[1])
        page.click("#login-submit")
        expect(page.locator("#user-name")).to_have_text(PERSON[0], timeout=120_000)

        def turn(text: str) -> float:
            page.click("#new-chat")
            first = float(page.evaluate(FIRST_TEXT_JS, text)) / 1000
            expect(page.locator("#stop")).to_be_hidden(timeout=120_000)
            return first

        try:
            yield turn
        finally:
            browser.close()


def route_turn(client: httpx2.Client, text: str) -> float:
    sent = time.perf_counter()
    cid = client.post("/conversations", json={}).json()["id"]
    body = {"content": text, "stream": True, "temperature": 1.0}
    first: float | None = None
    with client.stream("POST", f"/conversations/{cid}/messages", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():  # read to the end, as the page does
            if first is None and line.startswith("data: {") and '"content":"' in line:
                first = time.perf_counter() - sent
    if first is None:
        raise RuntimeError("the turn streamed no text")
    return first


def sdk_turn(client: Any, model: str, text: str) -> float:
    sent = time.perf_counter()
    first: float | None = None
    for chunk in client.chat.completions.create(
            model=model, stream=True, temperature=1.0,
            messages=[{"role": "user", "content": text}]):
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter() - sent
    if first is None:
        raise RuntimeError("the SDK's stream carried no text")
    return first


def measure(turns: int, url: str, key: str) -> dict[str, list[float]]:
    from openai import OpenAI

    base = url.removesuffix("/v1")
    texts = user_texts(1307, 3 * (turns + 1))  # round 0 warms every path up
    sdk = OpenAI(base_url=url, api_key=key, max_retries=0, timeout=120)
    model = sdk.models.list().data[0].id
    times: dict[str, list[float]] = {"page": [], "route": [], "sdk": []}
    with (signed_in_page(base) as page_turn,
          httpx2.Client(base_url=url, headers={"Authorization": f"Bearer {key}"},
                        timeout=120) as client):
        for i in range(turns + 1):  # the three alternate, so drift hits them alike
            figures = (page_turn(texts[3 * i]), route_turn(client, texts[3 * i + 1]),
                       sdk_turn(sdk, model, texts[3 * i + 2]))
            if i:
                for name, value in zip(times, figures, strict=True):
                    times[name].append(value)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--turns", type=int, default=10, help="measured turns per client")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    async def run(tmp: Path) -> dict[str, list[float]]:
        from chorusline.runtime import load_model

        model = await trio.to_thread.run_sync(partial(load_model, progress=False))
        _, times = await serve_to(partial(measure, args.turns), model, args.threads, tmp,
                                  person=PERSON)
        return times

    with tempfile.TemporaryDirectory() as tmp:
        times = trio.run(run, Path(tmp))
    print(f"{'client':<8} {'median':>9} {'p90':>9}  (TTFT, {args.turns} turns each)")
    medians = {}
    for name, values in times.items():
        medians[name] = statistics.median(values)
        print(f"{name:<8} {medians[name] * 1000:>7.0f}ms {percentile(values, 90) * 1000:>7.0f}ms")
    print(f"page / route: {medians['page'] / medians['route']:.2f}   "
          f"route / sdk: {medians['route'] / medians['sdk']:.2f}")
    write_report(args.json, times=times, medians=medians, turns=args.turns)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
