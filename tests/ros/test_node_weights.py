"""The node launched by name (model:=ppd) from a Hugging Face cache filled by ``ppd-ros weights fetch``,
cross-process and without network (HF_HUB_OFFLINE=1, HF_ENDPOINT at a closed loopback port); and the
one-line configure failure that names the fetch command when files are missing."""
from __future__ import annotations

import numpy as np
import pytest

from ..hub_files import FIXTURE_PRESETS, hub_env, serve, weights_cli
from ..hub_server import LocalHub
from .node_support import FIXTURE_PARAMS, dds_env, fresh_domain, ros_args, start_process

from .test_node_cross_process import run_camera  # noqa: E402 - after its DDS confinement

from ppd_ros.ros.conversions import image_msg_to_depth  # noqa: E402
from ppd_ros.ros.messages import status_to_dict  # noqa: E402

NO_NETWORK = "http://127.0.0.1:9"  # the discard port: nothing listens, nothing leaves the machine
# model:=ppd with no path parameter; the presets select the fixture-size architectures of the files
BY_NAME = {**{k: v for k, v in FIXTURE_PARAMS.items() if k not in ("model", "dit_checkpoint", "semantics_checkpoint")},
           "model": "ppd", "dit_preset": FIXTURE_PRESETS["ppd_dit"], "semantics_preset": FIXTURE_PRESETS["da2_vitl"],
           "metric_preset": FIXTURE_PRESETS["moge2_vitl_normal"], "metric_tokens": 64, "metric_refresh_every": 1000,
           "max_depth": 50.0}


def _offline(monkeypatch, home) -> None:
    """The node process (dds_env copies os.environ) sees only the local cache."""
    for k, v in {"HF_HOME": str(home), "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": NO_NETWORK}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)


def test_model_ppd_starts_from_the_prefilled_cache_without_network(tmp_path, monkeypatch) -> None:
    home = tmp_path / "hf"
    with LocalHub() as hub:
        serve(hub)
        r = weights_cli(["fetch", "ppd"], hub_env(home, hub.endpoint))
        assert r.returncode == 0, r.stderr
    _offline(monkeypatch, home)
    col, sent, counters, log = run_camera(BY_NAME, ["--reliability", "reliable"])
    assert counters["frames_in"] == sent["sent"] and counters["frames_out"] >= 1, counters
    assert len(col.got["depth"]) == counters["frames_out"]
    d = image_msg_to_depth(col.got["depth"][-1])
    assert d.dtype == np.float32 and np.isfinite(d).any() and (d[np.isfinite(d)] > 0).all()
    st = status_to_dict(col.got["status"][-1])
    assert st["model"] == "ppd" and st["metric"] is True and st["mode"] == "image"
    assert "configure failed" not in log and "Traceback" not in log


@pytest.mark.parametrize("model, mode, offline, command", [
    ("ppd", "image", False, "ppd-ros weights fetch ppd_dit da2_vitl moge2_vitl_normal"),
    ("ppvd", "video_stream", True, "ppd-ros weights fetch pi3 moge2_vitl_normal && "
                                   "ppd-ros weights fetch ppvd_dit_video --from /path/to/ppvd.pth"),
])
def test_missing_files_fail_configure_with_the_fetch_command(tmp_path, model, mode, offline, command) -> None:
    env = dds_env(fresh_domain())
    env.update(HF_HOME=str(tmp_path), HF_ENDPOINT=NO_NETWORK)
    env.pop("HF_HUB_CACHE", None)
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    else:
        env.pop("HF_HUB_OFFLINE", None)
    params = {**BY_NAME, "model": model, "mode": mode}
    proc = start_process(["-m", "ppd_ros.ros.depth_node", "--ros-args", *ros_args(params)], env)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 1, out
    lines = [ln for ln in out.splitlines() if "configure failed" in ln]
    assert len(lines) == 1 and f"weights not in the cache {tmp_path / 'hub'}" in lines[0], out
    assert lines[0].rstrip().endswith(command) or f"run: {command} (" in lines[0], lines[0]
    assert "Traceback" not in out
