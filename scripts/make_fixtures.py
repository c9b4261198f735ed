#!/usr/bin/env python3
"""Generate the sweaug test fixtures and the bundled demo sample.

    python scripts/make_fixtures.py            # build + self-check
    python scripts/make_fixtures.py --no-check # build only

Real Swedish (and Finnish) speech is synthesised with espeak-ng and laid out
exactly like the public sources, with specific, documented quirks planted:

  tests/fixtures/cv/cv-corpus-12.0-2022-12-07/sv-SE/        (CV v12, extracted)
  tests/fixtures/cv/cv-corpus-17.0-2024-03-15-sv-SE.tar.gz  (CV v17, tarball)
  tests/fixtures/fleurs/data/sv_se/...                      (google/fleurs raw)
  tests/fixtures/voxpopuli/data/...                         (facebook/voxpopuli, fi)
  tests/fixtures/local/...                                  (local folder)
  tests/fixtures/expected.json, tests/fixtures/README.md    (what tests assert)
  sweaug/sample/cv/..., sweaug/sample/fleurs/...            (clean demo sample)

tests/fixtures/rixvox is NOT touched (generated elsewhere).

Determinism: every random choice comes from a fixed seed; espeak-ng, soxr,
libsndfile and ffmpeg (bitexact flags, no metadata) are deterministic for a
given tool version; tar members have mtime/uid/gid = 0 and empty owner names,
and gzip streams have mtime 0 and no embedded file name.  Re-running with the
same tool versions rewrites byte-identical files.

Code: this file holds main() (the build order, which decides every sentence
and voice); the rest lives in scripts/fixtures/, one module per source:

  fixtures/common.py     sentence pool, speakers/voices, espeak-ng synthesis,
                         encoders, tar.gz/TSV writers, outcome vocabulary
  fixtures/cv.py         Common Voice v12 (directory) and v17 (tarball)
  fixtures/fleurs.py     FLEURS sv_se
  fixtures/voxpopuli.py  VoxPopuli fi
  fixtures/local.py      local folder
  fixtures/sample.py     the bundled demo sample (sweaug/sample)
  fixtures/check.py      the self-check (decode everything, record soundfile's verdicts)
  fixtures/readme.py     tests/fixtures/README.md (RixVox section carried over)

Tools needed: espeak-ng, ffmpeg (libmp3lame, libvorbis), numpy, soundfile, soxr.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "scripts") not in sys.path:
    sys.path.insert(0, str(REPO / "scripts"))
from fixtures.check import self_check  # noqa: E402
from fixtures.common import (CROSS_LEAK_CV, CROSS_LEAK_FLEURS, REASONS, norm_text,  # noqa: E402
                             write_files)
from fixtures.cv import (CV12_RELEASE, CV17_RELEASE, build_cv_release, cv17_tarball,  # noqa: E402
                         cv_expected, cv_v12_fixture, cv_v17_fixture)
from fixtures.fleurs import fleurs_fixture  # noqa: E402
from fixtures.local import build_local  # noqa: E402
from fixtures.readme import render_readme, rixvox_block_from  # noqa: E402
from fixtures.sample import build_sample  # noqa: E402
from fixtures.voxpopuli import build_voxpopuli  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=REPO, help="repository root (default: this checkout)")
    ap.add_argument("--no-check", action="store_true", help="skip decoding/size self-check")
    args = ap.parse_args()
    fix = args.root / "tests" / "fixtures"
    sample = args.root / "sweaug" / "sample"
    for tool in ("espeak-ng", "ffmpeg"):
        if shutil.which(tool) is None:
            print(f"error: {tool} not found on PATH", file=sys.stderr)
            return 2

    # Remove only what this script owns (tests/fixtures/rixvox belongs to someone else).
    for p in [fix / "cv", fix / "fleurs", fix / "voxpopuli", fix / "local", sample / "cv", sample / "fleurs"]:
        if p.exists():
            shutil.rmtree(p)
    # The README section between the rixvox markers belongs to whoever maintains the
    # RixVox fixture (scripts/make_rixvox_fixture.py); it is carried over verbatim.
    rixvox_block = rixvox_block_from(fix / "README.md")
    for p in [fix / "expected.json", fix / "README.md"]:
        if p.exists():
            p.unlink()

    expected: dict[str, Any] = {
        "generator": "scripts/make_fixtures.py",
        "reasons": REASONS,
        "outcome_format": "'kept' | 'kept, converted' | 'skip: <reason>' | 'leak: <reason>' | 'ignored (...)'",
        "line_numbers": "1-based physical lines; for files with a header, the header is line 1",
        "leak_normalisation": "lowercase, remove punctuation ([^\\w\\s]), squeeze whitespace",
    }

    # ---- Common Voice v12 (extracted directory) ----
    rel12 = CV12_RELEASE
    clips12, ex12 = cv_v12_fixture()
    files12, info12 = build_cv_release(version="12", release=rel12, clips=clips12, number_base=36_100_000,
                                       extra_unused_sentences=[], unvalidated=[], reported=ex12["reported"])
    root12 = fix / "cv" / rel12 / "sv-SE"
    write_files(root12, files12)

    # ---- Common Voice v17 (tarball) ----
    rel17 = CV17_RELEASE
    clips17, ex17 = cv_v17_fixture()
    files17, info17 = build_cv_release(version="17", release=rel17, clips=clips17, number_base=39_200_000,
                                       extra_unused_sentences=ex17["extra_unused"],
                                       unvalidated=ex17["unvalidated"], reported=ex17["reported"])
    tar17, members17, unsafe17 = cv17_tarball(rel17, files17)
    (fix / "cv").mkdir(parents=True, exist_ok=True)
    tar17_path = fix / "cv" / f"{rel17}-sv-SE.tar.gz"
    tar17_path.write_bytes(tar17)

    expected["cv"] = cv_expected(rel12=rel12, info12=info12, clips12=clips12, files12=files12,
                                 rel17=rel17, info17=info17, clips17=clips17, files17=files17,
                                 unsafe17=unsafe17, n_members17=len(members17))

    # ---- FLEURS ----
    fl, fl_files, fl_info = fleurs_fixture()
    write_files(fix / "fleurs" / "data" / "sv_se", fl_files)
    expected["fleurs"] = {"sv_se": fl_info}

    # ---- VoxPopuli (fi) ----
    vx_files, vx_info = build_voxpopuli()
    write_files(fix / "voxpopuli" / "data", vx_files)
    vx_info["path"] = "voxpopuli/data"
    expected["voxpopuli"] = {"fi": vx_info}

    # ---- local ----
    lo_files, lo_info = build_local()
    write_files(fix / "local", lo_files)
    lo_info["path"] = "local"
    expected["local"] = lo_info

    # ---- cross-source ----
    u11 = next(c.path for c in clips17 if c.key == "u11")
    cv_line = next(r["line"] for r in info17["rows"]["train"] if r["path"] == u11)
    fl_line = next(r["line"] for r in fl_info["rows"]["test"] if r["file_name"] == fl[9].fname)
    expected["cross_source_leaks"] = [{
        "train": {"source": "cv", "release": rel17, "file": "train.tsv", "line": cv_line,
                  "path": u11, "sentence": CROSS_LEAK_CV},
        "test": {"source": "fleurs", "file": "test.tsv", "line": fl_line,
                 "file_name": fl[9].fname, "raw_transcription": CROSS_LEAK_FLEURS},
        "normalised": norm_text(CROSS_LEAK_CV),
        "outcome": "leak: leak_sentence (the CV train row is removed; the FLEURS test row stays)",
    }]

    # ---- sample ----
    s_cv, s_fl, s_info = build_sample()
    write_files(sample / "cv" / "cv-corpus-17.0-2024-03-15" / "sv-SE", s_cv)
    write_files(sample / "fleurs" / "data" / "sv_se", s_fl)
    expected["sample"] = s_info | {"path": "sweaug/sample", "quirks": []}

    expected["truncated_audio_note"] = (
        "The truncated mp3 still starts with a valid Xing/Info header announcing the full frame count, so "
        "soundfile/libsndfile reports SoundFile.frames = full length but read() returns only the decodable "
        "~38% of the frames WITHOUT raising (mpg123 prints 'Illegal Audio-MPEG-Header'/'resync' notes on "
        "stderr). It therefore 'decodes' as a shorter clip; detect it by frames read < announced frames (or "
        "< clip_durations.tsv). ffmpeg also decodes it with warnings and exit code 0.")
    expected["soundfile_errors_note"] = (
        "For the 0-byte and the random-bytes mp3, soundfile raises soundfile.LibsndfileError (a RuntimeError "
        "subclass) on open; libsndfile 1.2.2's message is the unhelpful 'File does not exist or is not a "
        "regular file (possibly a pipe?)' for both, so tests should assert on the exception type, not text.")

    # ---- self-check (also records what soundfile does with the bad files) ----
    if not args.no_check:
        observed = self_check(fix, sample, tar17, rel17, unsafe17)
        expected["soundfile_observed"] = observed
        for u in expected["cv"][rel17]["unsafe_members"]:
            u["python_tarfile_data_filter"] = observed["planted_files"][f"tar:{u['name']}"]["tarfile.data_filter"]
        for u in expected["fleurs"]["sv_se"]["unsafe_members"]:
            u["python_tarfile_data_filter"] = observed["planted_files"][f"fleurs:{u['name']}"]["tarfile.data_filter"]

    (fix / "expected.json").write_text(json.dumps(expected, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (fix / "README.md").write_text(render_readme(expected, fix, rixvox_block), encoding="utf-8")
    if not args.no_check:
        for p in (fix, sample):
            total = sum(f.stat().st_size for f in p.rglob("*") if f.is_file()
                        and "rixvox" not in f.relative_to(p).parts)
            print(f"size {p.relative_to(args.root)} (excluding rixvox): {total / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
