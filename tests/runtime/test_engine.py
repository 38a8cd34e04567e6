"""Engine behaviour on the tiny synthetic model (fast, real tokenizer, random weights)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch

from chorusline.protocols import (
    ContextTooLong,
    GenerationRequest,
    InvalidRequest,
    InvalidTokenId,
    RequestOutput,
    SamplingParams,
)
from chorusline.runtime.block_manager import local_blocks_needed
from chorusline.runtime.engine import Engine, EngineConfig
from chorusline.runtime.kv_cache import pool_bytes_per_block
from chorusline.runtime.loader import LoadedModel, load_model

GREEDY = SamplingParams(temperature=0.0, max_tokens=24, ignore_eos=True)
PROMPTS = {
    "a": [1, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58],
    "b": [1, 100, 101, 102],
    "c": [1, 200, 201, 202, 203, 204, 205, 206, 207, 208, 209, 210, 211, 212, 213, 214, 215,
          216, 217, 218, 219, 220, 221, 222, 223, 224, 225, 226, 227, 228, 229, 230, 231, 232,
          233, 234, 235, 236, 237, 238],
}

MakeEngine = Callable[..., Engine]


@pytest.fixture(scope="module")
def tiny(tiny_hf_dir: Path) -> LoadedModel:
    return load_model(tiny_hf_dir, progress=False)


@pytest.fixture
def make_engine(tiny: LoadedModel) -> MakeEngine:
    def make(clock: Callable[[], float] = time.monotonic, **overrides: object) -> Engine:
        options: dict[str, object] = {"num_blocks": 64, "block_size": 4, "device": "cpu",
                                      "dtype": torch.float32, "seed": 0}
        options.update(overrides)
        return Engine(tiny, EngineConfig(**options), clock=clock)  # type: ignore[arg-type]
    return make


def add(engine: Engine, request_id: str, prompt: Sequence[int],
        params: SamplingParams | None = None, deadline: float | None = None) -> None:
    engine.add_request(GenerationRequest(request_id, tuple(prompt), params or SamplingParams(),
                                         deadline=deadline))


def run(engine: Engine) -> dict[tuple[str, int], list[RequestOutput]]:
    """Step until done, collecting every output per (request, choice)."""
    outs: dict[tuple[str, int], list[RequestOutput]] = {}
    while engine.has_unfinished():
        for out in engine.step():
            outs.setdefault((out.request_id, out.index), []).append(out)
    return outs


def tokens(outs: list[RequestOutput]) -> list[int]:
    return [t for o in outs for t in o.new_token_ids]


def solo(make_engine: MakeEngine, prompt: list[int], params: SamplingParams) -> list[int]:
    return make_engine().generate({"x": prompt}, params)["x"]


def test_requests_joining_and_leaving_match_solo_runs(make_engine: MakeEngine) -> None:
    expected = {rid: solo(make_engine, p, GREEDY) for rid, p in PROMPTS.items()}
    engine = make_engine()
    add(engine, "a", PROMPTS["a"], GREEDY)
    got: dict[str, list[int]] = {rid: [] for rid in PROMPTS}
    step = 0
    while engine.has_unfinished():
        if step == 3:
            add(engine, "b", PROMPTS["b"], GREEDY)
        if step == 7:
            add(engine, "c", PROMPTS["c"], GREEDY)
        for out in engine.step():
            got[out.request_id].extend(out.new_token_ids)
        step += 1
    assert got == expected
    assert all(len(v) == GREEDY.max_tokens for v in got.values())


def test_preemption_by_recompute_keeps_greedy_output(make_engine: MakeEngine) -> None:
    expected = {rid: solo(make_engine, p, GREEDY) for rid, p in PROMPTS.items()}
    # 18 blocks of 4 cannot hold all three sequences at full length at once.
    engine = make_engine(num_blocks=18, enable_prefix_caching=False)
    assert engine.generate(PROMPTS, GREEDY) == expected


def test_abort_frees_blocks_at_once(make_engine: MakeEngine) -> None:
    engine = make_engine()
    add(engine, "a", PROMPTS["a"], GREEDY)
    add(engine, "c", PROMPTS["c"], GREEDY)
    for _ in range(3):
        engine.step()
    used_both = engine.block_manager.usage().used
    seq_ids = [s.seq_id for s in engine._requests["c"].seqs]
    assert all(engine.block_manager.has_table(i) for i in seq_ids)
    assert engine.abort("c")
    assert not any(engine.block_manager.has_table(i) for i in seq_ids)
    assert not engine.abort("c")
    remaining = engine.block_manager.usage().used
    assert remaining < used_both
    engine.block_manager.check_invariants()
    outs = engine.step()
    aborted = [o for o in outs if o.request_id == "c"]
    assert [o.finish_reason for o in aborted] == ["abort"]
    assert all(o.request_id != "c" for o in engine.step())
    run(engine)
    assert engine.block_manager.usage().used == 0


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_deadline_times_out_running_and_waiting_requests(make_engine: MakeEngine,
                                                          tiny: LoadedModel) -> None:
    expected = solo(make_engine, PROMPTS["a"], GREEDY)
    clock = FakeClock()
    # Three seats: "a" and the two choices of "late" take them all, so "queued" waits.
    engine = make_engine(clock=clock, max_num_seqs=3)
    add(engine, "a", PROMPTS["a"], GREEDY)
    add(engine, "late", PROMPTS["c"], SamplingParams(temperature=1.0, n=2, max_tokens=24,
                                                     ignore_eos=True), deadline=110.0)
    add(engine, "queued", PROMPTS["b"], GREEDY, deadline=110.0)
    outs: dict[tuple[str, int], list[RequestOutput]] = {}
    for _ in range(6):
        for out in engine.step():
            outs.setdefault((out.request_id, out.index), []).append(out)
    late_ids = [s.seq_id for s in engine._requests["late"].seqs]
    queued_ids = [s.seq_id for s in engine._requests["queued"].seqs]
    assert all(engine.block_manager.has_table(i) for i in late_ids)  # running, n = 2
    assert not any(engine.block_manager.has_table(i) for i in queued_ids)  # still waiting
    assert not any(o.finished for v in outs.values() for o in v)
    used = engine.block_manager.usage().used
    clock.now = 110.0  # the deadline itself counts as passed
    stepped = engine.step()
    outs[("a", 0)].extend(o for o in stepped if o.request_id == "a")
    timed_out = [o for o in stepped if o.request_id != "a"]
    assert sorted((o.request_id, o.index) for o in timed_out) == [
        ("late", 0), ("late", 1), ("queued", 0)]
    assert all(o.finish_reason == "timeout" and o.new_token_ids == [] for o in timed_out)
    assert not any(engine.block_manager.has_table(i) for i in late_ids)  # freed at once
    assert engine.block_manager.usage().used < used
    engine.block_manager.check_invariants()
    for o in timed_out:
        assert o.prompt_tokens == len(PROMPTS["c" if o.request_id == "late" else "b"])
        streamed = outs.get((o.request_id, o.index), [])
        assert o.completion_tokens == len(tokens(streamed))
        # Whatever text was held back is released, so the text is the tokens' text.
        assert "".join(x.new_text for x in [*streamed, o]) == tiny.tokenizer.decode(
            tokens(streamed))
    assert outs[("late", 0)] and outs[("late", 1)]  # both choices were generating
    for key, more in run(engine).items():
        assert key == ("a", 0)
        outs[key].extend(more)
    assert tokens(outs[("a", 0)]) == expected  # the other request never noticed
    assert engine.block_manager.usage().used == 0


def test_deadline_already_passed_and_request_id_reuse(make_engine: MakeEngine) -> None:
    clock = FakeClock()
    engine = make_engine(clock=clock)
    add(engine, "r", PROMPTS["b"], GREEDY, deadline=clock.now - 1.0)
    assert engine.has_unfinished()
    (out,) = engine.step()
    assert (out.request_id, out.finish_reason, out.completion_tokens) == ("r", "timeout", 0)
    assert not engine.has_unfinished() and engine.block_manager.usage().used == 0
    assert engine.step() == []
    # A request that ends before its deadline leaves no timeout behind, not even for a
    # later request with the same id.
    short = SamplingParams(temperature=0.0, max_tokens=2, ignore_eos=True)
    add(engine, "r", PROMPTS["b"], short, deadline=clock.now + 5.0)
    assert run(engine)[("r", 0)][-1].finish_reason == "length"
    add(engine, "r", PROMPTS["b"], GREEDY)
    clock.now += 10.0
    outs = run(engine)[("r", 0)]
    assert outs[-1].finish_reason == "length" and len(tokens(outs)) == GREEDY.max_tokens
    # Aborted, then its deadline passes: reported once, as the abort.
    add(engine, "gone", PROMPTS["a"], GREEDY, deadline=clock.now + 1.0)
    engine.step()
    assert engine.abort("gone")
    clock.now += 2.0
    assert [o.finish_reason for o in engine.step()] == ["abort"]
    assert engine.step() == [] and not engine.has_unfinished()


def test_timeout_releases_text_held_back_for_a_stop_string(make_engine: MakeEngine,
                                                           tiny: LoadedModel) -> None:
    free = run_one(make_engine(), PROMPTS["c"], GREEDY)  # one token per step
    k = next(i for i in range(2, len(free)) if "".join(o.new_text for o in free[:i])
             and "".join(o.new_text for o in free[:i])[-1].isprintable())
    shown = "".join(o.new_text for o in free[:k])
    stop = shown[-1] + "\x00\x00"  # starts like the text's tail, never completes
    assert stop not in "".join(o.new_text for o in free)
    clock = FakeClock()
    engine = make_engine(clock=clock)
    params = SamplingParams(temperature=0.0, max_tokens=24, ignore_eos=True, stop=[stop])
    add(engine, "held", PROMPTS["c"], params, deadline=110.0)
    before = [o for _ in range(k) for o in engine.step()]
    assert tokens(before) == tokens(free[:k])
    assert "".join(o.new_text for o in before) == shown[:-1]  # the tail is held back
    clock.now = 110.0
    (last,) = engine.step()
    assert last.finish_reason == "timeout" and last.new_text.startswith(shown[-1])
    assert "".join(o.new_text for o in [*before, last]) == tiny.tokenizer.decode(
        tokens(before))


def test_no_deadline_no_clock(make_engine: MakeEngine) -> None:
    def clock() -> float:
        pytest.fail("the engine read its clock although no request has a deadline")

    engine = make_engine(clock=clock)
    assert len(engine.generate(PROMPTS, GREEDY)["a"]) == GREEDY.max_tokens


def test_seeded_sampling_ignores_batch_company(make_engine: MakeEngine) -> None:
    params = SamplingParams(temperature=1.0, seed=1234, max_tokens=20, ignore_eos=True)
    alone = solo(make_engine, PROMPTS["a"], params)
    engine = make_engine(seed=99)
    add(engine, "noise1", PROMPTS["b"], SamplingParams(temperature=1.0, max_tokens=30))
    add(engine, "noise2", PROMPTS["c"], SamplingParams(temperature=0.7, seed=5,
                                                              max_tokens=10))
    engine.step()
    add(engine, "a", PROMPTS["a"], params)
    assert tokens(run(engine)[("a", 0)]) == alone
    other_seed = SamplingParams(temperature=1.0, seed=4321, max_tokens=20, ignore_eos=True)
    assert solo(make_engine, PROMPTS["a"], other_seed) != alone


def test_n_choices(make_engine: MakeEngine) -> None:
    engine = make_engine()
    add(engine, "r", PROMPTS["b"], SamplingParams(temperature=1.0, n=3, seed=3,
                                                         max_tokens=12, ignore_eos=True))
    outs = run(engine)
    assert sorted(outs) == [("r", 0), ("r", 1), ("r", 2)]
    choices = [tokens(outs[("r", i)]) for i in range(3)]
    assert all(len(c) == 12 for c in choices)
    assert len({tuple(c) for c in choices}) > 1
    assert all(outs[("r", i)][-1].finish_reason == "length" for i in range(3))
    greedy = make_engine()
    add(greedy, "g", PROMPTS["b"], SamplingParams(temperature=0.0, n=2, max_tokens=8,
                                                         ignore_eos=True))
    g = run(greedy)
    assert tokens(g[("g", 0)]) == tokens(g[("g", 1)]) == solo(
        make_engine, PROMPTS["b"], SamplingParams(temperature=0.0, max_tokens=8, ignore_eos=True))


def test_max_tokens_gives_length(make_engine: MakeEngine) -> None:
    outs = run_one(make_engine(), PROMPTS["b"], SamplingParams(temperature=0.0, max_tokens=5,
                                                               ignore_eos=True))
    assert outs[-1].finish_reason == "length"
    assert outs[-1].completion_tokens == 5
    assert outs[-1].prompt_tokens == len(PROMPTS["b"])
    assert all(o.finish_reason is None for o in outs[:-1])


def run_one(engine: Engine, prompt: list[int], params: SamplingParams) -> list[RequestOutput]:
    add(engine, "one", prompt, params)
    return run(engine)[("one", 0)]


def test_stop_string_across_token_boundary(make_engine: MakeEngine, tiny: LoadedModel) -> None:
    params = SamplingParams(temperature=0.0, max_tokens=40, ignore_eos=True)
    full = run_one(make_engine(), PROMPTS["c"], params)
    ids = tokens(full)
    text = "".join(o.new_text for o in full)
    assert text == tiny.tokenizer.decode(ids)
    # A stop string made of the tail of one token's text and the head of the next.
    pieces = [tiny.tokenizer.decode([t]) for t in ids]
    k = next(i for i in range(5, len(ids)) if pieces[i - 1].isprintable() and pieces[i - 1]
             and pieces[i].isprintable() and pieces[i])
    stop = pieces[k - 1][-1] + pieces[k][0]
    cut = text.index(stop)
    outs = run_one(make_engine(), PROMPTS["c"], SamplingParams(temperature=0.0, max_tokens=40,
                                                               ignore_eos=True, stop=[stop]))
    streamed = "".join(o.new_text for o in outs)
    assert streamed == text[:cut]
    assert outs[-1].finish_reason == "stop"
    assert outs[-1].completion_tokens < 40


def test_eos_stops_without_text(make_engine: MakeEngine, tiny: LoadedModel) -> None:
    eos = tiny.config.eos_token_id
    assert eos is not None
    outs = run_one(make_engine(), PROMPTS["b"], SamplingParams(temperature=0.0, max_tokens=10,
                                                               logit_bias={eos: 100.0}))
    assert len(outs) == 1 and outs[0].finish_reason == "stop"
    assert outs[0].new_token_ids == [eos] and outs[0].new_text == ""


def test_logit_bias_and_frequency_penalty(make_engine: MakeEngine) -> None:
    a, b = 60, 61
    bias = {a: 100.0, b: 100.0}
    plain = tokens(run_one(make_engine(), PROMPTS["b"], SamplingParams(
        temperature=0.0, max_tokens=12, ignore_eos=True, logit_bias=bias)))
    assert set(plain) <= {a, b}
    assert any(x == y for x, y in itertools.pairwise(plain))  # repeats freely
    # Each use costs 2 logits, so the two tokens' counts must stay close.
    taking_turns = tokens(run_one(make_engine(), PROMPTS["b"], SamplingParams(
        temperature=0.0, max_tokens=12, ignore_eos=True, logit_bias=bias,
        frequency_penalty=2.0)))
    assert set(taking_turns) == {a, b}
    imbalance = abs(taking_turns.count(a) - taking_turns.count(b))
    assert imbalance < abs(plain.count(a) - plain.count(b))
    assert imbalance <= 2


def test_logprobs_consistent_with_choice(make_engine: MakeEngine) -> None:
    outs = run_one(make_engine(), PROMPTS["a"], SamplingParams(
        temperature=0.0, max_tokens=6, ignore_eos=True, logprobs=True, top_logprobs=3))
    for out in outs:
        assert out.logprobs is not None and len(out.logprobs) == 1
        lp = out.logprobs[0]
        assert lp.token_id == out.new_token_ids[0]
        assert lp.top_logprobs[0][0] == lp.token_id
        assert lp.top_logprobs[0][1] == pytest.approx(lp.logprob)
        values = [v for _, v in lp.top_logprobs]
        assert len(values) == 3 and values == sorted(values, reverse=True) and values[0] <= 0
    sampled = run_one(make_engine(), PROMPTS["a"], SamplingParams(
        temperature=1.0, seed=1, max_tokens=6, ignore_eos=True, logprobs=True))
    for out in sampled:
        assert out.logprobs is not None and out.logprobs[0].logprob <= 0
        assert out.logprobs[0].top_logprobs == []


@pytest.mark.parametrize(
    ("prompt", "params", "error"),
    [
        ([1, 2, 100000], SamplingParams(), InvalidTokenId),
        ([1, -3], SamplingParams(), InvalidTokenId),
        ([1, 2], SamplingParams(logit_bias={10**6: 1.0}), InvalidTokenId),
        ([1, 2], SamplingParams(stop_token_ids=(99999,)), InvalidTokenId),
        ([], SamplingParams(), InvalidRequest),
        ([5] * 256, SamplingParams(), ContextTooLong),
        ([5] * 200, SamplingParams(max_tokens=100), ContextTooLong),
    ],
)
def test_bad_input_raises_protocol_errors(
    make_engine: MakeEngine, prompt: list[int], params: SamplingParams, error: type[Exception]
) -> None:
    engine = make_engine()
    with pytest.raises(error):
        add(engine, "bad", prompt, params)
    assert not engine.has_unfinished()


def test_duplicate_request_id_and_stats(make_engine: MakeEngine) -> None:
    engine = make_engine()
    add(engine, "x", PROMPTS["a"], GREEDY)
    with pytest.raises(InvalidRequest):
        add(engine, "x", PROMPTS["b"], GREEDY)
    assert engine.stats().num_waiting == 1
    engine.step()
    stats = engine.stats()
    assert stats.num_running == 1 and stats.num_waiting == 0
    assert 0 < stats.kv_usage <= 1 and stats.kv_blocks_used > 0
    assert stats.prompt_tokens == len(PROMPTS["a"]) and stats.last_step_ms > 0
    engine.step()  # a decode step computes no prompt token
    assert engine.stats().prompt_tokens == len(PROMPTS["a"])


def test_preemptions_are_counted_and_the_block_map_shows_every_block(
        make_engine: MakeEngine) -> None:
    engine = make_engine(num_blocks=18, enable_prefix_caching=True)
    assert engine.block_map()["states"] == "f" * 18
    for rid, prompt in PROMPTS.items():
        add(engine, rid, prompt, GREEDY)
    engine.step()
    running = engine.block_map()
    assert len(running["states"]) == len(running["refs"]) == 18
    assert running["states"].count("u") == engine.stats().kv_blocks_used > 0
    assert all((state == "u") == (refs > 0)
               for state, refs in zip(running["states"], running["refs"], strict=True))
    while engine.has_unfinished():
        engine.step()
    assert engine.stats().preemptions > 0  # 18 blocks of 4 cannot hold all three
    done = engine.block_map()
    assert "u" not in done["states"] and "c" in done["states"]  # prefixes stay cached


def test_bf16_engine_runs(make_engine: MakeEngine) -> None:
    engine = make_engine(dtype=torch.bfloat16)
    assert engine.kv_cache.data.dtype == torch.bfloat16
    out = engine.generate({"x": PROMPTS["a"]}, GREEDY)["x"]
    assert len(out) == GREEDY.max_tokens


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graphs_match_eager(make_engine: MakeEngine) -> None:
    params = SamplingParams(temperature=0.0, max_tokens=16, ignore_eos=True)
    eager = make_engine(device="cuda", dtype=torch.float32, cuda_graphs=False)
    graphs = make_engine(device="cuda", dtype=torch.float32, cuda_graphs=True)
    assert graphs.generate(PROMPTS, params) == eager.generate(PROMPTS, params)
    cpu = make_engine()
    assert cpu.generate(PROMPTS, params) == eager.generate(PROMPTS, params)


def test_kv_stats_and_block_map_count_both_pools(tiny_gemma: Any) -> None:
    """A model with sliding-window layers: the stats sum both pools, the block map lists
    the global blocks then the local ones, and ``kv_pools`` tells them apart."""
    engine = Engine(tiny_gemma, EngineConfig(num_blocks=40, block_size=2, device="cpu",
                                             dtype=torch.float32, max_num_batched_tokens=8,
                                             max_num_seqs=4))
    needed = local_blocks_needed(6, 2, 4, 8)
    assert needed == 18
    assert {k: u.total for k, u in engine.kv_pools().items()} == {"global": 40, "local": 18}
    stats = engine.stats()
    assert stats.kv_blocks_total == 58 and stats.kv_blocks_used == 0
    assert engine.block_map()["pools"] == [{"name": "global", "blocks": 40},
                                           {"name": "local", "blocks": 18}]
    add(engine, "x", list(range(3, 30)), GREEDY)
    for _ in range(5):
        engine.step()
    pools = engine.kv_pools()
    stats = engine.stats()
    assert stats.kv_blocks_used == pools["global"].used + pools["local"].used
    assert pools["global"].used > pools["local"].used > 0  # the window forgets
    assert stats.kv_usage == stats.kv_blocks_used / 58
    states = engine.block_map()["states"]
    assert len(states) == 58 and states.count("u") == stats.kv_blocks_used
    assert states[40:].count("u") == pools["local"].used
    run(engine)
    assert engine.stats().kv_blocks_used == 0


def test_kv_budget_is_split_between_the_pools(tiny_gemma: Any) -> None:
    cfg = tiny_gemma.config
    full, local = pool_bytes_per_block(cfg, 2, torch.float32)
    options: dict[str, Any] = {"block_size": 2, "device": "cpu", "dtype": torch.float32,
                               "max_num_batched_tokens": 8, "max_num_seqs": 4}
    roomy = Engine(tiny_gemma, EngineConfig(kv_cache_bytes=(full + local) * 100, **options))
    # 4 seats need 18 local blocks at most; the global pool takes what they leave.
    assert roomy.block_manager.num_local_blocks == 18
    assert roomy.block_manager.num_blocks == 100 + (100 - 18) * local // full
    tight = Engine(tiny_gemma, EngineConfig(kv_cache_bytes=(full + local) * 10, **options))
    assert (tight.block_manager.num_blocks, tight.block_manager.num_local_blocks) == (10, 10)
    shared = Engine(tiny_gemma, EngineConfig(kv_cache_bytes=(full + local) * 100,
                                             local_kv_pool=False, **options))
    assert shared.block_manager.num_blocks == 100 and not shared.kv_cache.has_local_pool
    assert "pools" not in shared.block_map()
    assert shared.kv_pools().keys() == {"global"}
    fixed = Engine(tiny_gemma, EngineConfig(num_blocks=30, num_local_blocks=9, **options))
    assert (fixed.block_manager.num_blocks, fixed.block_manager.num_local_blocks) == (30, 9)
    assert fixed.scheduler.max_slice_tokens == (9 - 1) * 2 - 6 + 2


def test_a_model_without_sliding_layers_keeps_one_pool(make_engine: MakeEngine) -> None:
    engine = make_engine()
    assert not engine.kv_cache.has_local_pool and engine.kv_cache.local_data is None
    assert engine.kv_cache.data.shape[0] == engine.model_config.num_hidden_layers
    assert not engine.block_manager.has_local_pool and engine.kv_pools().keys() == {"global"}
    assert engine.scheduler.max_slice_tokens == engine.scheduler.config.max_num_batched_tokens
