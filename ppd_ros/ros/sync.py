"""Approximate-time pairing of images with camera_info by stamp: bounded, counted, restartable.

The node uses ``message_filters.ApproximateTimeSynchronizer`` when it is importable (a real ROS
install, ``HAVE_MESSAGE_FILTERS``); this pure-Python pairer is the tested fallback and needs no ROS.

Rule: each topic's stamps increase. An image is decided once a camera_info with a stamp at or after
it has arrived (no later one can be closer): it is paired with the closest camera_info within
``slop_s``, or dropped as ``no_match``. Both queues hold at most ``queue_size`` items; what falls
out is counted (``image_overflow``, ``info_overflow``). A stamp going backwards by more than
``reset_after_s`` (bag loop, simulator restart) empties both queues (``time_jump``) and starts
over; a smaller step back is dropped (``out_of_order``), an equal image stamp as ``duplicate``.
"""
from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

from ..errors import ConfigError

try:  # noqa: SIM105 - only a capability flag for the node
    import message_filters  # noqa: F401
    HAVE_MESSAGE_FILTERS = True
except ImportError:
    HAVE_MESSAGE_FILTERS = False

I = TypeVar("I")  # noqa: E741 - image item
C = TypeVar("C")  # camera_info item

DROP_REASONS = ("no_match", "image_overflow", "info_overflow", "info_unused", "out_of_order",
                "duplicate", "time_jump")


class ApproxTimePairer(Generic[I, C]):
    """Pairs (image, camera_info) by stamp within ``slop_s``; see the module docstring.

    ``add_image(stamp_ns, item)`` and ``add_info(stamp_ns, item)`` return the pairs decided by
    that call, oldest first, as ``[(image_item, info_item | None), ...]``; ``info_item`` is None
    only with ``require_info=False`` while no camera_info has been received since the last reset
    (a camera without calibration: images pass straight through). Thread-safe.
    """

    def __init__(self, slop_s: float, queue_size: int, *, require_info: bool = True,
                 reset_after_s: float = 1.0) -> None:
        if not slop_s >= 0.0:
            raise ConfigError(f"slop_s must be >= 0 seconds, got {slop_s!r}")
        if int(queue_size) < 1:
            raise ConfigError(f"queue_size must be >= 1, got {queue_size!r}")
        if not reset_after_s >= 0.0:
            raise ConfigError(f"reset_after_s must be >= 0 seconds, got {reset_after_s!r}")
        self.slop_ns = int(round(slop_s * 1e9))
        self.queue_size = int(queue_size)
        self.require_info = require_info
        self.reset_after_ns = int(round(reset_after_s * 1e9))
        self._lock = threading.Lock()
        self._images: deque[tuple[int, I]] = deque()
        self._infos: deque[tuple[int, C]] = deque()
        self._last_image: int | None = None
        self._last_info: int | None = None
        self._dropped = dict.fromkeys(DROP_REASONS, 0)
        self._paired = 0
        self._resets = 0

    # -- public API -------------------------------------------------------------------------
    def add_image(self, stamp_ns: int, item: I) -> list[tuple[I, C | None]]:
        """Offer an image; return the pairs this decides (possibly empty)."""
        stamp_ns = int(stamp_ns)
        with self._lock:
            if not self._accept(stamp_ns, self._last_image, is_image=True):
                return []
            self._last_image = stamp_ns
            if not self.require_info and self._last_info is None:
                self._paired += 1
                return [(item, None)]
            self._images.append((stamp_ns, item))
            if len(self._images) > self.queue_size:
                self._images.popleft()
                self._dropped["image_overflow"] += 1
            return self._decide()

    def add_info(self, stamp_ns: int, item: C) -> list[tuple[I, C | None]]:
        """Offer a camera_info; return the pairs this decides (possibly empty)."""
        stamp_ns = int(stamp_ns)
        with self._lock:
            if not self._accept(stamp_ns, self._last_info, is_image=False):
                return []
            self._last_info = stamp_ns
            self._infos.append((stamp_ns, item))
            if len(self._infos) > self.queue_size:
                self._infos.popleft()
                self._dropped["info_overflow"] += 1
            return self._decide()

    def reset(self) -> None:
        """Forget everything pending (counted as ``time_jump``) and the last stamps."""
        with self._lock:
            self._reset()

    @property
    def counters(self) -> dict[str, int]:
        """Snapshot: drop counts by reason plus ``paired``, ``resets``, ``pending_images``, ``pending_infos``."""
        with self._lock:
            return {**self._dropped, "paired": self._paired, "resets": self._resets,
                    "pending_images": len(self._images), "pending_infos": len(self._infos)}

    @property
    def dropped(self) -> dict[str, int]:
        """Snapshot of the image/info drop counts by reason."""
        with self._lock:
            return dict(self._dropped)

    # -- internals (called with the lock held) ---------------------------------------------
    def _reset(self) -> None:
        self._dropped["time_jump"] += len(self._images) + len(self._infos)
        self._images.clear()
        self._infos.clear()
        self._last_image = self._last_info = None
        self._resets += 1

    def _accept(self, stamp_ns: int, last: int | None, *, is_image: bool) -> bool:
        if last is None or stamp_ns > last:
            return True
        if stamp_ns == last:
            if is_image:
                self._dropped["duplicate"] += 1
                return False
            return False  # the same camera_info again (e.g. republished): nothing new
        if last - stamp_ns > self.reset_after_ns:
            self._reset()
            return True
        self._dropped["out_of_order"] += 1
        return False

    def _decide(self) -> list[tuple[I, C | None]]:
        out: list[tuple[I, C | None]] = []
        while self._images and self._infos and self._infos[-1][0] >= self._images[0][0]:
            stamp, image = self._images.popleft()
            best = min(range(len(self._infos)), key=lambda k: abs(self._infos[k][0] - stamp))
            if abs(self._infos[best][0] - stamp) <= self.slop_ns:
                # infos before the match can only be farther from every later image
                self._dropped["info_unused"] += best
                for _ in range(best):
                    self._infos.popleft()
                out.append((image, self._infos.popleft()[1]))
                self._paired += 1
            else:
                self._dropped["no_match"] += 1
        self._prune_infos()
        return out

    def _prune_infos(self) -> None:
        """Drop camera_infos older than every image that can still come (minus slop)."""
        oldest = self._images[0][0] if self._images else self._last_image
        if oldest is None:
            return
        while self._infos and self._infos[0][0] < oldest - self.slop_ns:
            self._infos.popleft()
            self._dropped["info_unused"] += 1
