"""One inference thread per process serving several cameras with one model in memory.

Callbacks hand converted frames to ``InferenceWorker.submit`` (one-slot latest-frame mailbox per
camera; a replaced frame is counted as dropped 'superseded'). The thread takes frames round-robin
across cameras, drops stale ones (``stamps.StampWatch``: behind their own stream by default, by
node-clock age only when opted in) and frames nobody would see, runs the pipeline and the optional
metric stage with the camera's own stream state, and hands every result to ``publish``. Every
submitted frame ends up published or counted as dropped by reason.

Stream restarts the pipelines cannot see (their ``stamp`` is the opaque ``Frame``) are decided here from
nanosecond stamps and camera_info: a stamp going backwards ("time_jump"), a gap over ``max_gap_s``
("gap"), new calibration ("camera_info") and ``request_reset`` from any thread ("request", applied
before the camera's next frame, never to a frame in flight). Exact windows are flushed first.
"""
from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..errors import InputError, PPDError
from .factory import Models
from .frame_mailbox import FrameMailbox
from .stamps import StampWatch, disagreement_line
from .stream_stats import StreamStats, ThrottledLog, error_class


@dataclass
class Frame:
    """One converted input frame on its way to inference (also the pipeline's opaque stamp)."""

    camera: int
    rgb: np.ndarray  # (H, W, 3) uint8 RGB
    header: Any  # std_msgs/Header of the input image, published unchanged
    stamp_ns: int
    intrinsics: Any | None = None  # CameraIntrinsics at the image size, None when uncalibrated
    camera_info: Any | None = None  # the paired CameraInfo message (binning/ROI kept for the output)
    received_ns: int = 0  # node clock at arrival
    timings_ms: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # caveats of this frame, reported in its status


@dataclass
class Output:
    """A finished frame: the pipeline's DepthResult and, when available, the MetricResult."""

    frame: Frame
    result: Any  # DepthResult
    metric: Any | None  # MetricResult or None (relative only)
    stream_index: int
    timings_ms: dict[str, float]


@dataclass
class CameraStream:
    """Per-camera state: mailbox, pipeline and metric stream state, counters."""

    name: str
    mailbox: FrameMailbox
    stats: StreamStats = field(default_factory=StreamStats)
    stamps: StampWatch = field(default_factory=StampWatch)  # stream head, node-clock offset, stale rule
    state: Any = None
    metric_state: Any = None
    pending: int = 0  # frames pushed into a video pipeline whose results are not out yet
    produced: int = 0
    last_stamp_ns: int | None = None  # stamp of the last frame pushed (continuity checks)
    camera_key: Any = None  # calibration fingerprint of the last frame pushed
    reset_request: str = ""  # set by request_reset (any thread), applied before the next push


