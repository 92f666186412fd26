"""Per-frame semantics for the embedded PPVD: the small PPD's frozen encoder behind π3's surface.

``PPVDPipeline`` and the streaming state talk to π3 (``forward_semantics`` over a window and
``forward_semantics_with_cache(imgs, past)`` returning global-attention K/V). The small encoder has no
cross-frame attention, so every frame's semantics depend on that frame only: the cache is ``None``
and ``cross_frame_cache`` is False, which makes ``video_stream.new_stream_state`` allocate no π3 buffers.
"""
from __future__ import annotations

import torch
from torch import nn

from .small_encoder import SmallSemanticEncoder


class SmallVideoSemantics(nn.Module):
    """Wraps ``SmallSemanticEncoder`` (keys ``encoder.*``) for the video pipeline; frames are independent."""

    cross_frame_cache = False  # no K/V to carry between frames

    def __init__(self, encoder: SmallSemanticEncoder) -> None:
        super().__init__()
        self.encoder = encoder
        self.cfg = encoder.cfg

    def forward_semantics(self, imgs: torch.Tensor) -> torch.Tensor:
        """(N, 3, s, s) in [0, 1] -> (N, (s/stride)^2, semantics_dim) on the encoder's semantic grid, each frame on its own."""
        return self.encoder.forward_semantics(imgs)

    def forward_semantics_with_cache(self, imgs: torch.Tensor, past: object = None) -> tuple[torch.Tensor, None]:
        """Same as ``forward_semantics``; ``past`` is ignored and no cache is returned."""
        return self.forward_semantics(imgs), None

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        return self.forward_semantics(imgs)
