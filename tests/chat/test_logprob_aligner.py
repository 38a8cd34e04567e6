"""Token logprobs held back with the text the output moderator holds back."""

from __future__ import annotations

from chorusline.chat.stream import LogprobAligner
from chorusline.moderation import Moderator
from chorusline.protocols import TokenLogprob


def test_entries_are_released_with_their_text_even_through_a_redaction() -> None:
    # One "token" per piece; the e-mail address is redacted, so the output is shorter
    # than the input and only input offsets keep the alignment.
    pieces = ["Write to ", "ada", "@example", ".com", " today", ".\n", "Bye"]
    moderator, aligner = Moderator().output_stream(), LogprobAligner()
    released: list[list[int]] = []
    out = ""
    for i, piece in enumerate(pieces):
        out += moderator.feed(piece)
        aligner.add(piece, [TokenLogprob(i, -0.5)])
        released.append([lp.token_id for lp in aligner.release(moderator.settled)])
        # Nothing is released before all of its text is settled.
        count = sum(map(len, released))
        assert len("".join(pieces[:count])) <= moderator.settled
    out += moderator.finish()
    tail = [lp.token_id for lp in aligner.rest()]
    assert "[REDACTED" in out and "ada@example.com" not in out
    # ..."Write to " goes out at once, the address's entries wait with its text (until
    # the line ends at ".\n")...
    assert [i for ids in released for i in ids] == [0, 1, 2, 3, 4, 5]
    assert released[:5] == [[0], [], [], [], []]
    # ...and the rest comes with the end of the reply, in order.
    assert tail == [6]


def test_entries_of_tokens_with_no_text_go_out_at_once_when_nothing_is_held() -> None:
    aligner = LogprobAligner()
    aligner.add("", [TokenLogprob(7, -1.0)])
    assert [lp.token_id for lp in aligner.release(0)] == [7]
    assert aligner.rest() == []
