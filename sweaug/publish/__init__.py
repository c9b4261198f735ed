"""``sweaug publish``: a corpus (and the augmented sets inside it) as a Hugging Face dataset repo
that ``load_dataset(repo_id, config, split=..., streaming=True)`` reads.

Steps, each of which can stop with a :class:`PublishError` (the CLI exits with code 2):

1. **Plan** from the manifests: ``<corpus>/manifest.json`` ("sweaug-corpus/1") gives one config
   per source; every ``<corpus>/<name>/manifest.json`` in "sweaug-augmented/1" format gives one
   config named after its folder. Common Voice-derived configs (the ``cv`` source, and any set
   augmented from it, following ``input.source`` through augmented-of-augmented sets) are left
   out unless ``include_common_voice``: CV is CC0, but Mozilla Data Collective's terms forbid
   re-hosting what users download from it.
2. **Verify** every shard against its manifest (sha256, sample count) and read every sample's
   JSON: the schema of a config is derived from its first sample (parts the first sample cannot
   tell, such as an empty ``augment.applied`` list, from the first sample that can) and every
   other sample must have the same keys and types, so the card's ``dataset_info`` features are
   exactly what the shards hold.
3. **Stage** the exact repo layout in the stage folder (default
   ``<corpus>/.sweaug/publish/<owner>--<name>``, one per repo because upload state is kept per
   folder) by hard links, or copies across filesystems, synchronised in place so that a re-run
   keeps unchanged files (and their upload state) untouched::

       README.md                  dataset card (YAML: configs, dataset_info, licences)
       manifest.json              the corpus manifest, restricted to what is published
       leakage.tsv                the leakage report, restricted to what is published
       <source>/<split>-NNNNNN.tar
       <augmented>/<split>-NNNNNN.tar
       <augmented>/manifest.json  the augmented set's manifest

   The configs name their shard files explicitly (``<config>/<split>-*.tar``), so the JSON and
   TSV files are never data files: datasets infers the builder (webdataset) from the first
   config's files only, and a sample is the tar members sharing a key (no dots in keys).
4. **Upload** (not with ``dry_run``): the token comes from ``HF_TOKEN`` or the huggingface_hub
   login; the remote repo's layout is checked (:func:`check_remote`), the repo is created if
   missing, and the stage folder is uploaded with ``upload_large_folder`` (huggingface_hub
   0.25-1.x: resumable through per-file state in ``<stage>/.cache/huggingface/upload``) or,
   where that method no longer exists (huggingface_hub 2.x), ``upload_folder``, whose hf_xet
   pipeline commits in batches and skips on a re-run every file whose remote oid already
   matches. Either way a re-run after an interruption uploads only what is missing.

One module per step: ``planning.py`` (1), ``verifying.py`` (2), ``card.py`` and ``staging.py``
(3), ``upload.py`` (4); this one runs them in order (:func:`publish`) and reports the result.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .card import AUDIO_EXTS, card_metadata, configs_yaml, features_yaml, render_card
from .planning import (CV_REASON, SPLIT_ORDER, TOKEN, Config, Plan, PublishError, Shard,
                       default_config, mask_tokens, plan)
from .staging import STAGE_MARKER, _stage_files, default_stage_dir, stage, staged_listing
from .upload import UPLOAD_IGNORE, _hub, _upload, check_remote, get_token
from .verifying import verify

__all__ = ["AUDIO_EXTS", "CV_REASON", "SPLIT_ORDER", "STAGE_MARKER", "UPLOAD_IGNORE", "Config",
           "Plan", "PublishError", "PublishResult", "Shard", "card_metadata", "check_remote",
           "configs_yaml", "default_config", "default_stage_dir", "features_yaml",
           "format_result", "get_token", "mask_tokens", "plan", "publish", "render_card",
           "stage", "staged_listing", "verify"]

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


@dataclass
class PublishResult:
    repo_id: str
    stage: Path
    files: list[tuple[str, int]]     # (path in repo, bytes), what is (or would be) uploaded
    configs: list[str]
    default_config: str
    excluded: dict[str, str]
    linked: int
    copied: int
    notes: list[str]
    uploaded: bool = False
    url: str = ""
    upload_method: str = ""


def publish(corpus: Path, repo_id: str, *, private: bool = False, dry_run: bool = False,
            stage_dir: Path | None = None, include_common_voice: bool = False,
            default: str | None = None, api=None,
            progress: Callable[[str], None] | None = None) -> PublishResult:
    """Stage ``corpus`` as the dataset repo ``repo_id`` and (unless ``dry_run``) upload it.
    ``api`` replaces ``huggingface_hub.HfApi(token=...)`` (tests)."""
    say = progress or (lambda m: None)
    if TOKEN.search(repo_id or ""):  # a pasted token: any Hub call would log it in URLs
        raise PublishError(f"--repo-id {mask_tokens(repo_id)!r} holds what looks like a Hugging "
                           "Face token (hf_...): pass the token in HF_TOKEN or with `hf auth "
                           "login`, never in --repo-id; and revoke that token if it was shared")
    if not _REPO_ID.match(repo_id or ""):
        raise PublishError(f"--repo-id {repo_id!r}: expected owner/name, e.g. "
                           f"someone/swedish-asr-mix")
    p = plan(Path(corpus), include_common_voice)
    token = None
    if not dry_run:
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
    dflt = default_config(p, default)
    if not dry_run:
        say(f"checking {repo_id} on the Hub")
        shards = {s.path for c in p.configs for v in c.shards.values() for s in v}
        _hub(lambda: check_remote(api, repo_id, shards, configs_yaml(p, dflt)), token,
             f"reading {repo_id} from the Hub failed")
    try:
        verify(p, say)
        want = _stage_files(p, render_card(p, repo_id, dflt))
        sdir = Path(stage_dir) if stage_dir else default_stage_dir(p.corpus, repo_id)
        linked, copied = stage(want, sdir, repo_id)
    except OSError as e:
        raise PublishError(f"staging failed: {type(e).__name__}: {e}") from None
    result = PublishResult(repo_id, sdir, staged_listing(sdir), [c.name for c in p.configs],
                           dflt, dict(p.excluded), linked, copied, list(p.notes))
    if dry_run:
        return result
    say(f"creating {repo_id} (if missing) and uploading {len(result.files)} files")

    def upload() -> str:
        # private=None: public unless the organisation's default is private
        api.create_repo(repo_id, repo_type="dataset", private=private or None, exist_ok=True)
        return _upload(api, repo_id, sdir)

    result.upload_method = _hub(upload, token, f"uploading to {repo_id} failed",
                                "Re-run the same command to resume: files already uploaded "
                                "are not sent again")
    result.uploaded = True
    result.url = f"https://huggingface.co/datasets/{repo_id}"
    return result


def format_result(r: PublishResult, dry_run: bool) -> str:
    lines = []
    for name, why in r.excluded.items():
        if why == CV_REASON:
            lines.append(f"left out {name}: Common Voice-derived. {CV_REASON}; pass "
                         f"--include-common-voice to publish it anyway (your responsibility).")
        else:
            lines.append(f"left out {name}: {why}.")
    lines += [f"note: {n}" for n in r.notes]
    total = sum(b for _, b in r.files)
    lines.append(f"staged {len(r.files)} files, {total / 1e6:.1f} MB in {r.stage} "
                 f"({r.linked} hard links, {r.copied} copies)")
    lines.append("configs: " + ", ".join(f"{c} (default)" if c == r.default_config else c
                                          for c in r.configs))
    if dry_run:
        width = max(len(f) for f, _ in r.files)
        lines += [f"  {f.ljust(width)}  {b:>12,d}" for f, b in r.files]
        lines.append(f"dry run: nothing uploaded; `sweaug publish` without --dry-run uploads "
                     f"these files to https://huggingface.co/datasets/{r.repo_id}")
    else:
        lines.append(f"uploaded to {r.url} ({r.upload_method})")
    return "\n".join(lines)
