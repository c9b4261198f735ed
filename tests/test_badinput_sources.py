"""Issue #14, sources: bad input ends as a clear error naming the file (exit 2, no traceback)
or a counted drop in the manifest, never as wrong data. Bad inputs are made at test time from
the committed fixtures, laid out like the real sources."""
from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import random
import shutil
import tarfile
from pathlib import Path

import pytest

from conftest import CV12, CV17_TAR, FIX, sweaug
from sweaug.records import Drop, SourceError
from sweaug.sources import SourceOptions
from sweaug.sources._common import Row, extract_archive, index_archive, iter_archive, read_tsv
from sweaug.sources.cv import CommonVoice, _gender

FLEURS_TEST_WAV = "test/1921578485792020312.wav"  # fleurs test.tsv line 2


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def drops(out: Path, reason: str) -> list[dict]:
    return [d for d in manifest(out)["drops"] if d["reason"] == reason]


def samples(out: Path, source: str) -> list[dict]:
    found = []
    for shard in sorted((out / source).glob("*.tar")):
        with tarfile.open(shard) as t:
            found += [json.load(t.extractfile(m)) for m in t if m.name.endswith(".json")]
    for s in found:  # extras may be stored as a JSON string (one schema for every source)
        if isinstance(s.get("extras"), str):
            s["extras"] = json.loads(s["extras"])
    return found


def split_samples(out: Path, source: str) -> dict[str, int]:
    return {s: v["samples"] for s, v in manifest(out)["sources"][source]["splits"].items()}


def edit_field(tsv: Path, line: int, column: int, value: bytes) -> None:
    rows = tsv.read_bytes().split(b"\n")
    fields = rows[line - 1].split(b"\t")
    fields[column] = value
    rows[line - 1] = b"\t".join(fields)
    tsv.write_bytes(b"\n".join(rows))


