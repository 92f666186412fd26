"""rosbag2 bags (MCAP or sqlite3, metadata version 9) written and read with the ``rosbags`` package.

rosbag2 / rosbag2_py are not installable here; ``rosbags`` writes the same files a ROS 2 Jazzy /
Kilted recorder does (metadata.yaml, RIHS01 type hashes, ros2msg definitions). Messages are
serialized by rclpy itself (``serialize_message``), so the stored CDR bytes are exactly what went
over the wire. Our ``ppd_ros/msg/DepthStatus`` is registered from ``msg/DepthStatus.msg``, giving
the same type hash as the colcon build.
"""
from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal

from rclpy.serialization import deserialize_message, serialize_message
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from ..errors import PPDError

DEPTH_STATUS_TYPE: Final[str] = "ppd_ros/msg/DepthStatus"
_STORAGE: Final[dict[str, StoragePlugin]] = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}


class BagError(PPDError, OSError):
    """A bag cannot be written or read (path exists, unknown storage, unknown type)."""


def depth_status_msg_path() -> Path | None:
    """``msg/DepthStatus.msg`` of the source tree, else of the installed package share, else None."""
    src = Path(__file__).resolve().parents[2] / "msg" / "DepthStatus.msg"
    if src.is_file():
        return src
    try:
        from ament_index_python.packages import get_package_share_directory
        share = Path(get_package_share_directory("ppd_ros")) / "msg" / "DepthStatus.msg"
        return share if share.is_file() else None
    except Exception:  # noqa: BLE001 - not installed / no AMENT_PREFIX_PATH
        return None


def make_typestore() -> Typestore:
    """Kilted typestore (hashes identical to Jazzy's for the types we record) + our DepthStatus."""
    ts = get_typestore(Stores.ROS2_KILTED)
    path = depth_status_msg_path()
    if path is not None:
        ts.register(get_types_from_msg(path.read_text(), DEPTH_STATUS_TYPE))
    return ts


def msgtype_of(msg: Any) -> str:
    """ROS type name of an rclpy message object, e.g. ``sensor_msgs/msg/Image``."""
    module = type(msg).__module__.split(".")
    if len(module) < 2 or module[-2] != "msg":
        raise BagError(f"{type(msg).__qualname__} from module {type(msg).__module__!r} is not a ROS message")
    return f"{module[0]}/msg/{type(msg).__name__}"


class BagRecorder:
    """Write rclpy messages into a new rosbag2 bag directory; thread-safe; use as a context manager.

    ``path`` must not exist yet (rosbag2 semantics). Connections are created on the first message
    of each (topic, type). ``counts`` holds messages written per topic.
    """

    def __init__(self, path: str | os.PathLike[str], storage: Literal["mcap", "sqlite3"] = "mcap") -> None:
        if storage not in _STORAGE:
            raise BagError(f"bag storage {storage!r} is not supported; expected 'mcap' or 'sqlite3'")
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f"bag path {str(self.path)!r} already exists; rosbag2 writes a new directory")
        self.storage = storage
        self.typestore = make_typestore()
        self._writer = Writer(self.path, version=9, storage_plugin=_STORAGE[storage])
        self._writer.open()
        self._connections: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        self._open = True
        self.counts: dict[str, int] = {}

    def write(self, topic: str, msg: Any, stamp_ns: int) -> None:
        """Serialize ``msg`` (an rclpy message) with rclpy and store it at receive time ``stamp_ns``."""
        self.write_raw(topic, msgtype_of(msg), serialize_message(msg), stamp_ns)

    def write_raw(self, topic: str, msgtype: str, data: bytes, stamp_ns: int) -> None:
        """Store already-serialized CDR bytes of type ``msgtype`` (e.g. ``sensor_msgs/msg/Image``)."""
        if not isinstance(topic, str) or not topic.startswith("/"):
            raise BagError(f"bag topic must be an absolute name starting with '/', got {topic!r}")
        with self._lock:
            if not self._open:
                raise BagError(f"bag {str(self.path)!r} is closed")
            conn = self._connections.get((topic, msgtype))
            if conn is None:
                if msgtype not in self.typestore.fielddefs:
                    raise BagError(f"message type {msgtype!r} is unknown to the bag typestore")
                conn = self._writer.add_connection(topic, msgtype, typestore=self.typestore)
                self._connections[(topic, msgtype)] = conn
            self._writer.write(conn, int(stamp_ns), bytes(data))
            self.counts[topic] = self.counts.get(topic, 0) + 1

    def close(self) -> None:
        """Finish the bag (writes metadata.yaml); idempotent."""
        with self._lock:
            if self._open:
                self._open = False
                self._writer.close()

    def __enter__(self) -> "BagRecorder":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def rclpy_type(msgtype: str) -> type | None:
    """The rclpy class of a ROS type name, or None when it is not importable here."""
    if msgtype == DEPTH_STATUS_TYPE:
        from .messages import HAVE_DEPTH_STATUS, STATUS_MSG_TYPE
        return STATUS_MSG_TYPE if HAVE_DEPTH_STATUS else None
    pkg, kind, name = (msgtype.split("/") + ["", "", ""])[:3]
    try:
        return getattr(importlib.import_module(f"{pkg}.{kind}"), name)
    except (ImportError, AttributeError, ValueError):
        return None


def read_bag(path: str | os.PathLike[str], topics: list[str] | None = None) -> Iterator[tuple[str, str, int, Any]]:
    """Yield ``(topic, msgtype, stamp_ns, message)`` in time order.

    ``message`` is an rclpy message when the type is importable here, else the ``rosbags``
    deserialized object (same field names).
    """
    p = Path(path)
    if not p.exists():
        raise BagError(f"bag path {str(p)!r} does not exist")
    ts = make_typestore()
    with Reader(p) as reader:
        conns = [c for c in reader.connections if topics is None or c.topic in topics]
        classes = {c.msgtype: rclpy_type(c.msgtype) for c in conns}
        for conn in conns:
            if classes[conn.msgtype] is None and conn.msgtype not in ts.fielddefs:
                ts.register(get_types_from_msg(conn.msgdef.data, conn.msgtype))
        for conn, stamp, data in reader.messages(connections=conns):
            cls = classes[conn.msgtype]
            msg = deserialize_message(data, cls) if cls is not None else ts.deserialize_cdr(data, conn.msgtype)
            yield conn.topic, conn.msgtype, stamp, msg


def bag_summary(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """{topic: {type, count, rihs01}} of a bag, from its metadata."""
    with Reader(Path(path)) as reader:
        return {c.topic: {"type": c.msgtype, "count": c.msgcount, "rihs01": c.digest} for c in reader.connections}
