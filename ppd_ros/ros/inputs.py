"""One camera's inputs: sensor-data subscriptions, message -> array conversion, stamp pairing with
camera_info, hand-off to the worker. Bad messages are counted and logged (throttled) here, at the
boundary; nothing in this module blocks or queues without bound.
"""
from __future__ import annotations

from typing import Any

from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from ..errors import PPDError
from . import conversions as conv
from .params import NodeSettings, topic
from .stream_stats import ThrottledLog, error_class
from .sync import ApproxTimePairer
from .worker import Frame, InferenceWorker


def header_stamp_ns(header: Any) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


class CameraInput:
    """Subscriptions of camera ``index`` (namespace ``ns``); created on activate, destroyed on deactivate."""

    def __init__(self, node: Any, index: int, ns: str, settings: NodeSettings, worker: InferenceWorker,
                 log: ThrottledLog) -> None:
        self.node, self.index, self.ns, self.s = node, index, ns, settings
        self.worker, self.log = worker, log
        self.pairer: ApproxTimePairer = ApproxTimePairer(settings.sync_slop, settings.sync_queue_size)
        self._images_in = 0
        self._pairer_drops = 0
        compressed = settings.input_transport == "compressed"
        self.image_sub = node.create_subscription(
            CompressedImage if compressed else Image, topic(ns, "image/compressed" if compressed else "image"),
            self._on_compressed if compressed else self._on_image, qos_profile_sensor_data)
        self.info_sub = None
        if settings.use_camera_info:
            self.info_sub = node.create_subscription(CameraInfo, topic(ns, "camera_info"), self._on_info,
                                                     qos_profile_sensor_data)

    def destroy(self) -> None:
        self.node.destroy_subscription(self.image_sub)
        if self.info_sub is not None:
            self.node.destroy_subscription(self.info_sub)

    # --- callbacks: convert, check, hand off -------------------------------------------------
    def _on_image(self, msg: Image) -> None:
        self._on_frame(msg, conv.image_to_rgb)

    def _on_compressed(self, msg: CompressedImage) -> None:
        self._on_frame(msg, conv.compressed_to_rgb)

    def _on_frame(self, msg: Any, convert: Any) -> None:
        now = self.node.get_clock().now().nanoseconds
        self.worker.received(self.index, header_stamp_ns(msg.header), now)
        try:
            rgb = convert(msg)
        except PPDError as exc:
            self.worker.drop(self.index, "bad_input")
            self.log(error_class(exc), f"camera '{self.ns}': {exc}; frame dropped", "error")
            return
        except Exception as exc:  # noqa: BLE001 - e.g. OpenCV on a corrupt buffer: still a bad input
            self.worker.drop(self.index, "bad_input")
            self.log(error_class(exc), f"camera '{self.ns}': cannot decode ({type(exc).__name__}: {exc}); "
                     "frame dropped", "error")
            return
        self._check_frame_id(msg.header.frame_id)
        frame = Frame(self.index, rgb, msg.header, header_stamp_ns(msg.header), received_ns=now)
        frame.timings_ms["convert"] = (self.node.get_clock().now().nanoseconds - now) / 1e6
        if self.info_sub is None or self.info_sub.get_publisher_count() == 0:
            self.worker.submit(self.index, frame)  # no calibration source: uncalibrated camera
            return
        self._images_in += 1
        self._submit(self.pairer.add_image(frame.stamp_ns, frame))

    def _on_info(self, msg: CameraInfo) -> None:
        self._submit(self.pairer.add_info(header_stamp_ns(msg.header), msg))

    def _submit(self, pairs: list) -> None:
        for frame, info in pairs:
            if info is not None:
                self._attach_info(frame, info)
            self.worker.submit(self.index, frame)
        c = self.pairer.counters  # images that fell out of the pairer: counted, never silently lost
        lost = self._images_in - c["paired"] - c["pending_images"]
        if lost > self._pairer_drops:
            self.worker.drop(self.index, "unpaired", lost - self._pairer_drops)
            self.log("unpaired", f"camera '{self.ns}': image(s) without a camera_info within "
                     f"{self.s.sync_slop} s; dropped (pairer: {c})")
            self._pairer_drops = lost

    def _attach_info(self, frame: Frame, info: CameraInfo) -> None:
        """Calibrated intrinsics for the frame, or a reported mismatch (frame goes on uncalibrated)."""
        h, w = frame.rgb.shape[:2]
        try:
            intr = conv.check_camera_info_matches(info, w, h)
            frame.intrinsics = intr if intr.is_calibrated else None  # all-zero K: uncalibrated camera
            frame.camera_info = info
        except PPDError as exc:
            self.worker.streams[self.index].stats.on_warning("camera_info_mismatch")
            frame.warnings.append(f"camera_info rejected ({exc}); predicted intrinsics used")
            self.log("camera_info " + error_class(exc), f"camera '{self.ns}': {exc}; using predicted "
                     "intrinsics for this frame")

    def _check_frame_id(self, frame_id: str) -> None:
        if not frame_id:
            self.log.once(f"frame_id_empty:{self.ns}", f"camera '{self.ns}': input header.frame_id is empty; "
                          "outputs copy it unchanged (no frame is invented)")
        elif not frame_id.endswith("_optical_frame"):
            self.log.once(f"frame_id:{self.ns}:{frame_id}", f"camera '{self.ns}': frame_id '{frame_id}' is "
                          "not an optical frame (REP 103: *_optical_frame); outputs copy it unchanged")
