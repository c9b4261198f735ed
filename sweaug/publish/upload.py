"""Step 4 of ``sweaug publish``: the token, the check that the remote repo holds a compatible
layout, and the upload of the stage folder; Hub failures become :class:`PublishError` without
the token in them.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Callable

import yaml

from .planning import PublishError
from .staging import STAGE_MARKER

UPLOAD_IGNORE = [STAGE_MARKER]


def get_token() -> str | None:
    token = os.environ.get("HF_TOKEN")
    if token and token.strip():
        return token.strip()
    from huggingface_hub import get_token as hub_token

    return hub_token()


def _front_matter(text: str) -> dict:
    if not text.startswith("---"):
        return {}
    parts = text.split("\n---", 1)
    try:
        data = yaml.safe_load(parts[0][3:]) if len(parts) == 2 else None
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def _config_layout(front: dict) -> dict[str, Any]:
    """config name -> its data files, normalized ({split: sorted paths} or sorted paths)."""
    out = {}
    for cfg in front.get("configs") or []:
        if not isinstance(cfg, dict) or "config_name" not in cfg:
            continue
        df = cfg.get("data_files")
        if isinstance(df, list) and all(isinstance(d, dict) for d in df):
            norm = {d.get("split"): sorted([d["path"]] if isinstance(d.get("path"), str)
                                           else list(d.get("path") or [])) for d in df}
        else:
            norm = sorted([df] if isinstance(df, str) else list(df or []))
        out[cfg["config_name"]] = norm
    return out


def check_remote(api, repo_id: str, shards: set[str], configs: list[dict]) -> list[str]:
    """Refuse to publish into a repo that holds a different dataset layout.

    The remote repo (if it exists) is compatible when (1) every ``.tar`` file in it is one of
    the shards this upload stages (same path): a tar shard outside that set would either be
    picked up by a config's ``<config>/<split>-*.tar`` pattern (mixing corpora) or belong to
    another layout; and (2) its README.md, if it declares ``configs``, declares none that this
    card lacks or declares with other data files. Configs this card adds are fine (an augmented
    set published later), as are other files (``.gitattributes``, a hand-written README without
    configs, which the card replaces). Returns the remote file list."""
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        remote = list(api.list_repo_files(repo_id, repo_type="dataset"))
    except RepositoryNotFoundError:
        return []
    extra = sorted(f for f in remote if f.endswith(".tar") and f not in shards)
    if extra:
        shown = ", ".join(extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
        raise PublishError(
            f"{repo_id} already holds {len(extra)} tar shard(s) that this corpus does not stage "
            f"({shown}): it has a different layout (another corpus, other options such as "
            f"--include-common-voice, or a rebuild with fewer shards). Publish to a new repo, or "
            f"delete those files from the repo first")
    if "README.md" in remote:
        path = api.hf_hub_download(repo_id=repo_id, filename="README.md", repo_type="dataset")
        theirs = _config_layout(_front_matter(Path(path).read_text(encoding="utf-8")))
        ours = _config_layout({"configs": configs})
        for name, files in theirs.items():
            if name not in ours:
                raise PublishError(f"{repo_id}'s README.md declares config {name!r}, which this "
                                   f"corpus does not publish: the repo has a different layout. "
                                   f"Publish to a new repo, or remove that config first")
            if files != ours[name]:
                raise PublishError(f"{repo_id}'s README.md declares config {name!r} with other "
                                   f"data files ({files}) than this corpus ({ours[name]}): the "
                                   f"repo has a different layout. Publish to a new repo")
    return remote


def _upload(api, repo_id: str, stage_dir: Path) -> str:
    if hasattr(api, "upload_large_folder"):  # huggingface_hub 0.25 - 1.x
        api.upload_large_folder(repo_id=repo_id, folder_path=str(stage_dir), repo_type="dataset",
                                ignore_patterns=UPLOAD_IGNORE)
        return "upload_large_folder"
    # huggingface_hub 2.x: upload_folder is the resumable multi-commit uploader
    api.upload_folder(repo_id=repo_id, folder_path=str(stage_dir), repo_type="dataset",
                      ignore_patterns=list(UPLOAD_IGNORE),
                      commit_message="Publish with sweaug")
    return "upload_folder"


def _scrub(text: str, token: str | None) -> str:
    if token:
        text = text.replace(token, "***")
    return re.sub(r"hf_[A-Za-z0-9]{8,}", "hf_***", text)


def _hub(fn: Callable[[], Any], token: str | None, what: str, hint: str = "") -> Any:
    """Run a Hub call; any failure becomes a PublishError without the token in it."""
    try:
        return fn()
    except PublishError as e:
        raise PublishError(_scrub(str(e), token)) from None
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # noqa: BLE001 - the Hub, the network: reported, not a traceback
        status = getattr(getattr(e, "response", None), "status_code", None)
        if status in (401, 403):
            msg = (f"{what}: the Hub refused the token (HTTP {status}): check that it is valid "
                   f"and may write to this repo's owner ({e})")
        else:
            msg = f"{what}: {type(e).__name__}: {e}" + (f". {hint}" if hint else "")
        raise PublishError(_scrub(msg, token)) from None
