"""A local stand-in for the Hugging Face Hub file API, for tests that exercise real downloads.

``HubServer`` serves folders on disk as model repos at revision ``main``, speaking just enough of the Hub's
HTTP API that the real ``huggingface_hub`` (1.21) code downloads from it: ``snapshot_download``,
``hf_hub_download``, ``HfApi().model_info`` / ``repo_info`` and ``list_repo_tree``.  Standard library only.

    with HubServer({"OpenVINO/tiny-llm-ov": folder}, bytes_per_second=1_000_000) as hub:
        ...  # hub.url, hub.downloads, hub.requests

Endpoints (what huggingface_hub 1.21 actually requests):

* ``GET /api/models/{repo}/revision/{rev}`` (also without ``/revision/{rev}``): repo info, JSON with ``sha`` and
  ``siblings`` (``rfilename``, ``size``, ``blobId``, ``lfs``).  ``snapshot_download`` starts here.
* ``GET /api/models/{repo}/tree/{rev}[/{path}]?recursive=...``: file listing; ``snapshot_download`` only uses it
  when ``siblings`` is empty (an empty repo) or very long.
* ``HEAD /{repo}/resolve/{rev}/{file}``: metadata; the client needs ``X-Repo-Commit``, ``ETag`` (or
  ``X-Linked-Etag``) and ``Content-Length`` (or ``X-Linked-Size``).  No ``X-Xet-*`` headers are ever sent, so
  downloads stay on plain HTTP even though ``hf_xet`` is installed.
* ``GET /{repo}/resolve/{rev}/{file}``: the content, honouring ``Range: bytes=N-`` (the client resumes with it
  after a dropped connection).  With ``redirect_lfs=True`` weight files answer ``302`` to ``/_lfs/...`` on
  this server, as the real Hub redirects LFS files to its CDN.
* ``GET /api/agent-harnesses``: fetched once per process while building the User-Agent (then cached for a day
  in ``$HF_HOME/.agent_harnesses.json``); answered with an empty registry.  Do not count it as a download.

``snapshot_download`` passes the commit sha to ``hf_hub_download``; a file already in the cache for that sha is
returned without any HEAD or GET, so a second snapshot of an unchanged repo costs one info request only.

Errors mirror the Hub's headers, which ``hf_raise_for_status`` maps to exceptions: unknown repo ->
404 ``X-Error-Code: RepoNotFound`` (``RepositoryNotFoundError``); unknown file -> 404 ``EntryNotFound``
(``RemoteEntryNotFoundError``, a subclass of ``EntryNotFoundError``); unknown revision -> 404
``RevisionNotFound``; gated repo without a configured token -> 401 (no token) or 403 (other token)
``GatedRepo`` (``GatedRepoError``).  As on the Hub, the info of a gated repo is public (``"gated": "manual"``);
the files are not.

Pointing huggingface_hub at the server:

* In a subprocess (the app): put ``hub.env()`` (``HF_ENDPOINT``) in its environment.  ``huggingface_hub.constants``
  reads ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` once, at import time.
* In the test process, where huggingface_hub is already imported, either pass ``endpoint=hub.url`` to
  ``snapshot_download`` / ``hf_hub_download`` / ``HfApi(endpoint=...)``, or wrap the code in
  ``with hub.as_default_endpoint():``, which sets ``constants.ENDPOINT`` and
  ``constants.HUGGINGFACE_CO_URL_TEMPLATE`` (read at call time by ``HfApi()`` and ``hf_hub_url``) and the
  endpoint of the module-level ``huggingface_hub.hf_api.api`` (created at import, it backs the functions
  ``huggingface_hub.model_info``, ``list_repo_tree``...), and restores them on exit.
  Offline mode in-process: set ``constants.HF_HUB_OFFLINE = True`` (``is_offline_mode()`` reads it per request)
  or pass ``local_files_only=True``.

Download-failure simulation: with ``fail_after_bytes=N`` a content GET sends bytes up to file offset ``N`` and
then drops the connection (``Range`` requests are cut at the same file offset).  huggingface_hub reads the body
in 10 MB chunks and can only resume (``Range: bytes=K-``) from a whole chunk it received, so below 10 MB it
retries from the start.  With ``fail_times=None`` every attempt is cut, and the client gives up after 5 retries
one second apart (~5 s) with ``httpx.RemoteProtocolError`` (``peer closed connection without sending complete
message body``); with ``fail_times=1`` the first retry succeeds (~1 s later).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

MAIN = "main"
# Files the Hub's default .gitattributes sends to LFS (and which it serves through a CDN redirect).
LFS_SUFFIXES = frozenset({".bin", ".safetensors", ".onnx", ".gguf", ".pt", ".pth", ".ckpt", ".h5", ".msgpack",
                          ".npz", ".npy", ".tflite", ".ot", ".pkl", ".pickle", ".zip", ".tar", ".gz"})
LFS_MIN_SIZE = 10 * 1024 * 1024
LFS_POINTER_SIZE = 134  # what a git-lfs pointer file weighs; the client only stores it
_REPO = r"(?P<repo>[^/?]+(?:/[^/?]+)?)"  # "name" or "namespace/name"
_ROUTES = [
    (re.compile(r"^/api/agent-harnesses$"), "harnesses"),
    (re.compile(rf"^/_lfs/{_REPO}/(?P<rev>[0-9a-f]{{40}})/(?P<file>.+)$"), "lfs"),
    (re.compile(rf"^/api/models/{_REPO}/tree/(?P<rev>[^/]+)(?:/(?P<file>.+))?$"), "tree"),
    (re.compile(rf"^/api/models/{_REPO}(?:/revision/(?P<rev>[^/]+))?$"), "info"),
    (re.compile(rf"^/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<file>.+)$"), "resolve"),
]


@dataclass(frozen=True)
class HubFile:
    """One file of a served repo."""

    path: str  # repo-relative, "/"-separated
    local: Path
    size: int
    sha256: str
    blob_id: str  # git blob sha1, the Hub's ETag for non-LFS files

    @property
    def lfs(self) -> bool:
        """Whether the Hub would keep this file in LFS."""
        return Path(self.path).suffix.lower() in LFS_SUFFIXES or self.size >= LFS_MIN_SIZE

    @property
    def etag(self) -> str:
        """The quoted ETag the Hub sends: sha256 for LFS files, git blob sha1 otherwise."""
        return f'"{self.sha256 if self.lfs else self.blob_id}"'


@dataclass(frozen=True)
class Snapshot:
    """A repo folder as seen at one moment: its files and the commit sha derived from their content."""

    sha: str
    files: dict[str, HubFile]
    last_modified: float


@dataclass(frozen=True)
class RequestRecord:
    """One request the server answered."""

    method: str
    path: str  # as sent, with query string
    status: int
    range: str | None
    authorized: bool  # an Authorization header was sent


class _Hasher:
    """Content hashes of local files, recomputed only when size or mtime change."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[int, int, str, str]] = {}
        self._lock = threading.Lock()

    def hashes(self, path: Path) -> tuple[int, str, str]:
        """(size, sha256, git blob sha1) of a file."""
        stat = path.stat()
        key = str(path)
        with self._lock:
            cached = self._cache.get(key)
        if cached and cached[:2] == (stat.st_size, stat.st_mtime_ns):
            return stat.st_size, cached[2], cached[3]
        sha256 = hashlib.sha256()
        blob = hashlib.sha1(f"blob {stat.st_size}\0".encode())
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                sha256.update(chunk)
                blob.update(chunk)
        entry = (stat.st_size, stat.st_mtime_ns, sha256.hexdigest(), blob.hexdigest())
        with self._lock:
            self._cache[key] = entry
        return stat.st_size, entry[2], entry[3]


