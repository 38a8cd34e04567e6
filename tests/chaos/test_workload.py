"""The client's parsing and back-off (its behaviour against a real server is
tests/faults' subject)."""

from __future__ import annotations

from chorusline.chaos.history import History
from chorusline.chaos.workload import MAX_BACKOFF, backoff, error_code, take_chunk


def test_chunks_add_text_finish_reason_and_usage() -> None:
    op = History("s").begin(client=0, conversation_id="c", idempotency_key="k",
                            content="q", attempt=1, epoch=0)
    take_chunk(op, {"choices": [{"delta": {"role": "assistant", "content": ""}}]})
    take_chunk(op, {"choices": [{"delta": {"content": "Hel"}}]})
    take_chunk(op, {"choices": [{"delta": {"content": "lo"}, "finish_reason": "stop"}]})
    take_chunk(op, {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2}})
    assert (op.text, op.chunks, op.finish_reason) == ("Hello", 2, "stop")
    assert (op.prompt_tokens, op.completion_tokens) == (9, 2)


def test_backoff_honours_retry_after_and_is_bounded() -> None:
    assert backoff("1", 3) == 1.0
    assert [backoff(None, n) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 4.0, MAX_BACKOFF]
    assert backoff("soon", 1) == 0.5
    assert backoff("3600", 1) == MAX_BACKOFF


def test_error_codes_come_from_openai_error_bodies() -> None:
    assert error_code(b'{"error": {"code": "overloaded", "type": "server_error"}}') \
        == "overloaded"
    assert error_code(b'{"error": {"code": null, "type": "invalid_request_error"}}') \
        == "invalid_request_error"
    assert error_code(b"<html>bad gateway</html>") is None
