"""A small local stand-in of the Hugging Face Hub's file-resolve protocol, for tests (127.0.0.1 only).

Two HTTP servers on loopback ports: the *hub* answers ``HEAD/GET /{repo_id}/resolve/{revision}/{file}``
like huggingface.co does for large (LFS) files: ``302`` to the *CDN* with ``X-Repo-Commit``,
``X-Linked-Etag`` (the sha256), ``X-Linked-Size`` and ``ETag``; ``404`` with ``X-Error-Code:
EntryNotFound`` / ``RepoNotFound``. The CDN (another origin, so the client neither forwards its token nor
follows the redirect on HEAD) serves ``/blobs/<sha256>`` with ``Content-Length``, ``Content-Disposition`` and
``Range`` (206 + ``Content-Range``). No Xet headers are sent, so the client stays on plain HTTP.

Faults for the bad-input tests: a status code per file (hub or CDN), a redirect loop, a body cut
after some bytes for the next N transfers, a transfer that stalls half-way until released, Xet
headers on the resolve answer (no Xet server exists here: only plain HTTP can succeed).
Every request is logged as (server, method, path, Range header, Authorization header).
"""
from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")


@dataclass
class Faults:
    """What goes wrong, set by a test before (or during) a request."""

    hub_status: dict[str, int] = field(default_factory=dict)  # filename -> status on HEAD/GET resolve
    cdn_status: dict[str, int] = field(default_factory=dict)  # filename -> status on the CDN GET
    redirect_loop: set[str] = field(default_factory=set)  # filenames whose resolve redirects to itself
    cut_after: int = 0  # bytes sent before the connection is closed ...
    cut_transfers: int = 0  # ... for this many of the next CDN GETs
    stall: threading.Event | None = None  # CDN GET sends half the body, then waits for this event
    xet: bool = False  # announce Xet storage (X-Xet-Hash, X-Xet-Refresh-Route) as the Hub does for Xet repos


class LocalHub:
    """``with LocalHub() as hub: hub.add(repo_id, filename, data)``; ``hub.endpoint`` is the HF_ENDPOINT."""

    def __init__(self) -> None:
        self.files: dict[tuple[str, str], bytes] = {}
        self.commits: dict[str, str] = {}
        self.blobs: dict[str, tuple[str, bytes]] = {}  # sha256 -> (filename, data)
        self.faults = Faults()
        self.log: list[tuple[str, str, str, str | None, str | None]] = []
        self._lock = threading.Lock()
        self._servers: list[ThreadingHTTPServer] = []

    # --- content ---------------------------------------------------------------------------------
    def add(self, repo_id: str, filename: str, data: bytes) -> str:
        """Serve ``data`` as ``repo_id/filename``; returns its etag (sha256)."""
        sha = hashlib.sha256(data).hexdigest()
        self.files[(repo_id, filename)] = data
        self.blobs[sha] = (filename, data)
        self.commits[repo_id] = hashlib.sha1(repo_id.encode() + sha.encode()).hexdigest()
        return sha

    def requests(self, server: str | None = None, method: str | None = None) -> list[tuple]:
        """Logged file requests (the client's own ``/api/...`` calls left out)."""
        with self._lock:
            return [r for r in self.log if (server is None or r[0] == server) and (method is None or r[1] == method)
                    and not r[2].startswith("/api/")]

    # --- servers ---------------------------------------------------------------------------------
    def __enter__(self) -> "LocalHub":
        hub_srv = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self, "hub"))
        cdn_srv = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self, "cdn"))
        self._servers = [hub_srv, cdn_srv]
        for s in self._servers:
            s.daemon_threads = True
            threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{hub_srv.server_address[1]}"
        self.cdn = f"http://127.0.0.1:{cdn_srv.server_address[1]}"
        return self

    def __exit__(self, *exc: object) -> None:
        if self.faults.stall is not None:
            self.faults.stall.set()
        for s in self._servers:
            s.shutdown()
            s.server_close()


def _handler(hub: LocalHub, role: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # quiet
            pass

        def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
            self._serve(body=False)

        def do_GET(self) -> None:  # noqa: N802
            self._serve(body=True)

        def _serve(self, body: bool) -> None:
            with hub._lock:
                hub.log.append((role, self.command, self.path, self.headers.get("Range"),
                                self.headers.get("Authorization")))
            if role == "hub":
                self._resolve()
            else:
                self._blob(body)

        def _reply(self, status: int, headers: dict[str, str], data: bytes = b"") -> None:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", headers.get("Content-Length", str(len(data))))
            self.end_headers()
            if data and self.command == "GET":
                self.wfile.write(data)

        def _resolve(self) -> None:
            m = RESOLVE.match(unquote(self.path.split("?")[0]))
            if not m:
                return self._reply(404, {"X-Error-Code": "RepoNotFound"}, b"not found")
            repo, rev, filename = m["repo"], m["rev"], m["file"]
            if repo not in hub.commits:
                return self._reply(404, {"X-Error-Code": "RepoNotFound"}, b"Repository not found")
            commit = hub.commits[repo]
            if rev not in ("main", commit):
                return self._reply(404, {"X-Error-Code": "RevisionNotFound"}, b"Revision not found")
            if filename in hub.faults.redirect_loop:
                return self._reply(302, {"Location": self.path, "X-Repo-Commit": commit})
            if filename in hub.faults.hub_status:
                return self._reply(hub.faults.hub_status[filename], {"X-Repo-Commit": commit}, b"failure")
            data = hub.files.get((repo, filename))
            if data is None:
                return self._reply(404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit},
                                   b"Entry not found")
            sha = hashlib.sha256(data).hexdigest()
            headers = {"Location": f"{hub.cdn}/blobs/{sha}", "X-Repo-Commit": commit,
                       "X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(len(data)),
                       "ETag": f'"{hashlib.sha1(data).hexdigest()}"', "Content-Length": "0"}
            if hub.faults.xet:
                headers.update({"X-Xet-Hash": sha, "X-Xet-Refresh-Route": f"/api/models/{repo}/xet-read-token/{commit}"})
            self._reply(302, headers)

        def _blob(self, body: bool) -> None:
            sha = self.path.rsplit("/", 1)[-1]
            if sha not in hub.blobs:
                return self._reply(404, {}, b"no such blob")
            filename, data = hub.blobs[sha]
            if filename in hub.faults.cdn_status:
                return self._reply(hub.faults.cdn_status[filename], {}, b"failure")
            start = 0
            rng = self.headers.get("Range")
            if rng and (m := re.match(r"bytes=(\d+)-$", rng)):
                start = int(m[1])
            part = data[start:]
            status = 206 if start else 200
            self.send_response(status)
            self.send_header("Content-Length", str(len(part)))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", f'"{sha}"')
            # as the Hub's CDN names the file (the client's progress bar shows it)
            self.send_header("Content-Disposition", f'attachment; filename="{filename}";')
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            if not body:
                return
            self._send_body(part)

        def _send_body(self, part: bytes) -> None:
            f = hub.faults
            with hub._lock:
                cut = f.cut_transfers > 0
                if cut:
                    f.cut_transfers -= 1
            if cut:
                self.wfile.write(part[:f.cut_after])
                self.wfile.flush()
                self.close_connection = True
                return
            if f.stall is not None:
                self.wfile.write(part[:len(part) // 2])
                self.wfile.flush()
                f.stall.wait(30)
                self.close_connection = True
                return
            self.wfile.write(part)

    return Handler
