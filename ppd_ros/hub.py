"""The official weight files by name: one registry table, resolution from the Hugging Face cache, fetch.

Four files live on the Hugging Face Hub and are downloaded with ``huggingface_hub`` into its own cache
layout (``<cache>/models--owner--name/{blobs,snapshots,refs}``), so every peer that uses the Hub cache
(transformers, MoGe, π3, Depth Anything) shares them. Two files are only on other file hosts; they are
registry entries too and live beside the Hub repos in ``<cache>/ppd_ros-local/<file>`` once added with
``ppd-ros weights fetch NAME --from FILE``.

The library's environment applies as users set it: ``HF_ENDPOINT``, ``HF_HUB_CACHE`` / ``HF_HOME``,
``HF_HUB_OFFLINE``, ``HF_TOKEN`` (and ``HF_HUB_DISABLE_PROGRESS_BARS``). Nothing here imports torch.
"""
from __future__ import annotations

import errno
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .errors import PPDError

LOCAL_FOLDER = "ppd_ros-local"  # inside the Hub cache: files that are not on the Hub


class WeightsError(PPDError):
    """A weight file cannot be resolved, fetched or added; the message is one line."""


@dataclass(frozen=True)
class OfficialFile:
    """One official weight file: where it lives, what it loads into, what it weighs, its licence."""

    name: str  # registry name (what users type)
    filename: str  # the file's official name
    preset: str  # architecture preset it loads into (ppd_ros.config)
    kind: Literal["ppd_dit", "da2_vit", "moge2", "pi3", "ppvd_dit_video"]  # how it is checked and loaded
    size: int  # bytes (approximate: float32 parameters of the manifest)
    licence: str
    non_commercial: bool
    description: str
    repo_id: str | None = None  # None: not on the Hub
    revision: str | None = None  # pinned commit where known; None = the repo's main branch
    source: str = ""  # where to get a file that is not on the Hub

    @property
    def on_hub(self) -> bool:
        return self.repo_id is not None


GB = 1000 ** 3
_PPD_HOME = "github.com/gangweix/pixel-perfect-depth (README, 'Pre-trained models')"

# No commit is pinned: none of the four repos could be inspected from here (no network); `main` is
# resolved once by `fetch` and the cache's refs/main then names the commit that was downloaded.
OFFICIAL_FILES: dict[str, OfficialFile] = {f.name: f for f in (
    OfficialFile("ppd_dit", "ppd.pth", "ppd_dit", "ppd_dit", int(2.00 * GB), "Apache-2.0", False,
                 "PPD DiT (DA2 semantics)", repo_id="gangweix/Pixel-Perfect-Depth"),
    OfficialFile("da2_vitl", "depth_anything_v2_vitl.pth", "da2_vitl", "da2_vit", int(1.34 * GB),
                 "CC-BY-NC-4.0 (non-commercial)", True, "Depth-Anything-V2-Large (PPD's semantic encoder)",
                 repo_id="depth-anything/Depth-Anything-V2-Large"),
    OfficialFile("moge2_vitl_normal", "model.pt", "moge2_vitl_normal", "moge2", int(1.32 * GB), "MIT", False,
                 "MoGe-2 ViT-L normal (metric scale, intrinsics; PPD-MoGe semantics)",
                 repo_id="Ruicheng/moge-2-vitl-normal"),
    OfficialFile("pi3", "model.safetensors", "pi3", "pi3", int(3.83 * GB),
                 "see the model card (research release; treat as non-commercial until checked)", True,
                 "π3 (PPVD's semantic encoder)", repo_id="yyfz233/Pi3"),
    OfficialFile("ppd_moge_dit", "ppd_moge.pth", "ppd_dit", "ppd_dit", int(2.00 * GB), "Apache-2.0", False,
                 "PPD DiT (MoGe-2 semantics)", source=_PPD_HOME),
    OfficialFile("ppvd_dit_video", "ppvd.pth", "ppvd_dit_video", "ppvd_dit_video", int(2.25 * GB), "Apache-2.0",
                 False, "PPVD DiT_Video (streaming video depth)", source=_PPD_HOME),
)}


