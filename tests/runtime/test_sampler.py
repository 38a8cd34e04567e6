"""Sampler masks and adjustments on hand-built logits, where the right answer is known."""

from __future__ import annotations

import math

import pytest
import torch

from chorusline.protocols import SamplingParams
from chorusline.runtime.sampler import Sampler, SampleRow, make_generator

# probabilities 0.4, 0.3, 0.15, 0.1, 0.05 over tokens 0..4
PROBS = torch.tensor([0.4, 0.3, 0.15, 0.1, 0.05])
LOGITS = PROBS.log()


def support(params: SamplingParams, draws: int = 400) -> set[int]:
    """Tokens the sampler can emit for LOGITS, seen over many seeded draws."""
    sampler = Sampler(seed=0)
    rows = [SampleRow(params, [], make_generator(i, torch.device("cpu"))) for i in range(draws)]
    return {t.token_id for t in sampler(LOGITS.repeat(draws, 1), rows)}


def filtered(params: SamplingParams) -> torch.Tensor:
    return Sampler._filtered_probs(LOGITS[None].clone(), [params])[0]


@pytest.mark.parametrize(
    ("params", "kept"),
    [
        (SamplingParams(top_k=2), {0, 1}),
        (SamplingParams(top_k=1), {0}),
        (SamplingParams(top_k=5), {0, 1, 2, 3, 4}),
        (SamplingParams(top_p=0.4), {0}),  # 0.4 alone reaches 0.4
        (SamplingParams(top_p=0.41), {0, 1}),
        (SamplingParams(top_p=0.85), {0, 1, 2}),
        (SamplingParams(top_p=0.86), {0, 1, 2, 3}),
        (SamplingParams(min_p=0.5), {0, 1}),  # floor 0.2
        (SamplingParams(min_p=0.25), {0, 1, 2, 3}),  # floor 0.1 keeps 0.1
        (SamplingParams(top_k=3, top_p=0.5), {0, 1}),  # top-p over renormalised top-3
        (SamplingParams(top_k=3, min_p=0.5), {0, 1}),
    ],
)
def test_masks_are_exact(params: SamplingParams, kept: set[int]) -> None:
    probs = filtered(params)
    assert {i for i in range(5) if probs[i] > 0} == kept
    expected = torch.zeros(5)
    expected[list(kept)] = PROBS[list(kept)] / PROBS[list(kept)].sum()
    torch.testing.assert_close(probs, expected)
    assert support(params) == kept


def test_temperature_sharpens_and_flattens() -> None:
    cold = filtered(SamplingParams(temperature=0.5))
    hot = filtered(SamplingParams(temperature=2.0))
    torch.testing.assert_close(cold, PROBS**2 / (PROBS**2).sum())
    torch.testing.assert_close(hot, PROBS.sqrt() / PROBS.sqrt().sum())


def test_greedy_and_draw_frequencies() -> None:
    sampler = Sampler(seed=0)
    greedy = sampler(LOGITS.repeat(3, 1), [SampleRow(SamplingParams(temperature=0), [])] * 3)
    assert [t.token_id for t in greedy] == [0, 0, 0]
    n = 20000
    rows = [SampleRow(SamplingParams(), [])] * n
    counts = torch.bincount(torch.tensor([t.token_id for t in sampler(LOGITS.repeat(n, 1),
                                                                        rows)]), minlength=5)
    assert torch.allclose(counts / n, PROBS, atol=0.015)


def test_penalties_and_bias_are_exact() -> None:
    sampler = Sampler(seed=0)
    logits = torch.zeros(1, 6)
    params = SamplingParams(temperature=0, presence_penalty=0.5, frequency_penalty=0.25,
                            logit_bias={4: 3.0, 5: -1.0})
    adjusted = logits.clone()
    row = SampleRow(params, [1, 1, 1, 2])
    sampler._apply_penalties(adjusted, [row])
    sampler._apply_bias(adjusted, [params])
    assert adjusted[0].tolist() == [0.0, -1.25, -0.75, 0.0, 3.0, -1.0]
    assert sampler(logits, [row])[0].token_id == 4


def test_seeded_rows_do_not_depend_on_neighbours() -> None:
    logits = torch.randn(4, 50, generator=torch.Generator().manual_seed(1))
    params = SamplingParams(temperature=1.0, seed=7)

    def draw(batch: torch.Tensor, others: int) -> list[int]:
        gen = make_generator(7, torch.device("cpu"))
        out = []
        for _ in range(10):
            rows = [SampleRow(SamplingParams(temperature=1.0), [])] * others
            rows.append(SampleRow(params, [], gen))
            out.append(Sampler()(batch, rows)[-1].token_id)
        return out

    assert draw(logits[3:4], 0) == draw(logits[[0, 1, 2, 3]], 3)


def test_logprobs_are_raw_and_match_choice() -> None:
    sampler = Sampler(seed=0)
    params = SamplingParams(temperature=0.0, logprobs=True, top_logprobs=2,
                            logit_bias={3: 50.0})
    out = sampler(LOGITS[None].clone(), [SampleRow(params, [])])[0]
    assert out.token_id == 3  # the bias decides the choice ...
    assert out.logprob == pytest.approx(math.log(0.1), abs=1e-5)  # ... not the logprob
    assert [t for t, _ in out.top_logprobs] == [0, 1]
    assert out.top_logprobs[0][1] == pytest.approx(math.log(0.4), abs=1e-5)
