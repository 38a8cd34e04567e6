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

Sliding-window layers (Gemma 3) get a second, *local* pool (``sliding_window`` and
``num_local_blocks``): a query at ``q`` of such a layer sees keys ``q - window < k <= q``
only, so once a sequence has computed ``n`` positions no future query of it can see a
block whose last position is ``<= n - window``. Each sequence has a second table, indexed
by the same logical block numbers as its global one, whose leading entries are handed
back to the local pool as soon as they fall out of the window (`mark_computed`, i.e.
after the step that computed the positions, so a chunk still sees the keys its earliest
queries need) and then name the null block (``local_null_block``). Allocation, growth,
copy-on-write, forks and freeing act on both tables, and a sequence runs only if both
pools can supply its blocks. The local pool has its own prefix cache: a local block is
registered under the identity of the global block at the same logical position (which
pins the same prefix), and a prefix hit of ``h`` blocks is only taken if the local
blocks its first query still sees (those of the last ``window`` positions before it)
are cached too; otherwise the longest shorter hit that has them is used. A hit can never
name KV the local pool no longer holds. Blocks that leave the window of a running
sequence join the local LRU at its reclaim-first end: the hit that matters most in chat
is the next turn, which needs the window at the end of the finished conversation, and a
steady stream of mid-sequence blocks must not push those out.

