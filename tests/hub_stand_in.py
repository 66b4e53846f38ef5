"""A minimal in-memory stand-in for the Hugging Face Hub's HTTP API, for tests only.

Tests may not reach the real Hub (no network, and a push must never leave the machine), so this serves, on
127.0.0.1, the few endpoints that the real huggingface_hub / transformers / datasets client code calls to push a
repo and load it back. A client reads HF_ENDPOINT when huggingface_hub is imported, so run it in a subprocess with
the environment from `HubStandIn.client_env`.

Implemented (repo ids must be "namespace/name"; repo types model, dataset, space):
- POST /api/repos/create                                 409 when it exists (what `exist_ok=True` expects)
- POST /api/validate-yaml                                accepts any README metadata
- GET  /api/{type}s/{repo}[/revision/{rev}]              repo info: sha, siblings
- GET  /api/{type}s/{repo}/tree/{rev}[/{path}]           listing, ?recursive=true
- POST /api/{type}s/{repo}/paths-info/{rev}              form field `paths`
- POST /api/{type}s/{repo}/preupload/{rev}               answers uploadMode "regular" for every file
- POST /api/{type}s/{repo}/commit/{rev}                  NDJSON: header, file (base64), deletedFile, deletedFolder
- POST /api/spaces/{repo}/variables                      a Space variable (add_space_variable)
- HEAD/GET /[datasets/|spaces/]{repo}/resolve/{rev}/{path}   X-Repo-Commit, ETag, Content-Length, Range
Revisions: a branch name ("main") or a full 40-hex commit sha. Errors carry the Hub's X-Error-Code header
(RepoNotFound, RevisionNotFound, EntryNotFound), which huggingface_hub turns into its exception types.
Not implemented: LFS / Xet transfers (never needed, because every file is "regular"), pull requests, tags, new
branches, pagination, lastCommit metadata (expand=True), authentication (any token, or none, is accepted).
"""

import base64
import hashlib
import json
import os
import re
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

URL_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}


def git_blob_sha(data: bytes) -> str:
    # The oid git and the Hub give a regular file: the client compares it with its own to skip unchanged files.
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class HubError(Exception):
    def __init__(self, status, code, message, headers=None, **body):
        super().__init__(message)
        self.status, self.code, self.message, self.headers, self.body = status, code, message, headers or {}, body


