"""``ppd-ros weights`` against a local stand-in of the Hugging Face Hub (127.0.0.1, started here).

Each command runs in its own process, as a user runs it, with HF_ENDPOINT / HF_HOME / HF_HUB_CACHE /
HF_HUB_OFFLINE / HF_TOKEN set in its environment. The files served are fixture-size models with the
official names and layouts (tests/hub_files.py). No other address is ever contacted.
"""
from __future__ import annotations

import hashlib
import os
import resource
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ppd_ros.hub import OFFICIAL_FILES, MODELS, WeightsError, entry, expand, fetch_command, require
from ppd_ros.config import PRESETS

from .hub_files import FIXTURE_PRESETS, REPO, official_bytes, serve, hub_env, weights_cli
from .hub_server import LocalHub

PPD = entry("ppd_dit")


def repo_dir(cache: Path, repo_id: str) -> Path:
    return cache / ("models--" + repo_id.replace("/", "--"))


def errors(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith("ppd-ros weights: error:")]


def loadable(cache: Path, f=PPD) -> list[Path]:
    """Files a later load could pick up: snapshot entries and finished blobs of ``f``'s repo."""
    d = repo_dir(cache, f.repo_id)
    snaps = list((d / "snapshots").glob(f"*/{f.filename}")) if d.exists() else []
    blobs = [p for p in (d / "blobs").glob("*") if not p.name.endswith(".incomplete")] if d.exists() else []
    return snaps + blobs


@pytest.fixture
def hub():
    with LocalHub() as h:
        serve(h)
        yield h


# --- the registry, in process ---------------------------------------------------------------------
def test_registry_entries_are_consistent():
    for f in OFFICIAL_FILES.values():
        assert f.preset in PRESETS, f.name
        assert f.size > 10**8 and f.licence and f.description
        assert f.on_hub or f.source, f"{f.name}: not on the Hub and no source given"
    assert {f.filename for f in OFFICIAL_FILES.values() if f.on_hub} == {
        "ppd.pth", "depth_anything_v2_vitl.pth", "model.pt", "model.safetensors"}
    assert {OFFICIAL_FILES[n].repo_id for n in ("ppd_dit", "da2_vitl", "moge2_vitl_normal", "pi3")} == {
        "gangweix/Pixel-Perfect-Depth", "depth-anything/Depth-Anything-V2-Large", "Ruicheng/moge-2-vitl-normal",
        "yyfz233/Pi3"}
    for m in MODELS.values():
        assert all(n in OFFICIAL_FILES for n in m.files())
    assert expand(["ppd", "ppd_dit"]) == ["ppd_dit", "da2_vitl", "moge2_vitl_normal"]
    with pytest.raises(WeightsError, match="known: ppd_dit, da2_vitl.*a model: ppd, ppd_moge2, ppvd"):
        expand(["ppd.pth"])


