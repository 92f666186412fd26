"""Fuzz: thousands of random, mostly broken messages -> a valid result or one of OUR exceptions.

Nothing else may escape (no ValueError from numpy, no cv2.error, no MemoryError from a header
that claims 8000 x 8000 pixels with 10 bytes of data). Seeds are fixed: failures reproduce.
"""
from __future__ import annotations

import array
from collections import Counter
from typing import Any, Callable

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField

from ppd_ros.errors import CameraInfoMismatch, InputError, UnsupportedEncoding
from ppd_ros.ros import conversions as cv

ENCODINGS = list(cv.RGB_ENCODINGS) + list(cv.DEPTH_ENCODINGS) + [
    "", "RGB8", "bayer_rggb8", "8UC3", "32FC3", "64FC1", "nv21", "jpeg", "mono 8", "\x00", "rgb8 "]
SIDES = [0, 1, 2, 3, 5, 16, 31, 640, 8000, cv.MAX_SIDE + 1, 2**31 - 1]
TYPED = (InputError, UnsupportedEncoding, CameraInfoMismatch)


def run(fn: Callable[[Any], Any], msg: Any, outcomes: Counter) -> Any:
    try:
        out = fn(msg)
    except TYPED as exc:
        assert str(exc), "typed exceptions must carry a message"
        outcomes[type(exc).__name__] += 1
        return None
    outcomes["ok"] += 1
    return out


def rand_image(rng: np.random.Generator) -> Image:
    enc = ENCODINGS[rng.integers(len(ENCODINGS))]
    h = int(SIDES[rng.integers(len(SIDES))] if rng.random() < 0.4 else rng.integers(1, 9))
    w = int(SIDES[rng.integers(len(SIDES))] if rng.random() < 0.4 else rng.integers(1, 9))
    bpp = {**cv.RGB_ENCODINGS, **cv.DEPTH_ENCODINGS}.get(enc, 3)
    row = min(w, 64) * bpp
    step = int(rng.choice([row, row + int(rng.integers(1, 9)), max(row - 1, 0), 0, w * bpp, 2**32 - 1]))
    step = min(step, 2**32 - 1)
    n = min(step * min(h, 64), 4096)
    n = int(rng.choice([n, max(n - 1, 0), n + 1, 0, int(rng.integers(0, 64))]))
    msg = Image(height=min(h, 2**32 - 1), width=min(w, 2**32 - 1), encoding=enc, step=step,
                is_bigendian=int(rng.integers(0, 2)))
    msg.data = array.array("B", rng.integers(0, 256, n, dtype=np.uint8).tobytes())
    if rng.random() < 0.05:  # a broken publisher / python caller bypassing the setters
        object.__setattr__(msg, "_height", [-1, 1.5, None][int(rng.integers(3))])
    if rng.random() < 0.05:
        object.__setattr__(msg, "_data", [None, "text", [300, 2], [[1, 2]]][int(rng.integers(4))])
    return msg


def test_fuzz_raw_images() -> None:
    rng = np.random.default_rng(1234)
    outcomes: Counter = Counter()
    for _ in range(1500):
        msg = rand_image(rng)
        out = run(cv.image_to_rgb, msg, outcomes)
        if out is not None:
            assert out.shape == (msg.height, msg.width, 3) and out.dtype == np.uint8
        d = run(cv.image_msg_to_depth, msg, outcomes)
        if d is not None:
            assert d.shape == (msg.height, msg.width) and d.dtype == np.float32
    assert outcomes["ok"] > 20 and outcomes["InputError"] > 500 and outcomes["UnsupportedEncoding"] > 200, outcomes


def test_fuzz_compressed() -> None:
    rng = np.random.default_rng(99)
    rgb = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    seeds = [bytes(cv.rgb_to_compressed_msg(rgb, None, k).data) for k in ("jpeg", "png")]
    outcomes: Counter = Counter()
    for i in range(600):
        base = bytearray(seeds[i % 2])
        mode = i % 5
        if mode == 0:  # truncated
            base = base[: int(rng.integers(0, len(base)))]
        elif mode == 1:  # bit flips
            for j in rng.integers(0, len(base), int(rng.integers(1, 20))):
                base[j] ^= 1 << int(rng.integers(8))
        elif mode == 2:  # random bytes with a valid magic
            base = base[:4] + bytearray(rng.integers(0, 256, int(rng.integers(0, 300)), dtype=np.uint8).tobytes())
        elif mode == 3:  # garbage
            base = bytearray(rng.integers(0, 256, int(rng.integers(0, 100)), dtype=np.uint8).tobytes())
        else:  # header fields overwritten (sizes, lengths)
            j = int(rng.integers(2, min(40, len(base) - 4)))
            base[j:j + 4] = rng.integers(0, 256, 4, dtype=np.uint8).tobytes()
        msg = CompressedImage(format=["jpeg", "png", "rgb8; jpeg compressed bgr8", ""][i % 4])
        msg.data = array.array("B", bytes(base))
        out = run(cv.compressed_to_rgb, msg, outcomes)
        if out is not None:
            assert out.ndim == 3 and out.shape[2] == 3 and out.dtype == np.uint8
    assert outcomes["InputError"] > 100 and outcomes["UnsupportedEncoding"] > 50, outcomes


