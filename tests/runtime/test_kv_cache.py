from __future__ import annotations

import dataclasses

import pytest
import torch

from chorusline.runtime.config import FULL, SLIDING, ModelConfig
from chorusline.runtime.kv_cache import (
    KVCache,
    blocks_for_budget,
    bytes_per_block,
    pool_bytes_per_block,
    split_budget,
)

CONFIG = ModelConfig(vocab_size=10, hidden_size=16, intermediate_size=32, num_hidden_layers=3,
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


GEMMA_LIKE = dataclasses.replace(
    CONFIG, num_hidden_layers=4, architecture="gemma3", sliding_window=6,
    layer_types=(SLIDING, SLIDING, FULL, SLIDING), rope_local_theta=1e4)


def test_pool_sizes_and_budget_split() -> None:
    full, local = pool_bytes_per_block(GEMMA_LIKE, 4, torch.float32)
    assert full == bytes_per_block(GEMMA_LIKE, 4, torch.float32) // 4 and local == 3 * full
    assert pool_bytes_per_block(CONFIG, 4, torch.float32)[1] == 0
    budget = (full + local) * 100
    # Seats need fewer local blocks than an equal share: the global pool gets the rest.
    assert split_budget(GEMMA_LIKE, 4, torch.float32, budget, 40) == (100 + 60 * 3, 40)
    # They would need more: never more local blocks than global ones.
    assert split_budget(GEMMA_LIKE, 4, torch.float32, budget, 500) == (100, 100)
    assert split_budget(GEMMA_LIKE, 4, torch.float32, budget, 1, local_least=3) == (400 - 9, 3)
    with pytest.raises(ValueError):
        split_budget(GEMMA_LIKE, 4, torch.float32, local * 3, 1, local_least=3)
    with pytest.raises(ValueError):
        split_budget(CONFIG, 4, torch.float32, budget, 10)


def test_local_pool_holds_the_sliding_layers() -> None:
    cache = KVCache(GEMMA_LIKE, 4, 2, torch.float32, torch.device("cpu"), num_local_blocks=6)
    assert cache.has_local_pool and cache.local_data is not None
    assert cache.data.shape == (1, 2, 2, 5, 2, 4)  # layer 2 only
    assert cache.local_data.shape == (3, 2, 2, 7, 2, 4)  # layers 0, 1, 3
    assert (cache.null_block, cache.local_null_block) == (4, 6)
    k, v = torch.randn(2, 2, 4), torch.randn(2, 2, 4)
    slots = torch.tensor([cache.slot(5, 1), cache.slot(3, 0)])
    cache.write(3, slots, k, v)  # a sliding layer: slots of the local pool
    keys, values = cache.layer(3)
    assert keys.data_ptr() == cache.local_data[2, 0].data_ptr()
    torch.testing.assert_close(keys[:, 5, 1], k[0])
    torch.testing.assert_close(values[:, 3, 0], v[1])
    assert not cache.data.any() and not cache.local_data[:2].any()
    cache.write(2, torch.tensor([cache.slot(1, 0), cache.slot(1, 1)]), k, v)
    assert cache.layer(2)[0].data_ptr() == cache.data[0, 0].data_ptr()
    cache.copy_local_blocks([(5, 0)])
    torch.testing.assert_close(cache.layer(3)[0][:, 0], cache.layer(3)[0][:, 5])
    cache.copy_blocks([(1, 2)])
    torch.testing.assert_close(cache.layer(2)[1][:, 2], v.transpose(0, 1))
    plain = KVCache(CONFIG, 4, 2, torch.float32, torch.device("cpu"))
    assert not plain.has_local_pool
    with pytest.raises(ValueError):
        plain.copy_local_blocks([(0, 1)])
    with pytest.raises(ValueError):
        KVCache(CONFIG, 4, 2, torch.float32, torch.device("cpu"), num_local_blocks=6)
