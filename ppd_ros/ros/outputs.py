"""One camera's output topics: finished frames -> depth, depth/camera_info, points, depth/relative,
depth/preview and status messages, all stamped with the input header.

The depth topics carry the input image's size. ``depth`` (32FC1 metres, NaN invalid, +Inf beyond
``max_depth``, or 16UC1 millimetres with 0 invalid) and ``points`` need the metric stage;
``depth/relative`` carries the model's relative output when metric scaling is off or unavailable.
``depth/preview`` (bgr8) is only computed while someone subscribes to it.
"""
from __future__ import annotations

import array
import math
import sys
import time
from typing import Any, Callable

import cv2
import numpy as np
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, DurabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from ..pointcloud import depth_to_cloud
from ..visualize import colorize
from . import conversions as conv
from .messages import STATUS_MSG_TYPE, make_status
from .stream_stats import start_note
from .params import NodeSettings, topic
from .stream_stats import StatsSnapshot
from .worker import Frame, Output


def output_qos(s: NodeSettings) -> QoSProfile:
    """Publisher QoS from the parameters (reliable keep-last 2 by default: RViz, rosbag2 and
    best-effort subscribers all match it)."""
    rel = ReliabilityPolicy.RELIABLE if s.output_reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=s.output_depth, reliability=rel,
                      durability=DurabilityPolicy.VOLATILE)


def relative_to_image_msg(relative: np.ndarray, header: Any) -> Image:
    """(H, W) raw relative model output -> 32FC1 Image, values unchanged (not metres: no <= 0 -> NaN
    rule as for depth)."""
    h, w = relative.shape
    msg = Image(header=header, height=h, width=w, encoding="32FC1", is_bigendian=int(sys.byteorder == "big"),
                step=w * 4)
    msg.data = array.array("B", np.ascontiguousarray(relative, np.float32).tobytes())
    return msg


def stamp_ns(header: Any) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


class CameraOutputs:
    """Publishers of one camera namespace and the result -> message assembly."""

    IMAGE_OUTPUTS = ("depth", "depth/camera_info", "points", "depth/relative", "depth/preview")

    def __init__(self, node: Any, ns: str, settings: NodeSettings, model_name: str,
                 snapshot: Callable[[], StatsSnapshot]) -> None:
        self.ns, self.s, self.model_name, self._snapshot = ns, settings, model_name, snapshot
        self._node = node
        self._scale_stamp_ns = 0  # input stamp of the frame the held metric scale was fitted on
        qos = output_qos(settings)
        make = node.create_lifecycle_publisher
        self.pubs = {
            "depth": make(Image, topic(ns, "depth"), qos),
            "depth/camera_info": make(CameraInfo, topic(ns, "depth/camera_info"), qos),
            "depth/relative": make(Image, topic(ns, "depth/relative"), qos),
            "depth/preview": make(Image, topic(ns, "depth/preview"), qos),
            "status": make(STATUS_MSG_TYPE, topic(ns, "status"), qos),
        }
        if settings.publish_points:
            self.pubs["points"] = make(PointCloud2, topic(ns, "points"), qos)

    def destroy(self) -> None:
        for pub in self.pubs.values():
            self._node.destroy_lifecycle_publisher(pub)
        self.pubs = {}

    def wanted(self) -> bool:
        """True while someone subscribes to an image or cloud output (status alone does not count)."""
        if not self.s.lazy:
            return True
        return any(self.pubs[k].get_subscription_count() > 0 for k in self.IMAGE_OUTPUTS if k in self.pubs)

    def _subscribed(self, key: str) -> bool:
        pub = self.pubs.get(key)
        return pub is not None and pub.get_subscription_count() > 0

    def publish(self, out: Output) -> None:
        """Publish one finished frame on every output topic (called from the inference thread)."""
        t0 = time.perf_counter()
        f, header = out.frame, out.frame.header
        relative = np.asarray(out.result.depth, np.float32)
        if out.metric is None:
            self.pubs["depth/relative"].publish(relative_to_image_msg(relative, header))
        else:
            self._publish_metric(out, f)
        if self._subscribed("depth/preview"):
            shown = relative if out.metric is None else out.metric.depth
            self.pubs["depth/preview"].publish(conv.rgb_to_image_msg(colorize(shown, bgr=True), header, "bgr8"))
        timings = {**out.timings_ms, "publish": (time.perf_counter() - t0) * 1e3}
        self.pubs["status"].publish(self._status(out, timings))

    def _publish_metric(self, out: Output, f: Frame) -> None:
        m, header = out.metric, f.header
        depth = np.asarray(m.depth, np.float32)
        depth = np.where(depth > self.s.max_depth, np.float32(np.inf), depth)  # REP 117: beyond range = +Inf
        self.pubs["depth"].publish(conv.depth_to_image_msg(depth, header, self.s.depth_encoding))
        info = conv.intrinsics_to_camera_info(m.intrinsics, header)
        info.width, info.height = depth.shape[1], depth.shape[0]  # always the published depth's size
        self.pubs["depth/camera_info"].publish(info)
        if "points" in self.pubs and self._subscribed("points"):
            rgb = None
            if self.s.points_format == "xyzrgb":  # colours sampled at the depth's pixels
                rgb = f.rgb if f.rgb.shape[:2] == depth.shape else \
                    cv2.resize(f.rgb, (depth.shape[1], depth.shape[0]), interpolation=cv2.INTER_AREA)
            cloud = depth_to_cloud(depth, m.intrinsics, rgb, stride=self.s.points_stride,
                                   max_range=self.s.max_depth)
            self.pubs["points"].publish(conv.cloud_to_msg(cloud, header))

    def _status(self, out: Output, timings: dict[str, float]) -> Any:
        snap = self._snapshot()
        m = out.metric
        if m is not None and getattr(m, "refreshed", False):
            self._scale_stamp_ns = stamp_ns(out.frame.header)
        age = (stamp_ns(out.frame.header) - self._scale_stamp_ns) / 1e9 if self._scale_stamp_ns else math.nan
        refs = [r.stamp_ns if isinstance(r, Frame) else r for r in getattr(out.result, "reference_stamps", ())]
        now_ns = self._node.get_clock().now().nanoseconds
        level = 1 if out.frame.warnings else 0
        message = "; ".join([*out.frame.warnings, start_note(out.result)])[:300]
        return make_status(
            header=out.frame.header, model=self.model_name, mode=self.s.mode, camera=self.ns,
            stream_index=int(getattr(out.result, "index", out.stream_index)),
            window_index=int(getattr(out.result, "window_index", 0) or 0), reference_stamps=refs,
            metric=m is not None, metric_scale=float(getattr(m, "scale", math.nan)) if m is not None else math.nan,
            metric_scale_age_s=age if m is not None else math.nan,
            latency_ms=timings, total_latency_ms=(now_ns - stamp_ns(out.frame.header)) / 1e6,
            dropped=snap.dropped, frames_in=snap.received, frames_out=snap.published + 1,
            level=level, message=message)

