"""Small in-process memos for heavy frames worked out from a dataset's content.

A report notebook asks several steps for the same derived frame (the store panel for both the saturation
and the cannibalization step; the same selection's contributor counts three times): a `FrameMemo` keeps
the last few so the work is done once per process. Keys start with `Dataset.content_key()` -- the
content fingerprint plus the `subset` calls that made the dataset, never an object id or a path -- and a
caller that cannot vouch for its data (key None) always recomputes. Each memo holds at most `entries`
frames and `max_bytes` of them (a frame larger than that is returned but not kept), least recently used
first out.

A remembered frame is handed out as is to every caller: it must be treated as immutable (polars frames
are, short of the in-place methods such as `insert_column` or `extend`; `clone()` first to use those).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TypeVar

import polars as pl

T = TypeVar("T")
_ALL: list[FrameMemo] = []


class FrameMemo:
    """A bounded least-recently-used map from a hashable key to a computed value (typically a polars
    DataFrame, sized with `estimated_size`)."""

    def __init__(self, name: str, entries: int = 4, max_bytes: int = 256 << 20) -> None:
        self.name, self.entries, self.max_bytes = name, entries, max_bytes
        self._items: OrderedDict[Hashable, tuple[object, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0
        _ALL.append(self)

    def get(self, key: Hashable | None, compute: Callable[[], T]) -> T:
        """The value remembered under `key`, else `compute()` (remembered when it fits). A None key
        always computes and remembers nothing."""
        if key is None:
            return compute()
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return hit[0]  # type: ignore[return-value]
            self.misses += 1
        value = compute()  # outside the lock: a slow computation never blocks other keys
        size = value.estimated_size() if isinstance(value, pl.DataFrame) else 0
        if size <= self.max_bytes:
            with self._lock:
                self._items[key] = (value, size)
                self._items.move_to_end(key)
                while len(self._items) > self.entries or self.nbytes() > self.max_bytes:
                    self._items.popitem(last=False)
        return value

    def nbytes(self) -> int:
        return sum(size for _, size in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.hits = self.misses = 0


def clear_all() -> None:
    """Forget everything every memo holds (tests; or to free memory)."""
    for memo in _ALL:
        memo.clear()
