"""The transparency log's Merkle tree kept as C2SP tlog-tiles: appending batches, the root, and RFC 9162
inclusion and consistency proofs read from the tiles.

A hash tile at level L holds up to 256 consecutive hashes of the tree's nodes of height 8·L (level 0:
the leaf hashes; level 1: the roots of each full level-0 tile; …). Only complete subtrees are stored,
so a stored hash never changes: a partial tile only grows, and a partial tile of width W is the first
W hashes of the full one. Any other node is hashed from at most 128 stored hashes of one tile.

Appending needs only the right edge: the partial tile of each level (at most one per level). A batch
of n leaves costs about 2n hashes, whatever the tree's size.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bauhinia.sdk.transparency import HASH_SIZE, TILE_HEIGHT, TILE_WIDTH, CompactRange, node_hash, tile_path

__all__ = ["TILE_HEIGHT", "TILE_WIDTH", "tile_path"]  # the paths live in the SDK: monitors build them too
TILE_BYTES = TILE_WIDTH * HASH_SIZE
EMPTY_ROOT = hashlib.sha256(b"").digest()
MAX_LEVEL = 63 // TILE_HEIGHT

TileReader = Callable[[int, int], Awaitable[bytes]]  # (level, tile index) -> the stored hashes
_PATH = re.compile(
    r"^tile/(?:(?P<level>[0-9]+)|entries)/(?P<index>(?:x[0-9]{3}/)*[0-9]{3})(?:\.p/(?P<width>[0-9]{1,3}))?$"
)


class TilePathError(ValueError):
    """A tile path that does not follow tlog-tiles."""


# --- paths ------------------------------------------------------------------------------------------


def parse_tile_path(path: str) -> tuple[int | None, int, int]:
    """(level or None for an entry bundle, tile index, width) of a tlog-tiles path."""
    match = _PATH.fullmatch(path)
    if match is None:
        raise TilePathError(f"{path!r} is not a tlog-tiles path")
    level_text, width_text = match["level"], match["width"]
    level = None
    if level_text is not None:
        level = int(level_text)
        if level > MAX_LEVEL or (len(level_text) > 1 and level_text.startswith("0")):
            raise TilePathError(f"no tile level {level_text}")
    index = int("".join(group.lstrip("x") for group in match["index"].split("/")))
    width = TILE_WIDTH if width_text is None else int(width_text)
    if width_text is not None and (not 1 <= width < TILE_WIDTH or width_text.startswith("0")):
        raise TilePathError("a partial tile's width is 1 to 255")
    if tile_path(level, index, width) != path:  # one spelling per tile: no leading zeros, no empty groups
        raise TilePathError(f"{path!r} is not the canonical path of its tile")
    return level, index, width


# --- appending --------------------------------------------------------------------------------------


@dataclass
class Appended:
    size: int
    root: bytes
    tiles: dict[tuple[int, int], bytes]  # (level, index) -> the tile's hashes after the batch
    edges: dict[int, bytes]  # level -> its partial tile, for the next batch


def append_leaves(size: int, edges: dict[int, bytes], leaves: list[bytes]) -> Appended:
    """Add leaf hashes to a tree of ``size`` entries whose right edge is ``edges``."""
    edges = dict(edges)
    tiles: dict[tuple[int, int], bytes] = {}
    level, count, new = 0, size, b"".join(leaves)
    while new:
        current = edges.get(level, b"")
        if len(current) != (count % TILE_WIDTH) * HASH_SIZE:
            raise ValueError(f"the level-{level} edge tile does not fit a tree of {size} entries")
        combined = current + new
        first_tile = count // TILE_WIDTH
        parents = []
        for offset in range(0, len(combined), TILE_BYTES):
            chunk = combined[offset : offset + TILE_BYTES]
            tiles[(level, first_tile + offset // TILE_BYTES)] = chunk
            if len(chunk) == TILE_BYTES:
                parents.append(perfect_root(chunk))
        edges[level] = combined[len(combined) // TILE_BYTES * TILE_BYTES :]
        level, count, new = level + 1, count // TILE_WIDTH, b"".join(parents)
    new_size = size + len(leaves)
    return Appended(new_size, root_from_edges(new_size, edges), tiles, edges)


def perfect_root(hashes: bytes) -> bytes:
    """The root of a perfect subtree from its 2^k consecutive node hashes."""
    nodes = [hashes[i : i + HASH_SIZE] for i in range(0, len(hashes), HASH_SIZE)]
    while len(nodes) > 1:
        nodes = [node_hash(nodes[i], nodes[i + 1]) for i in range(0, len(nodes), 2)]
    return nodes[0]


def root_from_edges(size: int, edges: dict[int, bytes]) -> bytes:
    """The tree's root from its right edge alone: every subtree of its binary decomposition lies in the
    partial tile of the level its height belongs to."""
    subtrees = []
    for height in range(size.bit_length() - 1, -1, -1):
        if size >> height & 1:
            level, rest = divmod(height, TILE_HEIGHT)
            position = ((size >> (height + 1)) << 1) << rest  # first stored hash, at its level
            edge = edges[level]
            offset = (position % TILE_WIDTH) * HASH_SIZE
            subtrees.append(perfect_root(edge[offset : offset + (HASH_SIZE << rest)]))
    return CompactRange(size, subtrees).root()  # the same fold a monitor does over its right edge


def edge_tiles(size: int) -> list[tuple[int, int, int]]:
    """(level, tile index, width) of every partial tile a tree of ``size`` entries has."""
    found = []
    level, count = 0, size
    while count:
        if count % TILE_WIDTH:
            found.append((level, count // TILE_WIDTH, count % TILE_WIDTH))
        level, count = level + 1, count // TILE_WIDTH
    return found


# --- reading proofs from tiles ------------------------------------------------------------------------


class TreeReader:
    """Hashes, roots and proofs of the tree at any size the stored tiles cover."""

    def __init__(self, read: TileReader) -> None:
        self._read = read
        self._tiles: dict[tuple[int, int], bytes] = {}

    async def _stored(self, level: int, position: int, count: int) -> bytes:
        """``count`` consecutive stored hashes at ``level`` from ``position`` (within one tile)."""
        key = (level, position // TILE_WIDTH)
        tile = self._tiles.get(key)
        offset = (position % TILE_WIDTH) * HASH_SIZE
        if tile is None or len(tile) < offset + count * HASH_SIZE:
            tile = self._tiles[key] = await self._read(*key)
        hashes = tile[offset : offset + count * HASH_SIZE]
        if len(hashes) != count * HASH_SIZE:
            raise LookupError(f"the log's level-{level} tile {key[1]} is shorter than the tree needs")
        return hashes

    async def node(self, height: int, index: int) -> bytes:
        """The hash of the perfect subtree of ``2**height`` leaves starting at leaf ``index << height``."""
        level, rest = divmod(height, TILE_HEIGHT)
        return perfect_root(await self._stored(level, index << rest, 1 << rest))

    async def subtree(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for a subtree RFC 9162's recursion visits (start aligned to the split)."""
        width = end - start
        if width & (width - 1) == 0 and start % width == 0:
            return await self.node(width.bit_length() - 1, start // width)
        split = _largest_power_below(width)
        return node_hash(await self.subtree(start, start + split), await self.subtree(start + split, end))

    async def root(self, size: int) -> bytes:
        return EMPTY_ROOT if size == 0 else await self.subtree(0, size)

    async def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """RFC 9162 §2.1.3.1 PATH(index, D[0:size])."""
        if not 0 <= index < size:
            raise ValueError(f"entry {index} is not in a tree of {size} entries")
        proof: list[bytes] = []
        start, end = 0, size
        while end - start > 1:
            split = _largest_power_below(end - start)
            if index < start + split:
                proof.append(await self.subtree(start + split, end))
                end = start + split
            else:
                proof.append(await self.subtree(start, start + split))
                start += split
        return list(reversed(proof))

    async def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        """RFC 9162 §2.1.4.1 PROOF(size1, D[0:size2])."""
        if not 0 < size1 <= size2:
            raise ValueError(f"no consistency proof from {size1} to {size2} entries")
        proof: list[bytes] = []
        start, end, m, whole = 0, size2, size1, True
        while m != end - start:
            split = _largest_power_below(end - start)
            if m <= split:
                proof.append(await self.subtree(start + split, end))
                end = start + split
            else:
                proof.append(await self.subtree(start, start + split))
                start, m, whole = start + split, m - split, False
        if not whole:
            proof.append(await self.subtree(start, end))
        return list(reversed(proof))


def _largest_power_below(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)
