"""chorusline's fused fp32 CPU kernels (``kernels/decode_ops.cpp``) against the torch
operations they replace."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from chorusline.runtime.attention import AttentionMetadata, build_group, paged_attention
from chorusline.runtime.grid_kernels import load_kernels

pytestmark = pytest.mark.skipif(not load_kernels(), reason="no C++ compiler here")
ops = torch.ops.chorusline


def test_add_rms_norm_adds_in_place_and_normalises() -> None:
    x = torch.randn(5, 64)
    delta = torch.randn(5, 64)
    w = torch.rand(64) + 0.5
    expected_x = x + delta
    expected = F.rms_norm(expected_x, (64,), w, 1e-5)
    got = ops.add_rms_norm_(x, delta, w, 1e-5)
    assert torch.allclose(x, expected_x)
    assert torch.allclose(got, expected, atol=1e-5)
    plain = ops.add_rms_norm_(x, None, w, 1e-5)
    assert torch.allclose(plain, F.rms_norm(x, (64,), w, 1e-5), atol=1e-5)


def test_add_rms_norm_refuses_mismatched_shapes() -> None:
    with pytest.raises(RuntimeError, match="delta must match"):
        ops.add_rms_norm_(torch.randn(2, 8), torch.randn(3, 8), torch.ones(8), 1e-5)
    with pytest.raises(RuntimeError, match="float32"):
        ops.add_rms_norm_(torch.randn(2, 8).double(), None, torch.ones(8), 1e-5)


def test_rope_store_rotates_q_and_k_and_writes_the_cache() -> None:
    heads, kv_heads, dim, block = 4, 2, 16, 8
    t = 3
    qkv = torch.randn(t, (heads + 2 * kv_heads) * dim)
    positions = torch.tensor([0, 5, 17])
    inv = 1.0 / (10000 ** (torch.arange(0, dim, 2).float() / dim))
    freqs = torch.outer(torch.arange(32).float(), inv)
    emb = torch.cat([freqs, freqs], -1)
    cos, sin = emb.cos(), emb.sin()
    k_cache = torch.zeros(kv_heads, 4, block, dim)
    v_cache = torch.zeros(kv_heads, 4, block, dim)
    slots = torch.tensor([3, 9, 30])

    qk = qkv[:, :(heads + kv_heads) * dim].view(t, heads + kv_heads, dim)
    c, s = cos[positions].unsqueeze(1), sin[positions].unsqueeze(1)
    rotated = qk * c + torch.cat([-qk[..., dim // 2:], qk[..., :dim // 2]], -1) * s
    v = qkv[:, (heads + kv_heads) * dim:].view(t, kv_heads, dim).clone()

    ops.rope_store_(qkv, positions, cos, sin, heads, kv_heads, k_cache, v_cache, slots)
    assert torch.allclose(qkv[:, :(heads + kv_heads) * dim].view_as(rotated), rotated,
                          atol=1e-6)
    flat_k, flat_v = k_cache.view(kv_heads, -1, dim), v_cache.view(kv_heads, -1, dim)
    assert torch.allclose(flat_k[:, slots].transpose(0, 1), rotated[:, heads:], atol=1e-6)
    assert torch.equal(flat_v[:, slots].transpose(0, 1), v)
    assert int((flat_k != 0).any(-1).sum()) == t * kv_heads  # nothing else written


def test_rope_store_refuses_slots_outside_the_cache() -> None:
    cache = torch.zeros(1, 2, 4, 8)
    qkv = torch.randn(1, 3 * 8)
    table = torch.ones(4, 8)
    with pytest.raises(RuntimeError, match="slot out of range"):
        ops.rope_store_(qkv, torch.tensor([0]), table, table, 1, 1, cache, cache.clone(),
                        torch.tensor([8]))


@pytest.mark.parametrize("window", [None, 6])
def test_decode_attention_matches_the_torch_path(window: int | None) -> None:
    """Three sequences of different lengths over a shuffled block table, GQA 2:1."""
    heads, kv_heads, dim, block = 6, 3, 16, 4
    lengths = [1, 7, 13]
    num_blocks = 12
    k_cache = torch.randn(kv_heads, num_blocks + 1, block, dim)
    v_cache = torch.randn(kv_heads, num_blocks + 1, block, dim)
    perm = torch.randperm(num_blocks).tolist()
    tables, used = [], 0
    for n in lengths:
        count = -(-n // block)
        tables.append(perm[used:used + count])
        used += count
    group = build_group(token_start=0, q_lens=[1] * len(lengths),
                        starts=[n - 1 for n in lengths], block_tables=tables,
                        block_size=block, null_block=num_blocks, device=torch.device("cpu"),
                        window=window)
    q = torch.randn(len(lengths), heads, dim)
    meta = AttentionMetadata(slot_mapping=torch.zeros(3, dtype=torch.long), groups=[group],
                             scale=dim ** -0.5)
    local = window is not None
    expected = paged_attention(q, k_cache, v_cache, meta, local=local)
    got = paged_attention(q, k_cache, v_cache, meta, local=local, fused=True)
    assert torch.allclose(got, expected, atol=1e-5)


def test_silu_mul_is_silu_of_gate_times_up() -> None:
    gate_up = torch.randn(3, 2 * 40)
    gate, up = gate_up.chunk(2, -1)
    assert torch.allclose(ops.silu_mul(gate_up), F.silu(gate) * up, atol=1e-6)
