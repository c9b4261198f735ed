"""The on-the-fly training input: LogMel equals WhisperFeatureExtractor; ShardStream deals
shards to workers without overlap and augments reproducibly per epoch."""
from __future__ import annotations


import numpy as np
import pytest

from conftest import ROOT, sweaug


@pytest.fixture(scope="module")
def shards(tmp_path_factory, env):
    out = tmp_path_factory.mktemp("d") / "corpus"
    sweaug(env, "build", "--sources", "cv", "--cv-dir", ROOT / "sweaug" / "sample" / "cv",
           "--out", out, "--no-progress", "--shard-samples", "7")
    return sorted(str(p) for p in (out / "cv").glob("train-*.tar"))


@pytest.mark.parametrize("chunk", [30, 5])
def test_logmel_equals_the_feature_extractor(chunk):
    from transformers import WhisperFeatureExtractor

    from sweaug.train.features import LogMel

    fe = WhisperFeatureExtractor(chunk_length=chunk)
    lm = LogMel(fe)
    rng = np.random.default_rng(1)
    for n in (1, 399, 4000, 16000, 16001, 80000, fe.n_samples - 100, fe.n_samples,
              fe.n_samples + 5000):
        x = (0.1 * rng.standard_normal(n)).astype(np.float32)
        ref = fe(x, sampling_rate=16000, return_tensors="np").input_features[0]
        assert np.array_equal(lm(x), ref), n


def test_shard_stream_workers_and_epochs(shards, tmp_path):
    import torch.utils.data as tud
    from transformers import WhisperFeatureExtractor

    from sweaug.augment import Augmenter, load_recipe
    from sweaug.train.data import ShardStream
    from sweaug.train.features import LogMel
    from sweaug.train.whisper import offline_tokenizer

    assert len(shards) >= 3
    tok = offline_tokenizer(tmp_path / "tok")
    tok.set_prefix_tokens(language="swedish", task="transcribe")
    aug = Augmenter(load_recipe(ROOT / "recipes" / "augment" / "default.yaml"), 5,
                    cache_dir=tmp_path)
    ds = ShardStream(shards, tok, LogMel(WhisperFeatureExtractor(chunk_length=5)), aug, epoch=0)
    single = {ex["key"]: ex for ex in ds}
    dl = tud.DataLoader(ds, batch_size=None, num_workers=2)
    keys = [ex["key"] for ex in dl]
    assert sorted(keys) == sorted(single) and len(keys) == len(set(keys))  # disjoint, complete
    again = {ex["key"]: ex for ex in dl}
    for k, ex in single.items():  # whichever worker prepares it, the same draw
        assert np.array_equal(again[k]["input_features"], ex["input_features"])
        assert ex["labels"][:4] == tok.convert_tokens_to_ids(
            ["<|startoftranscript|>", "<|sv|>", "<|transcribe|>", "<|notimestamps|>"])
        assert ex["input_features"].shape == (80, 500)
    ds.set_epoch(1)
    changed = sum(not np.array_equal(ex["input_features"], single[ex["key"]]["input_features"])
                  for ex in ds)
    assert changed > len(single) // 2  # a different draw each epoch
    r0 = ShardStream(shards, tok, LogMel(WhisperFeatureExtractor(chunk_length=5)), rank=0,
                     world_size=2)
    r1 = ShardStream(shards, tok, LogMel(WhisperFeatureExtractor(chunk_length=5)), rank=1,
                     world_size=2)
    k0, k1 = {e["key"] for e in r0}, {e["key"] for e in r1}
    assert not k0 & k1 and k0 | k1 == set(single)


def test_shuffle_buffer_reorders_each_pass_reproducibly(shards, tmp_path, monkeypatch):
    """A one-shard set repeats its sample order every pass unless the stream shuffles; the
    shuffle is seeded (same seed, same order) and loses or repeats nothing."""
    import itertools

    from sweaug.train.mix import MixStream, shuffled

    assert list(shuffled(iter(range(10)), 0, [1])) == list(range(10))
    a = list(shuffled(iter(range(100)), 8, [1, 2]))
    assert sorted(a) == list(range(100)) and a != list(range(100))
    assert a == list(shuffled(iter(range(100)), 8, [1, 2]))
    assert a != list(shuffled(iter(range(100)), 8, [1, 3]))

    trace = tmp_path / "trace"
    monkeypatch.setenv("SWEAUG_TRACE_SAMPLES", str(trace))

    def keys(buffer: int, run: str) -> list[str]:
        monkeypatch.setenv("SWEAUG_TRACE_SAMPLES", str(trace / run))
        ds = MixStream([(shards[:1], 1.0)], lambda t: type("T", (), {"input_ids": [1]})(),
                       lambda a: np.zeros((80, 10), np.float32), seed=3, rank=0, world_size=1,
                       shuffle_buffer=buffer)
        list(itertools.islice(iter(ds), 60))
        lines = (trace / run / "rank0.worker0.txt").read_text().splitlines()
        return [line.split("\t")[2] for line in lines]

    plain = keys(0, "plain")
    n = len(set(plain))
    assert 2 <= n < 30 and plain[:n] == plain[n:2 * n]  # the same order every pass
    mixed = keys(16, "a")
    assert mixed == keys(16, "b")  # seeded
    assert mixed[:n] != plain[:n] and mixed[n:2 * n] != mixed[:n]
    assert sorted(set(mixed)) == sorted(set(plain))
