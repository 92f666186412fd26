"""The inference worker on its own (no DDS): windowed pipelines publish late and are flushed at stop,
failures are counted and the stream restarts, cameras share one thread, every frame is accounted."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from ppd_ros.errors import InputError
from ppd_ros.ros.factory import Models
from ppd_ros.ros.stream_stats import StreamStats, ThrottledLog, error_class
from ppd_ros.ros.worker import Frame, InferenceWorker, Output

from .node_support import wait_for


@dataclass
class Result:
    depth: np.ndarray
    depth_model: np.ndarray
    index: int
    stamp: object


class WindowPipeline:
    """A stand-in with PPVD's exact-mode surface: results come a window at a time; flush pads."""

    def __init__(self, window: int = 3, fail_on: int = -1) -> None:
        self.window, self.fail_on = window, fail_on

    def new_stream(self, seed=None):
        return {"held": [], "n": 0}

    def push(self, state, frame, stamp=None):
        if frame.shape[0] == 1:
            raise InputError("frame is 1 pixel high")
        state["n"] += 1
        if state["n"] == self.fail_on:
            raise RuntimeError("model blew up")
        state["held"].append((frame, stamp))
        return self.flush(state) if len(state["held"]) == self.window else []

    def flush(self, state):
        out = [Result(f[..., 0].astype(np.float32), f[..., 0].astype(np.float32), i, s)
               for i, (f, s) in enumerate(state["held"])]
        state["held"] = []
        return out


def make_worker(pipe, cameras=("a",), wanted=lambda cam: True, max_age_s=0.0, log_period=60.0, **kw):
    published: list[Output] = []
    logs: list[str] = []
    lock = threading.Lock()

    def publish(out: Output) -> None:
        with lock:
            published.append(out)

    worker = InferenceWorker(Models(pipe, None, "fake"), list(cameras), publish, wanted, time.time_ns, max_age_s,
                             ThrottledLog(lambda level, text: logs.append(text), log_period), **kw)
    return worker, published, logs


def frame(cam: int, h: int = 4, stamp_ns: int | None = None) -> Frame:
    return Frame(cam, np.full((h, 5, 3), 7, np.uint8), header=None,
                 stamp_ns=time.time_ns() if stamp_ns is None else stamp_ns)


def feed(worker: InferenceWorker, cam: int, h: int = 4) -> None:
    """Submit one frame and wait until the worker took it (so none is superseded)."""
    worker.received(cam)
    worker.submit(cam, frame(cam, h))
    assert wait_for(lambda: not worker.streams[cam].mailbox.pending, 5)
    time.sleep(0.02)


def test_windowed_results_publish_late_and_flush_at_stop():
    worker, published, _ = make_worker(WindowPipeline(window=3))
    worker.start()
    for _ in range(4):
        feed(worker, 0)
    assert wait_for(lambda: len(published) == 3, 5)  # one full window
    assert worker.streams[0].stats.snapshot().in_flight == 1  # the 4th waits in the open window
    worker.stop()  # deactivate: the open window is flushed and published
    snap = worker.streams[0].stats.snapshot()
    assert len(published) == 4 and snap.published == 4 and snap.in_flight == 0 and snap.dropped_total == 0
    assert [o.stream_index for o in published] == [0, 1, 2, 3]


def test_failures_are_counted_and_the_stream_restarts():
    worker, published, logs = make_worker(WindowPipeline(window=2, fail_on=3))
    worker.start()
    for h in (4, 4, 4, 1, 4, 4):  # 3rd push raises (held frames lost), 4th is a bad frame
        feed(worker, 0, h)
    assert wait_for(lambda: worker.streams[0].stats.snapshot().in_flight == 0, 5)
    worker.stop()
    snap = worker.streams[0].stats.snapshot()
    assert snap.dropped == {"inference_error": 1, "bad_input": 1}, snap
    assert snap.published == 4 and snap.published + snap.dropped_total == snap.received == 6
    assert any("RuntimeError: model blew up" in t for t in logs)


def test_two_cameras_one_thread_round_robin_and_superseded_counted():
    worker, published, _ = make_worker(WindowPipeline(window=1), cameras=("a", "b"))
    for _ in range(3):  # not started yet: the one-slot mailbox keeps only the newest per camera
        for cam in (0, 1):
            worker.received(cam)
            worker.submit(cam, frame(cam))
    worker.start()
    assert wait_for(lambda: len(published) == 2, 5)
    worker.stop()
    assert sorted(o.frame.camera for o in published) == [0, 1]
    for s in worker.streams:
        snap = s.stats.snapshot()
        assert snap.dropped == {"superseded": 2} and snap.published == 1 and snap.in_flight == 0


def test_no_subscribers_means_no_inference():
    worker, published, _ = make_worker(WindowPipeline(window=1), wanted=lambda cam: False)
    worker.start()
    feed(worker, 0)
    worker.stop()
    assert not published and worker.streams[0].stats.snapshot().dropped == {"no_subscribers": 1}


def test_stats_and_throttle():
    s = StreamStats()
    for _ in range(3):
        s.on_received()
    s.on_published(0.1)
    s.on_dropped("stale", 2)
    snap = s.snapshot()
    assert snap.in_flight == 0 and snap.dropped_total == 2 and snap.last_stamp_age_s == 0.1
    lines: list[str] = []
    log = ThrottledLog(lambda level, text: lines.append(text), 3600.0)
    assert log("k", "first") and not log("k", "second") and log("other", "x")
    assert log.once("o", "once") and not log.once("o", "again")
    assert lines == ["[k] first", "[other] x", "once"]
    # values are masked so one class stays one class
    assert error_class(InputError("image 8000x8000 needs 100 bytes")) == \
        error_class(InputError("image 9000x10 needs 7 bytes"))
    assert error_class(InputError("image is 0x0")) != error_class(InputError("step 5 is smaller than 12"))
