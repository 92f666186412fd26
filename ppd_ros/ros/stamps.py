"""Which input frames are stale, and whether a camera's stamps agree with the node clock.

Default rule (``max_stream_lag``): a frame is stale when, as inference would start, its camera has
already delivered a frame stamped more than ``max_stream_lag`` later; it is behind its own stream.
Only the camera's stamps are compared with each other, so a bag replayed without ``/clock``, a
camera stamping with its own clock and a clock jump all still get depth (depth_image_proc and its
peers never drop on header age either; the one-slot mailbox already keeps only the newest frame).

Opt-in rule (``max_frame_age`` > 0): a frame whose stamp is older than this on the node clock is
stale, for live systems whose camera stamps follow the node clock.

Stamps that differ from the node clock by more than ``CLOCK_DISAGREEMENT_S`` are reported once per
camera, and again when the difference changes a lot (a clock jump, another bag).
"""
from __future__ import annotations

import threading
import time

CLOCK_DISAGREEMENT_S = 5.0  # |node clock - stamp| beyond this is reported (transport latency is far below)
NS = 1_000_000_000


def describe_offset(offset_ns: int) -> str:
    """'3.2 years behind', '1.0 h ahead', '12.3 s behind' the node clock."""
    s = abs(offset_ns) / NS
    for unit, size in (("years", 365.25 * 86400), ("days", 86400), ("h", 3600), ("min", 60)):
        if s >= 0.95 * size:  # 59.9 min reads as 1.0 h
            text = f"{s / size:.1f} {unit}"
            break
    else:
        text = f"{s:.1f} s"
    return f"{text} {'behind' if offset_ns > 0 else 'ahead of'}"


def iso(stamp_ns: int) -> str:
    """A stamp as UTC ISO 8601 to the second (negative / huge stamps as plain seconds)."""
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp_ns // NS))
    except (OverflowError, OSError, ValueError):
        return f"{stamp_ns / NS:.3f} s"


class StampWatch:
    """One camera's newest input stamp (the stream head) and its offset from the node clock.

    ``arrived`` is called from the subscription callback for every input frame, ``stale`` from the
    inference thread; both are thread-safe.
    """

    def __init__(self, max_lag_s: float = 1.0, max_age_s: float = 0.0,
                 disagree_s: float = CLOCK_DISAGREEMENT_S) -> None:
        self.max_lag_ns, self.max_age_ns = int(max_lag_s * NS), int(max_age_s * NS)
        self.disagree_ns = int(disagree_s * NS)
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget the stream (a new activation may bring another bag or clock)."""
        with self._lock:
            self.head_ns: int | None = None
            self.offset_ns: int | None = None  # node clock - stamp of the latest arrival
            self._reported_ns: int | None = None

    def arrived(self, stamp_ns: int, now_ns: int) -> int | None:
        """Note an input stamp; return the node-clock offset (ns) when it should be reported, else None.

        The head only moves forward, except that a jump back by more than ``max_stream_lag`` (bag
        loop, clock reset) restarts it, so a stream that went back in time is never judged stale.
        """
        with self._lock:
            head = self.head_ns
            if head is None or stamp_ns > head or stamp_ns < head - self.max_lag_ns:
                self.head_ns = stamp_ns
            off = self.offset_ns = now_ns - stamp_ns
            if abs(off) <= self.disagree_ns:
                if self._reported_ns is not None and abs(off) <= self.disagree_ns // 2:
                    self._reported_ns = None  # agree again: report the next disagreement anew
                return None
            last = self._reported_ns
            if last is None or abs(off - last) > max(self.disagree_ns, abs(last) // 10):
                return off
            return None

    def reported(self, offset_ns: int) -> None:
        """The offset returned by ``arrived`` was logged: stay quiet until it changes a lot."""
        with self._lock:
            self._reported_ns = offset_ns

    def stale(self, stamp_ns: int, now_ns: int) -> str | None:
        """Why a frame about to be inferred is stale, or None when it is not."""
        with self._lock:
            head = self.head_ns
        if self.max_lag_ns and head is not None and head - stamp_ns > self.max_lag_ns:
            return (f"frame stamped {(head - stamp_ns) / NS:.2f} s before the newest frame of its camera "
                    f"(max_stream_lag {self.max_lag_ns / NS:g} s)")
        if self.max_age_ns and now_ns - stamp_ns > self.max_age_ns:
            return (f"frame stamped {(now_ns - stamp_ns) / NS:.2f} s ago on the node clock "
                    f"(max_frame_age {self.max_age_ns / NS:g} s)")
        return None

    def rule(self) -> str:
        """The stale rule in force, for diagnostics."""
        lag = f"{self.max_lag_ns / NS:g} s behind its camera's newest frame" if self.max_lag_ns else "off"
        age = f"{self.max_age_ns / NS:g} s old on the node clock" if self.max_age_ns else "off"
        return f"stream lag: {lag}; node-clock age: {age}"


def disagreement_line(camera: str, stamp_ns: int, now_ns: int) -> str:
    """The one log line for stamps that disagree with the node clock (frames are still processed)."""
    off = now_ns - stamp_ns
    return (f"camera '{camera}': input stamps are {describe_offset(off)} the node clock (stamp {iso(stamp_ns)}, "
            f"node clock {iso(now_ns)}): a bag replayed without /clock, a camera on its own clock or a clock "
            "jump. Frames are still processed and outputs keep the input stamps; max_frame_age > 0 would "
            "drop frames by node-clock age (for cameras stamped on the node clock)")
