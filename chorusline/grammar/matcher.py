"""One constrained sequence's place in its grammar, and batched allowed-token masks.

A mask is a bit per token (llguidance's layout: 32 tokens per ``int32`` word). Masks for
all constrained rows of a step are computed in one call into llguidance, which releases
the interpreter lock while it works (the process's other threads keep running) and
spreads the rows over its executor's threads. That executor defaults to 80 % of the
CPUs, which on a 2-core machine is one thread: there the rows are computed one after
another, 32 rows cost about 32 times one, and the batched call is no faster than a loop
of single-row calls (0.5 against 0.3 ms per step of 32 rows mid-document; an explicit
2-thread executor was no better; ``docs/structured-outputs.md``). The call is kept
because with more cores the library spreads the rows over several threads (not measured
here), and on 2 cores the difference is well under 1 % of a c=32 step.
"""

from __future__ import annotations

from collections.abc import Sequence

import llguidance
import llguidance.numpy as llnp
import numpy as np
from numpy.typing import NDArray


class GrammarMatcher:
    """Where one sequence stands in its grammar."""

    def __init__(self, matcher: llguidance.LLMatcher, vocab_size: int,
                 eos_token_ids: Sequence[int] = ()) -> None:
        self._matcher = matcher
        self.vocab_size = vocab_size
        self.eos_token_ids = tuple(eos_token_ids)

    @property
    def finished(self) -> bool:
        """Nothing more can follow: the sequence ends here (``stop``)."""
        return bool(self._matcher.is_stopped())

    @property
    def accepting(self) -> bool:
        return bool(self._matcher.is_accepting())

    @property
    def error(self) -> str:
        return str(self._matcher.get_error())

    def consume(self, tokens: Sequence[int]) -> bool:
        """Advance over ``tokens``; False if the grammar refused one (it then allows
        nothing, so a refused sequence can only end)."""
        for token in tokens:
            if self.eos_token_ids and token in self.eos_token_ids[1:]:
                token = self.eos_token_ids[0]  # llguidance knows one EOS
            if self._matcher.is_stopped() or not self._matcher.consume_token(token):
                return False
        return True

    @property
    def llmatcher(self) -> llguidance.LLMatcher:
        return self._matcher


_EXECUTOR: llguidance.LLExecutor | None = None


def allowed_bitmask(matchers: Sequence[GrammarMatcher], vocab_size: int) -> NDArray[np.int32]:
    """``[len(matchers), ceil(V / 32)]`` int32 bitmask of the tokens each may take next."""
    global _EXECUTOR
    if _EXECUTOR is None:
        _EXECUTOR = llguidance.LLExecutor()
    mask = llnp.allocate_token_bitmask(len(matchers), vocab_size)
    if len(matchers) == 1:
        llnp.fill_next_token_bitmask(matchers[0].llmatcher, mask, 0)
    else:
        llnp.fill_next_token_bitmask_par(
            _EXECUTOR, [(m.llmatcher, i) for i, m in enumerate(matchers)], mask)
    words = mask.view(np.uint32)
    for row, m in enumerate(matchers):
        first, *others = m.eos_token_ids or (0,)
        if others and words[row, first // 32] >> np.uint32(first % 32) & 1:
            for other in others:  # the other EOS tokens end the text where the first may
                words[row, other // 32] |= np.uint32(1 << (other % 32))
    return mask