def test_require_names_the_exact_fetch_command(tmp_path):
    with pytest.raises(WeightsError) as e:
        require(MODELS["ppvd"].files(), tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and "ppvd.pth, model.safetensors, model.pt" in msg
    assert (f"run: ppd-ros weights fetch pi3 moge2_vitl_normal --cache-dir {tmp_path} && "
            f"ppd-ros weights fetch ppvd_dit_video --from /path/to/ppvd.pth --cache-dir {tmp_path}") in msg
    assert fetch_command(["ppd_dit"]) == "ppd-ros weights fetch ppd_dit"


def test_verify_checks_shapes_from_the_header_against_the_chosen_preset(tmp_path):
    """verify() of a file with exactly the full-size preset's keys/shapes passes (built on meta, no memory)."""
    import torch
    from safetensors.torch import save_file
    from ppd_ros.config import preset
    from ppd_ros.hub_verify import verify
    from ppd_ros.models.pi3 import Pi3Semantic
    with torch.device("meta"):
        keys = {k: tuple(v.shape) for k, v in Pi3Semantic(preset("fixture_pi3_semantics_small")).state_dict().items()}
    p = tmp_path / "model.safetensors"
    save_file({k: torch.zeros(s) for k, s in keys.items()}, str(p))
    assert verify(entry("pi3"), p, "fixture_pi3_semantics_small").tensors == len(keys)
    from ppd_ros.errors import CheckpointMismatch
    want = r"994 of 994 expected keys found; 992 shape mismatches \(first: register_token: file \(1, 1, 5, 48\) vs model"
    with pytest.raises(CheckpointMismatch, match=want):
        verify(entry("pi3"), p)  # the official full-size preset


# --- fetch against the local hub -----------------------------------------------------------------
def test_first_fetch_fills_the_library_cache_then_second_fetch_sends_no_file_request(hub, tmp_path):
    env = hub_env(tmp_path / "hf", hub.endpoint, HF_TOKEN="hf_local_test_token")
    env.pop("HF_HUB_DISABLE_PROGRESS_BARS")  # the library's progress bar, as users see it ...
    env["TQDM_POSITION"] = "-1"  # ... also on a pipe (huggingface_hub shows it on terminals only otherwise)
    r = weights_cli(["fetch", "ppd"], env)
    assert r.returncode == 0, r.stderr
    cache = tmp_path / "hf" / "hub"  # HF_HOME/hub: the library's default under HF_HOME
    paths = [Path(p) for p in r.stdout.split()]
    assert len(paths) == 3 and "CC-BY-NC-4.0" in r.stderr  # non-commercial licence printed at fetch
    assert "ppd.pth: 100%" in r.stderr and "depth_anything_v2_vitl.pth: 100%" in r.stderr  # the library's bars
    for name, p in zip(["ppd_dit", "da2_vitl", "moge2_vitl_normal"], paths):
        f, data = entry(name), official_bytes()[name]
        commit = hub.commits[f.repo_id]
        assert p == repo_dir(cache, f.repo_id) / "snapshots" / commit / f.filename
        assert p.is_symlink() and p.resolve() == repo_dir(cache, f.repo_id) / "blobs" / hashlib.sha256(data).hexdigest()
        assert p.read_bytes() == data
        assert (repo_dir(cache, f.repo_id) / "refs" / "main").read_text() == commit
    gets = hub.requests("cdn", "GET")
    assert len(gets) == 3 and not (tmp_path / "hf" / "xet").exists()  # plain HTTP, no Xet transfer
    assert all(r_[4] == "Bearer hf_local_test_token" for r_ in hub.requests("hub"))  # HF_TOKEN honoured
    assert all(r_[4] is None for r_ in gets)  # ... and never sent to the CDN

    again = weights_cli(["fetch", "ppd"], env)
    assert again.returncode == 0 and [Path(p) for p in again.stdout.split()] == paths
    assert len(hub.requests("cdn", "GET")) == 3 and not hub.requests("hub", "GET")  # no file request

    lst = weights_cli(["list"], env)
    assert lst.returncode == 0 and f"cache: {cache}" in lst.stdout
    rows = {ln.split()[0]: ln.split()[1] for ln in lst.stdout.splitlines()[2:8]}
    assert rows == {"ppd_dit": "present", "da2_vitl": "present", "moge2_vitl_normal": "present", "pi3": "missing",
                    "ppd_moge_dit": "missing", "ppvd_dit_video": "missing"}
    p = weights_cli(["path", "ppd_dit"], env)
    assert p.returncode == 0 and Path(p.stdout.strip()) == paths[0]

    for name in ("ppd_dit", "da2_vitl", "moge2_vitl_normal"):
        ok = weights_cli(["verify", name, "--preset", FIXTURE_PRESETS[name]], env)
        assert ok.returncode == 0 and ok.stdout.startswith("ok: "), ok.stderr
    da2 = weights_cli(["verify", "da2_vitl", "--preset", FIXTURE_PRESETS["da2_vitl"]], env).stdout
    assert "matches preset fixture_da2_vit_small" in da2 and "tensors ignored" not in da2
    full = weights_cli(["verify", "ppd_dit"], env)  # the official full-size preset: a fixture file does not fit
    assert full.returncode == 1 and len(errors(full.stderr)) == 1
    assert "does not match the model" in full.stderr and "preset ppd_dit" in full.stderr


def test_hf_hub_cache_and_cache_dir_are_honoured(hub, tmp_path):
    env = hub_env(tmp_path / "home", hub.endpoint, HF_HUB_CACHE=str(tmp_path / "custom"))
    r = weights_cli(["fetch", "pi3"], env)
    assert r.returncode == 0 and Path(r.stdout.strip()).is_relative_to(tmp_path / "custom"), r.stderr
    r = weights_cli(["fetch", "pi3", "--cache-dir", str(tmp_path / "explicit")], env)
    assert r.returncode == 0 and Path(r.stdout.strip()).is_relative_to(tmp_path / "explicit"), r.stderr
    assert weights_cli(["verify", "pi3", "--preset", FIXTURE_PRESETS["pi3"]], env).returncode == 0


def test_xet_announced_files_stay_on_plain_http_with_hf_hub_disable_xet(hub, tmp_path):
    hub.faults.xet = True  # the resolve answer names a Xet hash; no Xet service is reachable here
    r = weights_cli(["fetch", "ppd_dit"], hub_env(tmp_path, hub.endpoint, HF_HUB_DISABLE_XET="1"))
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()).read_bytes() == official_bytes()["ppd_dit"]
    assert [q[2] for q in hub.requests("cdn", "GET")] == [f"/blobs/{hashlib.sha256(official_bytes()['ppd_dit']).hexdigest()}"]
    assert not (tmp_path / "xet").exists()


