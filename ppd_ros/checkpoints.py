"""Safe, strict checkpoint loading.

Files are read with safetensors or ``torch.load(weights_only=True)`` only. Models are built on the
``meta`` device and filled with ``load_state_dict(assign=True)`` after an exact key-and-shape check;
keys the pipeline does not use are dropped by an explicit, declared table (``CHECKPOINT_LAYOUTS``).
"""
from __future__ import annotations

import os
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, TypeVar

import torch
from torch import nn

from .errors import CheckpointError, CheckpointMismatch

M = TypeVar("M", bound=nn.Module)


@dataclass(frozen=True)
class CheckpointLayout:
    """How one official file maps onto one of our modules."""

    name: str
    # prefix the module's keys carry in the file ("" = none); files without it are accepted too
    prefix: str = ""
    # key prefixes (in file naming) that exist in official files but are unused by the pipeline
    ignored_prefixes: tuple[str, ...] = ()
    # a file that is a dict wrapping the state dict under this key (MoGe-2's model.pt: "model")
    wrapped_in: str | None = None


# The declared table of official layouts; tests assert each ignored group against the manifests.
CHECKPOINT_LAYOUTS: dict[str, CheckpointLayout] = {
    # ppd.pth / ppd_moge.pth: dit.* only; stray sem_encoder.* (older training dumps) are tolerated.
    "ppd_dit": CheckpointLayout("PPD DiT (ppd.pth)", prefix="dit.", ignored_prefixes=("sem_encoder.",)),
    # depth_anything_v2_vitl.pth: PPD uses the ViT only; the DPT depth head is never built.
    # depth_anything_v2_vitl.pth: PPD uses the ViT only; the DPT depth head is never built. A whole
    # PixelPerfectDepth state dict (sem_encoder.pretrained.* + dit.*) is accepted as well.
    "da2_vit": CheckpointLayout("Depth-Anything-V2 ViT (depth_anything_v2_vitl.pth)", prefix="sem_encoder.",
                                ignored_prefixes=("depth_head.", "dit.")),
}


