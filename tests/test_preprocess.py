"""Official resize rule, tensor conversion, resize back and visualisation."""
import cv2
import numpy as np
import pytest
import torch

from ppd_ros.errors import InputError
from ppd_ros.preprocess import check_rgb_u8, keep_aspect_size, minmax_u8, resize_depth, resize_keep_aspect, to_tensor
from ppd_ros.visualize import colorize, spectral_lut


@pytest.mark.parametrize("hw,out,interp", [((480, 640), (768, 1024), cv2.INTER_CUBIC),
                                           ((1080, 1920), (672, 1184), cv2.INTER_AREA),
                                           ((375, 1242), (480, 1616), cv2.INTER_CUBIC),
                                           ((1, 2000), (16, 39664), cv2.INTER_CUBIC)])
def test_keep_aspect_size_spec_examples(hw, out, interp):
    assert keep_aspect_size(*hw) == (*out, interp)


def test_keep_aspect_size_custom_area_multiple_of_16():
    h, w, _ = keep_aspect_size(480, 640, 256 * 192)
    assert (h, w) == (192, 256)


def test_resize_and_tensor():
    img = np.random.default_rng(0).integers(0, 255, (30, 40, 3), dtype=np.uint8)
    out = resize_keep_aspect(img, 64 * 48)
    assert out.shape == (48, 64, 3)
    t = to_tensor(img)
    assert t.shape == (1, 3, 30, 40) and t.dtype == torch.float32
    assert torch.allclose(t[0, :, 3, 4], torch.from_numpy(img[3, 4].astype(np.float32)) / 255)


@pytest.mark.parametrize("bad", [np.zeros((0, 4, 3), np.uint8), np.zeros((4, 4), np.uint8),
                                 np.zeros((4, 4, 3), np.float32), np.zeros((2, 100, 3), np.uint8)])
def test_check_rgb_rejects_bad_frames(bad):
    with pytest.raises(InputError):
        check_rgb_u8(bad, max_aspect=8.0)


def test_resize_depth_half_pixel_bilinear():
    d = torch.tensor([[[[0.0, 1.0]]]])
    out = resize_depth(d, (1, 4))
    assert torch.allclose(out[0, 0, 0], torch.tensor([0.0, 0.25, 0.75, 1.0]))


def test_minmax_and_colorize():
    d = np.array([[0.0, 1.0], [0.5, np.nan]], np.float32)
    assert minmax_u8(np.array([[2.0, 2.0]])).tolist() == [[0, 0]]  # constant depth guarded
    col = colorize(d, bgr=False)
    lut = spectral_lut()
    assert col[0, 0].tolist() == lut[0].tolist() and col[0, 1].tolist() == lut[255].tolist()
    assert col[1, 1].tolist() == [0, 0, 0]
    assert lut[0].tolist() == [158, 1, 66]  # Spectral starts at ColorBrewer #9e0142 (near = red)
