"""One pool of KV blocks, and the arithmetic of a sliding window over blocks.

``BlockManager`` keeps one ``BlockPool`` for the layers that see everything and, for a
model with sliding-window layers (Gemma 3), a second for those: each pool counts
references, keeps its free list and its prefix cache with the LRU of evictable blocks
(see ``block_manager`` for why), and knows nothing of sequences. The window functions
say which of a sequence's blocks a local layer can no longer see and how many a pool
needs, for the manager, the engine's budget split and capacity planning alike.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

_K = TypeVar("_K", bound=Hashable)
#: The parent content id of a sequence's first block (no content is ever given it).
ROOT_CONTENT = 0


def dead_blocks(num_computed: int, window: int, block_size: int) -> int:
    """Leading blocks no future query sees once ``num_computed`` positions are computed.

    The next query is at position ``n = num_computed`` and sees keys ``k > n - window``;
    block ``i`` ends at position ``(i + 1) * block_size - 1``.
    """
    return max(0, (num_computed - window + 1) // block_size)


def local_blocks_per_seq(window: int, block_size: int, slice_tokens: int) -> int:
    """Most local blocks one sequence holds while it computes ``slice_tokens`` tokens.

    It holds the blocks of positions ``n - window + 1 .. n + slice_tokens - 1``; that span
    of ``window + slice_tokens - 1`` positions touches at most this many blocks.
    """
    return -(-(window + slice_tokens + block_size - 2) // block_size)


def local_blocks_needed(window: int, block_size: int, max_seqs: int,
                        max_batched_tokens: int) -> int:
    """Most local blocks ``max_seqs`` sequences can hold at once when one step computes
    at most ``max_batched_tokens`` tokens: the sum of `local_blocks_per_seq` over
    slices whose lengths add up to the step's budget."""
    return (max_seqs * (window + 2 * block_size - 3) + max_batched_tokens) // block_size


class NoFreeBlocksError(RuntimeError):
    """An allocation was attempted without checking `can_allocate`/`can_append`."""


@dataclass(frozen=True)
class BlockUsage:
    total: int
    #: Referenced by at least one live block table.
    used: int
    #: Unreferenced but holding reusable prefix KV (reclaimable on demand).
    cached: int
    #: Unreferenced and empty.
    free: int

    @property
    def utilization(self) -> float:
        return self.used / self.total if self.total else 0.0


class BlockPool(Generic[_K]):
    """One set of physical blocks: reference counts, the free list, and the prefix cache
    (``key -> block``) whose unreferenced blocks wait in an LRU until reclaimed."""

    def __init__(self, num_blocks: int) -> None:
        self.num_blocks = num_blocks
        self.refs = [0] * num_blocks
        self.free: deque[int] = deque(range(num_blocks))
        self.evictable: OrderedDict[int, None] = OrderedDict()
        self.cache: dict[_K, int] = {}
        self.key_of: dict[int, _K] = {}
        # The identity of a registered block's content, handed out once, never reused.
        self.content_id: dict[int, int] = {}
        self._next_content_id = ROOT_CONTENT + 1

    @property
    def num_free(self) -> int:
        return len(self.free) + len(self.evictable)

    def usage(self) -> BlockUsage:
        free, cached = len(self.free), len(self.evictable)
        return BlockUsage(self.num_blocks, self.num_blocks - free - cached, cached, free)

    def states(self) -> str:
        states = ["u" if refs else "f" for refs in self.refs]
        for block in self.evictable:
            states[block] = "c"
        return "".join(states)

    def take(self) -> int:
        """A fresh block with one reference: a free one, else the LRU cached one."""
        if self.free:
            b = self.free.popleft()
        else:
            b, _ = self.evictable.popitem(last=False)
            del self.cache[self.key_of.pop(b)]
            del self.content_id[b]
        self.refs[b] = 1
        return b

    def ref(self, block: int) -> None:
        """One more reference to a block that may be parked in the LRU."""
        if self.refs[block] == 0:
            del self.evictable[block]
        self.refs[block] += 1

    def release(self, block: int, *, reclaim_first: bool = False) -> None:
        """Drop a reference; an unreferenced cached block joins the LRU as its most
        recent entry, or with ``reclaim_first`` as the next one to be reclaimed."""
        self.refs[block] -= 1
        if self.refs[block] == 0:
            if block in self.key_of:
                self.evictable[block] = None
                if reclaim_first:
                    self.evictable.move_to_end(block, last=False)
            else:
                self.free.append(block)

    def register(self, block: int, key: _K) -> int:
        """Cache ``block`` under ``key`` unless another block holds it; the content id of
        the block that does."""
        canonical = self.cache.get(key)
        if canonical is None:
            canonical = block
            self.cache[key] = block
            self.key_of[block] = key
            self.content_id[block] = self._next_content_id
            self._next_content_id += 1
        return self.content_id[canonical]

    def cost(self, hits: Iterable[int], fresh: int) -> int:
        """Unreferenced blocks that reusing ``hits`` and taking ``fresh`` new ones uses."""
        return max(0, fresh) + sum(1 for b in hits if self.refs[b] == 0)

    def check(self, tables: Iterable[Iterable[int]]) -> None:
        counts = [0] * self.num_blocks
        for table in tables:
            for b in table:
                counts[b] += 1
        assert counts == self.refs, "ref counts differ from table membership"
        unref = set(self.free) | set(self.evictable)
        assert len(unref) == len(self.free) + len(self.evictable), "block listed twice"
        assert all(self.refs[b] == 0 for b in unref), "free block is referenced"
        assert all(self.refs[b] > 0 or b in unref for b in range(self.num_blocks)), (
            "unreferenced block leaked"
        )
        assert all(b in self.key_of for b in self.evictable), "evictable without key"
        assert {b: k for k, b in self.cache.items()} == self.key_of, "cache maps differ"
        assert self.content_id.keys() == self.key_of.keys(), "content ids differ"
