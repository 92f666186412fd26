"""`status` message: the generated DepthStatus (after colcon) and the DiagnosticArray fallback."""
from __future__ import annotations

import math

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.serialization import deserialize_message, serialize_message
from std_msgs.msg import Header

from ppd_ros.ros import messages

FIELDS = dict(model="ppvd", mode="video_streaming", camera="front", stream_index=41, window_index=3,
              reference_stamps=[5_000_000_001, 6_000_000_000], metric=True, metric_scale=2.5,
              metric_scale_age_s=0.75, latency_ms={"convert": 1.5, "dit": 80.25, "publish": 2.0},
              total_latency_ms=90.5, dropped={"superseded": 7, "stale": 1}, frames_in=50, frames_out=42,
              level=messages.WARN, message="metric scale is old")


def header() -> Header:
    h = Header(frame_id="front_optical_frame")
    h.stamp.sec, h.stamp.nanosec = 7, 9
    return h


def types() -> list[type]:
    return [DiagnosticArray] + ([messages.STATUS_MSG_TYPE] if messages.HAVE_DEPTH_STATUS else [])


@pytest.mark.parametrize("cls", types(), ids=lambda c: c.__name__)
def test_make_status_round_trip(cls: type) -> None:
    msg = messages.make_status(header=header(), msg_type=cls, **FIELDS)
    assert isinstance(msg, cls)
    back = deserialize_message(serialize_message(msg), cls)
    d = messages.status_to_dict(back)
    assert d["stamp_ns"] == 7_000_000_009 and d["frame_id"] == "front_optical_frame"
    assert d["reference_stamps_ns"] == [5_000_000_001, 6_000_000_000]
    assert d["latency_ms"] == FIELDS["latency_ms"] and list(d["latency_ms"]) == ["convert", "dit", "publish"]
    assert d["dropped"] == FIELDS["dropped"]
    for k in ("model", "mode", "camera", "stream_index", "window_index", "metric", "frames_in", "frames_out",
              "level", "message"):
        assert d[k] == FIELDS[k], k
    for k in ("metric_scale", "metric_scale_age_s", "total_latency_ms"):
        assert d[k] == pytest.approx(FIELDS[k])


@pytest.mark.parametrize("cls", types(), ids=lambda c: c.__name__)
def test_defaults_are_nan_and_empty(cls: type) -> None:
    d = messages.status_to_dict(messages.make_status(header=Header(), model="ppd", mode="image", msg_type=cls))
    assert math.isnan(d["metric_scale"]) and math.isnan(d["metric_scale_age_s"])
    assert d["latency_ms"] == {} and d["dropped"] == {} and d["reference_stamps_ns"] == []


def test_status_type_is_generated_when_built() -> None:
    """With install/setup.bash sourced (scripts/ros_env.sh) the generated type must be in use."""
    import os

    built = any(p.rstrip("/").endswith("install/ppd_ros") for p in os.environ.get("AMENT_PREFIX_PATH", "").split(":"))
    if built:
        assert messages.HAVE_DEPTH_STATUS and messages.STATUS_MSG_TYPE.__name__ == "DepthStatus"
        assert messages.STATUS_MSG_TYPE.__module__.startswith("ppd_ros.msg")
    else:
        assert messages.STATUS_MSG_TYPE is DiagnosticArray


def test_foreign_diagnostic_array_rejected() -> None:
    with pytest.raises(ValueError, match="ppd_ros/status"):
        messages.status_to_dict(DiagnosticArray())