def rand_info(rng: np.random.Generator) -> CameraInfo:
    m = CameraInfo(width=int(rng.choice([0, 1, 640, 640, 4464])), height=int(rng.choice([0, 1, 480, 480])))
    k = rng.choice([0.0, 1.0, -5.0, 500.0, np.nan, np.inf], 9)
    if rng.random() < 0.7:  # mostly a good calibration, sometimes with a zeroed entry
        k = np.array([500.0, 0, 320, 0, 500.0, 240, 0, 0, 1.0]) * (rng.random(9) < 0.97)
    m.k, m.p = k, np.concatenate([k.reshape(3, 3), rng.choice([0.0, 1.0], (3, 1))], axis=1).reshape(-1)
    m.d = list(rng.choice([0.0, 0.1, 0.2, 0.3, np.nan], int(rng.integers(0, 9))))
    m.binning_x, m.binning_y = int(rng.choice([0, 1, 2, 4096])), int(rng.choice([0, 1, 3]))
    if rng.random() < 0.3:
        m.roi.x_offset, m.roi.width, m.roi.height = (int(v) for v in rng.choice([0, 1, 320, 641], 3))
    if rng.random() < 0.1:
        object.__setattr__(m, ["_k", "_p", "_r"][int(rng.integers(3))], np.zeros(int(rng.integers(0, 13))))
    if rng.random() < 0.05:
        object.__setattr__(m, "_width", [-4, 2.5, "640"][int(rng.integers(3))])
    return m


def test_fuzz_camera_info() -> None:
    rng = np.random.default_rng(5)
    outcomes: Counter = Counter()
    for _ in range(600):
        m = rand_info(rng)
        intr = run(cv.camera_info_to_intrinsics, m, outcomes)
        if intr is not None:
            back = cv.intrinsics_to_camera_info(intr)
            assert cv.camera_info_to_intrinsics(back) == intr
            run(lambda i: cv.check_camera_info_matches(i, 640, 480), intr, outcomes)
    assert outcomes["ok"] > 20 and outcomes["CameraInfoMismatch"] > 300, outcomes


def rand_cloud(rng: np.random.Generator) -> PointCloud2:
    h, w = int(rng.choice([0, 1, 2, 3, 100000])), int(rng.choice([0, 1, 4, 70000]))
    ps = int(rng.choice([0, 1, 12, 16, 32]))
    rs = int(rng.choice([0, ps * min(w, 8), ps * min(w, 8) + 4, 2**31]))
    msg = PointCloud2(height=h, width=w, point_step=ps, row_step=rs, is_bigendian=bool(rng.integers(2)))
    msg.fields = [PointField(name=str(rng.choice(["x", "y", "z", "rgb", ""])), offset=int(rng.integers(0, 40)),
                             datatype=int(rng.integers(0, 10)), count=int(rng.integers(0, 4)))
                  for _ in range(int(rng.integers(0, 5)))]
    msg.data = array.array("B", bytes(int(rng.choice([0, 7, min(rs * min(h, 4), 4096), 256]))))
    return msg


def test_fuzz_clouds() -> None:
    rng = np.random.default_rng(11)
    outcomes: Counter = Counter()
    for _ in range(600):
        msg = rand_cloud(rng)
        out = run(cv.msg_to_cloud, msg, outcomes)
        if out is not None:
            assert out.shape == (msg.height, msg.width)
    assert outcomes["InputError"] > 400, outcomes


@pytest.mark.parametrize("seed", [0, 1])
def test_fuzz_depth_arrays(seed: int) -> None:
    rng = np.random.default_rng(seed)
    outcomes: Counter = Counter()
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, -1.0, 1e-9, 1e9, 65.5355], np.float32)
    for i in range(300):
        shape = [(0, 3), (2,), (3, 4), (1, 1), (2, 3, 1), (5, 7)][i % 6]
        d = rng.choice(specials, shape) if rng.random() < 0.5 else rng.standard_normal(shape) * 30
        with np.errstate(invalid="ignore", over="ignore"):  # NaN/inf -> int32 casts are part of the fuzz
            d = d.astype([np.float32, np.float64, np.float16, np.int32, np.bool_, np.complex64][int(rng.integers(6))])
        for enc in ("32FC1", "16UC1", "8UC1"):
            msg = run(lambda a: cv.depth_to_image_msg(a, None, enc), d, outcomes)
            if msg is not None:
                back = cv.image_msg_to_depth(msg)
                assert back.shape == d.shape
                finite = back[np.isfinite(back)]
                assert np.all(finite > 0)  # invalid is NaN (16UC1: 0 mm -> NaN), never 0 or a negative depth
    assert outcomes["ok"] > 100, outcomes
