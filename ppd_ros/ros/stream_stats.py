"""Per-camera counters (every input is published or dropped by reason) and a per-class log throttle."""
from __future__ import annotations

import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class StatsSnapshot:
    """A consistent copy of one camera's counters."""

    received: int
    published: int
    dropped: dict[str, int]
    in_flight: int
    input_rate_hz: float
    output_rate_hz: float
    last_stamp_age_s: float  # node clock - stamp of the last published frame (NaN before the first)
    warnings: dict[str, int]
    starts: dict[str, int] = field(default_factory=dict)  # "warm", "cold", "restart_<reason>", "dit_evals"
    last_start: str = ""  # "warm", "cold" or "cold: <reason>" of the last published frame

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())


@dataclass
class StreamStats:
    """Thread-safe counters of one camera; rates over a sliding window of recent events."""

    window_s: float = 5.0
    received: int = 0
    published: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    warnings: dict[str, int] = field(default_factory=dict)
    last_stamp_age_s: float = float("nan")
    starts: dict[str, int] = field(default_factory=dict)
    last_start: str = ""
    _in_times: deque = field(default_factory=lambda: deque(maxlen=512))
    _out_times: deque = field(default_factory=lambda: deque(maxlen=512))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def on_received(self) -> None:
        with self._lock:
            self.received += 1
            self._in_times.append(time.monotonic())

    def on_published(self, stamp_age_s: float) -> None:
        with self._lock:
            self.published += 1
            self.last_stamp_age_s = stamp_age_s
            self._out_times.append(time.monotonic())

    def on_dropped(self, reason: str, n: int = 1) -> None:
        with self._lock:
            self.dropped[reason] = self.dropped.get(reason, 0) + n

    def on_start(self, warm: bool, continuity: str, dit_evals: int) -> None:
        """How a published frame's sampling started (warm from the previous frame, or cold and why)."""
        with self._lock:
            key = "warm" if warm else "cold"
            self.starts[key] = self.starts.get(key, 0) + 1
            if continuity:
                self.starts[f"restart_{continuity}"] = self.starts.get(f"restart_{continuity}", 0) + 1
            self.starts["dit_evals"] = self.starts.get("dit_evals", 0) + int(dit_evals)
            self.last_start = key + (f": {continuity}" if continuity else "")

    def on_warning(self, kind: str) -> None:
        """A frame that still got published but with a caveat (e.g. mismatched camera_info)."""
        with self._lock:
            self.warnings[kind] = self.warnings.get(kind, 0) + 1

    def _rate(self, times: deque, now: float) -> float:
        recent = [t for t in times if now - t <= self.window_s]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-6)

    def snapshot(self) -> StatsSnapshot:
        now = time.monotonic()
        with self._lock:
            done = self.published + sum(self.dropped.values())
            return StatsSnapshot(self.received, self.published, dict(self.dropped), self.received - done,
                                 self._rate(self._in_times, now), self._rate(self._out_times, now),
                                 self.last_stamp_age_s, dict(self.warnings), dict(self.starts), self.last_start)


class ThrottledLog:
    """Log each class of problem at most once per ``period`` seconds; count what was suppressed."""

    def __init__(self, emit: Callable[[str, str], None], period: float) -> None:
        self._emit = emit  # (level, text) -> None; level is 'warn' or 'error'
        self._period = period
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._once: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, key: str, text: str, level: str = "warn") -> bool:
        """Log ``text`` under class ``key`` unless logged within the period; True if emitted."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._period:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False
            self._last[key] = now
            n = self._suppressed.pop(key, 0)
        self._emit(level, f"[{key}] {text}" + (f" ({n} more suppressed)" if n else ""))
        return True

    def once(self, key: str, text: str, level: str = "warn") -> bool:
        """Log ``text`` the first time ``key`` is seen, never again."""
        with self._lock:
            if key in self._once:
                return False
            self._once.add(key)
        self._emit(level, text)
        return True


_VARIABLE = re.compile(r"'[^']*'|\"[^\"]*\"|\([^)]*\)|\[[^\]]*\]|[-+]?\d+(\.\d+)?(e[-+]?\d+)?")


def error_class(exc: BaseException) -> str:
    """A bounded log-throttle key for an exception: its type plus its message with the values
    (numbers, quoted strings) masked, so '0x0 image' and 'short data' are different classes but
    8000x8000 and 9000x9000 (or random encoding names) are the same one."""
    text = _VARIABLE.sub("#", str(exc))
    return f"{type(exc).__name__}: {text[:60]}"


def start_note(result: object) -> str:
    """How a frame's sampling started: 'warm', 'cold' or 'cold: <why the stream restarted>', + DiT evaluations."""
    warm, why, evals = getattr(result, "warm", False), getattr(result, "continuity", ""), getattr(result, "dit_evals", 0)
    note = "warm" if warm else ("cold: " + why if why else "cold")
    return note + (f" ({evals} DiT evals)" if evals else "")


_START = re.compile(r"(?:^|; )(warm|cold)(?:: (\w+))?(?: \((\d+) DiT evals\))?$")


def parse_start_note(message: str) -> tuple[bool, str, int] | None:
    """(warm, continuity, dit_evals) from a status message ending in :func:`start_note`; None if absent."""
    m = _START.search(message or "")
    return None if m is None else (m.group(1) == "warm", m.group(2) or "", int(m.group(3) or 0))
