"""Units of the data path that need no fixture corpus: keys, audio checks, shards, TSV quirks,
unsafe tar members."""
from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sweaug.build import audio
from sweaug.records import Drop, make_key
from sweaug.build.shards import ShardWriter, iter_samples
from sweaug.files import sha256_file
from sweaug.sources._common import Row, extract_archive, index_archive, read_tsv


def _wav(x: np.ndarray, sr: int, subtype="PCM_16", fmt="WAV") -> bytes:
    b = io.BytesIO()
    sf.write(b, x, sr, format=fmt, subtype=subtype)
    return b.getvalue()


def _tone(seconds=1.0, sr=16000, channels=1, amp=0.3):
    t = np.arange(int(seconds * sr)) / sr
    x = (amp * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def test_keys_are_stable_dot_free_and_distinct():
    a, b = make_key("cv", "clip.v2.final"), make_key("cv", "clip_v2_final")
    assert "." not in a and a != b and a == make_key("cv", "clip.v2.final")
    assert make_key("rixvox", "GR01BOU3/244_anf191_1_25").startswith("rixvox_GR01BOU3_244")
    assert make_key("cv", "common_voice_sv-SE_1") == "cv_common_voice_sv-SE_1"


@pytest.mark.parametrize("sr,channels", [(8000, 1), (44100, 2), (48000, 1), (16000, 2)])
def test_any_rate_and_channel_count_become_16k_mono_flac(sr, channels):
    clip = audio.process(_wav(_tone(1.0, sr, channels), sr))
    x, out_sr = sf.read(io.BytesIO(clip.flac), dtype="int16", always_2d=True)
    assert out_sr == 16000 and x.shape[1] == 1
    assert abs(x.shape[0] - 16000) <= 2
    assert sf.info(io.BytesIO(clip.flac)).subtype == "PCM_16"
    assert clip.source_sample_rate == sr and clip.source_channels == channels


def test_same_input_gives_same_flac_bytes():
    data = _wav(_tone(1.3, 44100, 2), 44100)
    assert audio.process(data).flac == audio.process(data).flac


@pytest.mark.parametrize("data,reason", [
    (b"", "empty_audio"),
    (np.random.default_rng(0).bytes(4000), "corrupt_audio"),
])
def test_undecodable_bytes_are_named(data, reason):
    with pytest.raises(audio.AudioError) as e:
        audio.process(data)
    assert e.value.reason == reason


def test_nan_silence_truncation_and_clipping():
    x = _tone(1.0, 16000)
    x[100:200] = np.nan
    with pytest.raises(audio.AudioError, match="nan_audio"):
        audio.process(_wav(x, 16000, "FLOAT"))
    with pytest.raises(audio.AudioError, match="silence"):
        audio.process(_wav(np.zeros(16000, np.float32), 16000))
    wav = _wav(_tone(2.0, 16000), 16000)
    with pytest.raises(audio.AudioError, match="truncated_audio"):
        audio.process(wav[: len(wav) // 3])  # header announces 2 s, data has ~0.7 s
    with pytest.raises(audio.AudioError, match="truncated_audio"):
        audio.process(_wav(_tone(1.0, 16000), 16000), expected_seconds=3.0)
    clipped = audio.process(_wav(np.clip(_tone(1.0, 16000, amp=1.0) * 20, -1, 1), 16000))
    assert clipped.clip_fraction > 0.5
    assert audio.process(_wav(_tone(1.0, 16000), 16000)).clip_fraction == 0.0


def test_shards_are_deterministic_bounded_and_atomic(tmp_path):
    def write(d: Path, max_samples=2, max_bytes=1 << 20):
        w = ShardWriter(lambda i: d / f"train-{i:06d}.tar", max_samples, max_bytes)
        for k in range(5):
            w.write(f"k{k}", [("flac", bytes([k]) * 3000), ("json", b'{"a":1}')])
        return w.close()

    a, b = write(tmp_path / "a"), write(tmp_path / "b")
    assert [s.samples for s in a] == [2, 2, 1]
    assert [s.sha256 for s in a] == [s.sha256 for s in b]
    assert all(sha256_file(s.path) == s.sha256 and s.path.stat().st_size == s.bytes for s in a)
    assert not list((tmp_path / "a").glob(".*tmp*"))
    with tarfile.open(a[0].path) as t:
        m = t.getmembers()[0]
        assert (m.mtime, m.uid, m.gid, m.uname, m.gname) == (0, 0, 0, "", "")
    keys = [k for s in a for k, _ in iter_samples(s.path)]
    assert keys == [f"k{k}" for k in range(5)]
    by_bytes = write(tmp_path / "c", max_samples=100, max_bytes=8192)
    assert len(by_bytes) == 5  # 3 kB + headers each: one sample per 8 KiB shard
    with pytest.raises(ValueError):
        ShardWriter(lambda i: tmp_path / "x.tar").write("a.b", [("json", b"{}")])


def test_abort_leaves_no_complete_looking_shard(tmp_path):
    w = ShardWriter(lambda i: tmp_path / f"train-{i:06d}.tar", 10)
    w.write("a", [("json", b"{}")])
    w.abort()
    assert list(tmp_path.iterdir()) == []


def test_read_tsv_quirks(tmp_path):
    f = tmp_path / "train.tsv"
    f.write_bytes(b"client_id\tpath\tsentence\n"
                  b"c1\ta.mp3\tHan sa \"hej\" till mig.\n"
                  b"c2\tb.mp3\n"
                  b"c3\tc.mp3\tK\xf6ttbullar\n"
                  b"\n"
                  b"c4\td.mp3\tSista \"raden\r\n")
    rows = list(read_tsv(f, "cv", "train", required=("path", "sentence")))
    kept = [r for r in rows if isinstance(r, Row)]
    drops = {r.item: r.reason for r in rows if isinstance(r, Drop)}
    assert [r.fields["sentence"] for r in kept] == ['Han sa "hej" till mig.', 'Sista "raden']
    assert drops == {"train.tsv:3": "missing_fields", "train.tsv:4": "non_utf8_text"}
    from sweaug.records import SourceError
    with pytest.raises(SourceError, match="train.tsv has no column sentence"):
        list(read_tsv(tmp_path / "train.tsv", "cv", "train", required=("nope", "sentence"))
             if False else read_tsv(_header_only(tmp_path), "cv", "train", required=("sentence",)))


def _header_only(tmp_path):
    f = tmp_path / "train.tsv"
    f.write_text("client_id\tpath\n")
    return f


def _evil_tar(path: Path):
    with tarfile.open(path, "w:gz") as t:
        for name, data in [("ok/a.wav", b"1"), ("ok/../../evil.wav", b"2"),
                           ("/tmp/sweaug-abs.wav", b"3"), ("ok/b.wav", b"4")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("ok/link.wav")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        t.addfile(link)


def test_unsafe_members_are_skipped_one_by_one(tmp_path):
    arc = tmp_path / "a.tar.gz"
    _evil_tar(arc)
    idx = index_archive(arc, tmp_path / "cache")
    assert idx.members == ["ok/a.wav", "ok/b.wav"]
    assert {n for n, _ in idx.unsafe} == {"ok/../../evil.wav", "/tmp/sweaug-abs.wav", "ok/link.wav"}
    dest = tmp_path / "x" / "dest"
    drops = extract_archive(arc, dest, "cv")
    assert sorted(p.name for p in dest.rglob("*") if p.is_file() and not p.name.startswith(".")) \
        == ["a.wav", "b.wav"]
    assert not (tmp_path / "x" / "evil.wav").exists() and not Path("/tmp/sweaug-abs.wav").exists()
    assert sorted(d.reason for d in drops) == ["unsafe_member"] * 3
    assert extract_archive(arc, dest, "cv") == drops  # second call: from the marker, same drops
