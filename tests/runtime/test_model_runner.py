"""ModelRunner: exactly one logits row per sequence that samples, in the sampler's order."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from chorusline.protocols import GenerationRequest, SamplingParams
from chorusline.runtime.batch import ScheduledSlice, SchedulerOutput
from chorusline.runtime.engine import Engine, EngineConfig
from chorusline.runtime.loader import LoadedModel, load_model
from chorusline.runtime.sequence import TokenSequence


@pytest.fixture(scope="module")
def tiny(tiny_hf_dir: Path) -> LoadedModel:
    return load_model(tiny_hf_dir, progress=False)


def engine(tiny: LoadedModel) -> Engine:
    return Engine(tiny, EngineConfig(num_blocks=64, block_size=4, device="cpu",
                                     dtype=torch.float32, seed=0, max_num_seqs=4,
                                     max_num_batched_tokens=8))


def test_forking_group_shares_one_row_and_mid_prompt_slices_get_none(
        tiny: LoadedModel) -> None:
    eng = engine(tiny)
    params = SamplingParams(temperature=1.0, n=3, max_tokens=4)
    eng.add_request(GenerationRequest("fork", (1, 100, 101, 102), params))
    eng.add_request(GenerationRequest("long", tuple(range(1, 41))))
    plan = eng.scheduler.schedule()
    assert sorted((sl.request_id, sl.num_tokens, len(sl.sample_seqs)) for sl in plan.slices) == [
        ("fork", 4, 3), ("long", 4, 0)]  # the budget of 8 cuts "long" mid-prompt
    out = eng.runner.execute(plan)
    (fork,) = (sl for sl in plan.slices if sl.request_id == "fork")
    assert out.seqs == list(fork.sample_seqs)
    assert out.logits.shape == (3, tiny.config.vocab_size) and out.logits.dtype == torch.float32
    assert torch.equal(out.logits[0], out.logits[1]) and torch.equal(out.logits[0], out.logits[2])
    # The same row as the leader alone would get: nothing of "long" leaks in.
    solo = engine(tiny)
    solo.add_request(GenerationRequest("fork", (1, 100, 101, 102), params))
    alone = solo.runner.execute(solo.scheduler.schedule())
    torch.testing.assert_close(alone.logits[0], out.logits[0])


class MarkerGraphs:
    """Stands in for the CUDA graphs' replay: row i of its logits is slice i's index."""

    def fits(self, slices: list[ScheduledSlice]) -> bool:
        return True

    def run(self, slices: list[ScheduledSlice]) -> torch.Tensor:
        self.logits = torch.arange(len(slices), dtype=torch.float32)[:, None].repeat(1, 5)
        return self.logits


def decode(seq: TokenSequence, samples: tuple[TokenSequence, ...]) -> ScheduledSlice:
    return ScheduledSlice(seq, (7,), 3, (0,), (3,), samples)


def test_graph_rows_are_picked_per_sampling_sequence(tiny: LoadedModel) -> None:
    runner = engine(tiny).runner
    graphs = MarkerGraphs()
    runner._graphs = graphs  # type: ignore[assignment]
    a, b, c0, c1 = (TokenSequence(request_id=r, prompt_token_ids=[1, 2, 3, 4])
                    for r in ("a", "b", "c", "c"))
    plan = SchedulerOutput((decode(a, (a,)), decode(b, ()), decode(c0, (c0, c1))), (), ())
    out = runner.execute(plan)
    assert out.seqs == [a, c0, c1]
    assert out.logits[:, 0].tolist() == [0.0, 2.0, 2.0]  # b's mid-prompt row is dropped
    plain = SchedulerOutput((decode(a, (a,)), decode(c0, (c0,))), (), ())
    out = runner.execute(plain)
    assert out.seqs == [a, c0] and out.logits is graphs.logits  # no copy when 1:1
