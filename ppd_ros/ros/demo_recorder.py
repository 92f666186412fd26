"""The demo's output recorder: subscribes to every camera's outputs, writes them to a rosbag2 bag
and keeps the depth, intrinsics and status it received for the demo's measurements."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from .bag import BagRecorder
from .conversions import image_msg_to_depth
from .messages import STATUS_MSG_TYPE, status_to_dict

class Recorder:
    """Subscribes to the outputs of every camera; writes them to the bag and keeps the depth."""

    def __init__(self, camera_names: list[str], bag_path: Path, namespace: str,
                 topics: tuple[str, ...]) -> None:
        rclpy.init(args=[])
        self.node = Node("demo_recorder", namespace=namespace)
        self.namespace = namespace
        self.bag = BagRecorder(bag_path)
        self.lock = threading.Lock()
        self.depth: dict[tuple[str, int], np.ndarray] = {}
        self.relative: dict[tuple[str, int], np.ndarray] = {}
        self.info: dict[tuple[str, int], np.ndarray] = {}
        self.status: dict[tuple[str, int], dict] = {}
        self.last_output: dict[str, float] = {}
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=20, reliability=ReliabilityPolicy.RELIABLE)
        types = {"depth": Image, "depth/camera_info": CameraInfo, "points": PointCloud2, "depth/relative": Image,
                 "status": STATUS_MSG_TYPE}
        for cam in camera_names:
            for t in topics:
                self.node.create_subscription(types[t], f"{namespace}/{cam}/{t}",
                                              lambda msg, c=cam, t=t: self._on(c, t, msg), qos)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _on(self, cam: str, kind: str, msg) -> None:
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        self.bag.write(f"{self.namespace}/{cam}/{kind}", msg, time.time_ns())
        key = (cam, stamp)
        with self.lock:
            if kind == "depth":
                self.depth[key] = image_msg_to_depth(msg)
            elif kind == "depth/relative":
                self.relative[key] = image_msg_to_depth(msg)
            elif kind == "depth/camera_info":
                self.info[key] = np.array(msg.k, np.float64).reshape(3, 3)
            elif kind == "status":
                self.status[key] = status_to_dict(msg)
                self.last_output[cam] = time.monotonic()

    def outputs_of(self, cam: str) -> int:
        with self.lock:
            return sum(1 for (c, _) in self.status if c == cam)

    def idle_for(self, cam: str, since: float) -> float:
        """Seconds since this camera's last output (or since ``since`` when none came after it)."""
        with self.lock:
            return time.monotonic() - max(self.last_output.get(cam, since), since)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown()
        self.bag.close()