def read_state_dict(path: str | os.PathLike, wrapped_in: str | None = None) -> dict[str, torch.Tensor]:
    """Read a tensor dict from .safetensors or a torch zip/pickle file, safely; one-line errors."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"checkpoint not found: {p}")
    if not p.is_file():
        raise CheckpointError(f"checkpoint path is not a file: {p}")
    if p.stat().st_size == 0:
        raise CheckpointError(f"checkpoint is empty (0 bytes): {p}")
    if p.suffix == ".safetensors":
        obj = _read_safetensors(p)
    else:
        obj = _read_torch(p)
    if wrapped_in is not None:
        if not isinstance(obj, dict) or wrapped_in not in obj:
            keys = list(obj)[:5] if isinstance(obj, dict) else type(obj).__name__
            raise CheckpointError(f"{p}: expected a dict with a {wrapped_in!r} entry, found {keys}")
        obj = obj[wrapped_in]
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{p}: expected a dict of tensors, found {type(obj).__name__}")
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{p}: entries that are not tensors: {bad[:5]}")
    return dict(obj)


def read_checkpoint_object(path: str | os.PathLike) -> object:
    """The raw object of a torch file (e.g. MoGe-2's {'model': ..., 'model_config': ...})."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint not found: {p}")
    return _read_torch(p)


def _read_safetensors(p: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    try:
        return load_file(str(p))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{p} is not a readable safetensors file (truncated or corrupt?): "
                              f"{_first_line(exc)}") from None


def _read_torch(p: Path) -> object:
    try:
        return torch.load(str(p), map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(p))
    except pickle.UnpicklingError as exc:
        msg = _first_line(exc)
        if "Weights only load failed" in msg or "Unsupported global" in msg or "weights_only" in msg:
            raise CheckpointError(f"{p} holds pickled Python objects that need code execution to load; "
                                  "refusing (only plain tensor dicts are accepted)") from None
        raise CheckpointError(f"{p} is not a readable torch checkpoint (truncated or corrupt?): {msg}") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"{p} is not a readable torch checkpoint (truncated or corrupt?): "
                              f"{_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def select_keys(state: Mapping[str, torch.Tensor], layout: CheckpointLayout) -> dict[str, torch.Tensor]:
    """Drop the layout's ignored groups and strip its prefix (files without the prefix are fine)."""
    kept = {k: v for k, v in state.items() if not any(k.startswith(g) for g in layout.ignored_prefixes)}
    if layout.prefix and kept and all(k.startswith(layout.prefix) for k in kept):
        kept = {k[len(layout.prefix):]: v for k, v in kept.items()}
    return kept


def check_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], what: str = "checkpoint") -> None:
    """Raise CheckpointMismatch naming the first missing/unexpected keys and shape differences."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    shapes = [f"{k}: file {got[k]} vs model {expected[k]}" for k in expected if k in got and got[k] != expected[k]]
    if not (missing or unexpected or shapes):
        return
    found = len(expected) - len(missing)
    parts = [f"{what} does not match the model: {found} of {len(expected)} expected keys found"]
    if missing:
        parts.append(f"missing {len(missing)} (first: {', '.join(missing[:3])})")
    if unexpected:
        parts.append(f"unexpected {len(unexpected)} (first: {', '.join(unexpected[:3])})")
    if shapes:
        parts.append(f"{len(shapes)} shape mismatches (first: {'; '.join(shapes[:3])})")
    raise CheckpointMismatch("; ".join(parts))


def load_into(build: Callable[[], M], state: Mapping[str, torch.Tensor], what: str = "checkpoint",
              dtype: torch.dtype = torch.float32) -> M:
    """Build the module on ``meta``, check keys/shapes strictly, then assign the tensors (cast to dtype)."""
    with torch.device("meta"):
        model = build()
    check_state_dict(model, state, what)
    cast = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in state.items()}
    model.load_state_dict(cast, strict=True, assign=True)
    leftovers = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if leftovers:
        raise CheckpointMismatch(f"{what}: tensors never filled from the file: {leftovers[:3]}")
    return model.eval()


def load_model(build: Callable[[], M], path: str | os.PathLike, layout: str | CheckpointLayout,
               dtype: torch.dtype = torch.float32) -> M:
    """Read ``path`` and load it strictly into ``build()`` using a declared layout."""
    lay = CHECKPOINT_LAYOUTS[layout] if isinstance(layout, str) else layout
    state = select_keys(read_state_dict(path, lay.wrapped_in), lay)
    return load_into(build, state, f"{path} (expected {lay.name})", dtype)


# pi3.safetensors (= π3's model.safetensors, loaded strictly): PPVD runs encoder.*, decoder.*,
# register_token and the image_mean/std buffers only; the 3-D heads below are never used for semantics.
CHECKPOINT_LAYOUTS["pi3"] = CheckpointLayout(
    "π3 (pi3.safetensors)", ignored_prefixes=("point_decoder.", "point_head.", "conf_decoder.", "conf_head.",
                                              "camera_decoder.", "camera_head."))

# ppvd.pth holds a whole PixelPerfectVideoDepth state dict: dit_video.* is the DiT (loaded strictly);
# sem_encoder.* (if present) is π3 and is routed to the π3 loader by pipelines/video.py.
CHECKPOINT_LAYOUTS["ppvd_dit_video"] = CheckpointLayout("PPVD DiT_Video (ppvd.pth)", prefix="dit_video.",
                                                        ignored_prefixes=("sem_encoder.",))

# MoGe-2 model.pt = {'model': state dict, 'model_config': constructor dict}; every key is used
# (the unused encoder.backbone.mask_token is built too, so the match stays exact).
CHECKPOINT_LAYOUTS["moge2"] = CheckpointLayout("MoGe-2 (model.pt)", wrapped_in="model")
