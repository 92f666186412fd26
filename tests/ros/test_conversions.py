"""Image / CompressedImage / depth conversions: round trips through rclpy CDR, conventions, errors."""
from __future__ import annotations

import array
import sys

import cv2
import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from ppd_ros.errors import InputError, UnsupportedEncoding
from ppd_ros.ros import conversions as cv
from ppd_ros.ros.buffers import MAX_SIDE

RNG = np.random.default_rng(7)
RGB = RNG.integers(0, 256, (6, 10, 3), dtype=np.uint8)
RGB_PAIRS = np.repeat(RGB[:, ::2], 2, axis=1)  # equal colours per pixel pair: 4:2:2 loses nothing


def wire(msg):
    """Through CDR, as over DDS."""
    return deserialize_message(serialize_message(msg), type(msg))


def header() -> Header:
    h = Header(frame_id="cam_optical_frame")
    h.stamp.sec, h.stamp.nanosec = 12, 345
    return h


def raw_image(h: int, w: int, enc: str, step: int, data: bytes, big: int = 0) -> Image:
    m = Image(height=h, width=w, encoding=enc, step=step, is_bigendian=big)
    m.data = array.array("B", data)
    return m


@pytest.mark.parametrize("enc", ["rgb8", "bgr8", "rgba8", "bgra8"])
@pytest.mark.parametrize("pad", [0, 7])
def test_colour_round_trip_exact(enc: str, pad: int) -> None:
    bpp = cv.RGB_ENCODINGS[enc]
    msg = wire(cv.rgb_to_image_msg(RGB, header(), enc, step=10 * bpp + pad))
    assert (msg.height, msg.width, msg.step, msg.encoding) == (6, 10, 10 * bpp + pad, enc)
    assert isinstance(msg.data, array.array) and len(msg.data) == msg.step * 6
    out = cv.image_to_rgb(msg)
    assert out.dtype == np.uint8 and out.shape == (6, 10, 3) and out.flags.c_contiguous
    np.testing.assert_array_equal(out, RGB)


def test_channel_order_is_honoured() -> None:
    red = np.zeros((1, 2, 3), np.uint8)
    red[..., 0] = 255
    bgr = cv.rgb_to_image_msg(red, None, "bgr8")
    assert bytes(bgr.data)[:3] == b"\x00\x00\xff"
    bgra = raw_image(1, 1, "bgra8", 4, b"\x01\x02\x03\x04")
    np.testing.assert_array_equal(cv.image_to_rgb(bgra)[0, 0], [3, 2, 1])
    rgba = raw_image(1, 1, "rgba8", 4, b"\x01\x02\x03\x04")
    np.testing.assert_array_equal(cv.image_to_rgb(rgba)[0, 0], [1, 2, 3])


def test_mono8_and_mono16_replicate_and_scale() -> None:
    m8 = raw_image(1, 3, "mono8", 4, bytes([0, 128, 255, 99]))  # one padding byte
    np.testing.assert_array_equal(cv.image_to_rgb(m8)[0], [[0] * 3, [128] * 3, [255] * 3])
    vals = np.array([[0, 257, 65535, 32896]], np.uint16)
    for big in (0, 1):
        m16 = raw_image(1, 4, "mono16", 8, vals.astype(">u2" if big else "<u2").tobytes(), big)
        np.testing.assert_array_equal(cv.image_to_rgb(m16)[0, :, 0], [0, 1, 255, 128])


