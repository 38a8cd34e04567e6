"""Paged KV storage: one preallocated tensor per pool, addressed by (block, offset) slots.

The block manager decides *which* blocks a sequence owns; this module only holds the
bytes. Allocation happens once, sized from a memory budget, so a long-running server never
fragments or grows. One extra *null block* (index ``num_blocks``) absorbs writes from padding
tokens and pads block tables, which lets fixed-shape (CUDA-graph) batches run without
special cases. The cache starts zeroed: masked-out keys still flow through the attention
matmul, and ``0 * NaN`` from uninitialised memory would poison real outputs.

A model without sliding-window layers has one pool holding every layer. With
``num_local_blocks`` the sliding-window ("local") layers get a second tensor of their own
with its own block ids and null block (``local_null_block``), whose blocks the block
manager hands back once they fall out of the window; ``data`` then holds only the
global layers. `write`, `layer` and their callers address layers by the model's layer
index either way; the caller passes the slots of the layer's pool.

`split_budget` divides a byte budget between the two pools. Both pools have the same
block size, and a sequence never holds more local blocks than global ones (its local
table is its global one minus the released entries), so local blocks beyond the global
pool's count would never be used: the local pool gets what the engine's sequences can
hold at most (``block_manager.local_blocks_needed``), but never more blocks than the
global pool, and the global pool the rest. Short sequences therefore fit as many tokens
as with one pool, and the memory long contexts no longer spend on old local KV goes to
the global pool, wherever the seats leave some over.
"""

from __future__ import annotations

import torch

from chorusline.runtime.config import ModelConfig


def bytes_per_block(config: ModelConfig, block_size: int, dtype: torch.dtype) -> int:
    """Bytes one block costs across all layers, keys and values."""
    return _block_bytes(config.num_hidden_layers, config, block_size, dtype)


def pool_bytes_per_block(
    config: ModelConfig, block_size: int, dtype: torch.dtype
) -> tuple[int, int]:
    """Bytes one block costs in the global pool (full layers) and in the local pool
    (sliding-window layers), keys and values."""
    local = sum(1 for i in range(config.num_hidden_layers) if config.is_sliding(i))
    return (_block_bytes(config.num_hidden_layers - local, config, block_size, dtype),
            _block_bytes(local, config, block_size, dtype))


def blocks_for_budget(
    config: ModelConfig, block_size: int, dtype: torch.dtype, budget_bytes: int
) -> int:
    """How many usable blocks fit in ``budget_bytes`` (the null block is extra)."""
    n = budget_bytes // bytes_per_block(config, block_size, dtype)
    if n < 1:
        raise ValueError(f"KV budget of {budget_bytes} bytes holds no block of {block_size}")
    return int(n)


