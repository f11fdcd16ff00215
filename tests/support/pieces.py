"""Bodies cut the way the muxer cuts a segment (one piece per frame), for storage tests."""

from __future__ import annotations

import itertools
import random


def irregular_pieces(body: bytes, seed: int) -> list[bytes]:
    """`body` cut at random places, as the muxer's pieces (one per frame) are."""
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(body)), min(len(body) - 1, 40))) if body else []
    return [body[a:b] for a, b in itertools.pairwise([0, *cuts, len(body)])]
