from __future__ import annotations

import itertools

from hypothesis import given, strategies as st

from chorusline.runtime.detokenizer import IncrementalDetokenizer


# Token id == byte value, so a test can split text anywhere, even inside a character.
def byte_token(t: int) -> bytes:
    return bytes([t])


def feed(text: str, stop: list[str], cuts: list[int]) -> tuple[list[str], IncrementalDetokenizer]:
    data = text.encode()
    detok = IncrementalDetokenizer(byte_token, stop)
    bounds = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    pieces = [detok.add(data[a:b]) for a, b in itertools.pairwise(bounds)]
    return pieces, detok


def test_multibyte_characters_are_never_split() -> None:
    detok = IncrementalDetokenizer(byte_token)
    emoji = "🙂".encode()
    assert [detok.add([b]) for b in emoji] == ["", "", "", "🙂"]
    assert detok.add(b"a\xe2\x82") == "a"
    assert detok.add(b"\xac") == "€"


def test_invalid_bytes_become_replacement_at_flush() -> None:
    detok = IncrementalDetokenizer(byte_token)
    assert detok.add(b"ok\xe2\x82") == "ok"
    assert detok.flush() == "\ufffd"


def test_stop_string_split_over_tokens_is_cut_and_held_back() -> None:
    detok = IncrementalDetokenizer(byte_token, ["STOP"])
    assert detok.add(b"hello S") == "hello "
    assert detok.add(b"T") == ""
    assert detok.add(b"OX") == "STOX"  # a near miss is released once disproved
    assert detok.add(b" yes ST") == " yes "
    assert detok.add(b"OP and more") == ""
    assert detok.stopped and detok.stop_hit == "STOP"
    assert detok.text == "hello STOX yes "
    assert detok.add(b"again") == "" and detok.flush() == ""


def test_flush_releases_an_unfinished_stop_prefix() -> None:
    detok = IncrementalDetokenizer(byte_token, ["</end>"])
    assert detok.add(b"x </en") == "x "
    assert detok.flush() == "</en"


@given(st.text(max_size=40), st.text(min_size=1, max_size=4), st.lists(st.integers(0, 200)))
def test_streamed_text_is_prefix_before_first_stop(text: str, stop: str, cuts: list[int]) -> None:
    pieces, detok = feed(text, [stop], cuts)
    streamed = "".join(pieces) + detok.flush()
    if stop in text:
        assert streamed == text[: text.index(stop)]
        assert detok.stopped
    else:
        assert streamed == text
    assert stop not in streamed
