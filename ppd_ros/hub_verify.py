"""``ppd-ros weights verify``: check a weight file's keys and shapes strictly against its preset.

The model is built on the ``meta`` device (no memory, no time) and compared with the file through the
same declared layouts the loaders use (``checkpoints.CHECKPOINT_LAYOUTS``), so a file that verifies is
a file the pipelines load. Safetensors files are checked from their header alone; torch files are
memory-mapped, never read whole. The full-size presets equal the official manifests (tested in
tests/test_models_*.py), so verifying against them is verifying against the manifests.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from .checkpoints import (CHECKPOINT_LAYOUTS, check_state_dict, read_checkpoint_object, read_state_dict,
                          select_keys)
from .config import preset
from .errors import CheckpointError
from .hub import OfficialFile


@dataclass(frozen=True)
class VerifyReport:
    """What matched: the preset, how many tensors and parameters, how many declared-unused keys."""

    preset: str
    tensors: int
    parameters: int
    ignored: int


def read_shapes(path: str | os.PathLike, wrapped_in: str | None = None) -> dict[str, torch.Tensor]:
    """Name -> tensor (``meta`` for safetensors: header only) of a weight file; one-line errors."""
    p = Path(path)
    if p.suffix != ".safetensors":
        return read_state_dict(p, wrapped_in)
    if not p.is_file() or p.stat().st_size == 0:
        raise CheckpointError(f"checkpoint missing or empty: {p}")
    from safetensors import SafetensorError, safe_open
    try:
        with safe_open(str(p), "pt") as f:
            out = {k: torch.empty(f.get_slice(k).get_shape(), device="meta") for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{p} is not a readable safetensors file (truncated or corrupt?): "
                              f"{str(exc).splitlines()[0][:200]}") from None
    return out


def _module(kind: str, cfg: Any) -> Callable[[], torch.nn.Module]:
    from .models import DA2SemanticEncoder, DiT
    if kind == "ppd_dit":
        return lambda: DiT(cfg)
    if kind == "da2_vit":
        return lambda: DA2SemanticEncoder(cfg)
    if kind == "pi3":
        from .models.pi3 import Pi3Semantic
        return lambda: Pi3Semantic(cfg)
    if kind == "ppvd_dit_video":
        from .models.dit_video import DiT_Video
        return lambda: DiT_Video(cfg)
    from .models.moge2 import MoGe2Model
    return lambda: MoGe2Model(cfg)


def _state(f: OfficialFile, path: Path, cfg: Any) -> tuple[Mapping[str, torch.Tensor], int]:
    """(the tensors the model receives, the number of tensors in the file)."""
    if f.kind == "moge2" and path.suffix != ".safetensors":
        obj = read_checkpoint_object(path)
        if not isinstance(obj, dict) or not isinstance(obj.get("model"), dict):
            found = sorted(map(str, obj))[:5] if isinstance(obj, dict) else type(obj).__name__
            raise CheckpointError(f"{path} is not a MoGe-2 model.pt: expected a dict with 'model', found {found}")
        state = obj["model"]
    else:
        state = read_shapes(path)
    if f.kind == "ppvd_dit_video":
        from .pipelines.video import dit_video_state
        return dit_video_state(dict(state), cfg), len(state)
    return select_keys(state, CHECKPOINT_LAYOUTS[f.kind]), len(state)


def verify(f: OfficialFile, path: str | os.PathLike, preset_name: str | None = None) -> VerifyReport:
    """Raise CheckpointError / CheckpointMismatch (one line) unless ``path`` fits ``f``'s preset exactly."""
    name = preset_name or f.preset
    cfg = preset(name)
    p = Path(path)
    state, total = _state(f, p, cfg)
    with torch.device("meta"):
        model = _module(f.kind, cfg)()
    check_state_dict(model, state, f"{p} ({f.filename}, preset {name})")
    n = sum(v.numel() for k, v in model.state_dict().items())
    return VerifyReport(name, len(state), n, max(total - len(state), 0))