The manager reads sequences (tokens, ``num_computed_tokens``) but never changes them:
the scheduler owns sequence state.
"""

from __future__ import annotations

from typing import Any

from chorusline.runtime.block_pool import (
    ROOT_CONTENT,
    BlockPool,
    BlockUsage,
    NoFreeBlocksError,
    dead_blocks,
    local_blocks_needed,
    local_blocks_per_seq,
)
from chorusline.runtime.sequence import TokenSequence

__all__ = [
    "BlockManager",
    "BlockUsage",
    "NoFreeBlocksError",
    "dead_blocks",
    "local_blocks_needed",
    "local_blocks_per_seq",
]

_CacheKey = tuple[int, tuple[int, ...]]  # (parent content id, tokens of the block)
_ROOT = ROOT_CONTENT


class BlockManager:
    def __init__(
        self,
        num_blocks: int,
        block_size: int,
        enable_prefix_caching: bool = True,
        *,
        sliding_window: int | None = None,
        num_local_blocks: int | None = None,
    ) -> None:
        """``sliding_window`` and ``num_local_blocks`` together add the local pool (see
        the module docstring); it must hold at least one window of one sequence."""
        if num_blocks < 1 or block_size < 1:
            raise ValueError("num_blocks and block_size must be >= 1")
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.enable_prefix_caching = enable_prefix_caching
        self._pool: BlockPool[_CacheKey] = BlockPool(num_blocks)
        self._tables: dict[int, list[int]] = {}
        # Content ids of each sequence's leading computed full blocks (the canonical
        # cached block for that prefix, which may be another block than its own).
        self._chains: dict[int, list[int]] = {}
        self.sliding_window = sliding_window
        self.num_local_blocks = 0
        self._local: BlockPool[int] | None = None
        self._local_tables: dict[int, list[int]] = {}
        # How many leading entries of each local table are released (the null block).
        self._local_start: dict[int, int] = {}
        if (sliding_window is None) != (num_local_blocks is None):
            raise ValueError("sliding_window and num_local_blocks go together")
        if sliding_window is not None and num_local_blocks is not None:
            if sliding_window < 1:
                raise ValueError("sliding_window must be >= 1")
            least = local_blocks_per_seq(sliding_window, block_size, 1)
            if num_local_blocks < least:
                raise ValueError(f"a local pool of {num_local_blocks} blocks cannot hold one "
                                 f"{sliding_window}-token window (needs {least})")
            self.num_local_blocks = num_local_blocks
            self._local = BlockPool(num_local_blocks)

    # -- queries -------------------------------------------------------------------

    @property
    def num_free_blocks(self) -> int:
        return self._pool.num_free

    @property
    def has_local_pool(self) -> bool:
        return self._local is not None

    @property
    def num_free_local_blocks(self) -> int:
        return 0 if self._local is None else self._local.num_free

    @property
    def local_null_block(self) -> int:
        """What released local table entries name (the KV cache's local null block)."""
        return self.num_local_blocks

    @property
    def max_slice_tokens(self) -> int | None:
        """Most tokens one sequence may compute in a step so that it alone always fits
        the local pool (None: no local pool, no bound)."""
        if self._local is None or self.sliding_window is None:
            return None
        return (self.num_local_blocks - 1) * self.block_size - self.sliding_window + 2

    def usage(self) -> BlockUsage:
        """The global pool (every layer's, without a local pool)."""
        return self._pool.usage()

    def local_usage(self) -> BlockUsage | None:
        return None if self._local is None else self._local.usage()

    def block_map(self) -> dict[str, Any]:
        """One letter per physical block (``u`` in use, ``c`` cached prefix, ``f`` free)
        and the reference counts: the console's block map, JSON-ready and compact (a
        string of 10,000 letters rather than 10,000 objects). With a local pool its
        blocks follow the global ones, and ``pools`` gives each pool's share, in order."""
        out: dict[str, Any] = {"block_size": self.block_size, "states": self._pool.states(),
                               "refs": list(self._pool.refs)}
        if self._local is not None:
            out["states"] += self._local.states()
            out["refs"] += self._local.refs
            out["pools"] = [{"name": "global", "blocks": self.num_blocks},
                            {"name": "local", "blocks": self.num_local_blocks}]
        return out

    def has_table(self, seq_id: int) -> bool:
        return seq_id in self._tables

    def block_table(self, seq_id: int) -> list[int]:
        return list(self._tables[seq_id])

    def local_block_table(self, seq_id: int) -> list[int]:
        """The local pool's table: same logical indices, released entries null."""
        return list(self._local_tables[seq_id])

    def ref_count(self, block: int) -> int:
        return self._pool.refs[block]

    def local_ref_count(self, block: int) -> int:
        assert self._local is not None
        return self._local.refs[block]

    def slot_mapping(self, seq_id: int, start: int, num_tokens: int) -> list[int]:
        """Flat KV slots of positions ``[start, start + num_tokens)``."""
        return _slots(self._tables[seq_id], self.block_size, start, num_tokens)

    def local_slot_mapping(self, seq_id: int, start: int, num_tokens: int) -> list[int]:
        """The same positions' slots in the local pool."""
        return _slots(self._local_tables[seq_id], self.block_size, start, num_tokens)

    def num_cached_tokens(self, seq: TokenSequence) -> int:
        """Leading tokens of ``seq`` whose KV the prefix cache can supply right now.

        At most ``num_tokens - 1``, block-aligned: the last token is always computed
        because its logits are needed, and it then lands in a private block.
        """
        return len(self._lookup(seq)[0]) * self.block_size

    # -- allocation ----------------------------------------------------------------

    def can_allocate(self, seq: TokenSequence, num_tokens: int) -> bool:
        """Whether `allocate(seq, num_tokens)` would succeed."""
        hits, local_hits = self._lookup(seq)
        fresh = self._blocks_for(num_tokens) - len(hits)
        if self._pool.cost(hits, fresh) > self._pool.num_free:
            return False
        return self._local is None or self._local.cost(local_hits, fresh) <= self._local.num_free

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
        hits, local_hits = self._lookup(seq)
        fresh = self._blocks_for(num_tokens) - len(hits)
        pool = self._pool
        for b in hits:
            pool.ref(b)
        self._tables[seq.seq_id] = hits + [pool.take() for _ in range(fresh)]
        self._chains[seq.seq_id] = [pool.content_id[b] for b in hits]
        local = self._local
        if local is not None:
            released = len(hits) - len(local_hits)  # out of the window of the first query
            for b in local_hits:
                local.ref(b)
            self._local_tables[seq.seq_id] = ([self.local_null_block] * released + local_hits
                                              + [local.take() for _ in range(fresh)])
            self._local_start[seq.seq_id] = released
        return len(hits) * self.block_size

    def can_append(self, seq: TokenSequence, num_tokens: int) -> bool:
        """Whether `append_slots(seq, num_tokens)` would succeed."""
        if self._append_cost(self._pool, self._tables, seq, num_tokens) > self._pool.num_free:
            return False
        local = self._local
        return local is None or (self._append_cost(local, self._local_tables, seq, num_tokens)
                                 <= local.num_free)

    def append_slots(self, seq: TokenSequence, num_tokens: int,
                     local_copies: list[tuple[int, int]] | None = None) -> list[tuple[int, int]]:
        """Make room for positions ``[num_computed, num_computed + num_tokens)``.

        Shared blocks in that range are copied first; the returned ``(src, dst)`` pairs
        are the copies the runner must perform before writing this step's KV. With a
        local pool its copies (local block ids) are appended to ``local_copies``, which
        must then be given.
        """
        if self._local is not None and local_copies is None:
            raise ValueError("a manager with a local pool needs a local_copies list")
        if not self.can_append(seq, num_tokens):
            raise NoFreeBlocksError(f"cannot append {num_tokens} tokens")
        copies = self._grow(self._pool, self._tables[seq.seq_id], seq, num_tokens)
        if self._local is not None and local_copies is not None:
            local_copies.extend(
                self._grow(self._local, self._local_tables[seq.seq_id], seq, num_tokens))
        return copies

    def fork(self, parent: TokenSequence, child: TokenSequence) -> None:
        """Give ``child`` the parent's blocks by reference (no KV is copied yet)."""
        if child.seq_id in self._tables:
            raise ValueError(f"sequence {child.seq_id} already has blocks")
        table = self._tables[parent.seq_id]
        for b in table:
            self._pool.ref(b)
        self._tables[child.seq_id] = list(table)
        self._chains[child.seq_id] = list(self._chains[parent.seq_id])
        if self._local is not None:
            start = self._local_start[parent.seq_id]
            local_table = self._local_tables[parent.seq_id]
            for b in local_table[start:]:
                self._local.ref(b)
            self._local_tables[child.seq_id] = list(local_table)
            self._local_start[child.seq_id] = start

    def mark_computed(self, seq: TokenSequence) -> None:
        """Book a step that advanced ``num_computed_tokens``.

        Registers newly completed full blocks in the prefix cache (only blocks whose KV
        is really in memory may be handed to other sequences), then gives the local
        pool back the blocks that fell out of the window: after the step, because that
        step's queries still needed them.
        """
        if seq.seq_id not in self._tables:
            return
        if self.enable_prefix_caching:
            self._register(seq)
        if self._local is not None and self.sliding_window is not None:
            local, table = self._local, self._local_tables[seq.seq_id]
            start = self._local_start[seq.seq_id]
            dead = min(dead_blocks(seq.num_computed_tokens, self.sliding_window,
                                   self.block_size), len(table))
            for i in range(start, dead):
                # A hit needs the window before its own end, which is rarely here in
                # the middle of a running sequence: reclaim these before the windows
                # that finished sequences leave (the next turn of a chat hits those).
                local.release(table[i], reclaim_first=True)
                table[i] = self.local_null_block
            self._local_start[seq.seq_id] = max(start, dead)

    def free(self, seq: TokenSequence | int) -> None:
        """Drop a sequence's tables; a no-op if it holds none (already freed)."""
        seq_id = seq if isinstance(seq, int) else seq.seq_id
        table = self._tables.pop(seq_id, None)
        self._chains.pop(seq_id, None)
        if table is None:
            return
        # Tail first: deeper blocks are the least likely to be shared again, so they
        # become the oldest entries of the LRU and are reclaimed first.
        for b in reversed(table):
            self._pool.release(b)
        local_table = self._local_tables.pop(seq_id, None)
        start = self._local_start.pop(seq_id, 0)
        if self._local is not None and local_table is not None:
            # Head first: a later hit on this prefix needs the window before its end.
            for b in local_table[start:]:
                self._local.release(b)

    def check_invariants(self) -> None:
        """Raise AssertionError if the bookkeeping is inconsistent (for tests)."""
        self._pool.check(self._tables.values())
        if self._local is None:
            return
        self._local.check(t[self._local_start[s]:] for s, t in self._local_tables.items())
        assert self._local_tables.keys() == self._tables.keys(), "tables without a twin"
        null = self.local_null_block
        for seq_id, table in self._local_tables.items():
            start = self._local_start[seq_id]
            assert len(table) == len(self._tables[seq_id]), "local table length differs"
            assert all(b == null for b in table[:start]), "released entry not null"
            assert null not in table[start:], "live entry null"

    # -- internals -----------------------------------------------------------------

    def _blocks_for(self, num_tokens: int) -> int:
        return -(-num_tokens // self.block_size)

    def _append_cost(self, pool: BlockPool[Any], tables: dict[int, list[int]],
                     seq: TokenSequence, num_tokens: int) -> int:
        table, bs = tables[seq.seq_id], self.block_size
        shared = sum(
            1 for i in range(seq.num_computed_tokens // bs, len(table))
            if pool.refs[table[i]] > 1
        )
        grow = self._blocks_for(seq.num_computed_tokens + num_tokens) - len(table)
        return shared + max(0, grow)

    def _grow(self, pool: BlockPool[Any], table: list[int], seq: TokenSequence,
              num_tokens: int) -> list[tuple[int, int]]:
        """Copy-on-write of the shared blocks at and after the cursor, then extend."""
        copies: list[tuple[int, int]] = []
        for i in range(seq.num_computed_tokens // self.block_size, len(table)):
            src = table[i]
            if pool.refs[src] > 1:
                dst = pool.take()
                pool.refs[src] -= 1
                table[i] = dst
                copies.append((src, dst))
        need = self._blocks_for(seq.num_computed_tokens + num_tokens) - len(table)
        table.extend(pool.take() for _ in range(need))
        return copies

    def _register(self, seq: TokenSequence) -> None:
        table, chain, bs = self._tables[seq.seq_id], self._chains[seq.seq_id], self.block_size
        first = len(chain)
        full = min(seq.num_computed_tokens // bs, len(table))
        for i in range(first, full):
            key = (chain[-1] if chain else _ROOT, tuple(seq.token_ids_slice(i * bs, (i + 1) * bs)))
            chain.append(self._pool.register(table[i], key))
        if self._local is not None:
            # Keyed by the global content id, which pins the same prefix. Every block
            # is registered before it can fall out of the window (same call, earlier).
            local_table = self._local_tables[seq.seq_id]
            for i in range(first, full):
                if local_table[i] != self.local_null_block:
                    self._local.register(local_table[i], chain[i])

    def _lookup(self, seq: TokenSequence) -> tuple[list[int], list[int]]:
        """Cached blocks matching the sequence's leading full blocks (last token kept),
        and with a local pool the cached local blocks of that hit's window."""
        if not self.enable_prefix_caching:
            return [], []
        bs, parent = self.block_size, _ROOT
        hits: list[int] = []
        ids: list[int] = []
        for i in range((seq.num_tokens - 1) // bs):
            b = self._pool.cache.get((parent, tuple(seq.token_ids_slice(i * bs, (i + 1) * bs))))
            if b is None:
                break
            hits.append(b)
            parent = self._pool.content_id[b]
            ids.append(parent)
        local, window = self._local, self.sliding_window
        if local is None or window is None or not hits:
            return hits, []
        # The longest hit whose first query's window (logical blocks dead..h-1) is
        # cached locally; runs[i]: how many consecutive cached local blocks end at i.
        found = [local.cache.get(cid) for cid in ids]
        runs: list[int] = []
        for b in found:
            runs.append(runs[-1] + 1 if runs and b is not None else int(b is not None))
        for h in range(len(hits), 0, -1):
            dead = dead_blocks(h * bs, window, bs)
            if runs[h - 1] >= h - dead:
                return hits[:h], [b for b in found[dead:h] if b is not None]
        return [], []


def _slots(table: list[int], bs: int, start: int, num_tokens: int) -> list[int]:
    return [table[p // bs] * bs + p % bs for p in range(start, start + num_tokens)]
