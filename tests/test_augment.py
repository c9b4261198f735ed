"""`sweaug augment`: recipes validated up front, seeded per sample, replayable, byte-identical
for any worker count."""
from __future__ import annotations

import io
import json
import random
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import FIX, ROOT, sweaug, tree_bytes
from sweaug.augment import AugmentError, Augmenter, RecipeError, load_recipe

RECIPES = ROOT / "recipes" / "augment"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, env):
    out = tmp_path_factory.mktemp("c") / "corpus"
    sweaug(env, "build", "--sources", "cv,rixvox", "--cv-dir", ROOT / "sweaug" / "sample" / "cv",
           "--rixvox-dir", FIX / "rixvox", "--out", out, "--no-progress", "--shard-samples", "8")
    return out


def speech(seconds=1.5):
    t = np.arange(int(16000 * seconds)) / 16000
    return (0.2 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)


@pytest.mark.parametrize("name", ["default", "noisy", "telephone"])
def test_shipped_recipes_load_and_run(name, tmp_path):
    r = load_recipe(RECIPES / f"{name}.yaml")
    aug = Augmenter(r, seed=1, cache_dir=tmp_path)
    fired = set()
    for epoch in range(12):
        y, applied = aug(speech(), 16000, "k", epoch)
        assert y.dtype == np.float32 and np.isfinite(y).all() and np.abs(y).max() <= 1.0
        fired |= {a["name"] for a in applied}
    assert fired == {s.name for s in r.steps}  # every transform fires at some point


def _recipe(tmp_path, body: str) -> Path:
    p = tmp_path / "r.yaml"
    p.write_text("name: t\ntransforms:\n" + body)
    return p


@pytest.mark.parametrize("body,message", [
    ("  - Gain: {p: 0.5}\n  - Gane: {p: 0.5}\n", r"r.yaml:4: unknown or unsupported transform 'Gane'"),
    ("  - Gain: {p: 0.5, min_gain: 1}\n", r"r.yaml:3: Gain takes no parameter min_gain"),
    ("  - Gain: {min_gain_db: 6, max_gain_db: -6}\n", r"r.yaml:3: Gain: min_gain_db=6 > max_gain_db=-6"),
    ("  - Gain: {p: 1.5}\n", r"r.yaml:3: Gain: p must be a number within 0..1"),
    ("  - LowPassFilter: {min_cutoff_freq: 9000, max_cutoff_freq: 12000}\n", "Nyquist"),
    ("  - AddBackgroundNoise: {sounds_path: /nonexistent/noise}\n", r"r.yaml:3: sounds_path: folder"),
    ("  - ApplyImpulseResponse: {ir_path: '${nope}'}\n", "unknown variable"),
])
def test_recipe_errors_name_the_line(tmp_path, body, message):
    with pytest.raises(RecipeError, match=message):
        load_recipe(_recipe(tmp_path, body))


def test_empty_noise_dir_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".gitkeep").write_text("")
    with pytest.raises(RecipeError, match="holds no audio files"):
        load_recipe(_recipe(tmp_path, "  - AddBackgroundNoise: {sounds_path: empty}\n"))


def test_stereo_44k_noise_is_converted_once(tmp_path):
    noise = tmp_path / "n"
    noise.mkdir()
    rng = np.random.default_rng(0)
    sf.write(noise / "s.wav", (0.1 * rng.standard_normal((44100, 2))).astype(np.float32), 44100)
    r = load_recipe(_recipe(tmp_path, "  - AddBackgroundNoise: {p: 1.0, sounds_path: n}\n"))
    aug = Augmenter(r, 3, cache_dir=tmp_path / "cache")
    prepared = list((tmp_path / "cache" / "sounds").glob("*/*.wav"))
    assert len(prepared) == 1
    x, sr = sf.read(prepared[0])
    assert sr == 16000 and x.ndim == 1
    y, applied = aug(speech(), 16000, "k", 0)
    assert applied and json.loads(applied[0]["parameters"])["noise_file_path"] == "s.wav"


def test_rir_longer_than_the_clip_keeps_the_length(tmp_path):
    r = load_recipe(_recipe(tmp_path, f"  - ApplyImpulseResponse: {{p: 1.0, ir_path: {FIX / 'noise_bad' / 'long_rir'}, leave_length_unchanged: true}}\n"))
    y, applied = Augmenter(r, 0, cache_dir=tmp_path)(speech(0.5), 16000, "k", 0)
    assert y.size == 8000 and applied


def test_same_seed_key_epoch_same_audio_isolated_from_global_state(tmp_path):
    aug = Augmenter(load_recipe(RECIPES / "default.yaml"), 13, cache_dir=tmp_path)
    a, pa = aug(speech(), 16000, "utt1", 0)
    random.seed(999)
    np.random.seed(999)
    before = (random.random(), np.random.rand())
    random.seed(999)
    np.random.seed(999)
    aug(speech(), 16000, "other", 5)  # must not disturb the caller's generators
    assert (random.random(), np.random.rand()) == before
    b, pb = aug(speech(), 16000, "utt1", 0)
    assert np.array_equal(a, b) and pa == pb
    c, _ = aug(speech(), 16000, "utt1", 1)
    d, _ = Augmenter(load_recipe(RECIPES / "default.yaml"), 14, cache_dir=tmp_path)(
        speech(), 16000, "utt1", 0)
    assert not np.array_equal(a, c) or not np.array_equal(a, d)


