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
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

CV_REASON = ("Common Voice is CC0, but Mozilla Data Collective's terms of use forbid re-hosting "
             "what is downloaded from it")
STAGE_MARKER = ".sweaug-stage"  # marks a folder as a sweaug stage (never uploaded)
UPLOAD_IGNORE = [STAGE_MARKER]
SPLIT_ORDER = ("train", "validation", "test")
AUDIO_EXTS = ("flac", "wav", "mp3", "ogg", "opus")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
_SPLIT = re.compile(r"^\w+(\.\w+)*$")  # what datasets accepts as a split name
_HUB_LICENSES = {"apache-2.0", "mit", "cc0-1.0", "cc-by-4.0", "cc-by-sa-4.0", "cc-by-nc-4.0",
                 "cc-by-nc-sa-4.0", "cc-by-nd-4.0", "cc-by-nc-nd-4.0", "cc-by-3.0",
                 "cc-by-sa-3.0", "cc-by-2.0", "odc-by", "odbl", "pddl", "cdla-permissive-2.0",
                 "cdla-sharing-1.0", "gpl-3.0", "unlicense"}
# What the first samples may not show: an empty list's element type. Everything else unknown
# after every sample of a config has been read becomes a string.
_KNOWN_ELEMENTS = {("augment", "applied"): {"name": "string", "parameters": "string"}}


class PublishError(Exception):
    """A problem the user can fix; the message says what and how."""


# ------------------------------------------------------------------------------------ plan

@dataclass
class Shard:
    src: Path            # the shard in the corpus
    path: str            # its path in the repo
    split: str
    sha256: str
    samples: int
    bytes: int


@dataclass
class Config:
    name: str
    kind: str                        # "source" or "augmented"
    origin: str                      # the corpus source it comes from
    entry: dict                      # the manifest's source entry (release, licence, splits...)
    shards: dict[str, list[Shard]]   # by split, non-empty splits only
    manifest: dict | None = None     # an augmented set's own manifest
    schema: dict | None = None       # filled by verify()
    extensions: tuple[str, ...] = ()  # a sample's files, e.g. ("flac", "json")
    sample_rate: int | None = None


@dataclass
class Plan:
    corpus: Path
    manifest: dict
    configs: list[Config]
    excluded: dict[str, str]         # config -> why it is left out
    notes: list[str] = field(default_factory=list)

    def config(self, name: str) -> Config:
        return next(c for c in self.configs if c.name == name)


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


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PublishError(f"{path} is not a readable manifest: {e}") from None


def _split_key(split: str) -> tuple:
    return (SPLIT_ORDER.index(split) if split in SPLIT_ORDER else len(SPLIT_ORDER), split)


def _shards(name: str, base: Path, splits: dict) -> dict[str, list[Shard]]:
    out = {}
    for split in sorted(splits, key=_split_key):
        listed = splits[split].get("shards") or []
        if not listed:
            continue
        if not _SPLIT.match(split):
            raise PublishError(f"{name}: split name {split!r} is not one datasets accepts "
                               f"(letters, digits, underscores)")
        out[split] = [Shard(src=base / s["path"], path=f"{name}/{split}-{i:06d}.tar", split=split,
                            sha256=s["sha256"], samples=int(s["samples"]), bytes=int(s["bytes"]))
                      for i, s in enumerate(listed)]
    return out


def _origin(m: dict, folder: Path, augmented: dict[str, tuple[dict, Path]]) -> str:
    """The corpus source an augmented set comes from, through augmented-of-augmented sets:
    by the input manifest's path when it is on disk, else by the input's name."""
    seen: set = set()
    while True:
        inp = m.get("input", {})
        src, rel = inp.get("source", ""), inp.get("manifest")
        nxt = None
        if rel and (folder / rel).is_file() and (folder / rel).resolve() not in seen:
            seen.add((folder / rel).resolve())
            mm = _read_json(folder / rel)
            if mm.get("format") == "sweaug-augmented/1":
                nxt = (mm, (folder / rel).parent)
        elif src in augmented and src not in seen:
            seen.add(src)
            nxt = augmented[src]
        if nxt is None:
            return src
        m, folder = nxt


