"""Initialisation of a small DiT for training from scratch: DiT's adaLN-Zero init plus a noise pass-through.

Why: the velocity target v = noise - x0 contains the per-pixel noise, so the network must carry all
256 noise values of a 16x16 coarse patch through its hidden width (the official 1024-wide DiT can).
Learning that routing from random weights takes far longer than our CPU budget, and a DiT that does
not reproduce the noise leaves it in the sampled depth. So, as DiT does with adaLN-Zero (every block
starts as the identity), we start from an exact-ish identity for the noise: ``x_embedder`` copies
the 256 noise pixels into the first 256 channels, the fusion MLP routes each 8x8 sub-patch into
channels 0..63 of its fine token (kept in SiLU's linear range by a +10 offset), and the final layer
reads them back. At step 0 the model predicts v = noise (x0 = 0) and only has to learn x0.
"""
from __future__ import annotations

import torch
from torch import nn

from ..models.dit import DiT

OFFSET = 10.0  # SiLU(z + 10) = z + 10 within 0.1 % for |z| < 4


def dit_default_init(dit: DiT) -> None:
    """DiT's ``initialize_weights``: xavier linears, N(0, 0.02) timestep MLP, zeroed adaLN and final layer."""
    for m in dit.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    w = dit.x_embedder.proj.weight
    nn.init.xavier_uniform_(w.view(w.shape[0], -1))
    nn.init.zeros_(dit.x_embedder.proj.bias)
    for m in dit.t_embedder.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
    for blk in dit.blocks:
        nn.init.zeros_(blk.adaLN_modulation[-1].weight)
        nn.init.zeros_(blk.adaLN_modulation[-1].bias)
    nn.init.zeros_(dit.final_layer.adaLN_modulation[-1].weight)
    nn.init.zeros_(dit.final_layer.adaLN_modulation[-1].bias)
    nn.init.zeros_(dit.final_layer.linear.weight)
    nn.init.zeros_(dit.final_layer.linear.bias)


@torch.no_grad()
def init_noise_passthrough(dit: DiT, seed: int = 0) -> None:
    """Default init, then the pass-through described in the module docstring (needs hidden >= 2*16*16/2)."""
    cfg = dit.cfg
    p, d = cfg.patch_size, cfg.hidden_size
    big = 2 * p
    if d < big * big + p * p or cfg.out_channels != 1:
        raise ValueError(f"pass-through needs hidden_size >= {big * big + p * p} and one output channel")
    dit_default_init(dit)
    emb = dit.x_embedder.proj.weight  # (D, 4, 2p, 2p)
    emb[: big * big] = 0
    idx = torch.arange(big * big)
    emb[idx, 0, idx // big, idx % big] = 1.0  # channel c copies noise pixel (c // 2p, c % 2p)
    lin1, lin2, lin3 = dit.proj_fusion[0], dit.proj_fusion[2], dit.proj_fusion[4]
    rows, cols = [], []
    for dy in range(2):
        for dx in range(2):
            for py in range(p):
                for px in range(p):
                    rows.append((2 * dy + dx) * d + py * p + px)
                    cols.append((p * dy + py) * big + (p * dx + px))
    rows_t, cols_t = torch.tensor(rows), torch.tensor(cols)
    lin1.weight[rows_t] = 0
    lin1.weight[rows_t, cols_t] = 1.0
    lin1.bias[rows_t] = OFFSET
    for lin, bias in ((lin2, 0.0), (lin3, -OFFSET)):
        lin.weight[:, rows_t] = 0  # free features do not read the offset pass-through channels
        lin.weight[rows_t] = 0
        lin.weight[rows_t, rows_t] = 1.0
        lin.bias[rows_t] = bias
    fin = dit.final_layer.linear.weight  # (p*p, D)
    fin[torch.arange(p * p), torch.arange(p * p)] = 1.0
    # the final LayerNorm divides each token by its std: calibrate the read-out gain on random inputs
    g = torch.Generator().manual_seed(seed)
    hw = 4 * big
    x = torch.randn(2, cfg.in_channels, hw, hw, generator=g) * torch.tensor([1.0, 0.3, 0.3, 0.3]).view(1, 4, 1, 1)
    sem = torch.randn(2, (hw // big) ** 2, cfg.semantics_dim, generator=g)
    v = dit(x, sem, torch.tensor(1000))
    gain = float((v * x[:, :1]).sum() / (v * v).sum())
    fin.mul_(gain)
