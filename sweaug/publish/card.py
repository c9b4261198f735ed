"""The dataset card (``README.md``) of a published corpus: YAML front matter (configs,
dataset_info features, licences) and a description written from the plan.
"""
from __future__ import annotations

from typing import Any

import yaml

from .planning import Config, Plan

AUDIO_EXTS = ("flac", "wav", "mp3", "ogg", "opus")
_HUB_LICENSES = {"apache-2.0", "mit", "cc0-1.0", "cc-by-4.0", "cc-by-sa-4.0", "cc-by-nc-4.0",
                 "cc-by-nc-sa-4.0", "cc-by-nd-4.0", "cc-by-nc-nd-4.0", "cc-by-3.0",
                 "cc-by-sa-3.0", "cc-by-2.0", "odc-by", "odbl", "pddl", "cdla-permissive-2.0",
                 "cdla-sharing-1.0", "gpl-3.0", "unlicense"}


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
  (num2words), å/ä/ö kept; the form used for the leakage guard and for normalized WER
  (`sweaug ablate` puts the model's transcript through the same `sweaug.build.text.normalized_text`).
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
              + ", ".join(f"`{k}`" for k in base_keys) + " (`extras`: the source's own fields "
              "as one JSON string, `json.loads(sample[\"json\"][\"extras\"])`, so that "
              "configs load together); augmented sets add `original_key` and `augment`.", ""]
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
