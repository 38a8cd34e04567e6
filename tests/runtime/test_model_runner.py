"""ModelRunner: exactly one logits row per sequence that samples, in the sampler's order."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Any

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


# -- sliding-window layers with a KV pool of their own (tiny synthetic Gemma 3) ------------

LONG = {"a": list(range(3, 40)), "b": [5, 6, 7] * 9, "c": list(range(60, 64)),
        "d": [9, 8] * 15}  # window 6: every prompt but c spans several windows


def gemma_engine(model: Any, **overrides: Any) -> Engine:
    options: dict[str, Any] = {"num_blocks": 64, "block_size": 2, "device": "cpu",
                               "dtype": torch.float32, "max_num_batched_tokens": 8,
                               "max_num_seqs": 6, "seed": 0}
    options.update(overrides)
    return Engine(model, EngineConfig(**options))


def generate(engine: Engine, prompts: dict[str, list[int]], params: SamplingParams
             ) -> dict[tuple[str, int], list[tuple[int, float]]]:
    for rid, prompt in prompts.items():
        engine.add_request(GenerationRequest(rid, tuple(prompt), params))
    got: dict[tuple[str, int], list[tuple[int, float]]] = {}
    while engine.has_unfinished():
        for out in engine.step():
            for lp in out.logprobs or []:
                got.setdefault((out.request_id, out.index), []).append(
                    (lp.token_id, lp.logprob))
    return got


def assert_same(ours: dict[tuple[str, int], list[tuple[int, float]]],
                theirs: dict[tuple[str, int], list[tuple[int, float]]]) -> None:
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert [t for t, _ in ours[key]] == [t for t, _ in theirs[key]], key
        assert [lp for _, lp in ours[key]] == pytest.approx([lp for _, lp in theirs[key]],
                                                            abs=1e-4), key


def test_local_pool_gives_the_tokens_of_the_shared_pool(tiny_gemma: Any) -> None:
    """Chunked prefill past several windows, decodes, n=2 forks (copy-on-write in both
    pools) and a second wave that hits the prefix cache: the local pool that forgets
    old blocks gives what keeping every position in one pool gives."""
    greedy = SamplingParams(temperature=0.0, max_tokens=30, ignore_eos=True, logprobs=True)
    forked = SamplingParams(temperature=1.0, seed=7, n=2, max_tokens=20, ignore_eos=True,
                            logprobs=True)

    def run(**overrides: Any) -> tuple[Engine, list[Any], int]:
        engine = gemma_engine(tiny_gemma, num_blocks=256, **overrides)
        first = generate(engine, LONG, greedy)
        waves = [first, generate(engine, {"f": LONG["d"]}, forked)]
        # The next turn of a: its whole first turn again, then more. The local blocks
        # of the window before its end were the last that a gave back, so they are
        # still cached. b2 shares b's first 20 tokens only: the local blocks of the
        # window there left the pool long ago, so the local pool may refuse that hit.
        second = {"a2": LONG["a"] + [t for t, _ in first[("a", 0)]] + [1, 2],
                  "b2": [*LONG["b"][:20], 4]}
        before = engine.stats().prompt_tokens
        waves.append(generate(engine, second, greedy))
        hit = sum(map(len, second.values())) - (engine.stats().prompt_tokens - before)
        return engine, waves, hit

    shared, expected, shared_hit = run(local_kv_pool=False)
    pooled, got, hit = run()
    assert not shared.kv_cache.has_local_pool and pooled.kv_cache.has_local_pool
    for ours, theirs in zip(got, expected, strict=True):
        assert_same(ours, theirs)
    assert hit >= len(LONG["a"]) + 30 - 2 and shared_hit >= hit
    local = pooled.block_manager.local_usage()
    assert local is not None and local.used == 0 and local.cached > 0
    # The window is doing something: all-global layers give other tokens.
    config = dataclasses.replace(tiny_gemma.config, layer_types=())
    dense = SimpleNamespace(config=config, weights=tiny_gemma.weights,
                            tokenizer=tiny_gemma.tokenizer)
    assert generate(gemma_engine(dense), LONG, greedy) != expected[0]


def test_local_pool_survives_preemption(tiny_gemma: Any) -> None:
    greedy = SamplingParams(temperature=0.0, max_tokens=30, ignore_eos=True, logprobs=True)
    roomy = generate(gemma_engine(tiny_gemma), LONG, greedy)
    tight = gemma_engine(tiny_gemma, num_blocks=40, num_local_blocks=12)
    assert_same(generate(tight, LONG, greedy), roomy)
    assert tight.stats().preemptions > 0
    assert tight.block_manager.usage().used == 0


def test_one_step_writes_local_layers_into_their_pool(tiny_gemma: Any) -> None:
    eng = gemma_engine(tiny_gemma, enable_prefix_caching=False)
    eng.add_request(GenerationRequest("x", tuple(LONG["a"][:7]), SamplingParams(max_tokens=2)))
    plan = eng.scheduler.schedule()
    (sl,) = plan.slices
    eng.runner.execute(plan)
    cache = eng.kv_cache
    assert cache.local_data is not None
    block = sl.local_block_table[0]
    assert cache.layer(0)[0][:, block].abs().sum() > 0  # sliding layer 0, local block
    assert cache.layer(2)[0][:, sl.block_table[0]].abs().sum() > 0  # global layer 2
    others = [b for b in range(cache.num_local_blocks) if b not in sl.local_block_table]
    assert not cache.local_data[:, :, :, others].any()