def test_mono16_scaling_is_exact_rounding_for_every_value() -> None:
    v = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    out = cv.image_to_rgb(raw_image(256, 256, "mono16", 512, v.astype("<u2").tobytes()))
    expect = ((v.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    np.testing.assert_array_equal(out[..., 0], expect)
    np.testing.assert_array_equal(out[..., 2], expect)


def test_mono_writer_is_luma() -> None:
    grey = np.full((2, 2, 3), 77, np.uint8)
    for enc in ("mono8", "mono16"):
        out = cv.image_to_rgb(wire(cv.rgb_to_image_msg(grey, None, enc, is_bigendian=True)))
        np.testing.assert_array_equal(out, grey)


@pytest.mark.parametrize("enc", ["yuv422", "uyvy", "yuv422_yuy2", "yuyv"])
def test_yuv422_round_trip(enc: str) -> None:
    msg = wire(cv.rgb_to_image_msg(RGB_PAIRS, header(), enc, step=24))
    assert msg.step == 24 and len(msg.data) == 24 * 6
    out = cv.image_to_rgb(msg)
    assert np.abs(out.astype(int) - RGB_PAIRS).max() <= 4  # BT.601 limited range, 8-bit rounding


def test_yuv422_byte_orders_differ() -> None:
    # white left pixel, black right pixel, neutral chroma (BT.601 limited: Y 235 / 16, U = V = 128)
    uyvy = raw_image(1, 2, "yuv422", 4, bytes([128, 235, 128, 16]))
    yuyv = raw_image(1, 2, "yuv422_yuy2", 4, bytes([235, 128, 16, 128]))
    for m in (uyvy, yuyv):
        out = cv.image_to_rgb(m)
        assert out[0, 0].min() >= 250 and out[0, 1].max() <= 5
    odd = raw_image(1, 3, "uyvy", 6, bytes(6))
    with pytest.raises(InputError, match="even"):
        cv.image_to_rgb(odd)


@pytest.mark.parametrize("enc", ["32FC1", "16UC1"])
def test_depth_round_trip_and_conventions(enc: str) -> None:
    d = np.array([[0.5, 1.25, np.nan, np.inf], [-np.inf, 0.0, -2.0, 70.0], [0.0004, 3.0, 65.535, 1e-9]], np.float32)
    msg = wire(cv.depth_to_image_msg(d, header(), enc))
    assert (msg.height, msg.width, msg.encoding, msg.header.stamp.nanosec) == (3, 4, enc, 345)
    assert msg.header.frame_id == "cam_optical_frame" and msg.is_bigendian == (sys.byteorder == "big")
    back = cv.image_msg_to_depth(msg)
    assert back.dtype == np.float32 and back.shape == (3, 4)
    if enc == "32FC1":
        assert msg.step == 16
        expect = np.array([[0.5, 1.25, np.nan, np.inf], [-np.inf, np.nan, np.nan, 70.0],
                           [0.0004, 3.0, 65.535, 1e-9]], np.float32)
        np.testing.assert_array_equal(back, expect)  # NaN == NaN position-wise
    else:
        assert msg.step == 8
        mm = np.frombuffer(msg.data, np.uint16).reshape(3, 4)
        np.testing.assert_array_equal(mm, [[500, 1250, 0, 0], [0, 0, 0, 65535], [1, 3000, 65535, 1]])
        assert np.isnan(back[0, 2]) and back[0, 0] == np.float32(0.5)


def test_depth_inputs_padded_and_bigendian() -> None:
    d = RNG.random((3, 5), dtype=np.float32) * 10
    d[1, 1] = np.nan
    d[2, 4] = np.inf
    rows = np.zeros((3, 5 * 4 + 12), np.uint8)
    rows[:, :20] = d.astype(">f4").view(np.uint8).reshape(3, 20)
    msg = raw_image(3, 5, "32FC1", 32, rows.tobytes(), big=1)
    np.testing.assert_array_equal(cv.image_msg_to_depth(msg), d)
    mm = RNG.integers(0, 65536, (3, 5), dtype=np.uint16)
    rows16 = np.zeros((3, 14), np.uint8)
    rows16[:, :10] = mm.astype(">u2").view(np.uint8).reshape(3, 10)
    out = cv.image_msg_to_depth(raw_image(3, 5, "16UC1", 14, rows16.tobytes(), big=1))
    np.testing.assert_array_equal(np.isnan(out), mm == 0)
    np.testing.assert_allclose(out[mm > 0], mm[mm > 0] * np.float32(0.001), rtol=1e-6)
    # the last row may omit its padding (some drivers)
    short = raw_image(3, 5, "32FC1", 32, rows.tobytes()[:-12], big=1)
    np.testing.assert_array_equal(cv.image_msg_to_depth(short), d)


def test_depth_bad_inputs() -> None:
    with pytest.raises(InputError, match="shape"):
        cv.depth_to_image_msg(np.zeros((2, 2, 1), np.float32))
    with pytest.raises(InputError, match="float array in metres"):
        cv.depth_to_image_msg(np.full((2, 2), 1500, np.uint16))  # millimetres are not metres
    with pytest.raises(InputError, match="0x2"):
        cv.depth_to_image_msg(np.zeros((2, 0), np.float32))
    with pytest.raises(UnsupportedEncoding, match="'8UC1'"):
        cv.depth_to_image_msg(np.ones((2, 2), np.float32), encoding="8UC1")  # type: ignore[arg-type]
    with pytest.raises(UnsupportedEncoding, match="'rgb8'"):
        cv.image_msg_to_depth(cv.rgb_to_image_msg(RGB))


def test_errors_name_the_value() -> None:
    with pytest.raises(UnsupportedEncoding, match="'bayer_rggb8'"):
        cv.image_to_rgb(raw_image(2, 2, "bayer_rggb8", 2, bytes(4)))
    with pytest.raises(InputError, match="needs 24 bytes of data, got 23"):
        cv.image_to_rgb(raw_image(2, 4, "rgb8", 12, bytes(23)))
    with pytest.raises(InputError, match="step 11 is smaller than width 4 x 3"):
        cv.image_to_rgb(raw_image(2, 4, "rgb8", 11, bytes(22)))
    with pytest.raises(InputError, match="0x0"):
        cv.image_to_rgb(raw_image(0, 0, "rgb8", 0, b""))
    with pytest.raises(InputError, match="larger than"):
        cv.image_to_rgb(raw_image(8000, MAX_SIDE + 1, "mono8", MAX_SIDE + 1, bytes(10)))
    with pytest.raises(InputError, match="needs 64000000 bytes"):
        cv.image_to_rgb(raw_image(8000, 8000, "mono8", 8000, bytes(100)))
    with pytest.raises(InputError, match="shape"):
        cv.rgb_to_image_msg(np.zeros((2, 2), np.uint8))


def test_list_and_bytes_data_accepted() -> None:
    m = Image(height=1, width=2, encoding="mono8", step=2)
    m.data = [3, 4]  # rclpy turns this into array('B')
    np.testing.assert_array_equal(cv.image_to_rgb(m)[0, :, 0], [3, 4])
    m2 = Image(height=1, width=1, encoding="rgb8", step=3)
    object.__setattr__(m2, "_data", b"\x01\x02\x03")  # a raw bytes payload (bypassing the setter)
    np.testing.assert_array_equal(cv.image_to_rgb(m2)[0, 0], [1, 2, 3])


# ------------------------------------------------------------------------------------------
# CompressedImage
def smooth_rgb(h: int = 48, w: int = 64) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // w, y * 255 // h, np.full_like(x, 128)], axis=-1).astype(np.uint8)


def test_compressed_jpeg_and_png() -> None:
    rgb = smooth_rgb()
    jpg = wire(cv.rgb_to_compressed_msg(rgb, header(), "jpeg", quality=95))
    assert jpg.format == "rgb8; jpeg compressed bgr8"
    out = cv.compressed_to_rgb(jpg)
    assert out.shape == rgb.shape and np.abs(out.astype(int) - rgb).mean() < 2.0
    assert np.abs(out[..., 0].astype(int) - rgb[..., 0]).mean() < 3.0  # R stays R
    png = wire(cv.rgb_to_compressed_msg(rgb, header(), "png"))
    np.testing.assert_array_equal(cv.compressed_to_rgb(png), rgb)


@pytest.mark.parametrize("variant", ["grey8", "grey16", "bgra"])
def test_compressed_png_variants(variant: str) -> None:
    rgb = smooth_rgb(8, 8)
    if variant == "grey8":
        img, expect = rgb[..., 0], np.repeat(rgb[..., :1], 3, axis=2)
    elif variant == "grey16":
        img, expect = rgb[..., 0].astype(np.uint16) * 257, np.repeat(rgb[..., :1], 3, axis=2)
    else:
        img, expect = np.concatenate([rgb[..., ::-1], np.full((8, 8, 1), 9, np.uint8)], axis=2), rgb
    ok, buf = cv2.imencode(".png", img)
    msg = CompressedImage(format="png")
    msg.data = array.array("B", buf.tobytes())
    np.testing.assert_array_equal(cv.compressed_to_rgb(msg), expect)


def test_compressed_errors() -> None:
    jpg = cv.rgb_to_compressed_msg(smooth_rgb(), None, "jpeg")
    png = cv.rgb_to_compressed_msg(smooth_rgb(), None, "png")
    for msg, cut in ((jpg, len(jpg.data) // 2), (jpg, 40), (png, len(png.data) - 5), (png, 20)):
        m = CompressedImage(format=msg.format)
        m.data = msg.data[:cut]
        with pytest.raises(InputError):
            cv.compressed_to_rgb(m)
    with pytest.raises(InputError, match="no data"):
        cv.compressed_to_rgb(CompressedImage(format="jpeg"))
    with pytest.raises(UnsupportedEncoding, match="'bmp'"):
        cv.compressed_to_rgb(CompressedImage(format="bmp", data=b"BM" + bytes(60)))
    with pytest.raises(UnsupportedEncoding, match="depth"):
        cv.compressed_to_rgb(CompressedImage(format="16UC1; compressedDepth png", data=png.data))
    # a PNG that declares 60000 x 60000 pixels is refused before OpenCV allocates anything
    big = bytearray(png.data)
    big[16:24] = (60000).to_bytes(4, "big") * 2
    with pytest.raises(InputError, match="60000x60000"):
        cv.compressed_to_rgb(CompressedImage(format="png", data=bytes(big)))


@pytest.mark.skipif(not cv.HAVE_CV_BRIDGE, reason="cv_bridge is only importable on a real ROS install")
def test_matches_cv_bridge() -> None:
    """On a robot image_to_rgb goes through cv_bridge: it must agree with our numpy path."""
    for enc in ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "yuv422", "yuv422_yuy2"):
        msg = cv.rgb_to_image_msg(RGB_PAIRS, header(), enc, step=None)
        ours = cv._rows_to_rgb(cv._rows(msg, cv.RGB_ENCODINGS[enc], enc), msg.height, msg.width, enc, False)
        np.testing.assert_allclose(cv.image_to_rgb(msg), ours, atol=2, err_msg=enc)


def test_cv_bridge_path_is_wrapped(monkeypatch: pytest.MonkeyPatch) -> None:
    """The robot path (cv_bridge importable): its result is used, its errors become InputError."""
    class FakeBridge:
        def imgmsg_to_cv2(self, msg: Image, desired_encoding: str) -> np.ndarray:
            assert desired_encoding == "rgb8"
            if msg.encoding == "mono8":
                raise RuntimeError("CvBridgeError: boom")
            return np.full((msg.height, msg.width, 3), 7, np.uint8)

    monkeypatch.setattr(cv, "_BRIDGE", FakeBridge())
    np.testing.assert_array_equal(cv.image_to_rgb(cv.rgb_to_image_msg(RGB, None, "bgr8")), np.full(RGB.shape, 7))
    with pytest.raises(InputError, match="cv_bridge could not convert mono8 image 10x6: CvBridgeError: boom"):
        cv.image_to_rgb(cv.rgb_to_image_msg(RGB, None, "mono8"))
    # validation happens before cv_bridge sees anything; mono16 always takes our path
    with pytest.raises(InputError, match="needs"):
        cv.image_to_rgb(raw_image(2, 2, "bgr8", 6, bytes(5)))
    assert cv.image_to_rgb(cv.rgb_to_image_msg(RGB, None, "mono16")).shape == RGB.shape