def test_wrong_model_file_fails_verify_with_one_line(tmp_path):
    with LocalHub() as h:
        h.add(PPD.repo_id, PPD.filename, official_bytes()["da2_vitl"])  # a DA2 file where ppd.pth should be
        env = hub_env(tmp_path, h.endpoint)
        assert weights_cli(["fetch", "ppd_dit"], env).returncode == 0
        r = weights_cli(["verify", "ppd_dit", "--preset", FIXTURE_PRESETS["ppd_dit"]], env)
    assert r.returncode == 1 and len(errors(r.stderr)) == 1 and r.stdout == ""
    assert "does not match the model: 0 of 44 expected keys found; missing 44" in r.stderr


def test_interrupted_transfer_leaves_nothing_loadable_and_a_rerun_completes(hub, tmp_path):
    env = hub_env(tmp_path, hub.endpoint)
    cache = tmp_path / "hub"
    hub.faults.cut_after, hub.faults.cut_transfers = 1000, 100  # every attempt (and the library's retries) cut
    r = weights_cli(["fetch", "ppd_dit"], env)
    assert r.returncode == 1 and len(errors(r.stderr)) == 1, r.stderr
    assert "nothing was kept" in errors(r.stderr)[0]
    assert loadable(cache) == [] and not list(cache.rglob("*.incomplete"))
    p = weights_cli(["path", "ppd_dit"], env)
    assert p.returncode == 1 and "run: ppd-ros weights fetch ppd_dit" in p.stderr
    hub.faults.cut_transfers = 0
    r = weights_cli(["fetch", "ppd_dit"], env)
    assert r.returncode == 0 and Path(r.stdout.strip()).read_bytes() == official_bytes()["ppd_dit"]
    # a cached file cut short afterwards (disk trouble, a hand copy) fails verify with one line
    blob = Path(r.stdout.strip()).resolve()
    blob.write_bytes(blob.read_bytes()[:5000])
    v = weights_cli(["verify", "ppd_dit", "--preset", FIXTURE_PRESETS["ppd_dit"]], env)
    assert v.returncode == 1 and len(errors(v.stderr)) == 1 and "truncated or corrupt" in v.stderr


