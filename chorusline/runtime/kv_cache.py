"""Paged KV storage: one preallocated tensor, addressed by (block, offset) slots.

The block manager decides *which* blocks a sequence owns; this module only holds the
bytes. Allocation happens once, sized from a memory budget, so a long-running server never
fragments or grows. One extra *null block* (index ``num_blocks``) absorbs writes from padding
tokens and pads block tables, which lets fixed-shape (CUDA-graph) batches run without
special cases. The cache starts zeroed: masked-out keys still flow through the attention
matmul, and ``0 * NaN`` from uninitialised memory would poison real outputs.
"""

from __future__ import annotations

import torch

from chorusline.runtime.config import LlamaConfig


def bytes_per_block(config: LlamaConfig, block_size: int, dtype: torch.dtype) -> int:
    """Bytes one block costs across all layers, keys and values."""
    elem = torch.empty((), dtype=dtype).element_size()
    return (2 * config.num_hidden_layers * block_size * config.num_key_value_heads
            * config.head_dim * elem)


def blocks_for_budget(
    config: LlamaConfig, block_size: int, dtype: torch.dtype, budget_bytes: int
) -> int:
    """How many usable blocks fit in ``budget_bytes`` (the null block is extra)."""
    n = budget_bytes // bytes_per_block(config, block_size, dtype)
    if n < 1:
        raise ValueError(f"KV budget of {budget_bytes} bytes holds no block of {block_size}")
    return int(n)


class KVCache:
    """``data[layer, 0|1, kv_head, block, offset, head_dim]`` (0 = keys, 1 = values).

    Heads lead the block axis so that gathering a batch's blocks yields each head's keys
    already laid out ``[KVH, batch, positions, D]``, the shape the batched attention
    matmuls read, with no transposing copy per layer.
    """

    def __init__(
        self,
        config: LlamaConfig,
        num_blocks: int,
        block_size: int,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.null_block = num_blocks
        self.data = torch.zeros(
            config.num_hidden_layers, 2, config.num_key_value_heads, num_blocks + 1,
            block_size, config.head_dim, dtype=dtype, device=device,
        )

    @property
    def num_slots(self) -> int:
        return (self.num_blocks + 1) * self.block_size

    def layer(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of one layer, ``[KVH, num_blocks + 1, block_size, D]`` views."""
        return self.data[index, 0], self.data[index, 1]

    def write(
        self, layer: int, slot_mapping: torch.Tensor, k: torch.Tensor, v: torch.Tensor
    ) -> None:
        """Store ``k``/``v`` ``[T, KVH, D]`` at flat slots ``block * block_size + offset``."""
        kv = self.data[layer]
        heads, dim = kv.shape[1], kv.shape[-1]
        kv[0].view(heads, -1, dim).index_copy_(1, slot_mapping, k.transpose(0, 1))
        kv[1].view(heads, -1, dim).index_copy_(1, slot_mapping, v.transpose(0, 1))

    def copy_blocks(self, pairs: list[tuple[int, int]]) -> None:
        """Copy whole blocks ``src -> dst`` in every layer (copy-on-write of a shared block)."""
        if not pairs:
            return
        device = self.data.device
        src = torch.tensor([p[0] for p in pairs], dtype=torch.int64, device=device)
        dst = torch.tensor([p[1] for p in pairs], dtype=torch.int64, device=device)
        self.data.index_copy_(3, dst, self.data.index_select(3, src))

    def slot(self, block: int, offset: int) -> int:
        return block * self.block_size + offset
