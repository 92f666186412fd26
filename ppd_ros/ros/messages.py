"""The `status` message: the generated ``ppd_ros/msg/DepthStatus`` when it is usable, else a
``diagnostic_msgs/DiagnosticArray`` carrying the same fields as key/value pairs.

The generated type exists after ``colcon build`` (``scripts/colcon_build.sh``) with
``install/setup.bash`` sourced; after a plain ``pip install -e .`` it does not, and the node still
publishes ``status`` through the fallback. Use ``make_status`` to fill either and
``status_to_dict`` to read either back.
"""
from __future__ import annotations

import importlib
import math
import os
import pkgutil
from collections.abc import Mapping, Sequence
from typing import Any, Final

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from std_msgs.msg import Header

import ppd_ros

OK: Final[int] = 0
WARN: Final[int] = 1
ERROR: Final[int] = 2


def _extend_package_path() -> bool:
    """Append colcon-installed ``ppd_ros`` directories that hold ``msg/`` to ``ppd_ros.__path__``.

    Why: run from the repo root (``python -m pytest``, ``python -m ppd_ros...``) the source tree's
    ``ppd_ros`` is imported first and has no ``msg/``; the generated one lives in
    ``install/ppd_ros/lib/python3.X/site-packages/ppd_ros``. Appending keeps our source modules first.
    """
    found = [p for p in pkgutil.extend_path(list(ppd_ros.__path__), "ppd_ros")
             if p not in ppd_ros.__path__ and os.path.isdir(os.path.join(p, "msg"))]
    ppd_ros.__path__.extend(found)
    return bool(found)


def load_generated_status_type() -> type | None:
    """``ppd_ros.msg.DepthStatus`` with its type support loaded, or None when unusable."""
    try:
        try:
            mod = importlib.import_module("ppd_ros.msg")
        except ModuleNotFoundError:
            if not _extend_package_path():
                return None
            mod = importlib.import_module("ppd_ros.msg")
        cls = mod.DepthStatus
        # import succeeds even when the typesupport .so cannot be loaded (no LD_LIBRARY_PATH to
        # install/ppd_ros/lib); the first real use would then fail, so load it now.
        type(cls).__import_type_support__()
        if getattr(type(cls), "_TYPE_SUPPORT", None) is None:
            return None
        return cls
    except Exception:  # noqa: BLE001 - any failure here means "use the fallback"
        return None


_GENERATED = load_generated_status_type()
HAVE_DEPTH_STATUS: Final[bool] = _GENERATED is not None
#: message class published on `status` (create publishers/subscriptions with this).
STATUS_MSG_TYPE: Final[type] = _GENERATED if _GENERATED is not None else DiagnosticArray


def _time_msg(stamp: Time | int) -> Time:
    if isinstance(stamp, Time):
        return stamp
    ns = int(stamp)
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def make_status(*, header: Header, model: str, mode: str, camera: str = "",
                stream_index: int = 0, window_index: int = 0,
                reference_stamps: Sequence[Time | int] = (),
                metric: bool = False, metric_scale: float = math.nan, metric_scale_age_s: float = math.nan,
                latency_ms: Mapping[str, float] | None = None, total_latency_ms: float = math.nan,
                dropped: Mapping[str, int] | None = None, frames_in: int = 0, frames_out: int = 0,
                level: int = OK, message: str = "", msg_type: type | None = None) -> Any:
    """Build one `status` message of ``msg_type`` (default ``STATUS_MSG_TYPE``).

    Args:
        header: the input frame's header (stamp unchanged, frame_id copied).
        reference_stamps: PPVD reference frame stamps, as ``builtin_interfaces/Time`` or int ns.
        metric_scale / metric_scale_age_s: NaN when unknown / never estimated (seconds).
        latency_ms: per-stage latency in ms, in stage order (e.g. {"convert": 1.2, "dit": 80.0}).
        dropped: drop counts by reason since the stream started (e.g. {"superseded": 3}).
        level: OK, WARN or ERROR.
    """
    latency = dict(latency_ms or {})
    drops = dict(dropped or {})
    refs = [_time_msg(s) for s in reference_stamps]
    cls = msg_type or STATUS_MSG_TYPE
    if cls is DiagnosticArray:
        return _make_diagnostic(header, model, mode, camera, stream_index, window_index, refs, metric,
                                metric_scale, metric_scale_age_s, latency, total_latency_ms, drops,
                                frames_in, frames_out, level, message)
    msg = cls()
    msg.header = header
    msg.level, msg.message = int(level), str(message)
    msg.model, msg.mode, msg.camera = str(model), str(mode), str(camera)
    msg.stream_index, msg.window_index = int(stream_index), int(window_index)
    msg.reference_stamps = refs
    msg.metric = bool(metric)
    msg.metric_scale, msg.metric_scale_age_s = float(metric_scale), float(metric_scale_age_s)
    msg.stage_names = [str(k) for k in latency]
    msg.stage_latency_ms = [float(v) for v in latency.values()]
    msg.total_latency_ms = float(total_latency_ms)
    msg.drop_reasons = [str(k) for k in drops]
    msg.drop_counts = [int(v) for v in drops.values()]
    msg.frames_in, msg.frames_out = int(frames_in), int(frames_out)
    return msg