@dataclass(frozen=True)
class ModelFiles:
    """A node ``model`` name: which registry files fill which role."""

    mode: Literal["image", "video_stream"]  # the pipeline it is meant for (the node's default mode)
    dit: str
    semantics: str
    metric: str | None  # MoGe-2 of the metric stage; None where the semantics encoder is MoGe-2 (shared)
    description: str

    def files(self, metric: bool = True) -> list[str]:
        names = [self.dit, self.semantics] + ([self.metric] if metric and self.metric else [])
        return list(dict.fromkeys(names))


MODELS: dict[str, ModelFiles] = {
    "ppd": ModelFiles("image", "ppd_dit", "da2_vitl", "moge2_vitl_normal", "PPD + Depth-Anything-V2 semantics"),
    "ppd_moge2": ModelFiles("image", "ppd_moge_dit", "moge2_vitl_normal", None,
                            "PPD with MoGe-2 semantics; one shared MoGe-2 pass gives semantics and metric scale"),
    "ppvd": ModelFiles("video_stream", "ppvd_dit_video", "pi3", "moge2_vitl_normal",
                       "streaming PPVD + π3 semantics + MoGe-2 metric scale"),
}


def entry(name: str) -> OfficialFile:
    """The registry entry ``name``; unknown names list the known ones."""
    try:
        return OFFICIAL_FILES[name]
    except KeyError:
        raise WeightsError(f"unknown weights {name!r}; known: {', '.join(OFFICIAL_FILES)} "
                           f"(or a model: {', '.join(MODELS)})") from None


def expand(names: list[str]) -> list[str]:
    """File names for a mix of file and model names (a model stands for all of its files), in order."""
    out: list[str] = []
    for n in names:
        out += MODELS[n].files() if n in MODELS else [entry(n).name]
    return list(dict.fromkeys(out))


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """The Hub cache folder: ``override``, else the library's (HF_HUB_CACHE, else HF_HOME/hub)."""
    if override:
        return Path(override).expanduser()
    from huggingface_hub import constants
    return Path(constants.HF_HUB_CACHE)


def local_path(f: OfficialFile, cache: str | os.PathLike | None = None) -> Path:
    """Where a file that is not on the Hub lives once added."""
    return cache_dir(cache) / LOCAL_FOLDER / f.filename


def resolve(name: str, cache: str | os.PathLike | None = None) -> Path | None:
    """The cached file of ``name`` (no network, ever), or None when it is not there."""
    f = entry(name)
    if not f.on_hub:
        p = local_path(f, cache)
        return p if p.is_file() else None
    from huggingface_hub import try_to_load_from_cache
    found = try_to_load_from_cache(f.repo_id, f.filename, cache_dir=str(cache_dir(cache)),
                                   revision=f.revision or "main")
    return Path(found) if isinstance(found, str) and os.path.isfile(found) else None


def fetch_command(names: list[str], cache: str | os.PathLike | None = None) -> str:
    """The exact command that puts ``names`` into the cache."""
    opt = f" --cache-dir {cache}" if cache else ""
    hub = [n for n in names if entry(n).on_hub]
    cmds = [f"ppd-ros weights fetch {' '.join(hub)}{opt}"] if hub else []
    cmds += [f"ppd-ros weights fetch {n} --from /path/to/{entry(n).filename}{opt}"
             for n in names if not entry(n).on_hub]
    return " && ".join(cmds)


def require(names: list[str], cache: str | os.PathLike | None = None) -> dict[str, Path]:
    """Every file of ``names`` from the cache; WeightsError (one line, with the fetch command) otherwise."""
    found = {n: resolve(n, cache) for n in names}
    missing = [n for n, p in found.items() if p is None]
    if missing:
        files = ", ".join(entry(n).filename for n in missing)
        where = "; ".join(f"{entry(n).filename}: get it from {entry(n).source}" for n in missing
                          if not entry(n).on_hub)
        raise WeightsError(f"weights not in the cache {cache_dir(cache)}: {files}; run: "
                           f"{fetch_command(missing, cache)}" + (f" ({where})" if where else ""))
    return {n: p for n, p in found.items() if p is not None}


