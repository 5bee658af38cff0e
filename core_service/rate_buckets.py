"""Token buckets per name (an address, a key), in bounded memory.

Used where the core must slow one source down without a database round trip:
wrong API keys from one address, refused requests reported for one key. The
map keeps the most recently used names up to a cap; a name pushed out starts
again with a full bucket, which errs towards letting a request through.

State lives in the core process. There is one core per database, and every
facade worker's calls pass through it, so one core-wide count is the count.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

# The reason a request is refused with when an address sent too many missing
# or wrong API keys: a throttle of its own, not a key's limit.
WRONG_KEY_THROTTLED = "wrong_key_throttled"


@dataclass
class _Bucket:
    tokens: float
    at: float


class TokenBuckets:
    """``capacity`` tokens per name, refilled at ``per_second``; at most ``max_names`` kept."""

    def __init__(
        self,
        capacity: int,
        per_second: float,
        max_names: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = capacity
        self.per_second = per_second
        self.max_names = max_names
        self._clock = clock
        self._buckets: collections.OrderedDict[str, _Bucket] = collections.OrderedDict()

    def take(self, name: str) -> int:
        """Takes a token for ``name``: 0 when there was one, else the whole
        seconds until there will be (nothing is taken then)."""
        now = self._clock()
        bucket = self._buckets.pop(name, None)
        if bucket is None:
            bucket = _Bucket(float(self.capacity), now)
        bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.at) * self.per_second)
        bucket.at = now
        self._buckets[name] = bucket
        while len(self._buckets) > self.max_names:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0
        return max(1, math.ceil((1 - bucket.tokens) / self.per_second))

    def __len__(self) -> int:
        return len(self._buckets)
