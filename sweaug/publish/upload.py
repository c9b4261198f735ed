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

from .planning import TOKEN, PublishError, mask_tokens
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


def _upload(api, repo_id: str, stage_dir: Path, repo_type: str = "dataset") -> str:
    """Upload the stage folder: a corpus (``repo_type="dataset"``) or a trained model
    (``"model"``, ``sweaug publish --model``) go the same way."""
    if hasattr(api, "upload_large_folder"):  # huggingface_hub 0.25 - 1.x
        api.upload_large_folder(repo_id=repo_id, folder_path=str(stage_dir), repo_type=repo_type,
                                ignore_patterns=UPLOAD_IGNORE)
        return "upload_large_folder"
    # huggingface_hub 2.x: upload_folder is the resumable multi-commit uploader
    api.upload_folder(repo_id=repo_id, folder_path=str(stage_dir), repo_type=repo_type,
                      ignore_patterns=list(UPLOAD_IGNORE),
                      commit_message="Publish with sweaug")
    return "upload_folder"


def create_and_upload(api, token: str | None, repo_id: str, stage_dir: Path, private: bool,
                      repo_type: str, result: Any, say: Callable[[str], None]) -> Any:
    """The last step of ``publish`` and ``publish --model``: create the repo if missing
    (``private=None``: public unless the owner's default is private), upload the stage folder,
    and fill ``result``'s ``upload_method``, ``uploaded`` and ``url``."""
    say(f"creating {repo_id} (if missing) and uploading {len(result.files)} files")

    def upload() -> str:
        api.create_repo(repo_id, repo_type=repo_type, private=private or None, exist_ok=True)
        return _upload(api, repo_id, stage_dir, repo_type=repo_type)

    result.upload_method = _hub(upload, token, f"uploading to {repo_id} failed",
                                "Re-run the same command to resume: files already uploaded "
                                "are not sent again")
    result.uploaded = True
    prefix = "" if repo_type == "model" else f"{repo_type}s/"
    result.url = f"https://huggingface.co/{prefix}{repo_id}"
    return result


_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


def check_repo_id(repo_id: str, example: str = "someone/swedish-asr-mix") -> None:
    """Refuse a token pasted as ``--repo-id`` (any Hub call would log it in URLs) and anything
    that is not ``owner/name``."""
    if TOKEN.search(repo_id or ""):
        raise PublishError(f"--repo-id {mask_tokens(repo_id)!r} holds what looks like a Hugging "
                           "Face token (hf_...): pass the token in HF_TOKEN or with `hf auth "
                           "login`, never in --repo-id; and revoke that token if it was shared")
    if not _REPO_ID.match(repo_id or ""):
        raise PublishError(f"--repo-id {repo_id!r}: expected owner/name, e.g. {example}")


def connect(api=None) -> tuple[str, Any]:
    """(token, api) for an upload: the token from HF_TOKEN or the login, ``api`` or
    ``HfApi(token=...)``; refused without a token or with HF_HUB_OFFLINE set."""
    token = get_token()
    if not token:
        raise PublishError("no Hugging Face token: set HF_TOKEN or log in with "
                           "`hf auth login` (or use --dry-run to stage only)")
    if api is None:
        from huggingface_hub import constants

        offline = getattr(constants, "is_offline_mode", lambda: constants.HF_HUB_OFFLINE)()
        if offline:
            raise PublishError("HF_HUB_OFFLINE is set: publishing needs the network "
                               "(unset it, or use --dry-run to stage only)")
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    return token, api


# what makes a model repo load as something else than what is staged: weights, an adapter
_MODEL_WEIGHTS = re.compile(r"(^|/)(adapter_config\.json|[^/]+\.(safetensors|bin|pt|pth|ckpt|h5|"
                            r"msgpack|onnx|gguf)|[^/]+\.(safetensors|bin)\.index\.json)$")
_NOT_WEIGHTS = re.compile(r"(^|/)(training_args\.bin|optimizer\.pt|scheduler\.pt|rng_state[^/]*"
                          r"\.pth)$")  # Trainer state that push_to_hub may leave: not loaded


def check_remote_model(api, repo_id: str, staged: set[str]) -> list[str]:
    """Refuse to publish a model into a repo that holds other weights: a weight file (or an
    ``adapter_config.json``) in the remote repo that this upload does not stage would stay
    there, and ``from_pretrained`` could load it instead of (or mixed with) what is uploaded —
    e.g. an old adapter_config.json makes transformers load the repo as an adapter. Other files
    (``.gitattributes``, a README, which the card replaces) are fine. Returns the remote file
    list."""
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        remote = list(api.list_repo_files(repo_id, repo_type="model"))
    except RepositoryNotFoundError:
        return []
    extra = sorted(f for f in remote if _MODEL_WEIGHTS.search(f)
                   and not _NOT_WEIGHTS.search(f) and f not in staged)
    if extra:
        shown = ", ".join(extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
        raise PublishError(
            f"{repo_id} already holds weight file(s) that this model does not stage ({shown}): "
            f"it holds another model or another layout (a full model and an adapter). Publish "
            f"to a new repo, or delete those files from the repo first")
    return remote


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


def staged_lines(r, dry_run: bool, command: str, url: str) -> list[str]:
    """The end of a publish summary: what was staged, then the file list and the command that
    would upload it (a dry run) or where it went. ``r`` is a dataset's or a model's result."""
    total = sum(b for _, b in r.files)
    lines = [f"staged {len(r.files)} files, {total / 1e6:.1f} MB in {r.stage} "
             f"({r.linked} hard links, {r.copied} copies)"]
    if dry_run:
        width = max(len(f) for f, _ in r.files)
        lines += [f"  {f.ljust(width)}  {b:>12,d}" for f, b in r.files]
        lines.append(f"dry run: nothing uploaded; `{command}` without --dry-run uploads "
                     f"these files to {url}")
    else:
        lines.append(f"uploaded to {r.url} ({r.upload_method})")
    return lines
