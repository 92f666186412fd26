"""Small semantic encoder for the embedded PPD: frozen EfficientNet-Lite0 + a trained FPN-style decoder.

``forward_semantics(image)`` gives the DiT its semantic tokens on its coarse-token grid (16 or 8 px,
``SmallEncoderConfig.semantic_stride``): decoder features
(``semantics_dim - 16`` channels) concatenated with the decoder's coarse depth resampled to a 4x4
patch per token (16 values), so the DiT is prompted with both semantics and a coarse depth guess.
``forward_depth`` is the decoder-only depth (the ablation the DiT has to beat on edges).
EfficientNet-Lite0 attribute names follow the ImageNet checkpoint (``_conv_stem``, ``_blocks.N``...).
"""
from __future__ import annotations

import math
import torch
import torch.nn.functional as F
from torch import nn

from ..config import SmallEncoderConfig

# (repeats, kernel, stride, expand, in, out) of EfficientNet-Lite0's seven stages
LITE0_STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
                (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))
FEATURE_BLOCKS = (2, 4, 10, 15)  # last block of strides 4, 8, 16, 32 -> channels 24, 40, 112, 320
FEATURE_CHANNELS = (24, 40, 112, 320)
DEPTH_PATCH = 4  # coarse depth values per token side appended to the semantics
DEPTH_GAIN = 4.0  # keeps the 16 depth values comparable in norm to the features before the DiT's L2 norm


def _same_pad(x: torch.Tensor, k: int, s: int) -> torch.Tensor:
    """TensorFlow 'SAME' padding (the checkpoint was trained with it; asymmetric for stride 2)."""
    h, w = x.shape[-2:]
    ph = max((math.ceil(h / s) - 1) * s + k - h, 0)
    pw = max((math.ceil(w / s) - 1) * s + k - w, 0)
    return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))


class SameConv(nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(_same_pad(x, self.kernel_size[0], self.stride[0]), self.weight, self.bias, self.stride,
                        0, self.dilation, self.groups)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)


class MBConv(nn.Module):
    """Inverted residual block without squeeze-excitation (the 'Lite' variant), ReLU6."""

    def __init__(self, k: int, stride: int, expand: int, cin: int, cout: int) -> None:
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv(mid, mid, k, stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if hasattr(self, "_expand_conv") else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """ImageNet EfficientNet-Lite0 trunk (no head/classifier): (B, 3, H, W) in [0, 1] -> 4 feature maps."""

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = SameConv(3, 32, 3, 2, bias=False)
        self._bn0 = _bn(32)
        blocks = []
        for reps, k, s, e, cin, cout in LITE0_STAGES:
            for r in range(reps):
                blocks.append(MBConv(k, s if r == 0 else 1, e, cin if r == 0 else cout, cout))
        self._blocks = nn.ModuleList(blocks)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        x = F.relu6(self._bn0(self._conv_stem((image - 0.5) / 0.5)))  # Lite models take (x - 127) / 128
        feats = []
        for i, blk in enumerate(self._blocks):
            x = blk(x)
            if i in FEATURE_BLOCKS:
                feats.append(x)
        return feats  # strides 4, 8, 16, 32


class ConvGN(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.GELU())


class SmallDecoder(nn.Module):
    """Top-down FPN over the four trunk maps: semantics at stride 16 (or 8), coarse depth at stride 4."""

    def __init__(self, cfg: SmallEncoderConfig) -> None:
        super().__init__()
        self.semantic_level = {16: 2, 8: 1}[cfg.semantic_stride]
        d = cfg.decoder_dim
        self.lateral = nn.ModuleList([nn.Conv2d(c, d, 1) for c in FEATURE_CHANNELS])
        self.smooth = nn.ModuleList([ConvGN(d, d) for _ in FEATURE_CHANNELS])
        self.context = nn.Sequential(ConvGN(d, d), ConvGN(d, d))  # widens the receptive field at stride 32
        self.sem_head = nn.Conv2d(d, cfg.semantics_dim - DEPTH_PATCH ** 2, 1)
        self.depth_head = nn.Sequential(ConvGN(d, d), nn.Conv2d(d, 1, 3, padding=1))

    def forward(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.context(self.lateral[3](feats[3]))
        x = self.smooth[3](x)
        outs = {}
        for i in (2, 1, 0):
            x = F.interpolate(x, size=feats[i].shape[-2:], mode="bilinear", align_corners=False)
            x = self.smooth[i](x + self.lateral[i](feats[i]))
            outs[i] = x
        # (B, S-16, h/s, w/s) at the semantic stride s, (B, 1, h/4, w/4)
        return self.sem_head(outs[self.semantic_level]), self.depth_head(outs[0])


class SmallSemanticEncoder(nn.Module):
    """The embedded model's semantic encoder: frozen ``backbone`` + trained ``decoder``."""

    def __init__(self, cfg: SmallEncoderConfig = SmallEncoderConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = EfficientNetLite0()
        self.decoder = SmallDecoder(cfg)

    def features(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) in [0, 1], H, W multiples of 16 -> (semantic map (B, S-16, H/s, W/s), depth (B, 1, H, W))."""
        with torch.no_grad():
            feats = self.backbone(image)
        sem, depth = self.decoder(feats)
        depth = F.interpolate(depth, size=image.shape[-2:], mode="bilinear", align_corners=False)
        return sem, depth

    def forward_depth(self, image: torch.Tensor) -> torch.Tensor:
        """Decoder-only relative depth (B, 1, H, W), same meaning as the DiT output (normalised log depth)."""
        return self.features(image)[1] + 0.5

    def tokens(self, sem: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        """(B, S-16, gh, gw) + (B, 1, H, W) -> (B, gh*gw, S) semantic tokens."""
        b, _, gh, gw = sem.shape
        patch = F.adaptive_avg_pool2d(depth, (gh * DEPTH_PATCH, gw * DEPTH_PATCH))  # (B, 1, 4gh, 4gw)
        patch = patch.reshape(b, gh, DEPTH_PATCH, gw, DEPTH_PATCH).permute(0, 2, 4, 1, 3)
        patch = patch.reshape(b, DEPTH_PATCH ** 2, gh, gw)
        return torch.cat([sem, DEPTH_GAIN * patch], 1).flatten(2).transpose(1, 2)  # (B, gh*gw, S)

    def forward_semantics(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, (H/s)*(W/s), semantics_dim), the DiT's prompt (s: the semantic stride)."""
        return self.tokens(*self.features(image))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.forward_semantics(image)
