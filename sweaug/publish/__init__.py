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

``sweaug publish --model RUN_DIR/MIX`` (``model.py``, :func:`publish_model`): a mix that
``sweaug ablate`` trained, as a model repo (the model or its LoRA adapter, and a model card with
the run's results), staged and uploaded by steps 3 and 4 with ``repo_type="model"``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .card import AUDIO_EXTS, card_metadata, configs_yaml, features_yaml, render_card
from .planning import (CV_REASON, SPLIT_ORDER, TOKEN, Config, Plan, PublishError, Shard,
                       default_config, mask_tokens, plan)
from .staging import STAGE_MARKER, _stage_files, default_stage_dir, stage, staged_listing
from .upload import (UPLOAD_IGNORE, _hub, check_remote, check_remote_model,
                     check_repo_id, connect, create_and_upload, get_token,
                     staged_lines)
from .verifying import verify
from .model import (ModelPlan, ModelPublishResult, format_model_result, plan_model,
                    publish_model, render_model_card)

__all__ = ["AUDIO_EXTS", "CV_REASON", "SPLIT_ORDER", "STAGE_MARKER", "UPLOAD_IGNORE", "Config",
           "ModelPlan", "ModelPublishResult", "Plan", "PublishError", "PublishResult", "Shard",
           "card_metadata", "check_remote", "check_remote_model", "check_repo_id", "configs_yaml",
           "connect", "default_config", "default_stage_dir", "features_yaml",
           "format_model_result", "format_result", "get_token", "mask_tokens", "plan",
           "plan_model", "publish", "publish_model", "render_card", "render_model_card", "stage",
           "staged_listing", "verify"]


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
    check_repo_id(repo_id)
    p = plan(Path(corpus), include_common_voice)
    token = None
    if not dry_run:
        token, api = connect(api)
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
    return create_and_upload(api, token, repo_id, sdir, private, "dataset", result, say)


def format_result(r: PublishResult, dry_run: bool) -> str:
    lines = []
    for name, why in r.excluded.items():
        if why == CV_REASON:
            lines.append(f"left out {name}: Common Voice-derived. {CV_REASON}; pass "
                         f"--include-common-voice to publish it anyway (your responsibility).")
        else:
            lines.append(f"left out {name}: {why}.")
    lines += [f"note: {n}" for n in r.notes]
    lines.append("configs: " + ", ".join(f"{c} (default)" if c == r.default_config else c
                                          for c in r.configs))
    lines += staged_lines(r, dry_run, "sweaug publish",
                          f"https://huggingface.co/datasets/{r.repo_id}")
    return "\n".join(lines)