def test_nan_and_clipping_are_named_errors(tmp_path):
    loud = _recipe(tmp_path, "  - Gain: {p: 1.0, min_gain_db: 30, max_gain_db: 30}\n")
    with pytest.raises(AugmentError, match="augment_clipping"):
        Augmenter(load_recipe(loud), 0, cache_dir=tmp_path)(speech(), 16000, "k", 0)
    nan = speech()
    nan[5] = np.nan
    with pytest.raises(AugmentError, match="augment_nan"):
        Augmenter(load_recipe(RECIPES / "default.yaml"), 0, cache_dir=tmp_path)(nan, 16000, "k", 0)


def _samples(folder: Path) -> dict[str, tuple[dict, bytes]]:
    out = {}
    for shard in sorted(folder.glob("*.tar")):
        with tarfile.open(shard) as t:
            files = {m.name: t.extractfile(m).read() for m in t}
        for name, data in files.items():
            if name.endswith(".json"):
                key = name[:-5]
                out[key] = (json.loads(data), files[key + ".flac"])
    return out


def test_augment_cli_deterministic_replayable(corpus, tmp_path, env):
    a, b = tmp_path / "one" / "a", tmp_path / "two" / "a"  # same name: the manifest names it
    args = ["augment", corpus / "cv", "--recipe", RECIPES / "noisy.yaml", "--copies", "2",
            "--seed", "13", "--shard-samples", "10", "--no-progress"]
    sweaug(env, *args, "--out", a, "--workers", "1")
    sweaug(env, *args, "--out", b, "--workers", "2")
    assert tree_bytes(a) == tree_bytes(b)
    m = json.loads((a / "manifest.json").read_text())
    inp = json.loads((corpus / "manifest.json").read_text())["sources"]["cv"]["splits"]
    for split, info in m["sources"]["a"]["splits"].items():
        assert info["samples"] == 2 * inp[split]["samples"]
        assert info["augmented"] + info["unchanged"] == info["samples"]
    assert m["input"]["manifest"].endswith("manifest.json") and m["augment"]["seed"] == 13
    samples = _samples(a)
    assert all("." not in k and k.endswith(("-aug0", "-aug1")) for k in samples)
    originals = {k: v for k, v in _samples_by_key(corpus / "cv").items()}
    recipe = load_recipe(RECIPES / "noisy.yaml")
    aug = Augmenter(recipe, 13, cache_dir=Path(env["SWEAUG_CACHE"]))
    for key, (meta, flac) in list(samples.items())[:6]:  # replay from the recorded entry
        entry = meta["augment"]
        assert entry["recipe_sha256"] == recipe.sha256 and isinstance(entry["applied"], list)
        orig_meta, orig_flac = originals[meta["original_key"]]
        assert meta["text"] == orig_meta["text"] and meta["speaker"] == orig_meta["speaker"]
        x, _ = sf.read(io.BytesIO(orig_flac), dtype="float32")
        y, applied = aug(x, 16000, meta["original_key"], entry["copy"])
        assert applied == entry["applied"]
        stored, _ = sf.read(io.BytesIO(flac), dtype="int16")
        assert np.array_equal(np.clip(np.rint(y * 32767), -32768, 32767).astype(np.int16), stored)


def _samples_by_key(folder: Path):
    return _samples(folder)


def test_augment_splits_and_bad_input(corpus, tmp_path, env):
    out = tmp_path / "t"
    sweaug(env, "augment", corpus / "rixvox", "--recipe", RECIPES / "telephone.yaml",
           "--copies", "1", "--seed", "1", "--splits", "train", "--out", out, "--no-progress")
    m = json.loads((out / "manifest.json").read_text())
    assert list(m["sources"]["t"]["splits"]) == ["train"]
    p = sweaug(env, "augment", corpus / "rixvox", "--recipe", RECIPES / "default.yaml",
               "--seed", "1", "--splits", "dev", "--out", tmp_path / "x", check=False)
    assert p.returncode == 2 and "no split dev" in p.stderr
    p = sweaug(env, "augment", tmp_path, "--recipe", RECIPES / "default.yaml", "--seed", "1",
               "--out", tmp_path / "y", check=False)
    assert p.returncode == 2 and "no manifest.json" in p.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: b\ntransforms:\n  - Gain: {p: 0.5}\n  - PitchShift: {semitones: 3}\n")
    p = sweaug(env, "augment", corpus / "cv", "--recipe", bad, "--seed", "1", "--out",
               tmp_path / "z", check=False)
    assert p.returncode == 2 and "bad.yaml:4: PitchShift takes no parameter semitones" in p.stderr
    assert not (tmp_path / "z").exists()  # nothing touched before validation
    shard = next((corpus / "cv").glob("train-*.tar"))
    data = bytearray(shard.read_bytes())
    data[2000] ^= 0xFF
    copy = tmp_path / "corpus"
    import shutil
    shutil.copytree(corpus, copy)
    (copy / "cv" / shard.name).write_bytes(bytes(data))
    p = sweaug(env, "augment", copy / "cv", "--recipe", RECIPES / "default.yaml", "--seed", "1",
               "--out", tmp_path / "w", check=False)
    assert p.returncode == 2 and "does not match the sha256" in p.stderr
