"""Paged KV memory: fixed-size physical blocks shared by reference count.

Why blocks: a sequence's KV grows one token at a time and its final length is unknown,
so contiguous allocation would either waste memory or need copies. A block table maps a
sequence's logical blocks to physical ones; sharing is then just two tables naming the
same block (forked ``n > 1`` choices, a common prompt prefix), and writing into a shared
block first copies it (copy-on-write).

Prefix caching: once a full block's KV is computed it is registered under the key
``(identity of the parent block's content, tokens of the block)``. The KV of a token
depends on everything before it, so the key must pin the whole prefix; chaining exact
identities instead of hashes does that with no collision possible (a hashed chain would
let a tenant who finds a collision read another tenant's KV). An identity is a number
handed out once at registration and never reused, so entries whose parent was evicted
simply become unreachable and age out of the LRU. When its last user frees it, the block is not
wiped but parked in an LRU of evictable blocks; a later sequence with the same prefix
takes it back instead of recomputing, and only when fresh memory runs out is the least
recently used cached block reclaimed. "Free" therefore means free-or-evictable.

The manager reads sequences (tokens, ``num_computed_tokens``) but never changes them:
the scheduler owns sequence state.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

from chorusline.runtime.sequence import TokenSequence

__all__ = ["BlockManager", "BlockUsage", "NoFreeBlocksError"]

_CacheKey = tuple[int, tuple[int, ...]]  # (parent content id, tokens of the block)
_ROOT = 0  # the parent content id of a sequence's first block


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


class BlockManager:
    def __init__(
        self,
        num_blocks: int,
        block_size: int,
        enable_prefix_caching: bool = True,
    ) -> None:
        if num_blocks < 1 or block_size < 1:
            raise ValueError("num_blocks and block_size must be >= 1")
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.enable_prefix_caching = enable_prefix_caching
        self._refs = [0] * num_blocks
        self._free: deque[int] = deque(range(num_blocks))
        self._evictable: OrderedDict[int, None] = OrderedDict()
        self._cache: dict[_CacheKey, int] = {}
        self._key_of: dict[int, _CacheKey] = {}
        self._content_id: dict[int, int] = {}
        self._next_content_id = _ROOT + 1
        self._tables: dict[int, list[int]] = {}
        # Content ids of each sequence's leading computed full blocks (the canonical
        # cached block for that prefix, which may be another block than its own).
        self._chains: dict[int, list[int]] = {}

    # -- queries -------------------------------------------------------------------

    @property
    def num_free_blocks(self) -> int:
        return len(self._free) + len(self._evictable)

    def usage(self) -> BlockUsage:
        free, cached = len(self._free), len(self._evictable)
        return BlockUsage(self.num_blocks, self.num_blocks - free - cached, cached, free)

    def block_map(self) -> dict[str, Any]:
        """One letter per physical block (``u`` in use, ``c`` cached prefix, ``f`` free)
        and the reference counts: the console's block map, JSON-ready and compact (a
        string of 10,000 letters rather than 10,000 objects)."""
        states = ["u" if refs else "f" for refs in self._refs]
        for block in self._evictable:
            states[block] = "c"
        return {"block_size": self.block_size, "states": "".join(states),
                "refs": list(self._refs)}

    def has_table(self, seq_id: int) -> bool:
        return seq_id in self._tables

    def block_table(self, seq_id: int) -> list[int]:
        return list(self._tables[seq_id])

    def ref_count(self, block: int) -> int:
        return self._refs[block]

    def slot_mapping(self, seq_id: int, start: int, num_tokens: int) -> list[int]:
        """Flat KV slots of positions ``[start, start + num_tokens)``."""
        table, bs = self._tables[seq_id], self.block_size
        return [table[p // bs] * bs + p % bs for p in range(start, start + num_tokens)]

    def num_cached_tokens(self, seq: TokenSequence) -> int:
        """Leading tokens of ``seq`` whose KV the prefix cache can supply right now.

        At most ``num_tokens - 1``, block-aligned: the last token is always computed
        because its logits are needed, and it then lands in a private block.
        """
        return len(self._lookup(seq)) * self.block_size

    # -- allocation ----------------------------------------------------------------

    def can_allocate(self, seq: TokenSequence, num_tokens: int) -> bool:
        """Whether `allocate(seq, num_tokens)` would succeed."""
        hits = self._lookup(seq)
        revived = sum(1 for b in hits if self._refs[b] == 0)
        fresh = max(0, self._blocks_for(num_tokens) - len(hits))
        return fresh + revived <= self.num_free_blocks

    def allocate(self, seq: TokenSequence, num_tokens: int) -> int:
        """Create the table of a sequence that holds no blocks, covering ``num_tokens``.

        Cached prefix blocks are reused; returns how many leading tokens they cover, so
        the scheduler can start computing after them. ``num_tokens`` must be at least
        that many (pass the tokens its first slice will reach).
        """
        if seq.seq_id in self._tables:
            raise ValueError(f"sequence {seq.seq_id} already has blocks")
        if not self.can_allocate(seq, num_tokens):
            raise NoFreeBlocksError(f"cannot allocate {num_tokens} tokens")
        hits = self._lookup(seq)
        for b in hits:
            if self._refs[b] == 0:
                del self._evictable[b]
            self._refs[b] += 1
        table = list(hits)
        table.extend(self._take_free() for _ in range(self._blocks_for(num_tokens) - len(hits)))
        self._tables[seq.seq_id] = table
        self._chains[seq.seq_id] = [self._content_id[b] for b in hits]
        return len(hits) * self.block_size

    def can_append(self, seq: TokenSequence, num_tokens: int) -> bool:
        """Whether `append_slots(seq, num_tokens)` would succeed."""
        return self._append_cost(seq, num_tokens) <= self.num_free_blocks

    def append_slots(self, seq: TokenSequence, num_tokens: int) -> list[tuple[int, int]]:
        """Make room for positions ``[num_computed, num_computed + num_tokens)``.

        Shared blocks in that range are copied first; the returned ``(src, dst)`` pairs
        are the copies the runner must perform before writing this step's KV.
        """
        if self._append_cost(seq, num_tokens) > self.num_free_blocks:
            raise NoFreeBlocksError(f"cannot append {num_tokens} tokens")
        table, bs = self._tables[seq.seq_id], self.block_size
        copies: list[tuple[int, int]] = []
        for i in range(seq.num_computed_tokens // bs, len(table)):
            src = table[i]
            if self._refs[src] > 1:
                dst = self._take_free()
                self._refs[src] -= 1
                table[i] = dst
                copies.append((src, dst))
        need = self._blocks_for(seq.num_computed_tokens + num_tokens) - len(table)
        table.extend(self._take_free() for _ in range(need))
        return copies

    def fork(self, parent: TokenSequence, child: TokenSequence) -> None:
        """Give ``child`` the parent's blocks by reference (no KV is copied yet)."""
        if child.seq_id in self._tables:
            raise ValueError(f"sequence {child.seq_id} already has blocks")
        table = self._tables[parent.seq_id]
        for b in table:
            self._refs[b] += 1
        self._tables[child.seq_id] = list(table)
        self._chains[child.seq_id] = list(self._chains[parent.seq_id])

    def mark_computed(self, seq: TokenSequence) -> None:
        """Register newly completed full blocks in the prefix cache.

        Called after a step advanced ``num_computed_tokens``: only blocks whose KV is
        really in memory may be handed to other sequences.
        """
        if not self.enable_prefix_caching or seq.seq_id not in self._tables:
            return
        table, chain, bs = self._tables[seq.seq_id], self._chains[seq.seq_id], self.block_size
        full = min(seq.num_computed_tokens // bs, len(table))
        for i in range(len(chain), full):
            key = (chain[-1] if chain else _ROOT, tuple(seq.token_ids_slice(i * bs, (i + 1) * bs)))
            canonical = self._cache.get(key)
            if canonical is None:
                canonical = table[i]
                self._cache[key] = canonical
                self._key_of[canonical] = key
                self._content_id[canonical] = self._next_content_id
                self._next_content_id += 1
            chain.append(self._content_id[canonical])

    def free(self, seq: TokenSequence | int) -> None:
        """Drop a sequence's table; a no-op if it holds none (already freed)."""
        seq_id = seq if isinstance(seq, int) else seq.seq_id
        table = self._tables.pop(seq_id, None)
        self._chains.pop(seq_id, None)
        if table is None:
            return
        # Tail first: deeper blocks are the least likely to be shared again, so they
        # become the oldest entries of the LRU and are reclaimed first.
        for b in reversed(table):
            self._refs[b] -= 1
            if self._refs[b] == 0:
                if b in self._key_of:
                    self._evictable[b] = None
                else:
                    self._free.append(b)

    def check_invariants(self) -> None:
        """Raise AssertionError if the bookkeeping is inconsistent (for tests)."""
        counts = [0] * self.num_blocks
        for table in self._tables.values():
            for b in table:
                counts[b] += 1
        assert counts == self._refs, "ref counts differ from table membership"
        unref = set(self._free) | set(self._evictable)
        assert len(unref) == len(self._free) + len(self._evictable), "block listed twice"
        assert all(self._refs[b] == 0 for b in unref), "free block is referenced"
        assert all(self._refs[b] > 0 or b in unref for b in range(self.num_blocks)), (
            "unreferenced block leaked"
        )
        assert all(b in self._key_of for b in self._evictable), "evictable without key"
        assert {b: k for k, b in self._cache.items()} == self._key_of, "cache maps differ"
        assert self._content_id.keys() == self._key_of.keys(), "content ids differ"

    # -- internals -----------------------------------------------------------------

    def _blocks_for(self, num_tokens: int) -> int:
        return -(-num_tokens // self.block_size)

    def _append_cost(self, seq: TokenSequence, num_tokens: int) -> int:
        table, bs = self._tables[seq.seq_id], self.block_size
        shared = sum(
            1 for i in range(seq.num_computed_tokens // bs, len(table))
            if self._refs[table[i]] > 1
        )
        grow = self._blocks_for(seq.num_computed_tokens + num_tokens) - len(table)
        return shared + max(0, grow)

    def _take_free(self) -> int:
        if self._free:
            b = self._free.popleft()
        else:
            b, _ = self._evictable.popitem(last=False)
            del self._cache[self._key_of.pop(b)]
            del self._content_id[b]
        self._refs[b] = 1
        return b

    def _lookup(self, seq: TokenSequence) -> list[int]:
        """Cached blocks matching the sequence's leading full blocks (last token kept)."""
        if not self.enable_prefix_caching:
            return []
        bs, parent, hits = self.block_size, _ROOT, []
        for i in range((seq.num_tokens - 1) // bs):
            b = self._cache.get((parent, tuple(seq.token_ids_slice(i * bs, (i + 1) * bs))))
            if b is None:
                break
            hits.append(b)
            parent = self._content_id[b]
        return hits
