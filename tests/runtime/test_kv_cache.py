from __future__ import annotations

import pytest
import torch

from chorusline.runtime.config import LlamaConfig
from chorusline.runtime.kv_cache import KVCache, blocks_for_budget, bytes_per_block

CONFIG = LlamaConfig(vocab_size=10, hidden_size=16, intermediate_size=32, num_hidden_layers=3,
                     num_attention_heads=4, num_key_value_heads=2, head_dim=4, rms_norm_eps=1e-5,
                     rope_theta=1e4, max_position_embeddings=64, tie_word_embeddings=True,
                     bos_token_id=None, eos_token_id=None)


def test_budget_sizing() -> None:
    per_block = bytes_per_block(CONFIG, 16, torch.float32)
    assert per_block == 2 * 3 * 16 * 2 * 4 * 4
    assert blocks_for_budget(CONFIG, 16, torch.float32, per_block * 10 + 1) == 10
    assert blocks_for_budget(CONFIG, 16, torch.bfloat16, per_block * 10) == 20
    with pytest.raises(ValueError):
        blocks_for_budget(CONFIG, 16, torch.float32, per_block - 1)


def test_write_by_slot_and_copy_blocks() -> None:
    cache = KVCache(CONFIG, 4, 2, torch.float32, torch.device("cpu"))
    assert cache.data.shape == (3, 2, 2, 5, 2, 4) and cache.null_block == 4
    assert not cache.data.any()  # zeroed: masked keys must not carry NaN garbage
    k = torch.randn(3, 2, 4)
    v = torch.randn(3, 2, 4)
    slots = torch.tensor([cache.slot(3, 1), cache.slot(0, 0), cache.slot(0, 1)])
    cache.write(1, slots, k, v)
    keys, values = cache.layer(1)
    torch.testing.assert_close(keys[:, 3, 1], k[0])
    torch.testing.assert_close(values[:, 0], v[1:].transpose(0, 1))
    assert not cache.layer(0)[0].any() and not cache.layer(2)[1].any()
    cache.write(2, slots, k, v)
    cache.copy_blocks([(0, 2), (3, 1)])
    for layer in (1, 2):
        keys, values = cache.layer(layer)
        torch.testing.assert_close(keys[:, 2], keys[:, 0])
        torch.testing.assert_close(values[:, 1], values[:, 3])
    cache.copy_blocks([])
