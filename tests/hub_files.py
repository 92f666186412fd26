"""Small files with the official names and layouts, built from the fixture-size weights, for the local hub.

``ppd.pth`` holds ``dit.*`` and ``depth_anything_v2_vitl.pth`` ``pretrained.*`` (both torch zip files, as
released), ``model.pt`` is MoGe-2's ``{'model': ..., 'model_config': ...}``, π3's ``model.safetensors`` a
flat safetensors file. ``FIXTURE_PRESETS`` names the preset each one loads into.
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import torch
from safetensors.torch import load_file, save

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PPD_SHARED", REPO.parent / "shared"))
FIX = SHARED / "fixtures"

FIXTURE_PRESETS = {"ppd_dit": "fixture_ppd_e2e_dit", "da2_vitl": "fixture_da2_vit_small",
                   "moge2_vitl_normal": "fixture_moge2_tiny", "pi3": "fixture_pi3_semantics_small"}


def _torch_bytes(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


@lru_cache(maxsize=1)
def official_bytes() -> dict[str, bytes]:
    """Registry name -> the bytes of a fixture-size file with that entry's official name and layout."""
    e2e = load_file(str(FIX / "ppd" / "e2e_small" / "weights.safetensors"))
    moge_cfg = json.loads((FIX / "moge2" / "infer" / "meta.json").read_text())["model_config"]
    return {
        "ppd_dit": _torch_bytes({k: v for k, v in e2e.items() if k.startswith("dit.")}),
        "da2_vitl": _torch_bytes({k[len("sem_encoder."):]: v for k, v in e2e.items() if k.startswith("sem_encoder.")}),
        "moge2_vitl_normal": _torch_bytes({"model": load_file(str(FIX / "moge2" / "infer" / "weights.safetensors")),
                                           "model_config": moge_cfg}),
        "pi3": save(load_file(str(FIX / "ppvd" / "pi3_semantics_small" / "weights.safetensors"))),
    }


def serve(hub: object, names: list[str] | None = None) -> None:
    """Put the fixture files of ``names`` (default: all) on a LocalHub under their official repo/file."""
    from ppd_ros.hub import entry
    for name, data in official_bytes().items():
        if names is None or name in names:
            f = entry(name)
            hub.add(f.repo_id, f.filename, data)


def hub_env(home: Path, endpoint: str, **extra: str) -> dict[str, str]:
    """A child environment: this repo on the path, the hub at ``endpoint``, HF_HOME in ``home``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("HF_") and k not in ("HUGGING_FACE_HUB_TOKEN", "TRANSFORMERS_OFFLINE")}
    env.update(PYTHONPATH=str(REPO), HF_ENDPOINT=endpoint, HF_HOME=str(home), PYTHONUNBUFFERED="1",
               HF_HUB_DISABLE_PROGRESS_BARS="1", **extra)
    return env


def weights_cli(args: list[str], env: dict[str, str], timeout: float = 120, **kw: object) -> subprocess.CompletedProcess:
    """``ppd-ros weights ARGS`` in a fresh process (the library reads its environment at import)."""
    return subprocess.run([sys.executable, "-m", "ppd_ros.cli", "weights", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, cwd=str(REPO), **kw)
