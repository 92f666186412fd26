"""The embedded small PPVD: DiT_Video initialised from the small image DiT, fine-tuned on synthetic clips.

Initialisation (as the PPVD paper does from PPD): every image-DiT tensor (patch embedding, timestep MLP,
spatial blocks, fusion MLP, final layer) is copied; the temporal blocks are new and start as the
identity (adaLN-Zero: zeroed modulation, so both residual gates are 0). The shipped presets keep the
image DiT's RoPE (``DiTVideoConfig.rope``) and a zero position table. Without RoPE (the official
layout) the fixed additive sin-cos table takes its place; the small image DiT carries the noise
through the first (2 * patch_size)^2 channels of its coarse tokens (``train/init.py``), so the table
lives on the remaining channels only (a full-width table on the noise channels triples the error at
step 0); it is a frozen tensor stored in the checkpoint.

Fine-tuning: moving-camera clips (``data.synthetic.make_sequence``) rendered at 128x96 and stretched
to 128x128 like ``PPVDPipeline.prepare``; the small encoder is frozen, so its semantics are computed
once and cached. Each step draws one clip and either an official window (reference frames followed by
new frames, ``WindowContext``) or the streaming structure (a reference pass, then each new frame alone
attending to the cached reference tokens and the previous frames' temporal tokens, as
``pipelines/video_stream.py`` does at inference). One timestep per window (DiT_Video shares it), the
image training's flow-matching loss, and a log-depth target normalised over the whole window so the
frames share one scale. Deterministic from (seed, step); resumable from ``<out>/last.pt``.

Run: ``python -m ppd_ros.train.video --out runs/ppvd_small --steps N`` (one CPU thread).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..config import DiTVideoConfig, preset
from ..data.synthetic import SynthConfig, make_sequence
from ..models.dit import DiT
from ..models.dit_video import DiT_Video, WindowContext, pool_tokens
from ..models.small_encoder import SmallSemanticEncoder
from ..nn import sincos_2d_table
from ..embedded import file_sha256, load_embedded_models
from .dataset import cached_rgb_depth
from .loop import warmup_cosine
from .losses import flow_matching_inputs, velocity_loss
from .options import add_config_options, config_from_args
from .targets import normalized_log_depth

TRAIN_SEED_BASE = 20_000_000  # clip seeds: disjoint from the image frames and from HELDOUT_SEED_BASE
HELDOUT_SEED_BASE = 30_000_000  # bench/eval_video.py and the card's metrics
# the DiT_Video preset that matches each image DiT preset (same widths, so the image weights load)
VIDEO_PRESET_FOR = {"embedded_ppd_dit": "embedded_ppvd_dit_video", "embedded_ppd_dit_p4": "embedded_ppvd_dit_video_p4",
                    "embedded_ppd_dit_p4d4": "embedded_ppvd_dit_video_p4d4"}


def noise_channels(cfg: DiTVideoConfig) -> int:
    """Coarse-token channels that carry the noise patch of the pass-through init (train/init.py)."""
    return (2 * cfg.patch_size) ** 2


@dataclass(frozen=True)
class VideoTrainConfig:
    """Everything that determines a video fine-tuning run (recorded in the model card)."""

    out: str = "runs/ppvd_small"
    seed: int = 0
    sequences: int = 160
    seq_len: int = 20
    height: int = 96
    width: int = 128
    steps: int = 1000
    lr: float = 2e-4
    new_frames: int = 5  # frames after the references in a training window
    stream_every: int = 3  # every k-th step uses the streaming structure (0 = never)
    ckpt_every: int = 25
    dit_preset: str = "embedded_ppvd_dit_video_p4d4"
    video_preset: str = "embedded_ppvd_video"
    encoder_preset: str = "embedded_small_encoder_s8"  # the image model's (recorded in the card for the loader)
    init_from: str = "default"  # embedded image model whose DiT initialises and whose encoder is used
    # Only these tensors are fine-tuned and shipped; the rest are read from the image DiT's file at load
    # (the weights folder has no room for a second full DiT, even in float16). The temporal block alone
    # did better on held-out synthetic clips than also tuning block 1 + the final layer (docs/embedded_models.md).
    train_prefixes: str = "temporal_blocks."


# --- initialisation ---------------------------------------------------------------------------
def video_pos_table(cfg: DiTVideoConfig) -> torch.Tensor:
    """(1, g*g, D): zero on the noise channels, a 2-D sin-cos table on the others; all zero when the
    spatial blocks keep the image DiT's RoPE (the table would only perturb the copied weights)."""
    g = cfg.input_size // (2 * cfg.patch_size)
    table = torch.zeros(1, g * g, cfg.hidden_size)
    if cfg.rope:
        return table
    noise = noise_channels(cfg)
    free = cfg.hidden_size - noise
    if free >= 4:
        table[..., noise:noise + free - free % 4] = sincos_2d_table(free - free % 4, g)
    return table


