"""``sweaug windows`` (issue #17): Whisper's 30-s training windows from a shard folder."""
from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import sweaug, tree_bytes
from sweaug.records import ConfigError
from sweaug.windows.plan import Settings, Utt, plan_windows, q, segments, target


def _utts(n=60, seed=0, speakers=4, copies=1):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        orig = f"u{i // copies}"
        out.append(Utt(i, f"{orig}-{i % copies}" if copies > 1 else orig, orig,
                       f"s{int(rng.integers(speakers))}", int(rng.integers(16000, 6 * 16000)),
                       f"mening {i}."))
    return out


def _complete(windows):
    return Counter(p.utt for w in windows for p in w.placed if not p.straddles)


@pytest.mark.parametrize("seconds,ts", [(30.0, 1.0), (8.0, 1.0), (8.0, 0.0), (12.0, 0.5)])
def test_every_utterance_once_segments_on_the_grid_inside_the_audio(seconds, ts):
    utts = _utts()
    by = {u.index: u for u in utts}
    ws = plan_windows(utts, Settings(seconds=seconds, timestamp_fraction=ts),
                      np.random.default_rng(1))
    assert _complete(ws) == Counter({u.index: 1 for u in utts})  # each once, in full
    for w in ws:
        assert 0 < w.samples <= q(seconds)
        segs = segments(w, by)
        ends = [0.0]
        for s, p in zip(segs, w.placed):
            assert p.start % 320 == 0 and s["start"] >= ends[-1] and s["end"] > s["start"]
            assert s["end"] <= w.samples / 16000 + 1e-9
            ends.append(s["end"])
        assert all(not p.straddles for p in w.placed[:-1])
        if not w.timestamps:
            assert not w.placed[-1].straddles and "<|" not in target(segs, False)


def test_straddling_segment_keeps_the_full_window_and_only_its_start_and_opens_the_next():
    utts = _utts()
    by = {u.index: u for u in utts}
    ws = plan_windows(utts, Settings(seconds=8.0, timestamp_fraction=1.0),
                      np.random.default_rng(2))
    straddling = [i for i, w in enumerate(ws) if w.placed[-1].straddles]
    assert len(straddling) > len(ws) // 3
    for i in straddling:
        w, nxt = ws[i], ws[i + 1]
        assert w.samples == q(8.0)
        segs = segments(w, by)
        t = target(segs, True)
        assert t.endswith(f"<|{segs[-1]['start']:.2f}|>") and segs[-1]["straddles"]
        assert segs[-1]["text"] not in t  # its words are not in the target
        assert nxt.placed[0].utt == w.placed[-1].utt and not nxt.placed[0].straddles
    w = ws[straddling[0]]
    segs = segments(w, by)
    s0 = segs[0]
    assert target(segs, True).startswith(f"<|{s0['start']:.2f}|> {s0['text']}<|{s0['end']:.2f}|>")


def test_speaker_continuity_prompts_and_copies():
    utts = _utts(copies=3)
    for p, check in ((1.0, lambda w: w.same_speaker == w.transitions),):
        ws = plan_windows(utts, Settings(seconds=30, speaker_continuity=p),
                          np.random.default_rng(3))
        assert sum(w.transitions for w in ws) > 10
        share = sum(w.same_speaker for w in ws) / sum(w.transitions for w in ws)
        assert share > 0.6  # same speaker while one is left, (a few) fall-backs
    ws0 = plan_windows(utts, Settings(seconds=30, speaker_continuity=0.0),
                       np.random.default_rng(3))
    assert sum(w.same_speaker for w in ws0) / sum(w.transitions for w in ws0) < 0.2
    by = {u.index: u for u in utts}
    for w in ws + ws0:  # the same original utterance never twice in a window
        origs = [by[p.utt].original for p in w.placed if not p.straddles]
        assert len(origs) == len(set(origs))
    ws = plan_windows(utts, Settings(seconds=30, prompt_fraction=1.0), np.random.default_rng(4))
    assert ws[0].prev_text == ""
    for a, b in zip(ws, ws[1:]):
        assert b.prev_text == " ".join(by[p.utt].text for p in a.placed if not p.straddles)