def _make_diagnostic(header: Header, model: str, mode: str, camera: str, stream_index: int,
                     window_index: int, refs: list[Time], metric: bool, metric_scale: float,
                     metric_scale_age_s: float, latency: dict[str, float], total_latency_ms: float,
                     drops: dict[str, int], frames_in: int, frames_out: int, level: int,
                     message: str) -> DiagnosticArray:
    pairs: list[tuple[str, str]] = [
        ("model", str(model)), ("mode", str(mode)), ("camera", str(camera)),
        ("stream_index", str(int(stream_index))), ("window_index", str(int(window_index))),
        ("reference_stamps_ns", ",".join(str(t.sec * 1_000_000_000 + t.nanosec) for t in refs)),
        ("metric", "true" if metric else "false"), ("metric_scale", repr(float(metric_scale))),
        ("metric_scale_age_s", repr(float(metric_scale_age_s))),
        ("total_latency_ms", repr(float(total_latency_ms))),
        ("frames_in", str(int(frames_in))), ("frames_out", str(int(frames_out))),
    ]
    pairs += [(f"latency_ms.{k}", repr(float(v))) for k, v in latency.items()]
    pairs += [(f"dropped.{k}", str(int(v))) for k, v in drops.items()]
    status = DiagnosticStatus(level=bytes([int(level)]), name=f"ppd_ros/status/{camera or 'depth'}",
                              message=str(message), hardware_id=str(model),
                              values=[KeyValue(key=k, value=v) for k, v in pairs])
    arr = DiagnosticArray()
    arr.header = header
    arr.status = [status]
    return arr


def status_to_dict(msg: Any) -> dict[str, Any]:
    """Read a `status` message of either type into one plain dict (same keys for both)."""
    if isinstance(msg, DiagnosticArray):
        return _diagnostic_to_dict(msg)
    return {
        "stamp_ns": msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec,
        "frame_id": msg.header.frame_id, "level": int(msg.level), "message": msg.message,
        "model": msg.model, "mode": msg.mode, "camera": msg.camera,
        "stream_index": int(msg.stream_index), "window_index": int(msg.window_index),
        "reference_stamps_ns": [t.sec * 1_000_000_000 + t.nanosec for t in msg.reference_stamps],
        "metric": bool(msg.metric), "metric_scale": float(msg.metric_scale),
        "metric_scale_age_s": float(msg.metric_scale_age_s),
        "latency_ms": dict(zip(msg.stage_names, map(float, msg.stage_latency_ms))),
        "total_latency_ms": float(msg.total_latency_ms),
        "dropped": dict(zip(msg.drop_reasons, map(int, msg.drop_counts))),
        "frames_in": int(msg.frames_in), "frames_out": int(msg.frames_out),
    }


def _diagnostic_to_dict(msg: DiagnosticArray) -> dict[str, Any]:
    (st,) = [s for s in msg.status if s.name.startswith("ppd_ros/status/")][:1] or [None]
    if st is None:
        raise ValueError(f"DiagnosticArray has no 'ppd_ros/status/*' entry: names {[s.name for s in msg.status]}")
    kv = {v.key: v.value for v in st.values}
    refs = kv.get("reference_stamps_ns", "")
    return {
        "stamp_ns": msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec,
        "frame_id": msg.header.frame_id, "level": st.level[0] if isinstance(st.level, bytes) else int(st.level),
        "message": st.message, "model": kv.get("model", ""), "mode": kv.get("mode", ""),
        "camera": kv.get("camera", ""), "stream_index": int(kv.get("stream_index", 0)),
        "window_index": int(kv.get("window_index", 0)),
        "reference_stamps_ns": [int(s) for s in refs.split(",") if s],
        "metric": kv.get("metric") == "true", "metric_scale": float(kv.get("metric_scale", "nan")),
        "metric_scale_age_s": float(kv.get("metric_scale_age_s", "nan")),
        "latency_ms": {k[len("latency_ms."):]: float(v) for k, v in kv.items() if k.startswith("latency_ms.")},
        "total_latency_ms": float(kv.get("total_latency_ms", "nan")),
        "dropped": {k[len("dropped."):]: int(v) for k, v in kv.items() if k.startswith("dropped.")},
        "frames_in": int(kv.get("frames_in", 0)), "frames_out": int(kv.get("frames_out", 0)),
    }