@torch.no_grad()
def init_video_from_image(video: DiT_Video, image: DiT) -> None:
    """Copy the image DiT's tensors; identity temporal blocks; the channel-split sin-cos table."""
    missing, unexpected = video.load_state_dict(image.state_dict(), strict=False)
    new = {k for k in missing if k == "pos_embed" or k.startswith("temporal_blocks.")}
    if unexpected or set(missing) != new:
        raise ValueError(f"image DiT does not match DiT_Video: missing {sorted(set(missing) - new)}, "
                         f"unexpected {unexpected}")
    for blk in video.temporal_blocks:
        for m in blk.modules():
            if isinstance(m, torch.nn.Linear):
                torch.nn.init.xavier_uniform_(m.weight)
                torch.nn.init.zeros_(m.bias)
        torch.nn.init.zeros_(blk.adaLN_modulation[-1].weight)  # gates 0: the block starts as the identity
        torch.nn.init.zeros_(blk.adaLN_modulation[-1].bias)
    video.pos_embed.copy_(video_pos_table(video.cfg))


def video_dit_from_image(image: DiT, cfg: DiTVideoConfig, seed: int = 0) -> DiT_Video:
    torch.manual_seed(seed)
    video = DiT_Video(cfg)
    init_video_from_image(video, image)
    return video


# --- data -------------------------------------------------------------------------------------
def sequence_pool(base: int, n: int, length: int, syn: SynthConfig, cache_dir: str | Path | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(n, L, H, W, 3) uint8 RGB and (n, L, H, W) float32 depth (+inf sky) of clips base+0..n-1; cached."""
    path = Path(cache_dir) / f"clips_b{base}_n{n}_l{length}_{syn.height}x{syn.width}.npz" if cache_dir else None

    def build() -> tuple[np.ndarray, np.ndarray]:
        rgb = np.empty((n, length, syn.height, syn.width, 3), np.uint8)
        depth = np.empty((n, length, syn.height, syn.width), np.float32)
        for i in tqdm(range(n), desc="synthetic clips", leave=False, mininterval=5):
            for j, f in enumerate(make_sequence(base + i, length, syn)):
                rgb[i, j], depth[i, j] = f.rgb, f.depth
        return rgb, depth

    return cached_rgb_depth(path, build)


def stretch_rgb(rgb: np.ndarray, size: int) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, s, s) float in [0, 1], bilinear as ``PPVDPipeline.prepare``."""
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(0, 3, 1, 2).float() / 255.0
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=False)


def stretch_depth(depth: np.ndarray, size: int) -> torch.Tensor:
    """(N, H, W) metres -> (N, 1, s, s), nearest (keeps sky and edges unmixed)."""
    return F.interpolate(torch.from_numpy(np.ascontiguousarray(depth))[:, None], size=(size, size), mode="nearest")


def state_digest(module: torch.nn.Module) -> str:
    """Short SHA-256 of a module's tensors: cached semantics are reused only for the very same encoder."""
    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


@torch.no_grad()
def semantics_pool(enc: SmallSemanticEncoder, rgb: np.ndarray, size: int, cache: str | Path | None = None) -> torch.Tensor:
    """(n, L, T, S) float16 semantics of every clip frame (the encoder is frozen during fine-tuning)."""
    path = Path(cache) if cache else None
    if path is not None and path.exists():
        return torch.load(path, weights_only=True)
    enc.eval()
    n, length = rgb.shape[:2]
    flat = rgb.reshape(n * length, *rgb.shape[2:])
    out = torch.cat([enc.forward_semantics(stretch_rgb(flat[i:i + 64], size)).half()
                     for i in tqdm(range(0, len(flat), 64), desc="semantics", leave=False, mininterval=5)])
    out = out.reshape(n, length, *out.shape[1:])
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(out, path)
    return out


