"""An in-memory Hugging Face Hub for the publishing tests (test_publish.py: dataset repos;
test_publish_model.py: model repos), served to the real ``HfApi`` and its real uploader through
an ``httpx2.MockTransport`` installed with huggingface_hub's ``set_client_factory``."""
from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import pytest
import yaml


def front_matter(readme: Path) -> dict:
    """The YAML header of a staged README.md (the card the Hub reads)."""
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("\n---\n", 1)[0][4:])


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Interrupted(Exception):
    """The connection drops in the middle of an upload."""


class FakeHub:
    """The Hub endpoints HfApi uses here, in memory, for one repo type (``"datasets"`` or
    ``"models"``): repos/create (each body kept in ``created``), tree (list_repo_files),
    resolve (hf_hub_download), validate-yaml, preupload (every file "regular", with the oid of
    the remote copy if any, which is how the uploader skips unchanged files), commit (ndjson,
    atomic; raises ``Interrupted`` once ``fail_after`` files would have been committed)."""

    def __init__(self, kind: str = "datasets"):
        self.kind = kind
        self.prefix = "" if kind == "models" else f"{kind}/"  # the repo's web address
        self.repos: dict[str, dict] = {}
        self.created: list[dict] = []
        self.commits: list[list[str]] = []
        self.fail_after: int | None = None
        self.auth: set[str] = set()
        self.reject_token = False

    def handler(self, req):
        import httpx2

        path, method = req.url.path, req.method
        if path == "/api/agent-harnesses":  # huggingface_hub's user-agent lookup
            return httpx2.Response(404, json={})
        self.auth.add(req.headers.get("authorization", ""))
        if self.reject_token:
            return httpx2.Response(401, json={"error": f"Invalid credentials: "
                                              f"{req.headers.get('authorization')}"})
        if path == "/api/repos/create":
            body = json.loads(req.content)
            self.created.append(body)
            rid = f"{body['organization']}/{body['name']}"
            url = f"https://huggingface.co/{self.prefix}{rid}"
            if rid in self.repos:
                return httpx2.Response(409, json={"error": "You already created this "
                                                  f"{self.kind[:-1]} repo", "url": url})
            self.repos[rid] = {"files": {}, "private": bool(body.get("private"))
                               or body.get("visibility") == "private"}
            return httpx2.Response(200, json={"url": url})
        if path == "/api/validate-yaml":
            return httpx2.Response(200, json={})
        api = re.match(rf"^/api/{self.kind}/([^/]+/[^/]+)/(tree|preupload|commit|revision)/main$",
                       path)
        resolve = re.match(rf"^/{self.prefix}([^/]+/[^/]+)/resolve/main/(.+)$", path)
        if not (api or resolve):
            raise AssertionError(f"unexpected request {method} {req.url}")
        rid = (api or resolve).group(1)
        if rid not in self.repos:
            return httpx2.Response(404, json={"error": "Repository not found"},
                                   headers={"x-error-code": "RepoNotFound"})
        files = self.repos[rid]["files"]
        if resolve:
            name = resolve.group(2)
            if name not in files:
                return httpx2.Response(404, json={"error": "Entry not found"},
                                       headers={"x-error-code": "EntryNotFound"})
            head = hashlib.sha1(repr(sorted((p, git_sha1(d)) for p, d in files.items()))
                                .encode()).hexdigest()  # the commit: changes with the files
            return httpx2.Response(200, content=b"" if method == "HEAD" else files[name], headers={
                "x-repo-commit": head, "etag": f'"{git_sha1(files[name])}"',
                "content-length": str(len(files[name]))})
        kind = api.group(2)
        if kind == "tree":
            return httpx2.Response(200, json=[{"type": "file", "path": p, "oid": git_sha1(d),
                                               "size": len(d)} for p, d in sorted(files.items())])
        if kind == "revision":
            return httpx2.Response(200, json={"id": rid, "sha": "b" * 40,
                                              "siblings": [{"rfilename": p} for p in files]})
        if kind == "preupload":
            return httpx2.Response(200, json={"files": [
                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                 **({"oid": git_sha1(files[f["path"]])} if f["path"] in files else {})}
                for f in json.loads(req.content)["files"]]})
        lines = [json.loads(line) for line in req.content.splitlines() if line.strip()]
        ops = [line["value"] for line in lines if line["key"] == "file"]
        done = sum(map(len, self.commits))
        if self.fail_after is not None and done + len(ops) > self.fail_after:
            raise Interrupted(f"connection reset after {done} files")
        for op in ops:
            files[op["path"]] = base64.b64decode(op["content"])
        self.commits.append([op["path"] for op in ops])
        return httpx2.Response(200, json={"commitOid": "c" * 40, "pullRequestUrl": None,
                                          "commitUrl": f"https://huggingface.co/{self.prefix}"
                                                       f"{rid}/commit/{len(self.commits)}"})


def serve(monkeypatch, tmp_path, token: str, kind: str = "datasets"):
    """Install a FakeHub of ``kind`` under huggingface_hub for one test (a generator for a
    fixture: yields the hub, then restores the real client)."""
    httpx2 = pytest.importorskip("httpx2")
    from huggingface_hub import constants
    from huggingface_hub.utils import _http

    fake = FakeHub(kind)
    monkeypatch.setenv("HF_TOKEN", token)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # hf_xet's session logs
    monkeypatch.setenv("HF_XET_CACHE", str(tmp_path / "xet"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    _http.set_client_factory(lambda: httpx2.Client(transport=httpx2.MockTransport(fake.handler)))
    yield fake
    _http.set_client_factory(_http.default_client_factory)
