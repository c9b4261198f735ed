"""The page of a ``sweaug label`` folder: per split, the counts of its manifest (kept of read,
the teacher's WER against the transcripts, drops by reason and the first dropped items with
their detail) and its worst kept samples by the teacher's WER, with their audio and the
reference vs the teacher's text as run.py's word diff of the normalized texts (the alignment
the sample's WER was counted from). A sample without a reference (pseudo-labelled: WER None)
sorts last."""
from __future__ import annotations

from pathlib import Path

from .data import load_json, read_samples, scan_meta
from .run import word_diff

DROPS_SHOWN = 10


def _order(meta: dict) -> tuple:
    wer = meta["teacher"].get("wer")
    return wer is None, -(wer or 0.0), -(meta["teacher"].get("cer") or 0.0), meta["key"]


def labels_page(folder: Path, worst_n: int, sink) -> dict:
    from ..train.evaluate import wer_normalize

    folder = Path(folder)
    m = load_json(folder / "manifest.json")
    lang = m["teacher"]["settings"].get("language") or "sv"
    (src,) = m["sources"].values()
    splits = []
    for split, s in src["splits"].items():
        shards = [folder / sh["path"] for sh in s["shards"]]
        top = sorted(scan_meta(shards), key=_order)[:worst_n]
        found = read_samples(shards, {t["key"] for t in top}, audio=sink.enabled)
        rows = []
        for meta in top:
            rec = meta["teacher"]
            scored = rec.get("wer") is not None
            diff = word_diff(wer_normalize(meta.get("text", ""), lang),
                             wer_normalize(rec.get("text", ""), lang))[0] if scored else []
            rows.append({"key": meta["key"], "rec": rec, "scored": scored, "diff": diff,
                         "ref": meta.get("text", ""), "t2": meta.get("teacher2"),
                         "pseudo": meta.get("text_source") == "teacher",
                         "src": sink.src(meta["key"], found.get(meta["key"], {}).get("flac"))})
        drops = [d for d in m.get("drops", []) if d.get("split") == split]
        splits.append({"split": split, "stats": s, "rows": rows, "drops": drops[:DROPS_SHOWN],
                       "n_drops": len(drops)})
    return {"kind": "labelled", "title": folder.name, "path": str(folder), "manifest": m,
            "teacher": m["teacher"], "teacher2": m.get("teacher2"),
            "filters": m.get("filters") or {},
            "release": src.get("release", ""), "splits": splits, "worst_n": worst_n}
