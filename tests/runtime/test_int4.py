"""4-bit packing: exact on 4-bit grids, refused elsewhere, and the model's small steps use it."""

from __future__ import annotations

import pytest
import torch

from chorusline.protocols import SamplingParams
from chorusline.runtime import Engine, EngineConfig, LoadedModel
from chorusline.runtime.int4 import GROUP, int4_supported, pack_int4

pytestmark = pytest.mark.skipif(not int4_supported(torch.device("cpu"), torch.bfloat16),
                                reason="torch lacks the CPU int4 kernel")


def grid_weights(rows: int, cols: int, seed: int = 0) -> torch.Tensor:
    """Q4_1-style values: per group of 32, ``d * q + m`` with q in 0..15 (ends present)."""
    gen = torch.Generator().manual_seed(seed)
    q = torch.randint(0, 16, (rows, cols // GROUP, GROUP), generator=gen)
    q[..., 0], q[..., 1] = 0, 15
    d = torch.rand(rows, cols // GROUP, 1, generator=gen) * 0.02
    m = -torch.rand(rows, cols // GROUP, 1, generator=gen) * 0.1
    return (q.float() * d + m).reshape(rows, cols)


def test_grid_weights_pack_and_multiply_like_bf16_weights() -> None:
    w = grid_weights(96, 128)
    packed = pack_int4(w)
    assert packed is not None
    x = torch.randn(3, 128).bfloat16()
    expected = x.float() @ w.T
    got = packed.matmul(x).float()
    bf16 = torch.nn.functional.linear(x, w.bfloat16()).float()
    # The packed path is as close to the exact product as bf16 weights are.
    assert (got - expected).abs().max() <= 2 * (bf16 - expected).abs().max() + 1e-3


def test_all_equal_group_packs() -> None:
    w = torch.full((16, 64), 0.25)
    packed = pack_int4(w)
    assert packed is not None
    out = packed.matmul(torch.ones(1, 64).bfloat16())
    assert torch.allclose(out.float(), torch.full((1, 16), 16.0))


@pytest.mark.parametrize("shape", [(16, 48), (16, 33), (8, 64)])
def test_shapes_the_kernel_cannot_tile_are_refused(shape: tuple[int, int]) -> None:
    assert pack_int4(torch.zeros(shape)) is None


def test_off_grid_weights_are_refused() -> None:
    w = grid_weights(16, 64)
    assert pack_int4(w) is not None
    w[3, 5] += 0.3 * (w[3, :32].max() - w[3, :32].min()) / 15  # a third of a step off
    assert pack_int4(w) is None
    assert pack_int4(torch.randn(16, 64)) is None


def test_packed_weights_are_refused_where_no_kernel_reads_them(smollm: LoadedModel) -> None:
    with pytest.raises(ValueError, match="packed weights"):
        Engine(smollm, EngineConfig(device="cpu", dtype=torch.float16, packed_weights=True,
                                    num_blocks=8))


def test_real_model_packs_every_layer_and_decodes_like_bf16(smollm: LoadedModel) -> None:
    """SmolLM2's Q4_1 layers all pack; greedy decoding agrees with the bf16 weights."""
    def greedy(packed: bool) -> list[int]:
        engine = Engine(smollm, EngineConfig(device="cpu", dtype=torch.bfloat16,
                                             packed_weights=packed, num_blocks=64, seed=0))
        if packed:
            assert all(layer.packed_qkv and layer.packed_o and layer.packed_gate_up
                       and layer.packed_down for layer in engine.model.layers)
        prompt = smollm.tokenizer.encode("The capital of France is")
        out = engine.generate({"r": prompt}, SamplingParams(temperature=0, max_tokens=12))
        return out["r"]

    packed, plain = greedy(True), greedy(False)
    # bf16 rounding differs between the kernels, so allow a late divergence only.
    assert packed[:8] == plain[:8]