def test_killed_fetch_leaves_nothing_loadable_and_a_rerun_completes(hub, tmp_path):
    env = hub_env(tmp_path, hub.endpoint)
    cache = tmp_path / "hub"
    hub.faults.stall = threading.Event()  # half the body, then the transfer hangs: the user kills the fetch
    proc = subprocess.Popen([sys.executable, "-m", "ppd_ros.cli", "weights", "fetch", "ppd_dit"], env=env,
                            cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for _ in range(600):
            if hub.requests("cdn", "GET") and list(cache.rglob("*.incomplete")):
                break
            threading.Event().wait(0.05)
        assert list(cache.rglob("*.incomplete")), "the transfer never started"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        hub.faults.stall.set()
    hub.faults.stall = None
    assert loadable(cache) == []  # only the library's uniquely named <blob>.<id>.incomplete may remain
    assert weights_cli(["path", "ppd_dit"], env).returncode == 1
    r = weights_cli(["fetch", "ppd_dit"], env)
    assert r.returncode == 0 and Path(r.stdout.strip()).read_bytes() == official_bytes()["ppd_dit"]


def test_a_cut_transfer_resumes_with_a_range_request(tmp_path):
    data = os.urandom(24 * 2**20)  # larger than the library's 10 MiB read chunk, so a cut keeps a prefix
    with LocalHub() as h:
        h.add(PPD.repo_id, PPD.filename, data)
        h.faults.cut_after, h.faults.cut_transfers = 15 * 2**20, 1
        r = weights_cli(["fetch", "ppd_dit"], hub_env(tmp_path, h.endpoint))
        ranges = [q[3] for q in h.requests("cdn", "GET")]
    assert r.returncode == 0, r.stderr
    assert ranges[0] is None and ranges[1] is not None and ranges[1].startswith("bytes=")
    assert int(ranges[1][6:].rstrip("-")) > 0 and Path(r.stdout.strip()).read_bytes() == data


@pytest.mark.parametrize("fault, expect", [
    ("missing", "the server answered 404: not found"),
    ("cdn500", "the server answered 500: server error"),
    ("loop", "redirect loop"),
])
def test_bad_server_answers_give_one_line_and_leave_nothing(tmp_path, fault, expect):
    with LocalHub() as h:
        if fault != "missing":
            serve(h, ["ppd_dit"])
        else:
            h.add(PPD.repo_id, "other.pth", b"x")  # the repo exists, the file does not
        if fault == "cdn500":  # (a 5xx on the resolve HEAD is retried by the library with backoff, ~20 s)
            h.faults.cdn_status[PPD.filename] = 500
        elif fault == "loop":
            h.faults.redirect_loop.add(PPD.filename)
        r = weights_cli(["fetch", "ppd_dit"], hub_env(tmp_path, h.endpoint), timeout=180)
    assert r.returncode == 1 and len(errors(r.stderr)) == 1, r.stderr
    assert expect in errors(r.stderr)[0] and "ppd_dit (gangweix/Pixel-Perfect-Depth/ppd.pth)" in r.stderr
    assert loadable(tmp_path / "hub") == []


def test_unwritable_cache_and_full_disk(hub, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    env = hub_env(tmp_path, hub.endpoint)
    r = weights_cli(["fetch", "ppd_dit", "--cache-dir", str(blocker / "cache")], env)
    assert r.returncode == 1 and len(errors(r.stderr)) == 1
    assert f"cache folder {blocker / 'cache'} is not writable" in r.stderr

    def small_disk() -> None:  # writes past 1 MB fail like a full disk (EFBIG instead of ENOSPC)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2**20, 2**20))
    assert len(official_bytes()["ppd_dit"]) > 2**20
    r = weights_cli(["fetch", "ppd_dit"], env, preexec_fn=small_disk)
    assert r.returncode == 1 and len(errors(r.stderr)) == 1, r.stderr
    assert "no space left to write into" in r.stderr
    assert loadable(tmp_path / "hub") == [] and not list((tmp_path / "hub").rglob("*.incomplete"))


def test_offline_with_and_without_the_file(hub, tmp_path):
    online = hub_env(tmp_path, hub.endpoint)
    offline = hub_env(tmp_path, "http://127.0.0.1:9", HF_HUB_OFFLINE="1")  # discard port: never reached
    r = weights_cli(["fetch", "ppd_dit"], offline)
    assert r.returncode == 1 and len(errors(r.stderr)) == 1
    assert f"offline (HF_HUB_OFFLINE=1) and not in the cache {tmp_path / 'hub'}" in r.stderr
    assert weights_cli(["fetch", "ppd_dit"], online).returncode == 0
    n = len(hub.log)
    r = weights_cli(["fetch", "ppd_dit"], offline)
    p = weights_cli(["path", "ppd_dit"], offline)
    assert r.returncode == 0 and p.returncode == 0 and r.stdout == p.stdout and Path(p.stdout.strip()).is_file()
    assert len(hub.log) == n  # offline: not one request


def test_files_not_on_the_hub_are_added_from_a_local_path(tmp_path):
    env = hub_env(tmp_path, "http://127.0.0.1:9")
    r = weights_cli(["fetch", "ppd_moge_dit"], env)
    assert r.returncode == 1 and len(errors(r.stderr)) == 1
    assert "ppd_moge.pth is not on the Hugging Face Hub: download it from github.com/gangweix" in r.stderr
    assert "ppd-ros weights fetch ppd_moge_dit --from /path/to/ppd_moge.pth" in r.stderr
    good = tmp_path / "ppd_moge.pth"
    good.write_bytes(official_bytes()["ppd_dit"])  # a DiT file of the fixture preset
    partial = tmp_path / "partial.pth"
    partial.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    preset = ["--preset", FIXTURE_PRESETS["ppd_dit"]]
    r = weights_cli(["fetch", "ppd_moge_dit", "--from", str(partial), *preset], env)
    assert r.returncode == 1 and len(errors(r.stderr)) == 1 and "truncated or corrupt" in r.stderr
    assert not (tmp_path / "hub" / "ppd_ros-local").exists() or not any((tmp_path / "hub" / "ppd_ros-local").iterdir())
    r = weights_cli(["fetch", "ppd_moge_dit", "--from", str(good), *preset], env)
    assert r.returncode == 0 and Path(r.stdout.strip()) == tmp_path / "hub" / "ppd_ros-local" / "ppd_moge.pth"
    assert Path(r.stdout.strip()).read_bytes() == good.read_bytes()
    assert weights_cli(["verify", "ppd_moge_dit", *preset], env).returncode == 0
    unknown = weights_cli(["path", "ppd.pth"], env)
    assert unknown.returncode == 1 and "known: ppd_dit, da2_vitl" in unknown.stderr
