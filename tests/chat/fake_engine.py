"""A fake engine, for unit tests of scheduling and fan-out only (never end-to-end turns).

Each request emits, one per step, the token id equal to its position in the sequence
(so a continuation of a request carries on numbering where it stopped), with text
"t<id> ", and ends with ``length`` after ``max_tokens`` (default 8). It records every
call so tests can check when aborts and admissions reached the engine.
"""

from __future__ import annotations

import threading

from chorusline.protocols import ContextTooLong, EngineStats, GenerationRequest, RequestOutput


class FakeEngine:
    def __init__(self, max_context: int = 1000, step_gate: threading.Event | None = None) -> None:
        self.max_context = max_context
        self.running: dict[str, tuple[int, int, int]] = {}  # id -> (prompt, done, budget)
        self.log: list[tuple[str, str]] = []
        self.steps = 0
        self.max_batch = 0
        self.step_gate = step_gate

    def add_request(self, request: GenerationRequest) -> None:
        if len(request.prompt_token_ids) > self.max_context:
            raise ContextTooLong("too long")
        budget = request.params.max_tokens or 8
        self.running[request.request_id] = (len(request.prompt_token_ids), 0, budget)
        self.log.append(("add", request.request_id))

    def abort(self, request_id: str) -> bool:
        self.log.append(("abort", request_id))
        return self.running.pop(request_id, None) is not None

    def has_unfinished(self) -> bool:
        return bool(self.running)

    def step(self) -> list[RequestOutput]:
        if self.step_gate is not None:
            self.step_gate.wait(10)
        self.steps += 1
        outputs = []
        for request_id, (prompt, done, budget) in list(self.running.items()):
            token = prompt + done
            done += 1
            budget -= 1
            finish = "length" if budget == 0 else None
            outputs.append(
                RequestOutput(request_id, 0, [token], f"t{token} ", finish, prompt, done)
            )
            if finish:
                del self.running[request_id]
            else:
                self.running[request_id] = (prompt, done, budget)
        self.max_batch = max(self.max_batch, len(outputs))
        return outputs

    def stats(self) -> EngineStats:
        n = len(self.running)
        return EngineStats(n, 0, 100, n, n / 100, self.steps, 0)