def scan_repo(folder: Path, hasher: _Hasher | None = None) -> Snapshot:
    """Every file under ``folder`` (following symlinks, skipping ``.git``) and a commit sha hashed from them."""
    hasher = hasher or _Hasher()
    files: dict[str, HubFile] = {}
    newest = 0.0
    for root, dirs, names in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if d != ".git")
        for name in sorted(names):
            local = Path(root, name)
            rel = local.relative_to(folder).as_posix()
            size, sha256, blob_id = hasher.hashes(local)
            files[rel] = HubFile(rel, local, size, sha256, blob_id)
            newest = max(newest, local.stat().st_mtime)
    commit = hashlib.sha1()
    for rel in sorted(files):
        commit.update(f"{rel}\0{files[rel].sha256}\n".encode())
    return Snapshot(commit.hexdigest(), files, newest)


class HubServer:
    """Serve local folders as Hugging Face Hub model repos on ``127.0.0.1`` (see the module docstring).

    Args:
        repos: repo id (``"namespace/name"``) -> folder whose files are the repo at revision ``main``.
        gated: repo ids whose files need ``Authorization: Bearer <token>`` with one of ``tokens``.
        tokens: the tokens that open gated repos.
        bytes_per_second: throttle each content response to this rate (None: as fast as possible).
        chunk_size: bytes written per socket write (and per throttle step).
        fail_after_bytes: drop content responses once they reach this file offset (None: never).
        fail_files: only drop downloads of these repo-relative filenames (None: every file).
        fail_times: how many responses to drop before serving normally again (None: all of them).
        redirect_lfs: answer LFS files with a 302 to ``/_lfs/...`` like the Hub's CDN redirect.

    The throttle and failure attributes may be changed while the server runs; new requests see them.
    """

    def __init__(self, repos: Mapping[str, Path | str], *, gated: Collection[str] = (),
                 tokens: Collection[str] = (), bytes_per_second: float | None = None, chunk_size: int = 64 * 1024,
                 fail_after_bytes: int | None = None, fail_files: Collection[str] | None = None,
                 fail_times: int | None = None, redirect_lfs: bool = False, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.repos: dict[str, Path] = {repo: Path(folder) for repo, folder in repos.items()}
        self.gated = set(gated)
        self.tokens = set(tokens)
        self.bytes_per_second = bytes_per_second
        self.chunk_size = chunk_size
        self.fail_after_bytes = fail_after_bytes
        self.fail_files = set(fail_files) if fail_files is not None else None
        self.fail_times = fail_times
        self.redirect_lfs = redirect_lfs
        self._address = (host, port)
        self._lock = threading.Lock()
        self._hasher = _Hasher()
        self._downloads: Counter[tuple[str, str]] = Counter()
        self._requests: list[RequestRecord] = []
        self._bytes_sent = 0
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> HubServer:
        """Bind (a free port unless one was given) and serve from a background thread."""
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = _HTTPServer(self._address, _Handler, self)
        # A short poll interval makes stop() quick.
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"HubServer:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; throttled downloads still in flight are cut off."""
        if self._httpd is None:
            return
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (the server must be started)."""
        if self._httpd is None:
            raise RuntimeError("HubServer is not running")
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """The endpoint, e.g. ``http://127.0.0.1:54321`` (no trailing slash, like ``HF_ENDPOINT``)."""
        return f"http://{self._address[0]}:{self.port}"

    # -- what tests look at ----------------------------------------------------------------------------------
    @property
    def downloads(self) -> Counter[tuple[str, str]]:
        """Content GETs per (repo id, filename), a copy.  A resumed (Range) GET counts again."""
        with self._lock:
            return Counter(self._downloads)

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request answered so far, oldest first, a copy."""
        with self._lock:
            return list(self._requests)

    @property
    def bytes_sent(self) -> int:
        """File-content bytes written to clients so far."""
        with self._lock:
            return self._bytes_sent

    def reset_stats(self) -> None:
        """Forget the request log, download counts and byte count."""
        with self._lock:
            self._downloads.clear()
            self._requests.clear()
            self._bytes_sent = 0

    def snapshot(self, repo_id: str) -> Snapshot:
        """The repo's current files and commit sha (KeyError for an unknown repo)."""
        return scan_repo(self.repos[repo_id], self._hasher)

    def commit_sha(self, repo_id: str) -> str:
        """The sha the server reports for ``main`` of this repo right now."""
        return self.snapshot(repo_id).sha

    def env(self) -> dict[str, str]:
        """Environment for a subprocess that should download from this server."""
        return {"HF_ENDPOINT": self.url, "HF_HUB_OFFLINE": "0"}

    @contextlib.contextmanager
    def as_default_endpoint(self) -> Iterator[str]:
        """Make this server the Hub for already-imported huggingface_hub code in this process, then restore."""
        from huggingface_hub import constants, hf_api

        saved = constants.ENDPOINT, constants.HUGGINGFACE_CO_URL_TEMPLATE, hf_api.api.endpoint
        constants.ENDPOINT = self.url
        constants.HUGGINGFACE_CO_URL_TEMPLATE = self.url + "/{repo_id}/resolve/{revision}/{filename}"
        hf_api.api.endpoint = self.url
        try:
            yield self.url
        finally:
            constants.ENDPOINT, constants.HUGGINGFACE_CO_URL_TEMPLATE, hf_api.api.endpoint = saved

    # -- used by the handler ---------------------------------------------------------------------------------
    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self._requests.append(record)

    def _count_download(self, repo_id: str, filename: str) -> None:
        with self._lock:
            self._downloads[(repo_id, filename)] += 1

    def _add_bytes(self, count: int) -> None:
        with self._lock:
            self._bytes_sent += count

    def _cut_offset(self, filename: str) -> int | None:
        """The file offset where this response must be dropped, consuming one of ``fail_times``."""
        with self._lock:
            offset = self.fail_after_bytes
            if offset is None or (self.fail_files is not None and filename not in self.fail_files):
                return None
            if self.fail_times is not None:
                if self.fail_times <= 0:
                    return None
                self.fail_times -= 1
            return offset


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], hub: HubServer) -> None:
        self.hub = hub
        super().__init__(address, handler)

    def handle_error(self, request: object, client_address: object) -> None:
        """Clients hanging up mid-response are expected here; never print tracebacks to stderr."""


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so no keep-alive connection outlives stop().
    protocol_version = "HTTP/1.0"
    server: _HTTPServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - signature of the base class
        """Quiet: the request log is ``HubServer.requests``."""

    def send_response(self, code: int, message: str | None = None) -> None:
        # Logged when the answer starts, so a test sees it even while a throttled body is still streaming.
        self.server.hub._record(RequestRecord(self.command, self.path, code, self.headers.get("Range"),
                                              self.headers.get("Authorization") is not None))
        super().send_response(code, message)

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self._dispatch(head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._dispatch(head=True)

    # -- routing ---------------------------------------------------------------------------------------------
    def _dispatch(self, head: bool) -> None:
        split = urlsplit(self.path)
        try:
            for pattern, kind in _ROUTES:
                match = pattern.match(split.path)
                if match:
                    parts = {k: unquote(v) if v else v for k, v in match.groupdict().items()}
                    self._route(kind, parts, parse_qs(split.query), head)
                    break
            else:
                self._error(404, None, "Sorry, we can't find the page you are looking for.", head)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away

    def _route(self, kind: str, parts: dict[str, str | None], query: dict[str, list[str]], head: bool) -> None:
        if kind == "harnesses":
            # huggingface_hub fetches this registry once per process (for its User-Agent): an empty one.
            self._send_json({"standardEnvVars": [], "harnesses": {}}, head)
            return
        repo_id, rev = parts["repo"] or "", parts.get("rev") or MAIN
        snap = self._snapshot(repo_id, rev, head)
        if snap is None:
            return
        if kind == "info":
            self._send_json(self._info(repo_id, snap), head)
            return
        if kind != "lfs" and not self._authorized(repo_id, snap, head):
            return
        if kind == "tree":
            self._tree(snap, parts.get("file") or "", _flag(query, "recursive"), head)
            return
        hub_file = snap.files.get(parts["file"] or "")
        if hub_file is None:
            self._error(404, "EntryNotFound", "Entry not found", head, {"X-Repo-Commit": snap.sha})
        elif kind == "resolve" and self.server.hub.redirect_lfs and hub_file.lfs:
            self._redirect(repo_id, snap, hub_file, head)
        else:
            self._content(repo_id, snap, hub_file, head)

    def _snapshot(self, repo_id: str, rev: str, head: bool) -> Snapshot | None:
        """The repo at ``rev`` ("main" or its sha), or None after answering the Hub's 404."""
        folder = self.server.hub.repos.get(repo_id)
        if folder is None or not folder.is_dir():
            self._error(404, "RepoNotFound", "Repository not found", head)
            return None
        snap = scan_repo(folder, self.server.hub._hasher)
        if rev not in (MAIN, snap.sha):
            self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}", head)
            return None
        return snap

    def _authorized(self, repo_id: str, snap: Snapshot, head: bool) -> bool:
        """Gate the files of gated repos: 401 without a token, 403 with a token that is not configured."""
        hub = self.server.hub
        if repo_id not in hub.gated:
            return True
        auth = self.headers.get("Authorization") or ""
        token = auth[len("Bearer "):].strip() if auth.startswith("Bearer ") else None
        if token is not None and token in hub.tokens:
            return True
        message = (f"Access to model {repo_id} is restricted. You must have access to it and be authenticated "
                   "to access it. Please log in.")
        self._error(401 if token is None else 403, "GatedRepo", message, head, {"X-Repo-Commit": snap.sha})
        return False

    # -- answers ---------------------------------------------------------------------------------------------
    def _info(self, repo_id: str, snap: Snapshot) -> dict:
        """The model-info JSON; siblings always carry size, blobId and lfs (as with ``?blobs=true``)."""
        stamp = datetime.fromtimestamp(snap.last_modified or 0, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        siblings = []
        for hub_file in snap.files.values():
            sibling: dict = {"rfilename": hub_file.path, "size": hub_file.size, "blobId": hub_file.blob_id}
            if hub_file.lfs:
                sibling["lfs"] = {"size": hub_file.size, "sha256": hub_file.sha256, "pointerSize": LFS_POINTER_SIZE}
            siblings.append(sibling)
        return {"_id": snap.sha[:24], "id": repo_id, "modelId": repo_id, "author": repo_id.partition("/")[0],
                "sha": snap.sha, "lastModified": stamp, "createdAt": stamp, "private": False,
                "gated": "manual" if repo_id in self.server.hub.gated else False, "disabled": False,
                "downloads": 0, "likes": 0, "tags": [], "siblings": siblings, "spaces": [],
                "usedStorage": sum(f.size for f in snap.files.values())}

    def _tree(self, snap: Snapshot, folder: str, recursive: bool, head: bool) -> None:
        """Files and folders under ``folder`` (direct children unless ``recursive``), as the tree API lists them."""
        prefix = folder.strip("/") + "/" if folder.strip("/") else ""
        entries: dict[str, dict] = {}
        for hub_file in snap.files.values():
            if not hub_file.path.startswith(prefix):
                continue
            rest = hub_file.path[len(prefix):].split("/")
            # Every folder between the listed one and the file, or only the first when not recursive.
            for depth in range(1, len(rest) if recursive else min(len(rest), 2)):
                dir_path = prefix + "/".join(rest[:depth])
                entries.setdefault(dir_path, {"type": "directory", "path": dir_path, "size": 0,
                                              "oid": hashlib.sha1(dir_path.encode()).hexdigest()})
            if recursive or len(rest) == 1:
                entry: dict = {"type": "file", "path": hub_file.path, "size": hub_file.size, "oid": hub_file.blob_id}
                if hub_file.lfs:
                    entry["lfs"] = {"oid": hub_file.sha256, "size": hub_file.size, "pointerSize": LFS_POINTER_SIZE}
                entries[hub_file.path] = entry
        if prefix and not entries:
            self._error(404, "EntryNotFound", f"{folder} does not exist on \"{MAIN}\"", head)
            return
        self._send_json([entries[path] for path in sorted(entries)], head)

    def _file_headers(self, snap: Snapshot, hub_file: HubFile) -> dict[str, str]:
        headers = {"X-Repo-Commit": snap.sha, "ETag": hub_file.etag, "Accept-Ranges": "bytes",
                   "Content-Disposition": f"inline; filename*=UTF-8''{quote(Path(hub_file.path).name)}"}
        if hub_file.lfs:
            headers["X-Linked-Etag"] = f'"{hub_file.sha256}"'
            headers["X-Linked-Size"] = str(hub_file.size)
        return headers

    def _redirect(self, repo_id: str, snap: Snapshot, hub_file: HubFile, head: bool) -> None:
        """The Hub's answer for an LFS file: 302 to the CDN, the file's metadata in X-Linked-* headers."""
        location = f"{self.server.hub.url}/_lfs/{repo_id}/{snap.sha}/{quote(hub_file.path)}"
        headers = self._file_headers(snap, hub_file)
        headers["Location"] = location
        self._send(302, headers, b"", head, content_type="text/plain; charset=utf-8")

    def _content(self, repo_id: str, snap: Snapshot, hub_file: HubFile, head: bool) -> None:
        """The file itself (200, or 206 for a Range), throttled and possibly cut as configured."""
        headers = self._file_headers(snap, hub_file)
        span = _parse_range(self.headers.get("Range"), hub_file.size)
        if span is None:
            headers["Content-Range"] = f"bytes */{hub_file.size}"
            self._send(416, headers, b"", head)
            return
        start, end = span
        status = 206 if self.headers.get("Range") else 200
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{end}/{hub_file.size}" if end >= start \
                else f"bytes */{hub_file.size}"
        headers["Content-Length"] = str(end - start + 1)
        headers["Content-Type"] = "application/octet-stream"
        self._head_only(status, headers)
        if head:
            return
        hub = self.server.hub
        hub._count_download(repo_id, hub_file.path)
        self._stream(hub_file.local, start, end, hub._cut_offset(hub_file.path))

    def _stream(self, local: Path, start: int, end: int, cut_at: int | None) -> None:
        """Write bytes ``start..end`` of a file, at ``bytes_per_second`` at most, dropping the link at ``cut_at``."""
        hub = self.server.hub
        began, sent, pos = time.monotonic(), 0, start
        with local.open("rb") as fh:
            fh.seek(start)
            while pos <= end:
                if (cut_at is not None and pos >= cut_at) or hub._stopping.is_set():
                    self._drop()
                    return
                rate = hub.bytes_per_second
                if rate:
                    # Pace against the start time so slow writes do not add up to a slower rate than asked.
                    delay = began + sent / rate - time.monotonic()
                    if delay > 0 and hub._stopping.wait(delay):
                        self._drop()
                        return
                limit = end + 1 - pos if cut_at is None else min(end + 1, cut_at) - pos
                data = fh.read(min(hub.chunk_size, limit))
                if not data:
                    break  # the file shrank under us; the client will see a short body
                self.wfile.write(data)
                pos += len(data)
                sent += len(data)
                hub._add_bytes(len(data))

    def _drop(self) -> None:
        """Hang up mid-body, as a broken connection would; the client sees a body shorter than Content-Length."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)

    # -- low-level -------------------------------------------------------------------------------------------
    def _head_only(self, status: int, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def _send(self, status: int, headers: Mapping[str, str], body: bytes, head: bool,
              content_type: str = "application/json; charset=utf-8") -> None:
        self._head_only(status, {**headers, "Content-Type": content_type, "Content-Length": str(len(body))})
        if not head:
            self.wfile.write(body)

    def _send_json(self, payload: object, head: bool) -> None:
        self._send(200, {}, json.dumps(payload).encode(), head)

    def _error(self, status: int, code: str | None, message: str, head: bool,
               extra: Mapping[str, str] | None = None) -> None:
        """An error the way the Hub sends it: X-Error-Code / X-Error-Message headers and a JSON body."""
        headers = {"X-Error-Message": message, **(extra or {})}
        if code:
            headers["X-Error-Code"] = code
        self._send(status, headers, json.dumps({"error": message}).encode(), head)


def _flag(query: dict[str, list[str]], name: str) -> bool:
    """A boolean query parameter (httpx sends ``true``/``false``)."""
    return (query.get(name) or ["false"])[-1].lower() in ("1", "true", "yes")


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end) inclusive for a ``bytes=`` range (whole file without one), None when unsatisfiable."""
    if not header:
        return 0, size - 1
    match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header)
    if not match or not (match[1] or match[2]):
        return None
    if match[1]:
        start = int(match[1])
        end = min(int(match[2]), size - 1) if match[2] else size - 1
    else:  # suffix range: the last N bytes
        start, end = max(0, size - int(match[2])), size - 1
    # A resume at exactly the end of the file is answered with an empty 206 rather than refused.
    if start > size or (start > end and start != size):
        return None
    return start, end


def main(argv: list[str] | None = None) -> None:
    """Serve folders by hand, e.g. to watch the app's progress bar: ``python -m tests.hubserver ORG/NAME=DIR``."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("repos", nargs="+", metavar="REPO_ID=FOLDER")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--bytes-per-second", type=float, default=None)
    parser.add_argument("--fail-after-bytes", type=int, default=None)
    args = parser.parse_args(argv)
    repos = dict(item.split("=", 1) for item in args.repos)
    with HubServer(repos, port=args.port, bytes_per_second=args.bytes_per_second,
                   fail_after_bytes=args.fail_after_bytes) as hub:
        print(f"HF_ENDPOINT={hub.url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