def corrupt_middle(path: Path, keep_mtime: bool = False) -> None:
    st = path.stat()
    b = bytearray(path.read_bytes())
    for i in range(len(b) // 2, len(b) // 2 + 64):
        b[i] ^= 0x5A
    path.write_bytes(bytes(b))
    if keep_mtime:  # same size and mtime: what the index cache keys on
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def assert_clean_error(p, *names: str) -> None:
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr and "error: " in p.stderr, p.stderr
    for name in names:
        assert name in p.stderr, p.stderr


# ---- case 1, 2: TSV rows with a tab or a lone CR inside a field -----------------------------

def test_read_tsv_field_count_and_carriage_return(tmp_path):
    f = tmp_path / "train.tsv"
    f.write_bytes(b"client_id\tpath\tsentence\n"
                  b"c1\ta.mp3\tDet regnar\tmycket\n"  # one field too many
                  b"c2\tb.mp3\n"  # one too few
                  b"c3\tc.mp3\tDet regnar\rmycket\n"  # lone CR inside the sentence
                  b"c4\td.mp3\tBra rad.\r\n")  # CRLF line end is fine
    rows = list(read_tsv(f, "cv", "train"))
    assert [r.fields["sentence"] for r in rows if isinstance(r, Row)] == ["Bra rad."]
    assert {r.item: r.reason for r in rows if isinstance(r, Drop)} == {
        "train.tsv:2": "malformed_row", "train.tsv:3": "missing_fields",
        "train.tsv:4": "malformed_row"}


def test_tab_inside_a_cv_sentence_is_a_malformed_row_not_a_shifted_one(tmp_path, env):
    cv = tmp_path / "cv-corpus-12.0-2022-12-07"
    shutil.copytree(CV12, cv)
    edit_field(cv / "sv-SE" / "train.tsv", 2, 2, b"Det regnar mycket\tidag")
    out = tmp_path / "out"
    sweaug(env, "build", "--sources", "cv", "--cv-dir", cv, "--out", out, "--no-progress")
    assert [(d["item"], d["split"]) for d in drops(out, "malformed_row")] == [("train.tsv:2", "train")]
    assert [d["item"] for d in drops(out, "missing_fields")] == ["train.tsv:8"]  # fewer: as before
    got = samples(out, "cv")  # line 10 repeats line 2's clip intact: now it is the one kept
    assert [(s["text_raw"], s["extras"]["up_votes"]) for s in got
            if s["source_id"].endswith("36100162")] == [("Jag glömde mitt paraply på tåget.", "3")]
    assert not [s for s in got if "regnar" in s["text_raw"] or s["extras"]["up_votes"] == "idag"]


def test_lone_carriage_return_in_a_cv_sentence_is_a_counted_drop(tmp_path, env):
    cv = tmp_path / "cv-corpus-12.0-2022-12-07"
    shutil.copytree(CV12, cv)
    edit_field(cv / "sv-SE" / "train.tsv", 2, 2, b"Det regnar\rmycket")
    out = tmp_path / "out"
    p = sweaug(env, "build", "--sources", "cv", "--cv-dir", cv, "--out", out, "--no-progress")
    assert "Traceback" not in p.stderr
    assert [d["item"] for d in drops(out, "malformed_row")] == ["train.tsv:2"]
    assert split_samples(out, "cv")["test"] > 0 and split_samples(out, "cv")["train"] > 0


# ---- case 3, 4: local split spellings and duplicate paths ----------------------------------

def local_copy(tmp_path: Path, rows: list[tuple[str, str]]) -> Path:
    d = tmp_path / "local"
    shutil.copytree(FIX / "local" / "audio", d / "audio")
    texts = ["Det är sju grader ute i dag.", "Fisken nappade precis vid skymningen.",
             "Hon svarade bara kanske.", "Vi kom fram till slut.", "Kylskåpet är nästan tomt.",
             "Rum två ligger på andra våningen."]
    lines = ["path\ttext\tspeaker\tsplit"]
    lines += [f"{path}\t{texts[i % len(texts)]}\ts{i}\t{split}" for i, (path, split) in enumerate(rows)]
    (d / "metadata.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return d


def test_local_split_spellings_map_case_insensitively_and_unknown_is_counted_once(tmp_path, env):
    d = local_copy(tmp_path, [("audio/a1.wav", "Train"), ("audio/a2.flac", "val"),
                              ("audio/a3.wav", "training"), ("audio/a4.ogg", "validation"),
                              ("audio/a5.mp3", "dev"), ("audio/clip.v2.final.wav", "TEST")])
    with open(d / "metadata.tsv", "a", encoding="utf-8") as f:
        f.write("audio/a1.wav\tEn rad till.\tx\tTrian\n")
    out = tmp_path / "out"
    sweaug(env, "build", "--sources", "local", "--local-dir", d, "--out", out, "--no-progress")
    assert split_samples(out, "local") == {"train": 2, "validation": 3, "test": 1}
    assert [(d["item"], d["split"]) for d in drops(out, "unknown_split")] == [("metadata.tsv:8", "train")]


def test_local_duplicates_spelled_differently_or_in_other_splits_are_dropped(tmp_path, env):
    d = local_copy(tmp_path, [("./audio/a1.wav", "train"), ("audio/../audio/a1.wav", "train"),
                              ("audio/a1.wav", "test"), ("audio/a2.flac", "test"),
                              ("audio//a2.flac", "")])
    out = tmp_path / "out"
    sweaug(env, "build", "--sources", "local", "--local-dir", d, "--out", out, "--no-progress")
    got = samples(out, "local")
    assert sorted((s["split"], s["source_id"]) for s in got) == [
        ("test", "audio/a2"), ("train", "audio/a1")]
    assert sorted((x["item"], x["split"]) for x in drops(out, "duplicate_id")) == [
        ("metadata.tsv:3", "train"), ("metadata.tsv:4", "test"), ("metadata.tsv:6", "train")]
    assert not (out / "leakage.tsv").read_text().strip().split("\n")[1:]


# ---- case 5: damaged archives (FLEURS; RixVox and VoxPopuli share the reader) ---------------

def _tar_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress, None])
def test_every_compression_reads_and_a_damaged_one_is_a_source_error(tmp_path, compress):
    members = {f"x/{i}.wav": random.Random(i).randbytes(20000) for i in range(1, 6)}
    raw = _tar_bytes(members)
    good, bad = tmp_path / "good.tar", tmp_path / "bad.tar"
    good.write_bytes(compress(raw) if compress else raw)
    assert index_archive(good).members == list(members)
    assert [(n, d) for n, d, _ in iter_archive(good, set(members))] == list(members.items())
    if compress:
        bad.write_bytes(good.read_bytes())
        corrupt_middle(bad)
    else:  # a damaged header in the middle of a plain tar (no CRC to catch it)
        b = bytearray(raw)
        b[3 * (512 + 20480) + 100] ^= 0xFF  # the 4th member's header
        bad.write_bytes(bytes(b))
    with pytest.raises(SourceError, match="unreadable archive .*bad.tar"):
        index_archive(bad)
    with pytest.raises(SourceError, match="unreadable archive .*bad.tar"):
        list(iter_archive(bad, set(members)))


def test_corrupt_fleurs_archive_stops_the_build_in_the_index_pass(tmp_path, env):
    fl = tmp_path / "fleurs"
    shutil.copytree(FIX / "fleurs", fl)
    corrupt_middle(fl / "data" / "sv_se" / "audio" / "test.tar.gz")
    out = tmp_path / "out"
    p = sweaug(env, "build", "--sources", "fleurs", "--fleurs-dir", fl, "--out", out,
               "--no-progress", check=False)
    assert_clean_error(p, "unreadable archive", "test.tar.gz")
    assert not list(out.glob("fleurs/*.tar")) and not (out / "manifest.json").exists()


