"""MoGe-2 network (``MoGeModel`` of the official v2 code): DINOv2 encoder, ConvStack neck and heads.

Attribute names equal the official ``model.pt`` keys (``encoder.backbone.*``, ``neck.*``,
``points_head.*``, ``mask_head.*``, ``normal_head.*``, ``scale_head.*``). ``forward`` returns the raw
maps only; focal/shift recovery, masking and metric scaling live in ``pipelines/moge.py``.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConvStackConfig, MoGe2Config
from ..intrinsics import normalized_view_plane_uv
from .dinov2 import IMAGENET_MEAN, IMAGENET_STD, DinoVisionTransformer


@dataclass
class MoGe2Encoding:
    """Encoder output for one image batch at a (gh, gw) token grid."""

    features: torch.Tensor  # (B, dim_out, gh, gw) summed projected intermediate layers
    cls_token: torch.Tensor  # (B, D) class token of the last selected (normed) layer


@dataclass
class MoGe2Output:
    """Raw network maps at the input resolution (H, W)."""

    points: torch.Tensor  # (B, H, W, 3) affine-invariant point map (after the output remap)
    mask: torch.Tensor  # (B, H, W) validity probability
    metric_scale: torch.Tensor  # (B,) metres per point-map unit
    normal: torch.Tensor | None  # (B, H, W, 3) unit normals, None for a model without normal head


def token_grid(height: int, width: int, num_tokens: int) -> tuple[int, int]:
    """(gh, gw) patch grid for a token budget at the image aspect (truncation, as the official)."""
    aspect = width / height
    return int((num_tokens / aspect) ** 0.5), int((num_tokens * aspect) ** 0.5)


def semantics_grid(height: int, width: int) -> tuple[int, int]:
    """PPD's coarse grid (H//16, W//16): where ``forward_semantics`` runs the encoder."""
    return height // 16, width // 16


