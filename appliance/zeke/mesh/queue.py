"""A bounded delivery queue per gateway, numbered by sequence.

Events stay queued until the gateway acknowledges them, so a gateway that drops and comes back
gets exactly what it missed (the handshake says what it already has). When the queue is full
the oldest event is dropped and counted: the newest state of the room matters most.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable


class DeliveryQueue:
    def __init__(self, maxlen: int):
        if maxlen < 1:
            raise ValueError("queue size must be at least 1")
        self.maxlen = maxlen
        self._items: deque[tuple[int, bytes]] = deque()
        self.dropped_oldest = 0
        self.acked = 0  # highest acknowledged sequence number
        self.pushed = 0

    def __len__(self) -> int:
        return len(self._items)

    def push(self, seq: int, line: bytes) -> None:
        if self._items and seq <= self._items[-1][0]:
            raise ValueError("sequence numbers must increase")
        if len(self._items) == self.maxlen:
            self._items.popleft()
            self.dropped_oldest += 1
        self._items.append((seq, line))
        self.pushed += 1

    def ack(self, seq: int) -> int:
        """Forget everything up to ``seq``; returns how many items that released."""
        released = 0
        while self._items and self._items[0][0] <= seq:
            self._items.popleft()
            released += 1
        self.acked = max(self.acked, seq)
        return released

    def after(self, seq: int) -> list[tuple[int, bytes]]:
        """Queued items with a sequence number above ``seq``, oldest first."""
        return [item for item in self._items if item[0] > seq]

    @property
    def last_seq(self) -> int:
        return self._items[-1][0] if self._items else 0


class SequenceAllocator:
    """Hands out increasing sequence numbers, reserving them in blocks from durable storage.

    ``reserve(count, floor)`` must return the first of ``count`` numbers that are all at least
    ``floor`` and were never handed out before (``PairingStore.reserve``).
    """

    def __init__(self, reserve: Callable[[int, int], int], block: int = 1024):
        self._reserve = reserve
        self._block = block
        self._next = 0
        self._limit = 0

    def next(self) -> int:
        if self._next >= self._limit:
            self._next = self._reserve(self._block, 1)
            self._limit = self._next + self._block
        seq = self._next
        self._next += 1
        return seq

    def skip_past(self, seq: int) -> None:
        """Never hand out ``seq`` or anything below it (a peer has already seen it)."""
        if self._next > seq:
            return
        if seq + 1 < self._limit:
            self._next = seq + 1
            return
        self._next = self._reserve(self._block, seq + 1)
        self._limit = self._next + self._block