def test_corrupt_fleurs_archive_in_the_workers_read_pass_is_a_clean_error(tmp_path, env):
    """The index is cached (same size + mtime), so only the workers read the damaged bytes."""
    fl = tmp_path / "fleurs"
    shutil.copytree(FIX / "fleurs", fl)
    cache = tmp_path / "cache"
    sweaug(env, "build", "--sources", "fleurs", "--fleurs-dir", fl, "--out", tmp_path / "first",
           "--cache-dir", cache, "--no-progress")
    corrupt_middle(fl / "data" / "sv_se" / "audio" / "test.tar.gz", keep_mtime=True)
    out = tmp_path / "out"
    p = sweaug(env, "build", "--sources", "fleurs", "--fleurs-dir", fl, "--out", out,
               "--cache-dir", cache, "--workers", "2", "--no-progress", check=False)
    assert_clean_error(p, "unreadable archive", "test.tar.gz")
    assert "BrokenProcessPool" not in p.stderr
    assert not list(out.glob("fleurs/*.tar")) and not (out / "manifest.json").exists()


# ---- case 6: damaged CV tarball, stale extraction cache, splits that come out empty --------

def test_corrupt_cv_tarball_is_an_error_and_the_good_one_at_the_same_path_is_extracted(tmp_path, env):
    tarball = tmp_path / CV17_TAR.name
    shutil.copy(CV17_TAR, tarball)
    corrupt_middle(tarball)
    cache, out = tmp_path / "cache", tmp_path / "out"
    args = ["build", "--sources", "cv", "--cv-dir", tarball, "--cache-dir", cache, "--no-progress"]
    p = sweaug(env, *args, "--out", out, check=False)
    assert_clean_error(p, "cv: unreadable archive", tarball.name)
    assert not [p for p in (cache / "cv").iterdir()]  # no (partial) extraction is left
    shutil.copy(CV17_TAR, tarball)
    sweaug(env, *args, "--out", out)
    assert split_samples(out, "cv")["test"] == 4 and split_samples(out, "cv")["validation"] == 4


def test_stale_or_unfinished_extraction_is_redone(tmp_path):
    arc, dest = tmp_path / "a.tar.gz", tmp_path / "cache" / "a"
    arc.write_bytes(gzip.compress(_tar_bytes({"d/one.wav": b"1" * 100})))
    dest.mkdir(parents=True)
    (dest / "leftover").write_text("from a killed extraction (no marker)")
    assert extract_archive(arc, dest, "cv") == []
    assert sorted(p.name for p in dest.rglob("*")) == [".sweaug-complete.json", "d", "one.wav"]
    arc.write_bytes(gzip.compress(_tar_bytes({"d/two.wav": b"2" * 300})))  # another archive
    extract_archive(arc, dest, "cv")
    assert sorted(p.name for p in dest.rglob("*.wav")) == ["two.wav"]
    assert [p.name for p in dest.parent.iterdir()] == ["a"]  # no temporary folder left


def test_a_split_whose_every_clip_is_missing_is_an_error(tmp_path, env):
    cv = tmp_path / "cv-corpus-12.0-2022-12-07"
    shutil.copytree(CV12, cv)
    for line in (cv / "sv-SE" / "test.tsv").read_text().splitlines()[1:]:
        (cv / "sv-SE" / "clips" / line.split("\t")[1]).unlink()
    p = sweaug(env, "build", "--sources", "cv", "--cv-dir", cv, "--out", tmp_path / "out",
               "--no-progress", check=False)
    assert_clean_error(p, "cv: test:", "test.tsv", "missing_audio")
    fl = tmp_path / "fleurs"
    shutil.copytree(FIX / "fleurs", fl)
    with tarfile.open(fl / "data" / "sv_se" / "audio" / "dev.tar.gz", "w:gz"):
        pass  # an archive with no members: every dev.tsv row misses its audio
    p = sweaug(env, "build", "--sources", "fleurs", "--fleurs-dir", fl, "--out", tmp_path / "o2",
               "--no-progress", check=False)
    assert_clean_error(p, "fleurs: validation:", "dev.tsv", "missing_audio")


def test_a_listed_cv_release_with_an_empty_split_file_is_an_error(tmp_path, env):
    cv = tmp_path / "cv-corpus-12.0-2022-12-07"
    shutil.copytree(CV12, cv)
    tsv = cv / "sv-SE" / "dev.tsv"
    tsv.write_text(tsv.read_text().splitlines()[0] + "\n")
    p = sweaug(env, "build", "--sources", "cv", "--cv-dir", cv, "--out", tmp_path / "out",
               "--no-progress", check=False)
    assert_clean_error(p, "dev.tsv has no data rows", "5012")


