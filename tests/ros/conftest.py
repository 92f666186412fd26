"""ROS test set-up: confine DDS to this host BEFORE anything creates a participant.

scripts/ros_env.sh exports the same variables; these defaults make a bare ``pytest tests/ros``
just as safe: Fast DDS on UDP 127.0.0.1 only (config/fastdds_localhost.xml), a private random
ROS_DOMAIN_ID in 101..200, logs in a temp dir (rclpy.init fails without HOME/ROS_LOG_DIR).
"""
from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FASTDDS_XML = REPO / "config" / "fastdds_localhost.xml"

os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")  # the XML below only confines Fast DDS
os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(FASTDDS_XML))  # Fast DDS 3.x (Kilted)
os.environ.setdefault("FASTRTPS_DEFAULT_PROFILES_FILE", str(FASTDDS_XML))  # Fast DDS 2.x (Jazzy)
os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(101, 200)))
os.environ.setdefault("ROS_LOG_DIR", tempfile.mkdtemp(prefix="ppd_ros_roslog_"))
# these would override the XML transports or add off-host peers
if os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "").upper() not in ("", "LOCALHOST", "OFF"):
    os.environ.pop("ROS_AUTOMATIC_DISCOVERY_RANGE")
os.environ.pop("ROS_STATIC_PEERS", None)


@pytest.fixture
def ros_context() -> Iterator[object]:
    """A private, initialised rclpy Context, shut down after the test."""
    import rclpy

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        yield ctx
    finally:
        rclpy.try_shutdown(context=ctx)
