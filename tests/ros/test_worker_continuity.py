"""The worker restarts streams on what only the node sees (stamps in ns, camera_info, reset requests);
warm starts never cross a restart, exact windows are flushed first, and every frame stays accounted."""
from __future__ import annotations

import time
from dataclasses import replace
from types import SimpleNamespace

import numpy as np

from ppd_ros.ros.factory import Models
from ppd_ros.ros.stream_stats import ThrottledLog, parse_start_note, start_note
from ppd_ros.ros.worker import Frame, InferenceWorker, camera_key

from ..test_stable_streams import image_pipe
from .node_support import wait_for
from .test_worker import WindowPipeline

S = 1_000_000_000


def worker_for(pipe, max_gap_s: float = 2.0):
    published, logs = [], []
    w = InferenceWorker(Models(pipe, None, "fake"), ["a"], published.append, lambda cam: True, time.time_ns, 0.0,
                        ThrottledLog(lambda level, text: logs.append(text), 0.0), max_gap_s=max_gap_s)
    return w, published, logs


def send(w: InferenceWorker, stamp_ns: int, rgb: np.ndarray, intrinsics=None) -> None:
    w.received(0)
    w.submit(0, Frame(0, rgb, header=None, stamp_ns=stamp_ns, intrinsics=intrinsics))
    assert wait_for(lambda: not w.streams[0].mailbox.pending, 10)
    time.sleep(0.02)


def calib(fx: float) -> SimpleNamespace:
    return SimpleNamespace(width=64, height=48, K=np.array([[fx, 0, 32], [0, fx, 24], [0, 0, 1.0]]), P=None, D=None)


def test_node_side_triggers_cold_start_and_warm_never_crosses_them():
    base = image_pipe()
    pipe = type(base)(base.dit, base.encoder, replace(base.cfg, warm_start=True))
    w, published, logs = worker_for(pipe)
    rgb = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    w.start()
    t = 100 * S
    plan = [(t, None), (t + S // 10, None), (t + S // 20, None),  # stamp goes backwards
            (t + 9 * S, None),  # a gap of many seconds
            (t + 9 * S + S // 10, calib(50.0)), (t + 9 * S + 2 * S // 10, calib(50.0)),
            (t + 9 * S + 3 * S // 10, calib(60.0))]  # new calibration
    for stamp, k in plan:
        send(w, stamp, rgb, k)
    w.request_reset(0)  # e.g. from a service, while nothing is in flight: applies to the next frame
    send(w, t + 10 * S, rgb)
    send(w, t + 10 * S + S // 10, rgb)
    assert wait_for(lambda: len(published) == len(plan) + 2, 30)
    w.stop()
    got = [(o.result.continuity, o.result.warm) for o in published]
    assert got == [("first_frame", False), ("", True), ("time_jump", False), ("gap", False), ("camera_info", False),
                   ("", True), ("camera_info", False), ("request", False), ("", True)]
    assert [o.frame.stamp_ns for o in published] == [s for s, _ in plan] + [t + 10 * S, t + 10 * S + S // 10]
    snap = w.streams[0].stats.snapshot()
    assert snap.published == snap.received == len(published) and snap.dropped_total == 0
    assert snap.starts["restart_camera_info"] == 2 and snap.starts["warm"] == 3 and snap.last_start == "warm"
    assert any("stream restarted cold (gap)" in line for line in logs)
    assert start_note(published[2].result) == "cold: time_jump (4 DiT evals)"
    assert parse_start_note("bad camera_info; " + start_note(published[1].result)) == (True, "", 4 - 1)
    assert parse_start_note("no note here") is None


def test_exact_windows_are_flushed_before_a_restart_and_every_frame_is_accounted():
    w, published, _ = worker_for(WindowPipeline(window=3))
    w.start()
    rgb = np.full((4, 5, 3), 7, np.uint8)
    for stamp in (10 * S, 11 * S, 5 * S, 6 * S):  # two frames wait in the window when the stamp jumps back
        send(w, stamp, rgb)
    w.stop()
    snap = w.streams[0].stats.snapshot()
    assert [o.frame.stamp_ns for o in published] == [10 * S, 11 * S, 5 * S, 6 * S]
    assert snap.published == snap.received == 4 and snap.dropped_total == 0 and snap.in_flight == 0


def test_camera_key_tracks_calibration_only():
    assert camera_key(None) is None
    assert camera_key(calib(50.0)) == camera_key(calib(50.0)) != camera_key(calib(50.5))


class SlowStream:
    """A pipeline whose push takes a while and whose state reports resets like the real ones."""

    class State:
        def __init__(self) -> None:
            self.pending, self.resets = "first_frame", []

        def reset(self, reason: str = "request") -> None:
            self.pending = reason
            self.resets.append(reason)

    def __init__(self) -> None:
        import threading
        self.started = threading.Event()

    def new_stream(self, seed=None):
        return self.State()

    def push(self, state, frame, stamp=None):
        self.started.set()
        time.sleep(0.3)
        why, state.pending = state.pending, ""
        return [SimpleNamespace(depth=frame[..., 0], depth_model=frame[..., 0], index=0, stamp=stamp,
                                continuity=why, warm=not why, dit_evals=1)]

    def flush(self, state):
        return []


def test_reset_requested_while_a_frame_is_in_flight_applies_to_the_next_frame():
    pipe = SlowStream()
    w, published, _ = worker_for(pipe)
    w.start()
    rgb = np.full((4, 5, 3), 7, np.uint8)
    send(w, 10 * S, rgb)
    assert wait_for(lambda: len(published) == 1, 5)
    pipe.started.clear()
    w.received(0)
    w.submit(0, Frame(0, rgb, header=None, stamp_ns=11 * S))
    assert pipe.started.wait(5)
    w.request_reset(0)  # the frame in flight finishes as it started
    assert wait_for(lambda: len(published) == 2, 5)
    send(w, 12 * S, rgb)
    assert wait_for(lambda: len(published) == 3, 5)
    w.stop()
    assert [o.result.continuity for o in published] == ["first_frame", "", "request"]
    snap = w.streams[0].stats.snapshot()
    assert snap.published == snap.received == 3 and snap.dropped_total == 0