def split_budget(
    config: ModelConfig, block_size: int, dtype: torch.dtype, budget_bytes: int,
    local_needed: int, local_least: int = 1,
) -> tuple[int, int]:
    """``(global blocks, local blocks)`` for ``budget_bytes`` (null blocks are extra).

    The local pool gets ``local_needed`` blocks but no more than the global pool has
    (an equal share of both), and at least ``local_least``; the global pool the rest.
    """
    global_bytes, local_bytes = pool_bytes_per_block(config, block_size, dtype)
    if global_bytes == 0 or local_bytes == 0:
        raise ValueError("a split needs both full and sliding-window layers")
    local = max(local_least, min(local_needed, budget_bytes // (global_bytes + local_bytes)))
    num_global = (budget_bytes - local * local_bytes) // global_bytes
    if num_global < 1:
        raise ValueError(f"KV budget of {budget_bytes} bytes holds no global block after "
                         f"{local} local blocks of {block_size}")
    return int(num_global), int(local)


def _block_bytes(layers: int, config: ModelConfig, block_size: int, dtype: torch.dtype) -> int:
    elem = torch.empty((), dtype=dtype).element_size()
    return 2 * layers * block_size * config.num_key_value_heads * config.head_dim * elem


class KVCache:
    """``data[layer, 0|1, kv_head, block, offset, head_dim]`` (0 = keys, 1 = values).

    Heads lead the block axis so that gathering a batch's blocks yields each head's keys
    already laid out ``[KVH, batch, positions, D]``, the shape the batched attention
    matmuls read, with no transposing copy per layer. With a local pool, ``data`` holds
    the global layers in model order and ``local_data`` the sliding-window ones.
    """

    def __init__(
        self,
        config: ModelConfig,
        num_blocks: int,
        block_size: int,
        dtype: torch.dtype,
        device: torch.device,
        *,
        num_local_blocks: int | None = None,
    ) -> None:
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.null_block = num_blocks
        self.num_local_blocks = num_local_blocks or 0
        self.local_null_block = self.num_local_blocks
        heads, dim, layers = config.num_key_value_heads, config.head_dim, config.num_hidden_layers
        self.local_data: torch.Tensor | None = None
        if num_local_blocks is None:
            self.data = torch.zeros(layers, 2, heads, num_blocks + 1, block_size, dim,
                                    dtype=dtype, device=device)
            self._layers = list(self.data.unbind(0))
            return
        local = [i for i in range(layers) if config.is_sliding(i)]
        if not local or num_local_blocks < 1:
            raise ValueError("a local pool needs sliding-window layers and >= 1 block")
        full = [i for i in range(layers) if not config.is_sliding(i)]
        self.data = torch.zeros(len(full), 2, heads, num_blocks + 1, block_size, dim,
                                dtype=dtype, device=device)
        self.local_data = torch.zeros(len(local), 2, heads, num_local_blocks + 1, block_size,
                                      dim, dtype=dtype, device=device)
        views = dict(zip(full, self.data.unbind(0), strict=True))
        views.update(zip(local, self.local_data.unbind(0), strict=True))
        self._layers = [views[i] for i in range(layers)]

    @property
    def has_local_pool(self) -> bool:
        return self.local_data is not None

    @property
    def num_slots(self) -> int:
        return (self.num_blocks + 1) * self.block_size

    def layer(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of one layer, ``[KVH, num_blocks + 1, block_size, D]`` views
        (of the local pool for a sliding-window layer when there is one)."""
        kv = self._layers[index]
        return kv[0], kv[1]

    def write(
        self, layer: int, slot_mapping: torch.Tensor, k: torch.Tensor, v: torch.Tensor
    ) -> None:
        """Store ``k``/``v`` ``[T, KVH, D]`` at flat slots ``block * block_size + offset``
        of the layer's pool."""
        kv = self._layers[layer]
        heads, dim = kv.shape[1], kv.shape[-1]
        kv[0].view(heads, -1, dim).index_copy_(1, slot_mapping, k.transpose(0, 1))
        kv[1].view(heads, -1, dim).index_copy_(1, slot_mapping, v.transpose(0, 1))

    def copy_blocks(self, pairs: list[tuple[int, int]]) -> None:
        """Copy whole blocks ``src -> dst`` in every layer (copy-on-write of a shared block)."""
        _copy(self.data, pairs)

    def copy_local_blocks(self, pairs: list[tuple[int, int]]) -> None:
        """The same in the local pool (local block ids)."""
        if pairs and self.local_data is None:
            raise ValueError("no local pool to copy blocks in")
        if self.local_data is not None:
            _copy(self.local_data, pairs)

    def slot(self, block: int, offset: int) -> int:
        return block * self.block_size + offset


def _copy(data: torch.Tensor, pairs: list[tuple[int, int]]) -> None:
    if not pairs:
        return
    device = data.device
    src = torch.tensor([p[0] for p in pairs], dtype=torch.int64, device=device)
    dst = torch.tensor([p[1] for p in pairs], dtype=torch.int64, device=device)
    data.index_copy_(3, dst, data.index_select(3, src))