def test_no_speech_share_and_draws_are_reproducible():
    utts = _utts(400)
    s = Settings(seconds=30, no_speech_fraction=0.2)
    ws = plan_windows(utts, s, np.random.default_rng(5), no_speech_sources=3)
    share = sum(w.no_speech is not None for w in ws) / len(ws)
    assert 0.12 < share < 0.28
    again = plan_windows(utts, s, np.random.default_rng(5), no_speech_sources=3)
    assert [(w.no_speech, [p.start for p in w.placed]) for w in ws] == \
        [(w.no_speech, [p.start for p in w.placed]) for w in again]
    assert all(w.no_speech is None for w in plan_windows(utts, s, np.random.default_rng(5)))


@pytest.mark.parametrize("kw,msg", [({"seconds": 31}, "--seconds"),
                                    ({"gap_min": 1.0, "gap_max": 0.5}, "--gap"),
                                    ({"timestamp_fraction": 1.5}, "--timestamp-fraction"),
                                    ({"no_speech_fraction": 1.0}, "--no-speech-fraction")])
def test_settings_are_validated(kw, msg):
    with pytest.raises(ConfigError, match=msg):
        Settings(**kw)


def test_vad_trims_silence_and_finds_silent_clips():
    from sweaug.windows.vad import speech_bounds

    rng = np.random.default_rng(0)
    x = np.concatenate([np.zeros(8000), 0.3 * rng.standard_normal(16000), np.zeros(4800)])
    x += 1e-4 * rng.standard_normal(len(x))  # a noise floor
    a, b = speech_bounds(x.astype(np.float32))
    assert 8000 - 960 - 320 <= a <= 8000 - 960 + 320 and 24000 + 960 - 320 <= b <= 24000 + 960 + 320
    assert speech_bounds(np.zeros(16000, np.float32)) is None
    assert speech_bounds(1e-4 * rng.standard_normal(16000).astype(np.float32)) is None


def _samples(tar: Path):
    from sweaug.build.shards import iter_samples

    return list(iter_samples(tar))


def test_windows_cli_on_the_bundled_sample(sample_cv, env, tmp_path):
    """From the CLI: windows of one split only, audio = the trimmed clips at their segment
    starts, manifest counts, byte-identical for 1 and 2 workers, resumable."""
    out1, out2 = tmp_path / "a" / "w1", tmp_path / "b" / "w1"
    args = ["--seconds", "8", "--timestamp-fraction", "0.7", "--prompt-fraction", "0.5",
            "--no-speech-fraction", "0.2", "--no-progress"]
    p = sweaug(env, "windows", sample_cv / "cv", "--out", out1, "--workers", "1", *args)
    assert "speech share" in p.stdout
    sweaug(env, "windows", sample_cv / "cv", "--out", out2, "--workers", "2", *args)
    assert tree_bytes(out1) == tree_bytes(out2)
    again = sweaug(env, "-v", "windows", sample_cv / "cv", "--out", out1, *args)
    assert "0 to build" in again.stderr and tree_bytes(out1) == tree_bytes(out2)

    m = json.loads((out1 / "manifest.json").read_text())
    built = json.loads((sample_cv / "manifest.json").read_text())["sources"]["cv"]["splits"]
    originals = {}
    for split, s in built.items():
        for sh in s["shards"]:
            for key, files in _samples(sample_cv / sh["path"]):
                originals[key] = (split, json.loads(files["json"]), files["flac"])
    splits = m["sources"]["w1"]["splits"]
    assert set(splits) == set(built)
    seen = Counter()
    for split, s in splits.items():
        assert s["input_samples"] == built[split]["samples"] == s["utterances"] + sum(
            s["drops"].values())
        n_ns = 0
        for sh in s["shards"]:
            for key, files in _samples(out1 / sh["path"]):
                meta = json.loads(files["json"])
                x, sr = sf.read(io.BytesIO(files["flac"]), dtype="int16")
                assert sr == 16000 and len(x) == meta["num_samples"] <= 8 * 16000
                n_ns += meta["no_speech"]
                if meta["no_speech"]:
                    assert meta["segments"] == [] and meta["text"] == meta["target"] == ""
                    continue
                for seg in meta["segments"]:
                    osplit, ometa, oflac = originals[seg["key"]]
                    assert osplit == split  # never mixing splits
                    assert seg["text"] == ometa["text"]
                    clip, _ = sf.read(io.BytesIO(oflac), dtype="int16")
                    lead, tail = (round(t * 16000) for t in seg["trim"])
                    clip = clip[lead: len(clip) - tail]
                    a = round(seg["start"] * 16000)
                    got = x[a: a + len(clip)]
                    assert np.array_equal(got, clip[: len(got)])
                    if not seg.get("straddles"):
                        seen[seg["key"]] += 1
                        assert len(got) == len(clip)
                assert meta["text"] == " ".join(
                    sg["text"] for sg in meta["segments"] if not sg.get("straddles"))
        assert n_ns == s["no_speech"]
    assert set(seen.values()) == {1} and len(seen) == sum(s["utterances"] for s in splits.values())
    assert m["windows"]["no_speech"]["shared_across_splits"] is True