def window_target(depth: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) metres -> normalised log depth with ONE pair of quantiles over all N frames."""
    n, _, h, w = depth.shape
    return normalized_log_depth(depth.reshape(1, 1, n * h, w)).reshape(n, 1, h, w)


def window_indices(rng: np.random.Generator, length: int, refs: int, new: int) -> tuple[list[int], list[int]]:
    """Reference frames (frame 0, an earlier frame, the frame before the new ones) and ``new`` following frames."""
    start = int(rng.integers(refs, length - new + 1))
    if refs == 1:
        ref = [0]
    else:
        middle = sorted(rng.choice(np.arange(1, start - 1), refs - 2, replace=False).tolist()) if start > refs else \
            list(range(1, refs - 1))
        ref = [0, *middle, start - 1]
    return ref, list(range(start, start + new))


# --- streaming structure with gradients (mirrors video_stream._RefPassContext / _FrameContext) ---
class _RefRecorder:
    """The reference set as a window of its own; keeps its pooled and temporal tokens (with grad)."""

    def __init__(self, cfg: DiTVideoConfig) -> None:
        self.cfg, self.refs, self.temporal = cfg, {}, {}

    def reference_tokens(self, block: int, tok: torch.Tensor) -> torch.Tensor:
        refs = pool_tokens(tok, self.cfg.fine_grid, self.cfg.ref_pool).reshape(1, -1, tok.shape[-1])
        self.refs[block] = refs
        return refs.expand(tok.shape[0], -1, -1)

    def temporal_tokens(self, j: int, tok: torch.Tensor) -> torch.Tensor | None:
        self.temporal[j] = tok  # (L, R, D)
        return None


class _StreamFrame:
    """One new frame: the references' tokens plus the previous new frames' temporal inputs (causal)."""

    def __init__(self, rec: _RefRecorder, ring: dict[int, list[torch.Tensor]]) -> None:
        self.rec, self.ring = rec, ring

    def reference_tokens(self, block: int, tok: torch.Tensor) -> torch.Tensor:
        return self.rec.refs[block].expand(tok.shape[0], -1, -1)

    def temporal_tokens(self, j: int, tok: torch.Tensor) -> torch.Tensor | None:
        prev = self.ring.setdefault(j, [])
        extra = torch.cat([self.rec.temporal[j], *prev], dim=1)
        prev.append(tok)
        return extra


# --- trainer ----------------------------------------------------------------------------------
class VideoTrainer:
    """Owns the DiT_Video, its optimiser and the step counter; ``run()`` trains to ``cfg.steps`` with resume."""

    def __init__(self, cfg: VideoTrainConfig, enc: SmallSemanticEncoder | None = None, image_dit: DiT | None = None) -> None:
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)
        if enc is None or image_dit is None:
            enc, image_dit = load_embedded_models(cfg.init_from)
        self.enc = enc.eval().requires_grad_(False)
        self.dcfg: DiTVideoConfig = preset(cfg.dit_preset)
        self.dit = video_dit_from_image(image_dit, self.dcfg, cfg.seed)
        for name, p in self.dit.named_parameters():
            p.requires_grad_(name != "pos_embed" and name.startswith(self.prefixes))  # pos_embed stays fixed
        self.params = [p for p in self.dit.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=cfg.lr, weight_decay=0.0)
        self.step = 0
        self.data: tuple[np.ndarray, np.ndarray, torch.Tensor] | None = None
        self.resume()

    def resume(self) -> None:
        path = self.out / "last.pt"
        if path.exists():
            ck = torch.load(path, map_location="cpu", weights_only=True)
            self.dit.load_state_dict(ck["dit"])
            self.opt.load_state_dict(ck["opt"])
            self.step = int(ck["step"])

    def save(self) -> None:
        tmp = self.out / "last.pt.tmp"
        torch.save({"dit": self.dit.state_dict(), "opt": self.opt.state_dict(), "step": self.step}, tmp)
        tmp.replace(self.out / "last.pt")

    def log(self, record: dict) -> None:
        with open(self.out / "log.jsonl", "a") as f:
            f.write(json.dumps({"step": self.step, "time": time.time(), **record}) + "\n")

    def load_data(self) -> None:
        cfg = self.cfg
        syn = SynthConfig(height=cfg.height, width=cfg.width)
        data_dir = self.out.parent / "data"
        base = TRAIN_SEED_BASE + cfg.seed * 1_000_003
        rgb, depth = sequence_pool(base, cfg.sequences, cfg.seq_len, syn, data_dir)
        sem = semantics_pool(self.enc, rgb, self.dcfg.input_size,
                             data_dir / f"clip_semantics_b{base}_n{cfg.sequences}_l{cfg.seq_len}_{state_digest(self.enc)}.pt")
        self.data = (rgb, depth, sem)

    def lr_scale(self, step: int) -> float:
        """Linear warm-up over 30 steps then cosine decay to 10 %."""
        return warmup_cosine(step, self.cfg.steps, 30)

    def batch(self, step: int) -> tuple[str, int, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Step ``step``'s window: (kind, references, images (N,3,s,s), semantics (N,T,S), target (N,1,s,s))."""
        cfg, s = self.cfg, self.dcfg.input_size
        rgb, depth, sem = self.data
        rng = np.random.default_rng([cfg.seed, step])
        stream = cfg.stream_every > 0 and step % cfg.stream_every == cfg.stream_every - 1
        r = 1 if stream and rng.random() < 0.25 else self.dcfg.num_refs  # a stream's first epoch has one reference
        clip = int(rng.integers(len(rgb)))
        ref, new = window_indices(rng, cfg.seq_len, r, cfg.new_frames)
        idx = ref + new
        return ("stream" if stream else "window", r, stretch_rgb(rgb[clip, idx], s), sem[clip, idx].float(),
                window_target(stretch_depth(depth[clip, idx], s)))

    def losses(self, step: int) -> tuple[torch.Tensor, str]:
        kind, r, x, sem, target = self.batch(step)
        g = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + step)
        t = torch.randint(1, 1001, (1,), generator=g)
        noise = torch.randn(target.shape, generator=g)
        x_t, v = flow_matching_inputs(target, noise, t.expand(target.shape[0]))
        inp = torch.cat([x_t, x - 0.5], 1)
        if kind == "window":
            pred = self.dit(inp, sem, t, WindowContext(self.dcfg))
        else:
            rec, ring = _RefRecorder(self.dcfg), {}
            preds = [self.dit(inp[:r], sem[:r], t, rec)]
            for i in range(r, inp.shape[0]):
                preds.append(self.dit(inp[i:i + 1], sem[i:i + 1], t, _StreamFrame(rec, ring)))
            pred = torch.cat(preds)
        return velocity_loss(pred, v), kind

    def train_step(self) -> dict[str, float]:
        for grp in self.opt.param_groups:
            grp["lr"] = self.cfg.lr * self.lr_scale(self.step)
        loss, kind = self.losses(self.step)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.opt.step()
        return {kind: float(loss.detach())}

    def run(self, until: int | None = None) -> None:
        if self.data is None:
            self.load_data()
        end = min(until or self.cfg.steps, self.cfg.steps)
        self.dit.train()
        bar = tqdm(total=end, initial=self.step, desc="train video", mininterval=10)
        while self.step < end:
            rec = self.train_step()
            self.step += 1
            bar.update(1)
            bar.set_postfix({k: f"{v:.4f}" for k, v in rec.items()}, refresh=False)
            self.log({"loss": rec})
            if self.step % self.cfg.ckpt_every == 0 or self.step == end:
                self.save()
        bar.close()
        self.dit.eval()

    @property
    def prefixes(self) -> tuple[str, ...]:
        """The state-dict prefixes that are fine-tuned and shipped (``cfg.train_prefixes``, comma-separated)."""
        return tuple(p for p in self.cfg.train_prefixes.split(",") if p)

    def shipped_keys(self) -> list[str]:
        return [k for k in self.dit.state_dict() if k == "pos_embed" or k.startswith(self.prefixes)]

    def export(self, weights_dir: str | Path, metrics: dict | None = None, wall_s: float | None = None) -> dict:
        """Write ``embedded_ppvd_dit.safetensors`` (the fine-tuned tensors, float16) and ``embedded_ppvd.json``.

        The frozen tensors stay in the image model's ``embedded_ppd_dit.safetensors``; the card pins that
        file and the encoder by SHA-256 so a re-exported image model cannot be paired with this one silently.
        """
        from safetensors.torch import save_file
        wd = Path(weights_dir)
        wd.mkdir(parents=True, exist_ok=True)
        state = self.dit.state_dict()
        sd = {k: (state[k].half() if state[k].is_floating_point() else state[k]).contiguous() for k in self.shipped_keys()}
        save_file(sd, str(wd / "embedded_ppvd_dit.safetensors"))
        card_path = wd / "embedded_ppvd.json"
        old = json.loads(card_path.read_text()) if card_path.exists() else {}
        cfg = self.cfg
        shared = {"dit_rest": "embedded_ppd_dit.safetensors", "encoder": "embedded_ppd_encoder.safetensors"}
        card = {"name": "embedded_ppvd", "kind": "PPVD (DiT_Video + per-frame small semantics), demonstration model",
                "dit_preset": cfg.dit_preset, "video_preset": cfg.video_preset, "encoder_preset": cfg.encoder_preset,
                "files": {"dit": "embedded_ppvd_dit.safetensors", **shared},
                "sha256": {f: file_sha256(wd / f) for f in shared.values()},
                "init_from": f"embedded image model {cfg.init_from!r} (embedded_ppd.json): image DiT tensors copied, "
                             "temporal block identity (zeroed adaLN), "
                             + ("RoPE kept, zero position table; " if self.dit.cfg.rope else
                                "sin-cos table on the channels after the noise pass-through; ")
                             + f"fine-tuned: {cfg.train_prefixes} (shipped here), the rest frozen and read from "
                               "dit_rest",
                "train_config": asdict(cfg), "trained_steps": self.step, "seed": cfg.seed,
                "data": f"{cfg.sequences} procedural moving-camera clips x {cfg.seq_len} frames (ppd_ros.data.synthetic."
                        f"make_sequence, seeds {TRAIN_SEED_BASE}+{cfg.seed}*1000003+i), {cfg.width}x{cfg.height} "
                        "stretched to 128x128",
                "inference": {"steps": 4, "seed": 0, "dtype": "float32", "resolution": self.dcfg.input_size},
                "licence": "Apache-2.0 (trained here)",
                "retrain": f"python -m ppd_ros.train.video --out {cfg.out} --steps {cfg.steps} --seed {cfg.seed} "
                           f"--export ppd_ros/weights  (or: ppd-ros train ... --video-steps {cfg.steps})",
                "metrics": metrics if metrics is not None else old.get("metrics", {})}
        if wall_s is not None:
            card["train_wall_s"] = round(wall_s, 1)
        elif "train_wall_s" in old:
            card["train_wall_s"] = old["train_wall_s"]
        card_path.write_text(json.dumps(card, indent=2) + "\n")
        image_card = wd / "embedded_ppd.json"
        if image_card.exists():  # point the image model's card at the video model built on it
            ic = json.loads(image_card.read_text())
            ic["video_model"] = {
                "card": card_path.name, "preset": cfg.dit_preset, "file": "embedded_ppvd_dit.safetensors",
                "note": "small PPVD (DiT_Video) initialised from this model's DiT and fine-tuned on synthetic clips; "
                        "it reuses this model's embedded_ppd_dit.safetensors (frozen tensors) and encoder, pinned by "
                        "SHA-256 in embedded_ppvd.json: after re-exporting this model, retrain it (ppd-ros train ... "
                        f"--video-steps {cfg.steps} --export {weights_dir})"}
            image_card.write_text(json.dumps(ic, indent=2) + "\n")
        return card


def train_video(cfg: VideoTrainConfig, enc: SmallSemanticEncoder | None = None, image_dit: DiT | None = None,
                until: int | None = None) -> VideoTrainer:
    """Build (or resume) and run a video fine-tuning; returns the trainer (for ``export``)."""
    trainer = VideoTrainer(cfg, enc, image_dit)
    trainer.run(until)
    return trainer


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_config_options(p, VideoTrainConfig)
    p.add_argument("--until", type=int, default=None, help="stop at this step (resume later)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--export", default=None, help="write the shipped weights + card to this folder afterwards")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = config_from_args(VideoTrainConfig, args)
    t0 = time.perf_counter()
    trainer = train_video(cfg, until=args.until)
    wall = time.perf_counter() - t0
    print(f"video fine-tuning: step {trainer.step}/{cfg.steps}, {wall:.0f} s")
    if args.export:
        trainer.export(args.export, wall_s=wall)
        print(f"exported to {args.export}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
