"""Step 1 of ``sweaug publish``: the plan, read from the manifests only.

``<corpus>/manifest.json`` ("sweaug-corpus/1") gives one config per source; every
``<corpus>/<name>/manifest.json`` in "sweaug-augmented/1" format gives one config named after its
folder. Common Voice-derived configs are left out unless asked for (:data:`CV_REASON`). Also
here: :class:`PublishError`, which every step raises, and the choice of the default config.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

CV_REASON = ("Common Voice is CC0, but Mozilla Data Collective's terms of use forbid re-hosting "
             "what is downloaded from it")
SPLIT_ORDER = ("train", "validation", "test")
_SPLIT = re.compile(r"^\w+(\.\w+)*$")  # what datasets accepts as a split name


# a Hugging Face access token (hf_ and 34 letters/digits today): never printed by sweaug
TOKEN = re.compile(r"hf_[A-Za-z0-9]{20,}")


def mask_tokens(text: str) -> str:
    """``text`` with every Hugging Face token in it shown as ``hf_***``."""
    return TOKEN.sub("hf_***", text)


class PublishError(Exception):
    """A problem the user can fix; the message says what and how."""


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


def _sha256(path: Path) -> str:
    from ..files import sha256_file

    return sha256_file(path)


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