def plan(corpus: Path, include_common_voice: bool = False) -> Plan:
    """Which configs a corpus holds, which are left out and why; reads manifests only."""
    corpus = Path(corpus)
    mpath = corpus / "manifest.json"
    if not corpus.is_dir():
        raise PublishError(f"{corpus} is not a folder")
    if not mpath.exists():
        raise PublishError(f"{corpus} has no manifest.json: nothing to publish (is it a "
                           f"`sweaug build` output folder?)")
    manifest = _read_json(mpath)
    if manifest.get("format") != "sweaug-corpus/1":
        raise PublishError(f"{mpath} is not a sweaug corpus manifest (format "
                           f"{manifest.get('format')!r}, expected 'sweaug-corpus/1')")
    configs: list[Config] = []
    notes: list[str] = []
    for name, entry in sorted(manifest.get("sources", {}).items()):
        configs.append(Config(name, "source", name, entry,
                              _shards(name, corpus, entry.get("splits", {}))))
    sources = {c.name for c in configs}
    augmented: dict[str, tuple[dict, Path]] = {}
    for sub in sorted(p for p in corpus.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if (sub / "manifest.json").exists() and sub.name not in sources:
            m = _read_json(sub / "manifest.json")
            if m.get("format") == "sweaug-augmented/1":
                augmented[sub.name] = (m, sub)
            else:
                notes.append(f"{sub.name}/manifest.json is not an augmented set "
                             f"(format {m.get('format')!r}): not published")
    corpus_sha = _sha256(mpath)
    for name, (m, sub) in augmented.items():
        origin = _origin(m, sub, augmented)
        entries = list(m.get("sources", {}).values())
        if len(entries) != 1:
            raise PublishError(f"{sub}/manifest.json lists {len(entries)} sources, expected one")
        if (m.get("input", {}).get("manifest_sha256") not in (None, corpus_sha)
                and m.get("input", {}).get("source") in sources):
            notes.append(f"{name} was augmented from an earlier build of this corpus "
                         f"(its input manifest sha256 differs from manifest.json)")
        configs.append(Config(name, "augmented", origin, entries[0],
                              _shards(name, sub, entries[0].get("splits", {})), manifest=m))
    excluded: dict[str, str] = {}
    for c in configs:
        if c.origin == "cv" and not include_common_voice:
            excluded[c.name] = CV_REASON
    for c in configs:
        if c.name not in excluded and not c.shards:
            excluded[c.name] = "no shards (every sample of every split was dropped)"
    kept = [c for c in configs if c.name not in excluded]
    if not kept:
        why = "; ".join(f"{k}: {v}" for k, v in excluded.items()) or "the manifest lists no shards"
        hint = (" (pass --include-common-voice to publish Common Voice-derived data, at your own "
                "responsibility)" if any(v == CV_REASON for v in excluded.values()) else "")
        raise PublishError(f"{corpus}: nothing to publish: {why}{hint}")
    return Plan(corpus, manifest, kept, excluded, notes)


# ---------------------------------------------------------------------------------- verify

def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _schema_of(value: Any) -> Any:
    """The type of a JSON value: a dtype name, a dict (struct), ("list", element) or None
    (unknown: null, or an empty list's element)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return {k: _schema_of(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        elem = None
        for v in value:
            elem = _merge(elem, _schema_of(v), ())
        return ("list", elem)
    return None


class _Mismatch(Exception):
    def __init__(self, where: tuple, what: str):
        super().__init__(what)
        self.where, self.what = where, what


def _merge(a: Any, b: Any, where: tuple) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            extra, missing = sorted(b.keys() - a.keys()), sorted(a.keys() - b.keys())
            raise _Mismatch(where, "keys differ" + (f"; extra {extra}" if extra else "")
                            + (f"; missing {missing}" if missing else ""))
        return {k: _merge(a[k], b[k], where + (k,)) for k in a}
    if isinstance(a, tuple) and isinstance(b, tuple):
        return ("list", _merge(a[1], b[1], where + ("[]",)))
    if a == b:
        return a
    if {a, b} == {"int64", "float64"}:
        return "float64"
    raise _Mismatch(where, f"type {_type_name(b)} where the first samples have {_type_name(a)}")


def _type_name(s: Any) -> str:
    return "struct" if isinstance(s, dict) else "list" if isinstance(s, tuple) else str(s)


def _resolve(s: Any, where: tuple = ()) -> Any:
    """Replace what no sample could tell by the known element types, else string."""
    if isinstance(s, dict):
        return {k: _resolve(v, where + (k,)) for k, v in s.items()}
    if isinstance(s, tuple):
        elem = s[1] if s[1] is not None else _KNOWN_ELEMENTS.get(where, "string")
        return ("list", _resolve(elem, where + ("[]",)))
    return "string" if s is None else s


def _scan_shard(path: Path) -> tuple[int, list[tuple[str, tuple[str, ...], dict | None]]]:
    """(samples, [(key, extensions, json)]) of one shard, reading only tar headers and JSON."""
    samples: list[tuple[str, tuple[str, ...], dict | None]] = []
    key, exts, meta = None, [], None
    with tarfile.open(path, "r:") as tar:
        for m in tar:
            if not m.isfile():
                continue
            name = m.name.rsplit("/", 1)[-1]
            k, _, ext = name.partition(".")
            if k != key:
                if key is not None:
                    samples.append((key, tuple(exts), meta))
                key, exts, meta = k, [], None
            exts.append(ext)
            if ext == "json":
                meta = json.loads(tar.extractfile(m).read())
    if key is not None:
        samples.append((key, tuple(exts), meta))
    return len(samples), samples


def verify(p: Plan, progress: Callable[[str], None] | None = None) -> None:
    """Check every shard against its manifest and derive each config's sample schema."""
    total = sum(len(v) for c in p.configs for v in c.shards.values())
    done = 0
    for c in p.configs:
        schema, exts, sr = None, None, None
        for split, shards in c.shards.items():
            for s in shards:
                done += 1
                if progress and (done == 1 or done % 50 == 0 or done == total):
                    progress(f"verifying shards: {done}/{total}")
                if not s.src.is_file():
                    raise PublishError(f"shard {s.src} listed in the manifest is missing: "
                                       f"refusing to publish an incomplete corpus")
                got = _sha256(s.src)
                if got != s.sha256:
                    raise PublishError(
                        f"shard {s.src} does not match the sha256 in its manifest (expected "
                        f"{s.sha256[:12]}…, got {got[:12]}…): refusing to publish corrupt "
                        f"data; "
                        f"rebuild it (re-running the same `sweaug build`/`augment` command "
                        f"rewrites only what is damaged)")
                try:
                    n, samples = _scan_shard(s.src)
                except (tarfile.TarError, OSError, ValueError) as e:
                    raise PublishError(f"shard {s.src} cannot be read: {e}") from None
                if n != s.samples:
                    raise PublishError(f"shard {s.src} holds {n} samples, its manifest says "
                                       f"{s.samples}: refusing to publish")
                for key, e, meta in samples:
                    if exts is None:
                        exts = e
                    if e != exts or "json" not in e:
                        raise PublishError(f"{s.src}: sample {key!r} has files {list(e)}, the "
                                           f"first sample of {c.name} has {list(exts)}")
                    try:
                        schema = _merge(schema, _schema_of(meta), ())
                    except _Mismatch as m:
                        field_ = ".".join(m.where) or "(top level)"
                        raise PublishError(f"{s.src}: sample {key!r} does not have the schema of "
                                           f"the first sample of {c.name} at {field_}: {m.what}; "
                                           f"the card's features must fit every sample") from None
                    if sr is None and isinstance(meta, dict):
                        sr = meta.get("sample_rate")
        c.schema, c.extensions, c.sample_rate = _resolve(schema), exts or (), sr


# ------------------------------------------------------------------------------------ card

def _yaml_inner(s: Any) -> Any:
    if isinstance(s, dict):
        return [_yaml_feature(k, v) for k, v in s.items()]
    if isinstance(s, tuple):
        return {"list": _yaml_inner(s[1])}
    return s


def _yaml_feature(name: str, s: Any) -> dict:
    if isinstance(s, dict):
        return {"name": name, "struct": _yaml_inner(s)}
    if isinstance(s, tuple):
        return {"name": name, "list": _yaml_inner(s[1])}
    return {"name": name, "dtype": s}


def features_yaml(c: Config) -> list[dict]:
    """The config's features in the dataset card's YAML form (datasets' ``Features``): one
    column per file extension of a sample, then webdataset's ``__key__`` and ``__url__``."""
    cols = []
    for ext in c.extensions:
        if ext in AUDIO_EXTS:
            sr = c.sample_rate
            cols.append({"name": ext, "dtype": {"audio": {"sampling_rate": int(sr)} if sr else {}}})
        elif ext == "json":
            cols.append(_yaml_feature("json", c.schema))
        elif ext in ("txt", "text"):
            cols.append({"name": ext, "dtype": "string"})
        else:
            cols.append({"name": ext, "dtype": "binary"})
    return cols + [{"name": "__key__", "dtype": "string"}, {"name": "__url__", "dtype": "string"}]


def _license_id(text: str) -> str:
    first = (text or "").split(" ")[0].strip().lower()
    return first if first in _HUB_LICENSES else "other" if first else "unknown"


def _size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                         (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M"),
                         (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")):
        if n < limit:
            return label
    return "n>1B"


def default_config(p: Plan, wanted: str | None = None) -> str:
    names = [c.name for c in p.configs]
    if wanted:
        if wanted not in names:
            raise PublishError(f"--default-config {wanted}: not a published config "
                               f"(published: {', '.join(names)})")
        return wanted
    sources = [c for c in p.configs if c.kind == "source"] or p.configs

    def hours(c: Config) -> float:
        return sum(s.get("hours", 0) for s in c.entry.get("splits", {}).values())

    return max(sources, key=lambda c: (hours(c), -names.index(c.name))).name


def configs_yaml(p: Plan, default: str) -> list[dict]:
    """The card's ``configs``: one per published config, its shards named per split."""
    out = []
    for c in p.configs:
        cfg = {"config_name": c.name,
               "data_files": [{"split": split, "path": f"{c.name}/{split}-*.tar"}
                              for split in c.shards]}
        if c.name == default:
            cfg["default"] = True
        out.append(cfg)
    return out


def card_metadata(p: Plan, default: str) -> dict:
    """The card's YAML front matter."""
    infos = []
    for c in p.configs:
        splits = [{"name": split, "num_bytes": sum(s.bytes for s in shards),
                   "num_examples": sum(s.samples for s in shards)}
                  for split, shards in c.shards.items()]
        size = sum(s["num_bytes"] for s in splits)
        infos.append({"config_name": c.name, "features": features_yaml(c), "splits": splits,
                      "download_size": size, "dataset_size": size})
    licenses = sorted({_license_id(c.entry.get("license", "")) for c in p.configs})
    languages = sorted({c.entry.get("language") for c in p.configs if c.entry.get("language")})
    total = sum(s.samples for c in p.configs for v in c.shards.values() for s in v)
    return {
        "language": languages,
        "license": licenses[0] if len(licenses) == 1 else licenses,
        "pretty_name": None,  # filled by render_card
        "size_categories": [_size_category(total)],
        "task_categories": ["automatic-speech-recognition"],
        "tags": ["audio", "speech", "webdataset", "sweaug"],
        "configs": configs_yaml(p, default),
        "dataset_info": infos,
    }


_TEXT_DOC = """\
* `text`: the training target: orthographic, case and punctuation kept, Unicode NFC,
  quotes/dashes/whitespace unified, bracketed annotations (`[skratt]`, `(applåder)`, ...) removed.
* `text_normalized`: lowercase, no punctuation, numbers written out as Swedish words
  (num2words), å/ä/ö kept; the form used for the leakage guard and normalized WER.
* `text_raw`: the transcript exactly as the source gives it."""


def _md(s: Any) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def render_card(p: Plan, repo_id: str, default: str) -> str:
    """The dataset card: YAML front matter + what the data is, where it comes from, how the
    text was normalized, the counts, licences, citations and a usage snippet. Deterministic:
    the same plan gives the same bytes (a re-run does not re-upload it)."""
    meta = card_metadata(p, default)
    name = repo_id.split("/", 1)[1]
    meta["pretty_name"] = name
    m = p.manifest
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=1000)
    lines = ["---", front.rstrip("\n"), "---", "", f"# {name}", ""]
    srcs = ", ".join(f"`{c.name}`" for c in p.configs)
    base_keys = [k for k in (next((c.schema for c in p.configs if c.kind == "source"), None)
                             or p.configs[0].schema or {}) if k not in ("augment", "original_key")]
    lines += [f"A speech corpus built with sweaug {m.get('sweaug_version', '')}: configs {srcs}, "
              f"as WebDataset tar shards of 16 kHz mono FLAC + JSON metadata.", ""]
    lines += ["## Usage", "", "```python", "from datasets import load_dataset", "",
              f'ds = load_dataset("{repo_id}", "{default}", split="train", streaming=True)',
              "sample = next(iter(ds))",
              'sample["json"]["text"], sample["flac"]  # transcript, decoded 16 kHz audio', "```",
              "", "A sample is `<key>.flac` + `<key>.json` (`__key__` is the key). The JSON has "
              "the same keys and types in every sample of a config: "
              + ", ".join(f"`{k}`" for k in base_keys) + " (`extras`: the source's own fields, "
              "as strings); augmented sets add `original_key` and `augment`.", ""]
    lines += ["## Configs", "", "| config | origin | licence | release |", "|---|---|---|---|"]
    for c in p.configs:
        origin = (c.name if c.kind == "source"
                  else f"augmented from `{c.manifest['input']['source']}`")
        lines.append(f"| `{c.name}`{' (default)' if c.name == default else ''} | {_md(origin)} | "
                     f"{_md(c.entry.get('license') or 'unknown')} | "
                     f"{_md(c.entry.get('release', ''))} |")
    lines += ["", "## Counts", "",
              "| config | split | samples | hours | speakers | shards | dropped |",
              "|---|---|---:|---:|---:|---:|---|"]
    for c in p.configs:
        for split, shards in c.shards.items():
            s = c.entry["splits"][split]
            drops = ", ".join(f"{r} {n}" for r, n in sorted(s.get("drops", {}).items())) or "-"
            lines.append(f"| {c.name} | {split} | {s.get('samples', 0)} | "
                         f"{s.get('hours', 0):.3f} | {s.get('speakers', 0)} | {len(shards)} | "
                         f"{_md(drops)} |")
    total_n = sum(c.entry["splits"][sp].get("samples", 0) for c in p.configs for sp in c.shards)
    total_h = sum(c.entry["splits"][sp].get("hours", 0) for c in p.configs for sp in c.shards)
    lines += ["", f"{total_n} samples, {total_h:.3f} hours.", ""]
    filt = m.get("settings", {}).get("filters", {})
    lines += ["## Text", "", f"Normalizer version `{m.get('normalizer_version', '')}` "
              "(sweaug/text.py). Every sample has three views of its transcript:", "",
              _TEXT_DOC, "",
              "Training splits are filtered (evaluation splits keep every usable clip): "
              + ", ".join(f"{k} {v}" for k, v in sorted(filt.items())) + ". Training samples "
              "whose normalized sentence is in any evaluation split, or whose speaker is an "
              "evaluation speaker of the same source, were dropped (leakage guard; "
              "`leakage.tsv`). Audio: decoded, mixed to mono, resampled to 16 kHz with soxr, "
              "16-bit FLAC; undecodable, empty, truncated, NaN and silent clips dropped.", ""]
    aug = [c for c in p.configs if c.kind == "augmented"]
    if aug:
        lines += ["## Augmented sets", ""]
        for c in aug:
            a = c.manifest.get("augment", {})
            steps = ", ".join(t.get("name", "") for t in a.get("transforms", []))
            lines.append(f"* `{c.name}`: {a.get('copies')} augmented copies of every sample of "
                         f"`{c.manifest['input']['source']}` with recipe `{a.get('recipe')}` "
                         f"({steps}; recipe sha256 `{str(a.get('recipe_sha256', ''))[:12]}`), seed "
                         f"{a.get('seed')}. Each sample's `json.augment.applied` lists the "
                         f"transforms that fired and their parameters; `original_key` names the "
                         f"original sample.")
        lines.append("")
    if p.excluded:
        lines += ["## Left out", ""]
        lines += [f"* `{k}`: {v}." for k, v in p.excluded.items()]
        lines.append("")
    lines += ["## Licences", "", "Each config keeps the licence of its source:", ""]
    for c in p.configs:
        home = c.entry.get("homepage") or (p.manifest.get("sources", {}).get(c.origin, {})
                                           .get("homepage", ""))
        lines.append(f"* `{c.name}`: {c.entry.get('license') or 'unknown'}"
                     + (f" ({home})" if home else ""))
    lines += ["", "## Files", "", "`manifest.json` (the build manifest, restricted to the "
              "published sources: versions, settings, counts, drops by reason, every shard with "
              "its sha256), `leakage.tsv`, and `<set>/manifest.json` for augmented sets.", ""]
    cites = {}
    for c in p.configs:
        cit = (c.entry.get("citation") or "").strip()
        if cit:
            cites.setdefault(cit, []).append(c.name)
    if cites:
        lines += ["## Citations", ""]
        for cit, names in cites.items():
            lines += [", ".join(f"`{n}`" for n in names) + ":", "", "```bibtex", cit, "```", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def _published_manifest(p: Plan) -> dict:
    m = json.loads(json.dumps(p.manifest))
    left = {n for n in m.get("sources", {}) if n in p.excluded}
    for n in left:
        del m["sources"][n]
    for c in p.configs:
        if c.kind == "source":
            for split, shards in c.shards.items():
                for entry, s in zip(m["sources"][c.name]["splits"][split]["shards"], shards):
                    entry["path"] = s.path
    m["drops"] = [d for d in m.get("drops", []) if d.get("source") not in left]
    m["published"] = {"corpus_manifest_sha256": _sha256(p.corpus / "manifest.json"),
                      "left_out": {k: v for k, v in p.excluded.items()}}
    return m


def _published_leakage(p: Plan) -> bytes | None:
    path = p.corpus / "leakage.tsv"
    if not path.exists():
        return None
    lines = path.read_text(encoding="utf-8").splitlines()
    head, rows = lines[:1], lines[1:]
    keep = [r for r in rows if r.split("\t", 1)[0] not in p.excluded]
    return ("\n".join(head + keep) + "\n").encode()


# ----------------------------------------------------------------------------------- stage

def default_stage_dir(corpus: Path, repo_id: str) -> Path:
    return Path(corpus) / ".sweaug" / "publish" / repo_id.replace("/", "--")


def _stage_files(p: Plan, card: str) -> dict[str, Path | bytes]:
    want: dict[str, Path | bytes] = {"README.md": card.encode()}
    want["manifest.json"] = (json.dumps(_published_manifest(p), ensure_ascii=False, indent=1,
                                        sort_keys=True) + "\n").encode()
    leak = _published_leakage(p)
    if leak is not None:
        want["leakage.tsv"] = leak
    for c in p.configs:
        for shards in c.shards.values():
            for s in shards:
                want[s.path] = s.src
        if c.manifest is not None:  # shard paths relative to the set's folder, as in the corpus
            am = json.loads(json.dumps(c.manifest))
            for split, shards in c.shards.items():
                entries = next(iter(am["sources"].values()))["splits"][split]["shards"]
                for entry, s in zip(entries, shards):
                    entry["path"] = s.path.split("/", 1)[1]
            want[f"{c.name}/manifest.json"] = (json.dumps(am, ensure_ascii=False, indent=1,
                                                          sort_keys=True) + "\n").encode()
    return want


def _same(src: Path, dst: Path) -> bool:
    try:
        if os.path.samefile(src, dst):
            return True
        a, b = src.stat(), dst.stat()
        return a.st_size == b.st_size and a.st_mtime_ns == b.st_mtime_ns
    except OSError:
        return False


def stage(want: dict[str, Path | bytes], stage_dir: Path, repo_id: str = "") -> tuple[int, int]:
    """Make ``stage_dir`` hold exactly ``want`` (plus huggingface_hub's ``.cache``): shards by
    hard link (copy across filesystems), generated files written only when they change.
    Returns (hard links made or kept, copies)."""
    stage_dir = Path(stage_dir)
    marker = stage_dir / STAGE_MARKER
    if stage_dir.exists() and any(stage_dir.iterdir()) and not marker.exists():
        raise PublishError(f"--stage-dir {stage_dir} is not empty and is not a sweaug stage "
                           f"folder: refusing to touch it (give an empty or new folder)")
    stage_dir.mkdir(parents=True, exist_ok=True)
    before = marker.read_text().strip().splitlines()[-1:] if marker.exists() else []
    if before and before != [repo_id]:
        # upload_large_folder's per-file state says "committed" without naming the repo
        shutil.rmtree(stage_dir / ".cache" / "huggingface" / "upload", ignore_errors=True)
    marker.write_text(f"a folder staged by `sweaug publish` for\n{repo_id}\n")
    for f in sorted(stage_dir.rglob("*"), reverse=True):  # files that no longer belong
        rel = f.relative_to(stage_dir).as_posix()
        if rel.startswith(".cache/") or rel in (".cache", STAGE_MARKER):
            continue
        if f.is_file() or f.is_symlink():
            if rel not in want:
                f.unlink()
        elif f.is_dir() and not any(f.iterdir()):
            f.rmdir()
    linked = copied = 0
    for rel, src in sorted(want.items()):
        dst = stage_dir / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(src, bytes):
            if not (dst.is_file() and dst.read_bytes() == src):
                tmp = dst.with_name(f".{dst.name}.tmp{os.getpid()}")
                tmp.write_bytes(src)
                os.replace(tmp, dst)
            continue
        if dst.exists() and _same(src, dst):
            if os.path.samefile(src, dst):
                linked += 1
            else:
                copied += 1
            continue
        tmp = dst.with_name(f".{dst.name}.tmp{os.getpid()}")
        tmp.unlink(missing_ok=True)
        try:
            os.link(src, tmp)
            linked += 1
        except OSError:  # another filesystem, or no hard links there
            shutil.copy2(src, tmp)
            copied += 1
        os.replace(tmp, dst)
    return linked, copied


def staged_listing(stage_dir: Path) -> list[tuple[str, int]]:
    """What an upload of ``stage_dir`` sends: every file but huggingface_hub's cache and the
    stage marker."""
    out = []
    for f in sorted(Path(stage_dir).rglob("*")):
        rel = f.relative_to(stage_dir).as_posix()
        if f.is_file() and not rel.startswith(".cache/") and rel != STAGE_MARKER:
            out.append((rel, f.stat().st_size))
    return out


# ---------------------------------------------------------------------------------- remote

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


# ------------------------------------------------------------------------------------ main

def publish(corpus: Path, repo_id: str, *, private: bool = False, dry_run: bool = False,
            stage_dir: Path | None = None, include_common_voice: bool = False,
            default: str | None = None, api=None,
            progress: Callable[[str], None] | None = None) -> PublishResult:
    """Stage ``corpus`` as the dataset repo ``repo_id`` and (unless ``dry_run``) upload it.
    ``api`` replaces ``huggingface_hub.HfApi(token=...)`` (tests)."""
    say = progress or (lambda m: None)
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