def test_bad_samples_are_counted_drops_not_a_crash(tmp_path, env):
    """A corrupt clip, a silent one, one without text and one longer than the window: each a
    counted, logged drop naming the sample; the rest become windows."""
    from sweaug.build.audio import encode_flac
    from sweaug.build.shards import ShardWriter, sample_json
    from sweaug.files import sha256_file

    folder = tmp_path / "in"
    rng = np.random.default_rng(0)
    w = ShardWriter(lambda j: folder / f"train-{j:06d}.tar")

    def put(key, audio, text="en mening.", flac=None):
        w.write(key, [("flac", flac if flac is not None else encode_flac(audio)),
                      ("json", sample_json({"key": key, "text": text, "speaker": "a",
                                            "source": "x", "language": "sv"}))])

    tone = lambda s: (0.2 * np.sin(np.arange(int(s * 16000)) * 0.05)).astype(np.float32)  # noqa
    put("ok1", tone(2))
    put("broken", None, flac=b"not a flac at all")
    put("quiet", np.zeros(16000, np.float32))
    put("notext", tone(1), text="  ")
    put("long", tone(9))
    put("ok2", tone(1.5) + 0.001 * rng.standard_normal(24000).astype(np.float32))
    shard = w.close()[0]
    (folder / "manifest.json").write_text(json.dumps({"normalizer_version": "t", "sources": {"x": {
        "splits": {"train": {"samples": 6, "speakers": 1, "shards": [
            {"path": shard.path.name, "sha256": sha256_file(shard.path), "samples": 6,
             "bytes": shard.bytes}]}}}}}))
    p = sweaug(env, "windows", folder, "--out", tmp_path / "out", "--seconds", "8",
               "--no-progress")
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    s = m["sources"]["out"]["splits"]["train"]
    assert s["drops"] == {"corrupt_audio": 1, "no_text": 1, "over_window": 1, "silent": 1}
    assert s["utterances"] == 2 and {d["item"] for d in m["drops"]} == {
        "broken", "quiet", "notext", "long"}
    for key in ("broken", "quiet", "notext", "long"):
        assert key in p.stderr
    # a shard changed after it was built is refused before any window is written
    with open(shard.path, "r+b") as f:
        f.seek(700)
        f.write(b"\0\1\2")
    bad = sweaug(env, "windows", folder, "--out", tmp_path / "out2", check=False)
    assert bad.returncode == 2 and "does not match the sha256" in bad.stderr
    assert not (tmp_path / "out2" / "manifest.json").exists()


def test_cli_refuses_bad_flags(sample_cv, env, tmp_path):
    for args, msg in ((["--gap", "1"], "MIN,MAX"), (["--seconds", "40"], "--seconds"),
                      (["--no-speech-dir", str(tmp_path)], "--no-speech-fraction")):
        p = sweaug(env, "windows", sample_cv / "cv", "--out", tmp_path / "o", *args, check=False)
        assert p.returncode == 2 and msg in p.stderr, p.stderr