class InferenceWorker:
    """The inference thread: ``start()``, ``submit(camera, frame)``, ``stop()``."""

    def __init__(self, models: Models, cameras: list[str], publish: Callable[[Output], None],
                 wanted: Callable[[int], bool], now_ns: Callable[[], int], max_age_s: float,
                 log: ThrottledLog, seed: int = 0, max_lag_s: float = 1.0, max_gap_s: float = 0.0) -> None:
        self.models = models
        self._wake = threading.Event()  # set by every mailbox put: one wait for all cameras
        self.streams = [CameraStream(name, FrameMailbox(notify=self._wake), stamps=StampWatch(max_lag_s, max_age_s))
                        for name in cameras]
        self._publish, self._wanted, self._now_ns = publish, wanted, now_ns
        self._max_gap_ns = int(max_gap_s * 1e9)
        self._log = log
        self._seed = seed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reset_states()

    # --- control ---------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="ppd_inference", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0, flush: bool = True) -> None:
        """Finish the frame in progress, count what is left in the mailboxes, end the stream states."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        for cam in self.streams:
            left = cam.mailbox.get(timeout=0)
            if left is not None:
                cam.stats.on_dropped("shutdown")
            self._flush(cam, publish=flush)
            cam.stamps.reset()
        self._reset_states()

    def received(self, camera: int, stamp_ns: int | None = None, now_ns: int | None = None) -> None:
        """Count an input frame as it arrives (before conversion / pairing can drop it); its header
        stamp moves the camera's stream head and is compared with the node clock (``now_ns``)."""
        cam = self.streams[camera]
        cam.stats.on_received()
        if stamp_ns is None:
            return
        now = self._now_ns() if now_ns is None else now_ns
        offset = cam.stamps.arrived(stamp_ns, now)
        if offset is not None and self._log(f"stamps:{cam.name}", disagreement_line(cam.name, stamp_ns, now)):
            cam.stamps.reported(offset)

    def submit(self, camera: int, frame: Frame) -> None:
        """Hand over the newest frame (callback side; never blocks)."""
        cam = self.streams[camera]
        if cam.mailbox.put(frame) is not None:
            cam.stats.on_dropped("superseded")

    def request_reset(self, camera: int, reason: str = "request") -> None:
        """Restart the camera's stream (cold) at its next frame; safe from any thread."""
        self.streams[camera].reset_request = reason

    def drop(self, camera: int, reason: str, n: int = 1) -> None:
        """Count frames the callback side rejected before they reached the mailbox."""
        self.streams[camera].stats.on_dropped(reason, n)

    # --- thread ----------------------------------------------------------------------------
    def _reset_states(self) -> None:
        for i, cam in enumerate(self.streams):
            pipe, metric = self.models.pipeline, self.models.metric
            cam.state = pipe.new_stream(self._seed + i) if pipe is not None else None
            cam.metric_state = metric.new_state(self._seed + i) if metric is not None else None
            cam.pending = 0
            cam.last_stamp_ns = cam.camera_key = None
            cam.reset_request = ""

    def _continuity(self, cam: CameraStream, frame: Frame) -> str:
        """Why this frame must restart the camera's stream ("" = it continues it)."""
        reason, cam.reset_request = cam.reset_request, ""
        last, key = cam.last_stamp_ns, camera_key(frame.intrinsics)
        if not reason and last is not None:
            if frame.stamp_ns < last:
                reason = "time_jump"
            elif self._max_gap_ns and frame.stamp_ns - last > self._max_gap_ns:
                reason = "gap"
            elif key != cam.camera_key:
                reason = "camera_info"
        cam.last_stamp_ns, cam.camera_key = frame.stamp_ns, key
        return reason

    def _restart(self, cam: CameraStream, reason: str) -> None:
        """Cold-start the camera's stream; an exact-mode window in progress is flushed (published) first."""
        self._flush(cam, publish=True)
        reset = getattr(cam.state, "reset", None)
        if callable(reset):
            reset(reason)
        else:  # a pipeline whose state has no reset: a fresh stream
            cam.state = self.models.pipeline.new_stream(self._seed + self.streams.index(cam))
        self._log(f"restart:{cam.name}:{reason}", f"camera '{cam.name}': stream restarted cold ({reason})")

    def _run(self) -> None:
        next_cam = 0
        while not self._stop.is_set():
            self._wake.wait(0.1)
            self._wake.clear()
            n = len(self.streams)
            for k in range(n):  # round-robin: no camera starves another
                if self._stop.is_set():
                    break
                cam_i = (next_cam + k) % n
                frame = self.streams[cam_i].mailbox.get(timeout=0)
                if frame is not None:
                    self._process(self.streams[cam_i], frame)
                    next_cam = (cam_i + 1) % n
                    self._wake.set()  # look again: other cameras may have frames waiting

    def _process(self, cam: CameraStream, frame: Frame) -> None:
        why = cam.stamps.stale(frame.stamp_ns, self._now_ns())
        if why is not None:
            cam.stats.on_dropped("stale")
            self._log(f"stale:{cam.name}", f"camera '{cam.name}': {why}; dropped")
            return
        if not self._wanted(frame.camera):
            cam.stats.on_dropped("no_subscribers")
            return
        reason = self._continuity(cam, frame)
        if reason:
            self._restart(cam, reason)
        try:
            t0 = time.perf_counter()
            results = self.models.pipeline.push(cam.state, frame.rgb, stamp=frame)
            frame.timings_ms["pipeline"] = (time.perf_counter() - t0) * 1e3
            cam.pending += 1
        except InputError as exc:
            cam.stats.on_dropped("bad_input")
            self._log(error_class(exc), f"camera '{cam.name}': {exc}; frame dropped")
            return
        except Exception as exc:  # a failing model must not kill the thread: count, log, reset the stream
            self._on_pipeline_error(cam, exc)
            return
        self._emit(cam, results)

    def _emit(self, cam: CameraStream, results: list, publish: bool = True) -> None:
        for res in results:
            frame: Frame = res.stamp
            cam.pending -= 1
            if not publish:
                cam.stats.on_dropped("shutdown")
                continue
            try:
                t0 = time.perf_counter()
                metric = None
                if self.models.metric is not None:
                    metric = self.models.metric(cam.metric_state, res, frame.rgb, frame.intrinsics)
                timings = {**frame.timings_ms, **getattr(res, "timings_ms", {})}
                if metric is not None:
                    timings["metric"] = (time.perf_counter() - t0) * 1e3
                self._publish(Output(frame, res, metric, cam.produced, timings))
            except InputError as exc:
                cam.stats.on_dropped("bad_input")
                self._log(error_class(exc), f"camera '{cam.name}': {exc}; frame dropped")
                continue
            except Exception as exc:
                cam.stats.on_dropped("output_error")
                self._log("output_error", f"camera '{cam.name}': {type(exc).__name__}: {exc}", "error")
                continue
            cam.produced += 1
            cam.stats.on_published((self._now_ns() - frame.stamp_ns) / 1e9)
            cam.stats.on_start(bool(getattr(res, "warm", False)), str(getattr(res, "continuity", "")),
                               int(getattr(res, "dit_evals", 0)))

    def _flush(self, cam: CameraStream, publish: bool) -> None:
        if cam.state is None:
            return
        try:
            self._emit(cam, self.models.pipeline.flush(cam.state), publish)
        except Exception as exc:
            self._on_pipeline_error(cam, exc, current=0)
        if cam.pending > 0:  # frames a failing or ended stream never returned
            cam.stats.on_dropped("stream_reset", cam.pending)
            cam.pending = 0

    def _on_pipeline_error(self, cam: CameraStream, exc: Exception, current: int = 1) -> None:
        reason = "inference_error"
        cam.stats.on_dropped(reason, cam.pending + current)
        cam.pending = 0
        detail = "" if isinstance(exc, PPDError) else "\n" + traceback.format_exc(limit=3)
        self._log(reason, f"camera '{cam.name}': {type(exc).__name__}: {exc}{detail}", "error")
        idx = self.streams.index(cam)
        cam.state = self.models.pipeline.new_stream(self._seed + idx)


def camera_key(intrinsics: Any) -> tuple | None:
    """A comparable fingerprint of a frame's calibration (None when uncalibrated)."""
    if intrinsics is None:
        return None
    parts: list = [getattr(intrinsics, "width", None), getattr(intrinsics, "height", None)]
    for name in ("K", "P", "D"):
        v = getattr(intrinsics, name, None)
        parts.append(None if v is None else tuple(np.round(np.asarray(v, dtype=np.float64).ravel(), 6)))
    return tuple(parts)
