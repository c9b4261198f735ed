"""``sweaug label``: one job per input shard (build/jobs.py: byte-identical output for any
``--workers`` or executor, a killed run resumes at the shard), labelled shards
``<out>/<split>-NNNNNN.tar`` and a manifest with counts by drop reason.

A job reads its shard, transcribes every sample that does not yet carry this teacher's
transcript (a labelled folder given again is filtered without running the teacher: same
teacher settings, same ``teacher`` record) in batches of similar duration, scores and checks it
(checks.py) and writes each kept sample's audio unchanged with its json extended::

    "teacher": {"model", "settings" (sha256 of the decoding settings), "text", "wer", "cer",
                "head_cer", "tail_cer", "language", "language_prob", "repeats", "capped",
                "seconds", "window", "over_window"}
    "teacher2": {"model", "settings", "text", "agreement", ...}   (with --teacher2)

For unlabelled audio (a sample marked ``unlabelled`` — a ``local`` folder built without a text
column — or every sample with ``--unlabelled``) the teacher's text becomes the sample's ``text``
(``text_raw``, ``text``, ``text_normalized`` as ``build`` writes them; ``text_source:
teacher``) and ``wer``/``cer`` are None (no reference). The thresholds and checks drop training
samples only — validation and test samples are annotated and kept, as build's filters do, so a
WER measured on them stays comparable — except that a pseudo-label is checked in every split. A pseudo-labelled training text that is an evaluation
sentence (of any source of the input's corpus, or of an ``--eval`` folder) is a
``leak_sentence`` drop.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..build.jobs import ShardJob, check_shard_limits
from ..records import ConfigError, SourceError
from .checks import REASONS, Thresholds, agreement, longest_run, scores, verdict
from .teacher import TeacherSpec

log = logging.getLogger("sweaug.label")
FORMAT = "sweaug-labelled/1"
READ_REASONS = ("corrupt_audio",)


@dataclass(frozen=True)
class LabelJob(ShardJob):
    shard: str
    sha256: str
    samples: int
    split: str
    index: int
    teacher: TeacherSpec | None  # None: every sample carries the teacher record already
    teacher_settings: str  # the teacher's settings sha256 (what a sample's record must match)
    teacher_name: str
    teacher2: TeacherSpec | None
    thresholds: Thresholds
    language: str
    unlabelled: bool
    eval_sentences: frozenset
    eval_sha256: str
    shard_samples: int
    shard_bytes: int
    version: str
    group: str = ""

    def input_hash(self) -> str:
        return hashlib.sha256(json.dumps(
            [self.sha256, self.teacher_settings, self.teacher2.sha256 if self.teacher2 else "",
             self.thresholds.as_dict(), self.language, self.unlabelled, self.eval_sha256, self.shard_samples,
             self.shard_bytes, self.version]).encode()).hexdigest()

    def run(self, state: Path) -> dict:
        return _run(self, state)


def _read(job: LabelJob, drops: list) -> list[tuple[str, dict, object, bytes]]:
    """``(key, meta, audio, flac bytes)`` of the shard's samples, in order (audio as int16:
    half the memory of float32 for a shard held whole); undecodable audio is a counted
    ``corrupt_audio`` drop."""
    import soundfile as sf

    from ..build.shards import iter_samples
    from ..train.samples import check_members, sample_meta

    out = []
    for key, files in iter_samples(Path(job.shard)):
        check_members(job.shard, key, files)
        meta = sample_meta(job.shard, key, files, ("text",))
        try:
            x, sr = sf.read(io.BytesIO(files["flac"]), dtype="int16")
            if sr != 16000 or x.ndim != 1:
                raise ValueError(f"{sr} Hz, shape {x.shape}: expected 16 kHz mono")
        except Exception as e:  # libsndfile raises several types for undecodable bytes
            detail = f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"
            log.warning("%s (%s): not labelled: corrupt_audio: %s", key, job.shard, detail)
            drops.append({"source": meta.get("source", ""), "split": job.split, "item": key,
                          "reason": "corrupt_audio", "detail": detail})
            continue
        out.append((key, meta, x, files["flac"]))
    return out


def _transcribe(spec: TeacherSpec, todo: list[tuple[int, object]]) -> dict[int, dict]:
    """Position -> raw teacher output for ``todo`` (position, audio): longest first, in batches
    of ``spec.batch_size``; a clip over the teacher's window is not transcribed
    (``over_window``: a teacher hearing part of it would write part of a label)."""
    import numpy as np

    from .teacher import Teacher

    teacher = Teacher.load(spec)
    window = teacher.logmel.n_samples
    out, fit = {}, []
    for pos, x in todo:
        if len(x) > window:
            out[pos] = {"text": "", "language": None, "language_prob": None, "capped": 0,
                        "over_window": True}
        else:
            fit.append((pos, x))
    fit.sort(key=lambda p: (-len(p[1]), p[0]))
    for i in range(0, len(fit), spec.batch_size):
        part = fit[i:i + spec.batch_size]
        # int16 / 32768: the float32 soundfile gives for 16-bit FLAC, exactly
        clips = [x.astype(np.float32) / 32768.0 for _, x in part]
        for (pos, _), r in zip(part, teacher.transcribe(clips)):
            out[pos] = {**r, "over_window": False}
    for pos, x in todo:
        out[pos].update(seconds=round(len(x) / 16000, 4), window=window / 16000)
    return out


def _record(spec: TeacherSpec, raw: dict, reference: str, edge_chars: int) -> dict:
    from ..train.evaluate import wer_normalize

    return {"model": spec.name, "settings": spec.sha256, "text": raw["text"],
            **scores(reference, raw["text"], spec.language, edge_chars),
            "language": raw["language"], "language_prob": raw["language_prob"],
            "repeats": longest_run(wer_normalize(raw["text"], spec.language).split()),
            "capped": raw["capped"], "seconds": raw["seconds"], "window": raw["window"],
            "over_window": raw["over_window"]}


def _teacher_records(spec: TeacherSpec | None, settings: str, name: str, field: str,
                     samples: list, refs: list[str], edge_chars: int, shard: str
                     ) -> tuple[dict[int, dict], int]:
    """Position -> ``field`` record of every sample, reusing the records a sample already has
    for the same settings; (records, how many were transcribed now)."""
    records, todo = {}, []
    for pos, (key, meta, x, _) in enumerate(samples):
        rec = meta.get(field)
        if isinstance(rec, dict) and rec.get("settings") == settings:
            records[pos] = dict(rec)
        elif spec is None:
            raise SourceError(f"{shard}: sample {key!r} has no {field} record of {name} "
                              f"(settings {settings[:12]}): give --teacher to transcribe it")
        else:
            todo.append((pos, x))
    if todo:
        for pos, raw in _transcribe(spec, todo).items():
            records[pos] = _record(spec, raw, refs[pos], edge_chars)
    return records, len(todo)


def _run(job: LabelJob, state: Path) -> dict:
    from ..build.jobs import clear_staging, staged, staging_name, write_record
    from ..build.shards import ShardWriter, sample_json
    from ..build.text import normalized_text, target_text
    from ..train.evaluate import wer_normalize, wer_stats

    clear_staging(state, job)
    drops: list = []
    leaks: list = []
    samples = _read(job, drops)
    th, lang = job.thresholds, job.language
    unlabelled = [job.unlabelled or bool(m.get("unlabelled")) or m.get("text_source") == "teacher"
                  for _, m, _, _ in samples]
    # an unlabelled sample has no reference to score against (its text is the teacher's)
    refs = ["" if u else str(m.get("text") or "") for u, (_, m, _, _) in zip(unlabelled, samples)]
    records, transcribed = _teacher_records(job.teacher, job.teacher_settings, job.teacher_name,
                                            "teacher", samples, refs, th.edge_chars, job.shard)
    second: dict[int, dict] = {}
    if job.teacher2 is not None:
        second, n2 = _teacher_records(job.teacher2, job.teacher2.sha256, job.teacher2.name,
                                      "teacher2", samples, refs, th.edge_chars, job.shard)
        transcribed += n2
        for pos, rec in second.items():
            rec["agreement"] = agreement(records[pos]["text"], rec["text"], lang)
    writer = ShardWriter(lambda j: staging_name(state, job, j), job.shard_samples, job.shard_bytes)
    kept = pseudo = 0
    seconds = 0.0
    scored_refs, scored_hyps = [], []
    try:
        for pos, (key, meta, x, flac) in enumerate(samples):
            rec = records[pos]
            if refs[pos]:
                scored_refs.append(wer_normalize(refs[pos], lang))
                scored_hyps.append(wer_normalize(rec["text"], lang))
            train = job.split == "train"
            # evaluation splits keep their references unfiltered; a pseudo-label is checked
            # everywhere (an empty or looping teacher text is no reference either)
            why = verdict(th, rec, refs[pos], lang, second.get(pos)) \
                if train or unlabelled[pos] else None
            out = dict(meta)
            if why is None and unlabelled[pos]:
                out.pop("unlabelled", None)
                target = target_text(rec["text"])
                out.update(text_raw=rec["text"], text=target,
                           text_normalized=normalized_text(target, lang), text_source="teacher")
                if train and out["text_normalized"] in job.eval_sentences:
                    why = ("leak_sentence", f"the teacher's text {rec['text'][:80]!r} is an "
                                            f"evaluation sentence")
                    leaks.append({"source": meta.get("source", ""), "split": job.split,
                                  "key": key, "source_id": meta.get("source_id", ""),
                                  "reason": why[0], "normalized": out["text_normalized"],
                                  "text": target})
            if why is not None:
                log.info("%s (%s): dropped: %s: %s", key, job.shard, *why)
                drops.append({"source": meta.get("source", ""), "split": job.split,
                              "item": key, "reason": why[0], "detail": why[1]})
                continue
            out["teacher"] = rec
            if pos in second:
                out["teacher2"] = second[pos]
            writer.write(key, [("flac", flac), ("json", sample_json(out))])
            kept += 1
            pseudo += unlabelled[pos]
            seconds += len(x) / 16000
        shards = writer.close()
    except BaseException:
        writer.abort()
        raise
    errors, words = wer_stats(scored_refs, scored_hyps)
    result = {"job": job.name, "input": job.input_hash(),
              "shards": staged(shards),
              "samples": kept, "seconds": round(seconds, 4),
              "inputs": len(samples) + sum(d["reason"] == "corrupt_audio" for d in drops),
              "transcribed": transcribed, "pseudo_labelled": pseudo,
              "teacher_errors": int(sum(errors)), "reference_words": int(sum(words)),
              "drops": drops, "leaks": leaks}
    write_record(state, job, result)
    return result


def _eval_sentences(mpath: Path, manifest: dict, eval_dirs) -> dict[str, str]:
    """Normalized sentence -> where, of every validation/test sample of the input's corpus (every
    source of its manifest, and of the manifests it was made from: an augmented or labelled
    folder names its input's) and of every ``--eval`` folder: build's leakage guard, registered
    the way ``build --eval`` registers a set."""
    from ..augment.offline import _read_manifest
    from ..build.leakage import LeakageGuard

    guard = LeakageGuard()
    seen = set()
    while mpath is not None and mpath.resolve() not in seen:
        seen.add(mpath.resolve())
        shards = [mpath.parent / s["path"] for src in manifest.get("sources", {}).values()
                  for split, info in src.get("splits", {}).items() if split != "train"
                  for s in info.get("shards", [])]
        # a missing shard is refused where it is read; here only its sentences are wanted
        guard.register_shard_files([p for p in shards if p.exists()],
                                   f"evaluation set of {mpath}:")
        nxt = manifest.get("input", {}).get("manifest")
        mpath = (mpath.parent / nxt) if nxt else None
        manifest = _read_manifest(mpath) if mpath is not None and mpath.exists() else {}
    for d in eval_dirs or ():
        guard.register_shards(Path(d))
    return guard.sentences()


def label_corpus(folder: Path, out: Path, teacher: TeacherSpec | None,
                 thresholds: Thresholds, teacher2: TeacherSpec | None = None,
                 unlabelled: bool = False, splits: tuple[str, ...] | None = None,
                 eval_dirs: tuple = (), workers: int = 1, executor=None,
                 shard_samples: int = 1000, shard_bytes: int = 512 << 20,
                 progress: Callable[[float, float], None] | None = None) -> dict:
    """Label (or, given no ``teacher``, filter again) the samples of ``folder`` — a build's
    source folder, or an augmented, windows or labelled folder — into ``out`` with its own
    manifest; one run at a time writes it."""
    from .. import __version__
    from ..augment.offline import checked_shards, choose_splits, find_input
    from ..build.jobs import derived_manifest, run_jobs, split_results, write_manifest
    from ..build.pipeline import write_leakage
    from ..build.storage import OutputLock, open_store, refuse_overlap

    check_shard_limits(shard_samples, shard_bytes)
    folder, out = Path(folder), Path(out)
    manifest, mpath, source, in_splits = find_input(folder)
    refuse_overlap(out, [("folder", folder), ("manifest", mpath)])
    if manifest.get("format") == "sweaug-windows/1":
        # a window's text leaves out its straddling segment, which the teacher hears: every
        # window would score a tail error that is not one
        raise SourceError(f"{folder} holds windows: label the sentences "
                          f"({manifest.get('input', {}).get('folder', 'its input folder')}), then "
                          f"make windows of the labelled folder")
    chosen = choose_splits(folder, in_splits, splits)
    src = manifest["sources"][source]
    unlabelled_source = bool(src.get("unlabelled"))
    before = manifest.get("teacher") if manifest.get("format") == FORMAT else None
    if teacher is None:
        if before is None:
            raise ConfigError(f"{folder} is not a labelled folder ({FORMAT}): give --teacher "
                              f"MODEL (a Hub id such as KBLab/kb-whisper-large, or a folder)")
        settings, name, language = before["settings_sha256"], before["model"], \
            before["settings"]["language"]
    else:
        settings, name, language = teacher.sha256, teacher.name, teacher.language
    if teacher2 is not None and teacher2.language != language:
        raise ConfigError(f"--teacher2 is forced to {teacher2.language}, --teacher to {language}")
    if (unlabelled or unlabelled_source) and teacher2 is None and (
            thresholds.max_wer is not None or thresholds.max_edge_cer is not None):
        raise ConfigError("--max-wer/--max-edge-cer on unlabelled audio need a reference: give "
                          "--teacher2 MODEL for an agreement filter (--max-wer: the WER between "
                          "the two teachers' transcripts); --max-edge-cer needs a transcript")
    if teacher2 is not None and thresholds.max_edge_cer is not None and (
            unlabelled or unlabelled_source):
        raise ConfigError("--max-edge-cer needs a reference transcript; with unlabelled audio "
                          "and --teacher2 use --max-wer (the teachers' agreement)")
    sentences = _eval_sentences(mpath, manifest, eval_dirs)
    eval_sha = hashlib.sha256("\n".join(sorted(sentences)).encode()).hexdigest()
    frozen = frozenset(sentences)
    jobs = [LabelJob(str(shard), s["sha256"], s["samples"], split, i, teacher, settings, name,
                     teacher2, thresholds, language, bool(unlabelled), frozen, eval_sha,
                     shard_samples, shard_bytes, __version__)
            for split, i, shard, s in checked_shards(mpath, in_splits, chosen, "label")]
    with OutputLock(out):
        results, _, index = run_jobs(out, jobs, workers, progress, executor=executor,
                                     total=sum(j.weight for j in jobs), groups={""})
        drops, leaks, out_splits = [], [], {}
        for split in chosen:
            rs, counts, split_drops = split_results(results, jobs, split)
            drops += split_drops
            leaks += [{**x, "matches": sentences[x["normalized"]]} for r in rs
                      for x in r.get("leaks", ())]
            errors = sum(r["teacher_errors"] for r in rs)
            words = sum(r["reference_words"] for r in rs)
            out_splits[split] = {
                "samples": sum(r["samples"] for r in rs),
                "hours": round(sum(r["seconds"] for r in rs) / 3600, 4),
                "speakers": in_splits[split].get("speakers", 0),
                "input_samples": sum(r["inputs"] for r in rs),
                "transcribed": sum(r["transcribed"] for r in rs),
                "pseudo_labelled": sum(r["pseudo_labelled"] for r in rs),
                # the teacher against the existing transcripts, before any filter
                "teacher_wer": round(errors / words, 6) if words else None,
                "drops": counts, "shards": index.get(split, []),
            }
        kind = f"labelled by {name}" if teacher is not None else f"filtered ({name}'s labels)"
        result = derived_manifest(
            FORMAT, folder, out, mpath, manifest, source, kind, out_splits, drops,
            leakage={"file": "leakage.tsv", "count": len(leaks),
                     "evaluation_sentences": len(sentences)},
            teacher={"model": name, "settings_sha256": settings,
                     "settings": teacher.settings() if teacher else before["settings"]},
            teacher2=({"model": teacher2.name, "settings_sha256": teacher2.sha256,
                       "settings": teacher2.settings()} if teacher2 else None),
            filters={**thresholds.as_dict(), "unlabelled": bool(unlabelled),
                     "applies_to": "train", "reasons": list(REASONS)})
        write_leakage(open_store(out), leaks)
        write_manifest(out, result)
    return result


def format_summary(manifest: dict) -> str:
    """Per split: kept of read, the teacher's WER, drops by reason."""
    lines = []
    for name, src in manifest["sources"].items():
        for split, s in src["splits"].items():
            wer = "—" if s["teacher_wer"] is None else f"{100 * s['teacher_wer']:.1f} %"
            drops = ", ".join(f"{k} {v}" for k, v in s["drops"].items()) or "none"
            lines.append(f"{name}/{split}: kept {s['samples']} of {s['input_samples']} "
                         f"({s['hours']:.3f} h; {s['transcribed']} transcribed now, "
                         f"{s['pseudo_labelled']} pseudo-labelled); teacher WER vs the "
                         f"transcripts {wer}; drops: {drops}")
    return "\n".join(lines)