class DINOv2Encoder(nn.Module):
    """Resize + normalise, ViT, then sum of per-layer 1x1 projections of the normed patch tokens."""

    def __init__(self, cfg: MoGe2Config) -> None:
        super().__init__()
        self.layers = list(cfg.intermediate_layers)
        self.backbone = DinoVisionTransformer(cfg.vit)
        d = cfg.vit.embed_dim
        self.output_projections = nn.ModuleList([nn.Conv2d(d, cfg.dim_out, 1) for _ in self.layers])
        # persistent buffers: they are stored in model.pt, so they must exist for a strict load
        self.register_buffer("image_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("image_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor, gh: int, gw: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) RGB [0, 1] -> features (B, dim_out, gh, gw), class token (B, D)."""
        p = self.backbone.patch_size
        # antialias matters when shrinking (semantics path): ~1.2 abs difference without it
        x = F.interpolate(image, (gh * p, gw * p), mode="bilinear", align_corners=False, antialias=True)
        x = (x - self.image_mean) / self.image_std  # normalised after the resize
        outs = self.backbone.get_intermediate_layers(x, self.layers, norm=True)  # each (B, 1+N, D)
        k = self.backbone.num_prefix_tokens
        proj = [conv(t[:, k:].permute(0, 2, 1).unflatten(2, (gh, gw)).contiguous())
                for conv, t in zip(self.output_projections, outs)]
        return torch.stack(proj, dim=1).sum(dim=1), outs[-1][:, 0]  # (B, C, gh, gw), (B, D)


class ResidualConvBlock(nn.Module):
    """x + conv(relu(conv(relu(x)))); ``layers.0/3`` are the (identity) norms of the release config."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Identity(), nn.ReLU(),
            nn.Conv2d(dim, hidden, 3, padding=1, padding_mode="replicate"),
            nn.Identity(), nn.ReLU(),
            nn.Conv2d(hidden, dim, 3, padding=1, padding_mode="replicate"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers(x)


def resampler(kind: str, dim_in: int, dim_out: int) -> nn.Sequential:
    """2x upsampler: transposed conv (or parameter-free upsample) then a 3x3 replicate-padded conv."""
    if kind == "conv_transpose":
        return nn.Sequential(nn.ConvTranspose2d(dim_in, dim_out, 2, stride=2),
                             nn.Conv2d(dim_out, dim_out, 3, padding=1, padding_mode="replicate"))
    up = nn.Upsample(scale_factor=2, mode=kind, align_corners=False if kind == "bilinear" else None)
    return nn.Sequential(up, nn.Conv2d(dim_in, dim_out, 3, padding=1, padding_mode="replicate"))


class ConvStack(nn.Module):
    """Coarse-to-fine levels: x = resample(x) + in_conv(input_l); residual blocks; optional out conv."""

    def __init__(self, cfg: ConvStackConfig) -> None:
        super().__init__()
        dims = cfg.dim_res_blocks
        self.input_blocks = nn.ModuleList([nn.Conv2d(i, d, 1) if i is not None else nn.Identity()
                                           for i, d in zip(cfg.dim_in, dims)])
        self.resamplers = nn.ModuleList([resampler(k, a, b) for k, a, b in zip(cfg.resamplers, dims, dims[1:])])
        self.res_blocks = nn.ModuleList([
            nn.Sequential(*(ResidualConvBlock(d, d * cfg.dim_times_res_block_hidden) for _ in range(n)))
            for d, n in zip(dims, cfg.num_res_blocks)])
        outs = cfg.dim_out or (None,) * cfg.levels
        self.output_blocks = nn.ModuleList([nn.Conv2d(d, o, 1) if o is not None else nn.Identity()
                                            for d, o in zip(dims, outs)])

    def forward(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Level l input (B, C_l, gh*2^l, gw*2^l) -> level l output of the same grid."""
        outs: list[torch.Tensor] = []
        x = None
        for lvl, inp in enumerate(inputs):
            f = self.input_blocks[lvl](inp)
            x = f if x is None else x + f
            x = self.res_blocks[lvl](x)
            outs.append(self.output_blocks[lvl](x))
            if lvl < len(self.resamplers):
                x = self.resamplers[lvl](x)
        return outs


def scale_mlp(dims: tuple[int, ...]) -> nn.Sequential:
    """Linear-ReLU-...-Linear (keys 0, 2, 4, ...)."""
    layers = [(nn.Linear(a, b), nn.ReLU()) for a, b in zip(dims[:-2], dims[1:-1])]
    return nn.Sequential(*itertools.chain.from_iterable(layers), nn.Linear(dims[-2], dims[-1]))


class MoGe2Model(nn.Module):
    """MoGe-2: affine point map, validity mask, optional normals and a metric scale from one image."""

    def __init__(self, cfg: MoGe2Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = DINOv2Encoder(cfg)
        self.neck = ConvStack(cfg.neck)
        self.points_head = ConvStack(cfg.points_head)
        if cfg.normal_head is not None:
            self.normal_head = ConvStack(cfg.normal_head)
        self.mask_head = ConvStack(cfg.mask_head)
        self.scale_head = scale_mlp(cfg.scale_head)

    def encode(self, image: torch.Tensor, grid: tuple[int, int]) -> MoGe2Encoding:
        """Run the ViT encoder once at a (gh, gw) token grid (shareable with ``forward_semantics``)."""
        features, cls = self.encoder(image, *grid)
        return MoGe2Encoding(features, cls)

    def decode(self, enc: MoGe2Encoding, size: tuple[int, int]) -> MoGe2Output:
        """Neck, heads and post-processing for an image of ``size = (H, W)``."""
        b, _, gh, gw = enc.features.shape
        h, w = size
        feats: list[torch.Tensor] = []
        for lvl in range(self.cfg.neck.levels):
            # view-plane uv at every level, always with the *image* aspect ratio
            uv = normalized_view_plane_uv(gw * 2 ** lvl, gh * 2 ** lvl, w / h, enc.features.dtype,
                                          enc.features.device)
            uv = uv.permute(2, 0, 1).unsqueeze(0).expand(b, -1, -1, -1)  # (B, 2, h_l, w_l)
            feats.append(torch.cat([enc.features, uv], dim=1) if lvl == 0 else uv)
        feats = self.neck(feats)

        def head(m: nn.Module) -> torch.Tensor:
            # only the finest level carries an output conv; resize without antialias
            return F.interpolate(m(feats)[-1], (h, w), mode="bilinear", align_corners=False)

        points = self._remap(head(self.points_head).permute(0, 2, 3, 1))  # (B, H, W, 3)
        normal = None
        if self.cfg.normal_head is not None:
            normal = F.normalize(head(self.normal_head).permute(0, 2, 3, 1), dim=-1)
        mask = head(self.mask_head).squeeze(1).sigmoid()  # (B, H, W)
        metric_scale = self.scale_head(enc.cls_token).squeeze(1).exp()  # (B,)
        return MoGe2Output(points, mask, metric_scale, normal)

    def _remap(self, p: torch.Tensor) -> torch.Tensor:
        mode = self.cfg.remap_output
        if mode == "linear":
            return p
        if mode == "sinh":
            return torch.sinh(p)
        xy, z = p.split([2, 1], dim=-1)
        z = torch.exp(z)  # "exp": z > 0 always, and x/z, y/z are the raw channels
        return torch.cat([torch.sinh(xy) if mode == "sinh_exp" else xy * z, z], dim=-1)

    def forward(self, image: torch.Tensor, num_tokens: int) -> MoGe2Output:
        """(B, 3, H, W) RGB in [0, 1] -> raw maps at (H, W), encoder at the token-budget grid."""
        h, w = image.shape[-2:]
        return self.decode(self.encode(image, token_grid(h, w, num_tokens)), (h, w))

    def semantics_from(self, enc: MoGe2Encoding) -> torch.Tensor:
        """(B, C, gh, gw) encoder features -> (B, gh*gw, C) row-major tokens (no norm, no uv)."""
        return enc.features.flatten(2).transpose(1, 2)

    def forward_semantics(self, image: torch.Tensor) -> torch.Tensor:
        """PPD's MoGe-2 semantics: encoder at (H//16, W//16) -> (B, (H//16)*(W//16), dim_out)."""
        return self.semantics_from(self.encode(image, semantics_grid(*image.shape[-2:])))
