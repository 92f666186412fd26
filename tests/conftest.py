"""Shared test helpers: fixture paths and small presets. ROS-specific set-up lives in tests/ros/."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PPD_SHARED", REPO.parent / "shared"))
FIXTURES = SHARED / "fixtures"
MANIFESTS = FIXTURES / "manifests"
REAL = SHARED / "data" / "real"

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

# huggingface_hub in this process never reaches a hub (not even its own side requests): tests that fetch
# run the library in child processes with their own HF_* environment pointing at a loopback test hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"  # the discard port: nothing listens


def manifest(name: str) -> dict[str, list[int]]:
    """{key: shape} of a full-size official checkpoint (the ``_meta`` entry dropped)."""
    data = json.loads((MANIFESTS / name).read_text())
    return {k: list(v) for k, v in data.items() if k != "_meta"}


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.fail(f"parity fixtures not found at {FIXTURES} (set PPD_SHARED)")
    return FIXTURES