class HubStandIn:
    """`with HubStandIn() as hub:` serves on `hub.endpoint` until the block ends."""

    def __init__(self):
        # (repo_type, repo_id) -> {"branches": {name: sha}, "commits": {sha: {path: bytes}}, "private": bool}
        self.repos = {}
        self.requests = []  # (method, path without query), in arrival order
        self.endpoint = None
        self._lock = threading.Lock()  # handler threads share self.repos
        self._server = self._thread = None

    def start(self):
        handler = type("Handler", (_Handler,), {"hub": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_port}"
        serve = dict(poll_interval=0.05)  # stop() waits up to one interval for serve_forever to notice
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs=serve, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    __enter__ = start

    def __exit__(self, *exc_info):
        self.stop()

    def files(self, repo_id, repo_type="model", revision="main"):
        """{path: bytes} of the repo at `revision`, as the server holds it."""
        with self._lock:
            repo = self._repo(repo_type, repo_id)
            return dict(repo["commits"][self._resolve(repo, revision)])

    def space_variables(self, repo_id):
        """{key: value} of a Space's variables (what the Space's app finds in its environment)."""
        with self._lock:
            return {key: entry["value"] for key, entry in self._repo("space", repo_id).get("variables", {}).items()}

    def is_private(self, repo_id, repo_type="model"):
        with self._lock:
            return self._repo(repo_type, repo_id)["private"]

    def client_env(self, hf_home, base=None):
        """Environment for a client subprocess: online against this stand-in only, with a fresh cache."""
        env = dict(os.environ if base is None else base)
        for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_DATASETS_CACHE", "HF_XET_CACHE", "HF_TOKEN_PATH",
                     "HF_MODULES_CACHE"):
            env.pop(name, None)  # would send the cache outside hf_home
        no_proxy = ",".join(filter(None, [env.get("NO_PROXY"), "127.0.0.1,localhost"]))
        env.update(
            HF_ENDPOINT=self.endpoint, HF_TOKEN="hf_stand_in_token", HF_HOME=str(hf_home), NO_PROXY=no_proxy,
            no_proxy=no_proxy, HF_HUB_OFFLINE="0", HF_DATASETS_OFFLINE="0", TRANSFORMERS_OFFLINE="0",
            # Plain create_commit path for upload_folder. Xet is never contacted either way (uploads are "regular").
            HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1",
        )
        return env

    # --- request handling (called with self._lock held) ---

    def _repo(self, repo_type, repo_id):
        try:
            return self.repos[repo_type, repo_id]
        except KeyError:
            raise HubError(404, "RepoNotFound", f"Repository not found: {repo_type} {repo_id}") from None

    def _resolve(self, repo, revision):
        if revision in repo["branches"]:
            return repo["branches"][revision]
        if revision in repo["commits"]:
            return revision
        raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")

    def _route(self, method, parts, query, headers, body):
        if parts[:1] == ["api"]:
            return self._api(method, parts[1:], query, body)
        repo_type = "model"
        if parts[:1] in (["datasets"], ["spaces"]):
            repo_type, parts = URL_TYPES[parts[0]], parts[1:]
        if method in ("GET", "HEAD") and len(parts) >= 5 and parts[2] == "resolve":
            return self._resolve_file(repo_type, "/".join(parts[:2]), parts[3], "/".join(parts[4:]), headers)
        raise HubError(404, None, f"the Hub stand-in has no route for {method} /{'/'.join(parts)}")

    def _api(self, method, parts, query, body):
        if method == "POST" and parts == ["repos", "create"]:
            return self._create_repo(json.loads(body))
        if method == "POST" and parts == ["validate-yaml"]:
            return 200, {}, {"errors": [], "warnings": []}
        if len(parts) >= 3 and parts[0] in URL_TYPES:
            repo_type, repo_id, rest = URL_TYPES[parts[0]], "/".join(parts[1:3]), parts[3:]
            action = (method, rest[0] if rest else "")
            if action == ("GET", "") or (action == ("GET", "revision") and len(rest) == 2):
                return self._info(repo_id, self._repo(repo_type, repo_id), rest[1] if rest else "main")
            if action == ("GET", "tree") and len(rest) >= 2:
                recursive = query.get("recursive", ["false"])[0].lower() == "true"
                return self._tree(self._repo(repo_type, repo_id), rest[1], "/".join(rest[2:]), recursive)
            if action == ("POST", "paths-info") and len(rest) == 2:
                return self._paths_info(self._repo(repo_type, repo_id), rest[1], parse_qs(body.decode()))
            if action == ("POST", "preupload") and len(rest) == 2:
                return self._preupload(self._repo(repo_type, repo_id), rest[1], json.loads(body))
            if action == ("POST", "variables") and repo_type == "space" and len(rest) == 1:
                return self._add_variable(self._repo(repo_type, repo_id), json.loads(body))
            if action == ("POST", "commit") and len(rest) == 2:
                if "create_pr" in query:
                    raise HubError(400, None, "the Hub stand-in does not implement pull requests")
                return self._commit(repo_type, repo_id, self._repo(repo_type, repo_id), rest[1], body)
        raise HubError(404, None, f"the Hub stand-in has no route for {method} /api/{'/'.join(parts)}")

    def _create_repo(self, payload):
        repo_type = payload.get("type") or "model"
        if not payload.get("organization"):
            raise HubError(400, None, "the Hub stand-in needs repo ids of the form namespace/name")
        repo_id = f"{payload['organization']}/{payload['name']}"
        url = f"{self.endpoint}/{URL_PREFIX[repo_type]}{repo_id}"
        if (repo_type, repo_id) in self.repos:
            raise HubError(409, None, f"You already created this {repo_type} repo", url=url)  # exist_ok reads url
        # The real Hub's first commit adds .gitattributes; an empty one keeps `files()` to what tests uploaded.
        sha = hashlib.sha1(f"init {repo_type} {repo_id}".encode()).hexdigest()
        private = payload.get("visibility") == "private" or bool(payload.get("private"))  # older clients: `private`
        self.repos[repo_type, repo_id] = {"branches": {"main": sha}, "commits": {sha: {}}, "private": private}
        return 200, {}, {"url": url, "name": repo_id, "id": repo_id}

    def _add_variable(self, repo, payload):
        variables = repo.setdefault("variables", {})
        variables[payload["key"]] = {"value": payload["value"], "description": payload.get("description")}
        return 200, {}, variables

    def _info(self, repo_id, repo, revision):
        sha = self._resolve(repo, revision)
        siblings = [{"rfilename": path, "size": len(data), "blobId": git_blob_sha(data)}
                    for path, data in sorted(repo["commits"][sha].items())]
        return 200, {}, {"id": repo_id, "sha": sha, "private": repo["private"], "gated": False, "disabled": False,
                         "tags": [], "siblings": siblings}

    def _entries(self, files, sha, prefix):
        """Tree entries for every file and folder under `prefix` ("" or ending with "/"), by path."""
        entries = {}
        for path, data in files.items():
            if not path.startswith(prefix):
                continue
            parts = path.split("/")
            for depth in range(1, len(parts)):
                folder = "/".join(parts[:depth])
                if folder.startswith(prefix):
                    oid = hashlib.sha1(f"{sha} {folder}".encode()).hexdigest()
                    entries[folder] = {"type": "directory", "path": folder, "oid": oid}
            entries[path] = {"type": "file", "path": path, "size": len(data), "oid": git_blob_sha(data)}
        return entries

    def _tree(self, repo, revision, path, recursive):
        sha = self._resolve(repo, revision)
        prefix = path.strip("/") + "/" if path.strip("/") else ""
        entries = self._entries(repo["commits"][sha], sha, prefix)
        if prefix and not entries:
            raise HubError(404, "EntryNotFound", f"{path} does not exist on {revision}", {"X-Repo-Commit": sha})
        listed = [entry for name, entry in sorted(entries.items()) if recursive or "/" not in name[len(prefix):]]
        return 200, {}, listed

    def _paths_info(self, repo, revision, form):
        sha = self._resolve(repo, revision)
        entries = self._entries(repo["commits"][sha], sha, "")
        return 200, {}, [entries[p.strip("/")] for p in form.get("paths", []) if p.strip("/") in entries]

    def _preupload(self, repo, revision, payload):
        files = repo["commits"][self._resolve(repo, revision)]
        answers = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                    "oid": git_blob_sha(files[f["path"]]) if f["path"] in files else None}
                   for f in payload["files"]]
        return 200, {}, {"files": answers}

    def _commit(self, repo_type, repo_id, repo, branch, body):
        if branch not in repo["branches"]:
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {branch} (commits go to an existing branch)")
        header, *operations = [json.loads(line) for line in body.splitlines() if line.strip()]
        parent = repo["branches"][branch]
        if not parent.startswith(header["value"].get("parentCommit") or ""):
            raise HubError(412, None, f"A commit has happened since. Parent is {parent}")
        files = dict(repo["commits"][parent])
        for operation in operations:
            key, path = operation["key"], operation["value"]["path"]
            if key == "file":
                files[path] = base64.b64decode(operation["value"]["content"])
            elif key == "deletedFile" and path in files:
                del files[path]
            elif key == "deletedFile":
                raise HubError(404, "EntryNotFound", f"A file with this name doesn't exist: {path}")
            elif key == "deletedFolder":
                files = {p: d for p, d in files.items() if not p.startswith(path.rstrip("/") + "/")}
            else:  # "lfsFile" / "copy": would need an LFS store, which "regular" upload modes make unnecessary
                raise HubError(400, None, f"the Hub stand-in does not implement commit operation {key!r}")
        # Hash the parent, the message and the contents, as git does, so that each commit has its own id.
        snapshot = [parent, header["value"], sorted((p, git_blob_sha(d)) for p, d in files.items())]
        sha = hashlib.sha1(json.dumps(snapshot).encode()).hexdigest()
        repo["commits"][sha] = files
        repo["branches"][branch] = sha
        url = f"{self.endpoint}/{URL_PREFIX[repo_type]}{repo_id}/commit/{sha}"
        return 200, {}, {"success": True, "commitOid": sha, "commitUrl": url}

    def _resolve_file(self, repo_type, repo_id, revision, path, request_headers):
        repo = self._repo(repo_type, repo_id)
        sha = self._resolve(repo, revision)
        if path not in repo["commits"][sha]:
            # The client caches the missing file under this commit, so it needs X-Repo-Commit here too.
            raise HubError(404, "EntryNotFound", f"Entry not found: {path}", {"X-Repo-Commit": sha})
        data = repo["commits"][sha][path]
        # ETag is the content hash, so the client's cache keys blobs by content and never serves stale bytes.
        headers = {"X-Repo-Commit": sha, "ETag": f'"{git_blob_sha(data)}"', "Accept-Ranges": "bytes",
                   "Content-Type": "application/octet-stream"}
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", (request_headers.get("Range") or "").strip())
        if not match:
            return 200, headers, data
        start, end = match.groups()
        if not start:  # "bytes=-N": the last N bytes
            start, end = max(len(data) - int(end or 0), 0), len(data) - 1
        start, end = int(start), min(int(end) if end else len(data) - 1, len(data) - 1)
        if start >= len(data):
            raise HubError(416, None, "Range not satisfiable", {"Content-Range": f"bytes */{len(data)}"})
        headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        return 206, headers, data[start:end + 1]


