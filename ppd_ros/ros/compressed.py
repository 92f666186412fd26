"""sensor_msgs/CompressedImage (JPEG / PNG) <-> (H, W, 3) uint8 RGB with OpenCV, checked first.

The container header is probed before OpenCV sees the bytes: a declared size above ``MAX_SIDE`` or a
missing end marker (truncated JPEG without EOI, PNG without IEND) raises ``InputError`` instead of
letting libjpeg return a half-grey frame or allocate gigabytes.
"""
from __future__ import annotations

import array
from typing import Final, Literal

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage
from std_msgs.msg import Header

from ..errors import InputError, UnsupportedEncoding
from .buffers import MAX_SIDE, as_u8

MAX_COMPRESSED_BYTES: Final[int] = 256 * 1024 * 1024
# Decoding allocates width x height x channels before reading the stream: a 300-byte JPEG that
# declares 16000 x 16000 pixels would cost 768 MB and seconds of CPU. Real images stay far below
# ~350 pixels per byte (an all-black 1080p PNG; deflate tops out near 1032:1), so more than this
# many declared pixels per byte of data, above a 1-megapixel floor, is refused as corrupt.
MAX_PIXELS_PER_BYTE: Final[int] = 1024
MIN_PIXEL_BUDGET: Final[int] = 1 << 20
_PNG_MAGIC: Final[bytes] = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, progressive, lossless...; not DHT C4, JPG C8, DAC CC)
_SOF: Final[frozenset[int]] = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB,
                                         0xCD, 0xCE, 0xCF})


def _jpeg_size(b: bytes) -> tuple[int, int]:
    """(width, height) from the first SOF segment of a JPEG; InputError when it cannot be found."""
    pos, n = 2, len(b)
    while pos + 4 <= n:
        if b[pos] != 0xFF:
            raise InputError(f"JPEG: expected a marker at byte {pos}, found 0x{b[pos]:02x} (corrupt)")
        marker = b[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # standalone markers
            pos += 2
            continue
        if marker in (0xD9, 0xDA):
            break  # end of image / start of scan before any frame header
        length = (b[pos + 2] << 8) | b[pos + 3]
        if length < 2:
            raise InputError(f"JPEG: segment 0xFF{marker:02X} at byte {pos} has length {length} (< 2)")
        if marker in _SOF:
            if pos + 9 > n:
                break
            return (b[pos + 7] << 8) | b[pos + 8], (b[pos + 5] << 8) | b[pos + 6]
        pos += 2 + length
    raise InputError(f"JPEG: no frame header found in {n} bytes (truncated or corrupt)")


def _probe(buf: np.ndarray, fmt: str) -> tuple[Literal["jpeg", "png"], int, int]:
    """Container kind and declared (width, height); typed errors for anything unusable."""
    head = bytes(buf[:64 * 1024]) if buf.size > 64 * 1024 else bytes(buf)
    tail = bytes(buf[-32:]).rstrip(b"\x00")
    if head[:3] == b"\xff\xd8\xff":
        w, h = _jpeg_size(head if len(head) < 64 * 1024 else bytes(buf))
        if not tail.endswith(b"\xff\xd9"):
            raise InputError(f"JPEG of {buf.size} bytes has no end-of-image marker (truncated)")
        return "jpeg", w, h
    if head[:8] == _PNG_MAGIC:
        if len(head) < 24 or head[12:16] != b"IHDR":
            raise InputError(f"PNG of {buf.size} bytes has no IHDR chunk (truncated or corrupt)")
        if buf.size < 44 or bytes(buf[-8:-4]) != b"IEND":
            raise InputError(f"PNG of {buf.size} bytes has no IEND chunk (truncated)")
        return "png", int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    raise UnsupportedEncoding(f"compressed image format {fmt!r} (first bytes {head[:4].hex()}) is not "
                              "supported; expected JPEG or PNG data")


def compressed_to_rgb(msg: CompressedImage) -> np.ndarray:
    """sensor_msgs/CompressedImage (JPEG or PNG; 8/16-bit, grey/colour/alpha) -> (H, W, 3) uint8 RGB."""
    fmt = msg.format if isinstance(msg.format, str) else repr(msg.format)
    if "compresseddepth" in fmt.lower():
        raise UnsupportedEncoding(f"compressed format {fmt!r} is a depth stream; expected a JPEG/PNG colour image")
    buf = as_u8(msg.data, "compressed data")
    if buf.size == 0:
        raise InputError(f"compressed image (format {fmt!r}) has no data")
    if buf.size > MAX_COMPRESSED_BYTES:
        raise InputError(f"compressed image of {buf.size} bytes exceeds {MAX_COMPRESSED_BYTES} bytes")
    kind, w, h = _probe(buf, fmt)
    if not (1 <= w <= MAX_SIDE and 1 <= h <= MAX_SIDE):
        raise InputError(f"{kind.upper()} declares {w}x{h}; expected 1..{MAX_SIDE} pixels per side")
    if w * h > max(MIN_PIXEL_BUDGET, MAX_PIXELS_PER_BYTE * buf.size):
        raise InputError(f"{kind.upper()} declares {w}x{h} pixels in only {buf.size} bytes "
                         f"(> {MAX_PIXELS_PER_BYTE} pixels per byte): corrupt header")
    try:
        img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise InputError(f"OpenCV could not decode the {kind.upper()} ({buf.size} bytes): {exc}") from exc
    if img is None or img.size == 0:
        raise InputError(f"OpenCV could not decode the {kind.upper()} ({buf.size} bytes, format {fmt!r})")
    if img.dtype == np.uint16:
        img = ((img.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise InputError(f"{kind.upper()} decoded to dtype {img.dtype}; expected 8 or 16 bits per channel")
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    codes = {1: cv2.COLOR_GRAY2RGB, 3: cv2.COLOR_BGR2RGB, 4: cv2.COLOR_BGRA2RGB}
    if img.shape[2] not in codes:
        raise InputError(f"{kind.upper()} decoded to {img.shape[2]} channels; expected 1, 3 or 4")
    return cv2.cvtColor(img, codes[img.shape[2]])


def rgb_to_compressed_msg(rgb: np.ndarray, header: Header | None = None,
                          kind: Literal["jpeg", "png"] = "jpeg", quality: int = 90) -> CompressedImage:
    """(H, W, 3) uint8 RGB -> CompressedImage as image_transport's plugin writes it (``rgb8; jpeg compressed bgr8``)."""
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8 or min(a.shape[:2]) < 1:
        raise InputError(f"rgb must be a non-empty (H, W, 3) uint8 array, got shape {a.shape} dtype {a.dtype}")
    if kind not in ("jpeg", "png"):
        raise UnsupportedEncoding(f"compression {kind!r} is not supported; expected 'jpeg' or 'png'")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if kind == "jpeg" else []
    ok, enc = cv2.imencode(".jpg" if kind == "jpeg" else ".png", cv2.cvtColor(a, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise InputError(f"OpenCV could not encode a {a.shape[1]}x{a.shape[0]} image as {kind}")
    msg = CompressedImage()
    if header is not None:
        msg.header = header
    msg.format = f"rgb8; {kind} compressed bgr8"
    msg.data = array.array("B", enc.tobytes())
    return msg
