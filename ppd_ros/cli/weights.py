"""``ppd-ros weights``: list, fetch, path and verify the official weight files by name.

    ppd-ros weights list                      # every file: present or not, size, licence
    ppd-ros weights fetch ppd                 # a model name fetches all of its files
    ppd-ros weights fetch ppd_moge_dit --from ~/Downloads/ppd_moge.pth   # files not on the Hub
    ppd-ros weights path ppd_dit              # the cached file, for scripts
    ppd-ros weights verify ppd_dit            # strict key/shape check against the preset

Every failure is one line on stderr and a nonzero exit.
"""
from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("weights", help="official weight files: list, fetch (Hugging Face Hub cache), path, verify")
    wsub = p.add_subparsers(dest="weights_command", required=True)
    cache = argparse.ArgumentParser(add_help=False)
    cache.add_argument("--cache-dir", default=None,
                       help="cache folder (default: the Hugging Face cache, HF_HUB_CACHE or HF_HOME/hub)")
    ls = wsub.add_parser("list", parents=[cache], help="every known file: present or not, size, licence")
    ls.set_defaults(func=run_list)
    fe = wsub.add_parser("fetch", parents=[cache], help="download files (or a model's files) into the cache")
    fe.add_argument("names", nargs="+", metavar="NAME", help="file or model names (see 'list')")
    fe.add_argument("--from", dest="source", default=None, metavar="FILE",
                    help="add a file that is not on the Hub from this local path (one NAME); it is "
                    "verified strictly before it is copied")
    fe.add_argument("--preset", default=None, help="with --from: the preset to verify against (default: the "
                    "registry's full-size official one)")
    fe.set_defaults(func=run_fetch)
    pa = wsub.add_parser("path", parents=[cache], help="print the cached file of NAME")
    pa.add_argument("name", metavar="NAME")
    pa.set_defaults(func=run_path)
    ve = wsub.add_parser("verify", parents=[cache], help="load NAME strictly: keys and shapes against its preset")
    ve.add_argument("name", metavar="NAME", help="file name, or a model name (each of its files)")
    ve.add_argument("--preset", default=None, help="architecture preset to check against (default: the "
                    "registry's full-size official one)")
    ve.add_argument("--file", default=None, help="check this file instead of the cached one")
    ve.set_defaults(func=run_verify)


def _fail(msg: str) -> int:
    print(f"ppd-ros weights: error: {msg}", file=sys.stderr)
    return 1


def run_list(args: argparse.Namespace) -> int:
    from ..hub import MODELS, OFFICIAL_FILES, cache_dir, human_size, resolve
    print(f"cache: {cache_dir(args.cache_dir)}")
    print(f"{'name':<18} {'state':<8} {'size':>10}  {'file':<28} {'where':<40} licence")
    for f in OFFICIAL_FILES.values():
        where = f.repo_id if f.on_hub else "not on the Hub: --from FILE"
        path = resolve(f.name, args.cache_dir)
        state = "present" if path else "missing"
        size = human_size(path.stat().st_size) if path else "~" + human_size(f.size)  # the file's, or expected
        print(f"{f.name:<18} {state:<8} {size:>10}  {f.filename:<28} {where:<40} {f.licence}")
    print("models (node parameter model:=NAME; 'ppd-ros weights fetch NAME' fetches all of their files):")
    for name, m in MODELS.items():
        print(f"  {name:<10} {' + '.join(m.files())}: {m.description}")
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    from ..hub import WeightsError, entry, expand, fetch
    try:
        names = expand(args.names)
        if args.source is not None:
            if len(names) != 1:
                return _fail("--from adds exactly one file: give one file name")
            return _add(names[0], args)
        for n in names:
            if entry(n).non_commercial:
                f = entry(n)
                print(f"note: {f.filename} ({f.repo_id}) licence: {f.licence}", file=sys.stderr)
        for n in names:
            print(fetch(n, args.cache_dir))
    except WeightsError as exc:
        return _fail(str(exc))
    return 0


def _add(name: str, args: argparse.Namespace) -> int:
    """--from: verify the local file strictly first, then copy it into the cache atomically."""
    from ..errors import CheckpointError, ConfigError
    from ..hub import add_local, entry
    from ..hub_verify import verify
    f = entry(name)
    if f.on_hub:
        return _fail(f"{f.name} is on the Hub ({f.repo_id}); run: ppd-ros weights fetch {f.name}")
    try:
        verify(f, args.source, args.preset)
    except (CheckpointError, ConfigError) as exc:
        return _fail(f"--from {args.source}: {exc}")
    print(add_local(name, args.source, args.cache_dir))
    return 0


def run_path(args: argparse.Namespace) -> int:
    from ..hub import WeightsError, expand, require
    try:
        names = expand([args.name])
        for p in require(names, args.cache_dir).values():
            print(p)
    except WeightsError as exc:
        return _fail(str(exc))
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from ..errors import CheckpointError, ConfigError
    from ..hub import WeightsError, entry, expand, require
    from ..hub_verify import verify
    try:
        names = expand([args.name])  # a model name verifies each of its files
        if (args.preset or args.file) and len(names) != 1:
            return _fail("--preset / --file apply to one file: give a file name")
        for n in names:
            f = entry(n)
            path = args.file or require([n], args.cache_dir)[n]
            rep = verify(f, path, args.preset)
            print(f"ok: {path} matches preset {rep.preset}: {rep.tensors} tensors, {rep.parameters} parameters"
                  + (f" ({rep.ignored} declared-unused tensors ignored)" if rep.ignored else ""))
    except (WeightsError, CheckpointError, ConfigError) as exc:
        return _fail(str(exc))
    return 0
