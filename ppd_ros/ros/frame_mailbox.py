"""One-slot "latest frame" hand-off between a subscription callback and the inference worker.

The callback ``put``s and never blocks; a newer frame replaces an unread older one (counted as
``superseded``), so memory is bounded to one frame per camera whatever the input rate.
"""
from __future__ import annotations

import threading
import time
from typing import Generic, TypeVar

T = TypeVar("T")


class FrameMailbox(Generic[T]):
    """Thread-safe single slot. ``put`` returns the item it replaced (or None); ``get`` waits.

    Counters (``counters`` property, a snapshot dict): ``put`` items offered, ``taken`` items
    returned by ``get``, ``superseded`` items replaced before being read, ``closed`` items
    refused because the mailbox was closed.
    After ``close()``, ``put`` drops its item (counted as ``closed``) and returns None; ``get``
    still returns a frame left in the slot (so the owner can count it), then None at once.
    ``notify`` (optional) is set on every ``put`` and on ``close``: one worker can wait on one
    Event for several mailboxes.
    """

    def __init__(self, notify: threading.Event | None = None) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._item: T | None = None
        self._full = False
        self._closed = False
        self._notify = notify
        self._counts = {"put": 0, "taken": 0, "superseded": 0, "closed": 0}

    def put(self, item: T) -> T | None:
        """Store ``item``; return the unread item it replaced (counted as superseded) or None."""
        with self._cond:
            self._counts["put"] += 1
            if self._closed:
                self._counts["closed"] += 1
                return None
            old = self._item if self._full else None
            if self._full:
                self._counts["superseded"] += 1
            self._item, self._full = item, True
            self._cond.notify()
        if self._notify is not None:
            self._notify.set()
        return old

    def get(self, timeout: float | None = None) -> T | None:
        """Take the frame, waiting up to ``timeout`` s (None = forever, 0 = poll); None if none."""
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        with self._cond:
            while not self._full and not self._closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            if not self._full:
                return None
            item, self._item, self._full = self._item, None, False
            self._counts["taken"] += 1
            return item

    def close(self) -> None:
        """Refuse further frames and wake every waiting ``get``."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._notify is not None:
            self._notify.set()

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._closed

    @property
    def pending(self) -> bool:
        """True while an unread frame is in the slot."""
        with self._cond:
            return self._full

    def __len__(self) -> int:
        return int(self.pending)

    @property
    def counters(self) -> dict[str, int]:
        """Snapshot of the counters (see the class docstring)."""
        with self._cond:
            return dict(self._counts)
