"""`sweaug ablate --mix` under torchrun: two CPU processes (gloo) train one mix with DDP, each
rank streaming its own disjoint slice of an odd-sized shard set in uneven shards (no hang at the
epoch end), and rank 0 alone evaluates and writes results.json and the report. Plus MixStream's
dealing to (rank, DataLoader worker) slots, in process."""
from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from conftest import ROOT, sweaug

CV = ROOT / "sweaug" / "sample" / "cv" / "cv-corpus-17.0-2024-03-15" / "sv-SE"
N_TRAIN, N_TEST, BATCH, STEPS = 15, 3, 4, 3
RECIPE = f"""name: ddp
model: tiny-random
tiny: {{d_model: 64, layers: 1, heads: 2}}
seed: 5
training: {{per_device_train_batch_size: {BATCH}, gradient_accumulation_steps: 1,
           learning_rate: 0.002, warmup_steps: 1, max_steps: {STEPS}, seconds: 5.0,
           logging_steps: 1, save_steps: 100, dataloader_num_workers: 0,
           shuffle_buffer: 0}}  # samples in dealt order (the shuffle: test_train_data.py)
evaluation: {{sets: [local/test], bootstrap: 100, max_new_tokens: 10}}
mixes:
  - name: odd
    data: {{local/train: 1.0}}
"""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, env):
    """A local-folder corpus: 15 training clips (odd) in shards of 4, 4, 4, 3; 3 test clips."""
    base = tmp_path_factory.mktemp("ddp")
    rows = [line.split("\t") for line in (CV / "train.tsv").read_text().splitlines()[1:]]
    folder = base / "local"
    (folder / "clips").mkdir(parents=True)
    meta = ["path\ttext\tsplit"]
    for i, r in enumerate(rows[:N_TRAIN + N_TEST]):
        (folder / "clips" / r[1]).write_bytes((CV / "clips" / r[1]).read_bytes())
        meta.append(f"clips/{r[1]}\t{r[3]}\t{'train' if i < N_TRAIN else 'test'}")
    (folder / "metadata.tsv").write_text("\n".join(meta) + "\n")
    out = base / "corpus"
    sweaug(env, "build", "--sources", "local", "--local-dir", folder, "--out", out,
           "--shard-samples", "4", "--no-progress")
    return out


def _keys(shards) -> list[str]:
    from sweaug.build.shards import iter_samples

    return [k for s in shards for k, _ in iter_samples(Path(s))]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_bounded(cmd: list[str], env: dict, timeout: float) -> subprocess.CompletedProcess:
    """Run ``cmd`` in its own process group; on timeout kill the whole group (torchrun and its
    workers) and fail: a hang fails the test instead of blocking CI."""
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        pytest.fail(f"no end within {timeout} s (hang?):\n{out[-3000:]}\n{err[-3000:]}")
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)