class _Handler(BaseHTTPRequestHandler):
    hub: HubStandIn
    protocol_version = "HTTP/1.1"  # keep-alive, as the clients' connection pools expect

    def do_GET(self):
        self._handle()

    do_HEAD = do_POST = do_GET

    def log_message(self, format, *args):
        pass  # tests assert on hub.requests instead

    def _read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0], 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        self.rfile.readline()
        return b"".join(chunks)

    def _handle(self):
        url = urlsplit(self.path)
        # Split before unquoting: a quoted "/" (%2F) inside a revision or tree path stays in its segment.
        parts = [unquote(part) for part in url.path.split("/") if part]
        body = self._read_body()  # always read, or the next request on this connection would start mid-body
        try:
            with self.hub._lock:
                self.hub.requests.append((self.command, url.path))
                status, headers, payload = self.hub._route(self.command, parts, parse_qs(url.query), self.headers, body)
        except Exception as error:
            if not isinstance(error, HubError):  # a stand-in bug: say so in the reply, not by dropping the connection
                traceback.print_exc()  # 501, not 500: clients retry a 500 with backoff, which only delays the failure
                error = HubError(501, None, f"Hub stand-in error: {error!r}")
            status, payload = error.status, {"error": error.message, **error.body}
            message = error.message.encode("ascii", "backslashreplace").decode()  # header values must be latin-1
            headers = {"X-Error-Message": message, **error.headers}
            if error.code:
                headers["X-Error-Code"] = error.code
        if not isinstance(payload, bytes):
            payload, headers = json.dumps(payload).encode(), {"Content-Type": "application/json", **headers}
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