def check_writable(folder: Path) -> None:
    """WeightsError unless ``folder`` can be created and written (checked before any transfer)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".ppd_ros-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise WeightsError(f"cache folder {folder} is not writable: {exc.strerror or exc}") from None


def fetch(name: str, cache: str | os.PathLike | None = None) -> Path:
    """Download ``name`` from the Hub into the cache (resumable, atomic) and return its path.

    The library writes to a temporary ``<blob>.<id>.incomplete`` and renames it into place only
    after the size matched, so an interrupted transfer never leaves a file that ``resolve`` returns.
    """
    f = entry(name)
    if not f.on_hub:
        p = resolve(name, cache)
        if p is not None:
            return p
        raise WeightsError(f"{f.filename} is not on the Hugging Face Hub: download it from {f.source}, then run "
                           f"ppd-ros weights fetch {f.name} --from /path/to/{f.filename}")
    from huggingface_hub import constants, hf_hub_download
    folder = cache_dir(cache)
    if not constants.is_offline_mode() and resolve(name, cache) is None:
        check_writable(folder)  # a cached file in a read-only cache is still fine: the library only reads
    try:
        return Path(hf_hub_download(f.repo_id, f.filename, revision=f.revision, cache_dir=str(folder)))
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line naming the file
        raise WeightsError(f"{f.name} ({f.repo_id}/{f.filename}): {describe_failure(exc, folder)}") from None


def add_local(name: str, source: str | os.PathLike, cache: str | os.PathLike | None = None) -> Path:
    """Copy a downloaded file into the cache atomically (temporary file, then rename); returns its path."""
    f = entry(name)
    src = Path(source).expanduser()
    if not src.is_file():
        raise WeightsError(f"--from {src}: no such file")
    if f.on_hub:
        raise WeightsError(f"{f.name} is on the Hub ({f.repo_id}); run: ppd-ros weights fetch {f.name}")
    dest = local_path(f, cache)
    check_writable(dest.parent)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.incomplete")
    try:
        shutil.copyfile(src, tmp)
        if tmp.stat().st_size != src.stat().st_size:
            raise WeightsError(f"copy of {src} is incomplete")
        os.replace(tmp, dest)
    except OSError as exc:
        raise WeightsError(f"cannot write {dest}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def describe_failure(exc: BaseException, folder: Path) -> str:
    """One line for a failed download: the deepest cause the user can act on."""
    chain: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and e not in chain:
        chain.append(e)
        e = e.__cause__ or e.__context__
    names = {type(x).__name__ for x in chain}
    for x in chain:
        response = getattr(x, "response", None)
        status = getattr(response, "status_code", None)
        if isinstance(status, int) and status >= 400:
            what = {401: "unauthorized (set HF_TOKEN)", 403: "forbidden (gated? set HF_TOKEN)",
                    404: "not found"}.get(status, "server error" if status >= 500 else "refused")
            return f"the server answered {status}: {what} ({_endpoint()})"
    if "TooManyRedirects" in names:
        return f"redirect loop while resolving the file at {_endpoint()}"
    if "OfflineModeIsEnabled" in names or (_offline() and "LocalEntryNotFoundError" in names):
        return f"offline (HF_HUB_OFFLINE=1) and not in the cache {folder}"
    for x in chain:
        if isinstance(x, OSError) and x.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            return f"no space left to write into {folder} ({x.strerror})"
        if isinstance(x, OSError) and x.errno in (errno.EACCES, errno.EROFS, errno.ENOTDIR, errno.EPERM):
            return f"cache folder {folder} is not writable ({x.strerror})"
    if any("Consistency check failed" in str(x) for x in chain):
        return "transfer incomplete (connection cut); nothing was kept, run the fetch again to resume"
    if names & {"ConnectError", "ConnectTimeout", "LocalEntryNotFoundError", "RemoteProtocolError",
                "ReadTimeout", "ReadError"}:
        return f"cannot reach {_endpoint()} (connection failed or cut); nothing was kept"
    first = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {first[0][:200] if first else ''}"


def _endpoint() -> str:
    from huggingface_hub import constants
    return constants.ENDPOINT


def _offline() -> bool:
    from huggingface_hub import constants
    return constants.is_offline_mode()


def status(name: str, cache: str | os.PathLike | None = None) -> tuple[OfficialFile, Path | None]:
    """(entry, cached path or None) for ``ppd-ros weights list``."""
    return entry(name), resolve(name, cache)


def human_size(n: int) -> str:
    for unit, div in (("GB", GB), ("MB", 1000 ** 2), ("kB", 1000)):
        if n >= div:
            return f"{n / div:.2f} {unit}"
    return f"{n} B"