def test_two_cpu_processes_train_disjoint_slices_and_rank0_reports(corpus, tmp_path, env):
    manifest = json.loads((corpus / "manifest.json").read_text())
    train = manifest["sources"]["local"]["splits"]["train"]
    assert train["samples"] == N_TRAIN  # odd: the ranks get 8 and 7 samples of each pass
    assert [s["samples"] for s in train["shards"]] == [4, 4, 4, 3]  # uneven shards
    all_keys = _keys(corpus / s["path"] for s in train["shards"])

    recipe = tmp_path / "ddp.yaml"
    recipe.write_text(RECIPE)
    trace, runs = tmp_path / "trace", tmp_path / "runs"
    e = dict(env, CUDA_VISIBLE_DEVICES="", SWEAUG_TRACE_SAMPLES=str(trace), OMP_NUM_THREADS="1")
    p = _run_bounded([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                      "--master_port", str(_free_port()), "-m", "sweaug.cli", "ablate",
                      str(recipe), "--mix", "odd", "--corpus", str(corpus), "--out", str(runs)],
                     e, timeout=240)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-5000:]

    # both ranks ran; every (pass, key) was prepared by exactly one rank
    seen: dict[tuple[str, str], int] = {}
    per_rank = {}
    for rank in (0, 1):
        lines = (trace / f"rank{rank}.worker0.txt").read_text().splitlines()
        per_rank[rank] = [tuple(line.split("\t")) for line in lines]
        for set_index, pass_no, key in per_rank[rank]:
            assert set_index == "0" and key in all_keys
            assert (pass_no, key) not in seen, (key, pass_no, seen.get((pass_no, key)), rank)
            seen[(pass_no, key)] = rank
    assert sorted(trace.iterdir()) == [trace / "rank0.worker0.txt", trace / "rank1.worker0.txt"]
    # together the ranks covered the first pass over the set; 8 + 7: uneven, and no hang
    assert sorted(k for (pass_no, k) in seen if pass_no == "0") == sorted(all_keys)
    assert sorted(Counter(r for (pass_no, _), r in seen.items() if pass_no == "0").values()) \
        == [7, 8]
    # each rank streamed only its own batches: STEPS batches + the one accelerate reads ahead
    # (accelerate's IterableDatasetShard, had it not been made a pass-through, would have had
    # each rank read 2 x as many and drop half)
    for rank, rows in per_rank.items():
        assert STEPS * BATCH <= len(rows) <= (STEPS + 1) * BATCH, (rank, len(rows))

    mix = runs / "ddp" / "odd"
    res = json.loads((mix / "results.json").read_text())
    assert res["train"]["steps"] == STEPS and res["train"]["processes"] == 2
    first_loss = res["train"]["losses"][0][1]
    assert 9.0 < first_loss < 12.0  # ~ln(vocab): the mean, not x the number of processes
    ev = res["eval"]["local/test"]
    assert ev["n"] == N_TEST and 0.0 <= ev["wer"] and ev["wer_lo"] <= ev["wer"] <= ev["wer_hi"]
    # DDP in the Trainer's eyes (one RNG state per rank), files written once, by rank 0
    (ckpt,) = (mix / "checkpoints").glob(f"*/checkpoint-{STEPS}")
    assert {"sweaug_stream-rank0.json", "sweaug_stream-rank1.json"} <= {
        f.name for f in ckpt.iterdir()}  # each rank's stream position
    assert {"rng_state_0.pth", "rng_state_1.pth"} <= {f.name for f in ckpt.iterdir()}
    assert len(list((mix / "tensorboard").iterdir())) == 1
    assert (mix / "model" / "model.safetensors").exists()
    out = p.stdout + p.stderr
    assert out.count("odd: evaluating on local/test") == 1
    assert out.count("odd: training (3 steps on 2 processes, 8 samples per step)") == 1
    assert "rank 1: training finished; rank 0 evaluates and reports" in out
    assert "Traceback" not in out
    rows = list(csv.DictReader((runs / "ddp" / "results.csv").open()))
    assert [r["mix"] for r in rows] == ["odd"]
    md = (runs / "ddp" / "report.md").read_text()
    assert "| baseline (no fine-tuning) | not finished |" in md  # --mix odd: baseline not run
    assert not list((runs / "ddp").rglob(".*.tmp*"))


def test_mix_stream_deals_to_ranks_and_workers(corpus, tmp_path, monkeypatch):
    """In process: 2 ranks x 2 DataLoader workers over 15 samples; and a 1-sample set with more
    slots than samples still feeds every slot (a pass later) instead of spinning forever."""
    import itertools

    import torch.utils.data as tud
    from transformers import WhisperFeatureExtractor

    from sweaug.train.features import LogMel
    from sweaug.train.mix import MixStream
    from sweaug.train.whisper import offline_tokenizer

    train = json.loads((corpus / "manifest.json").read_text())["sources"]["local"]["splits"]
    shards = [corpus / s["path"] for s in train["train"]["shards"]]
    tok = offline_tokenizer(tmp_path / "tok")
    feats = LogMel(WhisperFeatureExtractor(chunk_length=5))
    trace = tmp_path / "trace"
    monkeypatch.setenv("SWEAUG_TRACE_SAMPLES", str(trace))
    for rank in (0, 1):
        ds = MixStream([(shards, 1.0)], tok, feats, seed=1, rank=rank, world_size=2)
        dl = tud.DataLoader(ds, batch_size=None, num_workers=2)
        assert len(list(itertools.islice(dl, 16))) == 16
    seen = {}
    for f in sorted(trace.iterdir()):
        for line in f.read_text().splitlines():
            _, pass_no, key = line.split("\t")
            assert (pass_no, key) not in seen, (key, f.name, seen.get((pass_no, key)))
            seen[(pass_no, key)] = f.name
    assert len(seen) >= 32 and sorted(f.name for f in trace.iterdir()) == [
        "rank0.worker0.txt", "rank0.worker1.txt", "rank1.worker0.txt", "rank1.worker1.txt"]
    assert sorted(k for p, k in seen if p == "0") == sorted(_keys(shards))

    old = signal.signal(signal.SIGALRM, lambda *a: pytest.fail("a slot without data spins"))
    signal.alarm(60)
    try:
        one = shards[-1:]  # 3 samples, 4 slots
        for slot in range(4):
            ds = MixStream([(one, 1.0)], tok, feats, seed=1, rank=slot, world_size=4)
            assert len(list(itertools.islice(iter(ds), 2))) == 2
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