# ---- case 9: a tar bomb -----------------------------------------------------------------------

class _Zeros(io.RawIOBase):
    def __init__(self, n: int):
        self.left = n

    def readable(self):
        return True

    def readinto(self, b):
        k = min(len(b), self.left)
        b[:k] = bytes(k)
        self.left -= k
        return k


def _with_huge_member(src: Path, dst: Path, victim: str, size: int) -> None:
    with tarfile.open(src) as t, gzip.open(dst, "wb", compresslevel=1) as gz, \
            tarfile.open(fileobj=gz, mode="w|") as out:
        for m in t:
            if m.name == victim:
                info = tarfile.TarInfo(m.name)
                info.size = size
                out.addfile(info, _Zeros(size))
            else:
                out.addfile(m, t.extractfile(m))


def test_oversized_member_is_skipped_unread(tmp_path):
    arc = tmp_path / "bomb.tar.gz"
    _with_huge_member(FIX / "fleurs" / "data" / "sv_se" / "audio" / "test.tar.gz", arc,
                      FLEURS_TEST_WAV, 50_000_000)
    names = set(index_archive(arc).members)
    got = {n: (d, err) for n, d, err in iter_archive(arc, names, max_bytes=1_000_000)}
    assert got[FLEURS_TEST_WAV][0] is None and "50000000 bytes" in got[FLEURS_TEST_WAV][1]
    assert all(d and not err for n, (d, err) in got.items() if n != FLEURS_TEST_WAV)


def test_tar_bomb_member_in_a_fleurs_archive_is_a_counted_oversized_drop(tmp_path, env):
    from sweaug.build.audio import max_member_bytes

    bound = max_member_bytes(30.0)
    fl = tmp_path / "fleurs"
    shutil.copytree(FIX / "fleurs", fl)
    arc = fl / "data" / "sv_se" / "audio" / "test.tar.gz"
    _with_huge_member(FIX / "fleurs" / "data" / "sv_se" / "audio" / "test.tar.gz", arc,
                      FLEURS_TEST_WAV, bound + 512)
    assert arc.stat().st_size < 2_000_000
    out = tmp_path / "out"
    sweaug(env, "build", "--sources", "fleurs", "--fleurs-dir", fl, "--out", out, "--no-progress")
    d = drops(out, "oversized_member")
    assert [(x["split"], x["item"]) for x in d] == [("test", "1921578485792020312")]
    assert FLEURS_TEST_WAV in d[0]["detail"] and str(bound) in d[0]["detail"]
    assert split_samples(out, "fleurs")["test"] == 2


# ---- case 20: CV gender values, times.txt ----------------------------------------------------

@pytest.mark.parametrize("value,gender", [
    ("do_not_wish_to_say", ""), ("NA", ""), ("", ""), ("something_new", ""),
    ("other", "other"), ("intersex", "other"), ("transgender", "other"),
    ("non-binary", "other"), ("male_masculine", "male"), ("Female", "female")])
def test_cv_gender_unknown_is_not_other(value, gender):
    assert _gender(value) == gender


def cv15(tmp_path: Path, times: str) -> Path:
    """A release-15-like folder (times.txt, no clip_durations.tsv) from the v12 fixture."""
    cv = tmp_path / "cv-corpus-15.0-2023-09-08"
    shutil.copytree(CV12, cv)
    assert not (cv / "sv-SE" / "clip_durations.tsv").exists()
    (cv / "sv-SE" / "times.txt").write_text(times, encoding="utf-8")
    return cv


def test_cv_times_txt_gives_durations_when_clip_durations_tsv_is_absent(tmp_path, env):
    times = ("`cv-corpus-15.0-2023-09-08/sv-SE/clips/common_voice_sv-SE_36100162.mp3` = 20000\n"
             "`cv-corpus-14.0-delta-2023-06-23/sv-SE/clips/common_voice_sv-SE_36100685.mp3` = 2345\n"
             "not a times line\n")
    cv = cv15(tmp_path, times)
    src = CommonVoice(SourceOptions(path=cv, cache_dir=tmp_path / "cache"))
    got = {u.source_id: u.duration for u in src.records("train") if not isinstance(u, Drop)}
    assert got["common_voice_sv-SE_36100162"] == 20.0
    assert got["common_voice_sv-SE_36100685"] == 2.345
    out = tmp_path / "out"
    sweaug(env, "build", "--sources", "cv", "--cv-dir", cv, "--out", out, "--no-progress")
    t = [d for d in drops(out, "truncated_audio") if d["item"] == "common_voice_sv-SE_36100162"]
    assert len(t) == 1 and "of 20.00 s" in t[0]["detail"]
