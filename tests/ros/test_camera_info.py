"""CameraInfo <-> CameraIntrinsics: round trip, validation, size checks with binning and ROI."""
from __future__ import annotations

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Header

from ppd_ros.errors import CameraInfoMismatch
from ppd_ros.intrinsics import CameraIntrinsics, RegionOfInterest
from ppd_ros.ros.conversions import camera_info_to_intrinsics, check_camera_info_matches, intrinsics_to_camera_info


def info(w: int = 640, h: int = 480, **kw: object) -> CameraInfo:
    m = CameraInfo(width=w, height=h, distortion_model="plumb_bob")
    m.k = [525.0, 0.0, 319.5, 0.0, 526.0, 239.5, 0.0, 0.0, 1.0]
    m.p = [520.0, 0.0, 318.0, 0.0, 0.0, 521.0, 238.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    m.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    m.d = [0.1, -0.2, 0.0, 0.0, 0.05]
    for k, v in kw.items():
        setattr(m, k, v)
    return m


def test_round_trip_through_cdr() -> None:
    src = info(binning_x=2, binning_y=2)
    src.roi.x_offset, src.roi.y_offset, src.roi.width, src.roi.height = 10, 20, 320, 240
    intr = camera_info_to_intrinsics(deserialize_message(serialize_message(src), CameraInfo))
    assert (intr.width, intr.height, intr.binning_x, intr.binning_y) == (640, 480, 2, 2)
    assert intr.roi == RegionOfInterest(10, 20, 320, 240, False)
    assert intr.image_size == (160, 120)
    assert (intr.fx, intr.fy, intr.cx, intr.cy) == (520.0, 521.0, 318.0, 238.0)
    np.testing.assert_array_equal(intr.D, [0.1, -0.2, 0.0, 0.0, 0.05])
    h = Header(frame_id="cam_optical_frame")
    back = intrinsics_to_camera_info(intr, h)
    assert back.header.frame_id == "cam_optical_frame"
    assert camera_info_to_intrinsics(deserialize_message(serialize_message(back), CameraInfo)) == intr
    np.testing.assert_array_equal(back.k, src.k)
    np.testing.assert_array_equal(back.p, src.p)


def test_from_pinhole_and_p_filled_from_k() -> None:
    intr = CameraIntrinsics.from_pinhole(64, 48, 50.0, 51.0, 31.5, 23.5)
    msg = intrinsics_to_camera_info(intr)
    assert list(msg.p[:3]) == [50.0, 0.0, 31.5] and msg.distortion_model == "plumb_bob"
    only_k = info(p=[0.0] * 12)
    got = camera_info_to_intrinsics(only_k)
    np.testing.assert_array_equal(got.P[:, :3], got.K)


def test_uncalibrated_camera() -> None:
    zero = info(k=[0.0] * 9, p=[0.0] * 12, d=[])
    intr = camera_info_to_intrinsics(zero)
    assert not intr.is_calibrated and intr.image_size == (640, 480)
    with pytest.raises(CameraInfoMismatch, match="uncalibrated"):
        camera_info_to_intrinsics(zero, allow_uncalibrated=False)


@pytest.mark.parametrize("change, match", [
    ({"width": 0, "height": 0}, "0x0"),
    ({"k": [0.0, 0, 319.5, 0, 526.0, 239.5, 0, 0, 1.0]}, "fx > 0"),
    ({"k": [0.0] * 9}, "P is not"),
    ({"p": [520.0, 0, 318, 0, 0, -1.0, 238, 0, 0, 0, 1, 0]}, "P needs"),
    ({"d": [float("nan")]}, "non-finite"),
    ({"k": [float("inf")] + [0.0] * 8}, "non-finite"),
    ({"binning_x": 1000}, "leaves a 0x480"),
])
def test_bad_camera_info(change: dict, match: str) -> None:
    with pytest.raises(CameraInfoMismatch, match=match):
        camera_info_to_intrinsics(info(**change))


def test_wrong_array_sizes_and_types() -> None:
    m = info()
    object.__setattr__(m, "_k", np.zeros(5))  # bypass the fixed-size setter, as a broken publisher would
    with pytest.raises(CameraInfoMismatch, match="k has 5 values, expected 9"):
        camera_info_to_intrinsics(m)
    m = info()
    object.__setattr__(m, "_width", -3)
    with pytest.raises(CameraInfoMismatch, match="width"):
        camera_info_to_intrinsics(m)
    m = info()
    m.roi.x_offset, m.roi.width, m.roi.height = 600, 100, 100
    with pytest.raises(CameraInfoMismatch, match="does not fit"):
        camera_info_to_intrinsics(m)
    with pytest.raises(CameraInfoMismatch, match="CameraIntrinsics"):
        intrinsics_to_camera_info("not intrinsics")  # type: ignore[arg-type]


def test_check_camera_info_matches() -> None:
    assert check_camera_info_matches(info(), 640, 480).fx == 520.0
    with pytest.raises(CameraInfoMismatch, match="640x480.*320x240"):
        check_camera_info_matches(info(), 320, 240)
    binned = info(binning_x=2, binning_y=2)
    check_camera_info_matches(binned, 320, 240)
    check_camera_info_matches(camera_info_to_intrinsics(binned), 320, 240)
