"""Training on windows vs single clips, in one run (a script, not a timed test: noisy machine).

1. Training throughput, transcribed audio-seconds per training-second: a tiny Whisper with a
   30-s encoder (max_source_positions 1500, d_model 128, 2+2 layers, max_target_positions 448)
   trained the same number of steps, batch 8, AdamW, through sweaug's own input path
   (MixStream -> SpeechCollator, DataLoader with 2 workers) on the demo corpus's train clips
   (sweaug/sample/demo, 1.6-s espeak-ng clips) vs the same clips in 30-s windows
   (`sweaug windows`, default settings). Transcribed audio of a clip: its duration; of a
   window: its segments' speech (trimmed clips). Both padded to 30 s by the encoder, so a step
   costs about the same and the ratio follows the speech share. The demo's clips are 2.5x
   shorter than Common Voice sv-SE's (mean 4.0 s), so the same ratio is also given for CV's
   lengths from benchmarks/windows_bench.py's speech shares (measured step times x modelled
   shares: stated as derived). Goal >= 4x.
2. The on-the-fly loader for windows (read, decode, [augment], log-mel, labels), windows/s on 2
   DataLoader workers, without and with the default augmentation recipe (TimeStretch rescales the
   timestamps). For scale: whisper-small trains at roughly 28 windows/s on one A100 (the issue's
   figure, not measured here).

    python benchmarks/windows_training.py [--steps 12] [--workdir DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def cli(*args) -> None:
    subprocess.run([sys.executable, "-m", "sweaug.cli", *map(str, args)], check=True,
                   capture_output=True, cwd=REPO)


def shards(manifest_dir: Path, source: str, split: str = "train") -> list[Path]:
    m = json.loads((manifest_dir / "manifest.json").read_text())
    return [manifest_dir / s["path"] for s in m["sources"][source]["splits"][split]["shards"]]


def seconds_by_key(shard_list: list[Path]) -> dict[str, float]:
    """Transcribed audio per sample: a window's speech_seconds, a clip's duration."""
    from sweaug.build.shards import iter_samples

    out = {}
    for sh in shard_list:
        for key, files in iter_samples(sh, only=("json",)):
            meta = json.loads(files["json"])
            out[key] = float(meta["speech_seconds"] if "speech_seconds" in meta
                             else meta["duration"])
    return out


def stream(shard_list, tok, fe, augmenter=None, seed=0):
    from sweaug.train.features import LogMel
    from sweaug.train.mix import MixStream

    return MixStream([(shard_list, 1.0)], tok, LogMel(fe), seed, augmenter,
                     max_label_tokens=448, max_audio_samples=fe.n_samples)


def train_speed(shard_list, steps: int, trace: Path, kept_from=None) -> dict:
    """``kept_from``: shard lists whose transcript tokens make the softmax (``vocabulary:
    transcripts``, what sweaug trains tiny from-scratch models with), else the full 51,865."""
    import torch
    from torch.utils.data import DataLoader

    from sweaug.train.mix import SpeechCollator
    from sweaug.train.whisper import tiny_whisper

    model, fe, tok = tiny_whisper(seconds=30.0, d_model=128, layers=2, heads=4, seed=0,
                                  max_target_positions=448)
    tok.set_prefix_tokens(language="sv", task="transcribe")
    loss_of = lambda batch: model(**batch).loss  # noqa: E731
    if kept_from:
        from sweaug.train.vocab import KeptLogits, index_of, kept_token_loss, transcript_tokens

        kept = sorted(set(transcript_tokens(kept_from, tok))
                      | {model.config.decoder_start_token_id})
        model.proj_out = KeptLogits(model.proj_out, kept)
        index = index_of(model.config.vocab_size, kept)
        loss_of = lambda batch: kept_token_loss(model, batch, index, model.config)[0]  # noqa
    import shutil

    shutil.rmtree(trace, ignore_errors=True)  # the trace files are appended to
    os.environ["SWEAUG_TRACE_SAMPLES"] = str(trace)
    dl = DataLoader(stream(shard_list, tok, fe), batch_size=8, num_workers=2,
                    collate_fn=SpeechCollator(model.config.decoder_start_token_id,
                                              model.config.pad_token_id))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    it = iter(dl)
    done, t0, tokens = 0, None, 0
    keys: list[str] = []
    for step in range(steps + 1):  # the first step warms up (workers start, allocations)
        batch = next(it)
        info = batch.pop("sweaug")
        loss = loss_of(batch)
        loss.backward()
        opt.step()
        opt.zero_grad()
        if step == 0:
            t0 = time.perf_counter()
            continue
        done += 1
        tokens += info["label_tokens"]
        keys += [f"{s[0]}:{s[1]}" for s in info["stream"]]
    seconds = time.perf_counter() - t0
    del it
    os.environ.pop("SWEAUG_TRACE_SAMPLES")
    # the consumed samples: each slot's trace lists its yielded samples in order; a batch's
    # ``stream`` says (slot, position), so the key is line position-1 of that slot's trace
    lines = {}
    for f in trace.iterdir():
        w = int(f.name.split("worker")[1].split(".")[0])
        lines[w] = [ln.split("\t")[2] for ln in f.read_text().splitlines()]
    return {"seconds": seconds, "steps": done, "label_tokens": tokens,
            "keys": [lines[int(k.split(":")[0])][int(k.split(":")[1]) - 1] for k in keys]}


def loader_speed(shard_list, n: int, augment: bool) -> float:
    from torch.utils.data import DataLoader

    from sweaug.augment import Augmenter, load_recipe
    from sweaug.bundled import bundled
    from sweaug.train.mix import SpeechCollator
    from sweaug.train.whisper import tiny_whisper

    _, fe, tok = tiny_whisper(seconds=30.0, d_model=64, layers=1, heads=2, seed=0,
                              max_target_positions=448)
    tok.set_prefix_tokens(language="sv", task="transcribe")
    aug = Augmenter(load_recipe(bundled("augment")["default"]), 13) if augment else None
    dl = DataLoader(stream(shard_list, tok, fe, aug), batch_size=8, num_workers=2,
                    collate_fn=SpeechCollator(50258, 50257))
    it = iter(dl)
    next(it)
    t0, got = time.perf_counter(), 0
    while got < n:
        got += next(it)["sweaug"]["samples"]
    return got / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--loader-windows", type=int, default=64)
    ap.add_argument("--workdir", type=Path)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="sweaug-windows-training-"))
    corpus = work / "corpus"
    if not (corpus / "manifest.json").exists():
        cli("build", "--sources", "cv", "--cv-dir", REPO / "sweaug" / "sample" / "demo", "--out",
            corpus, "--no-progress")
    if not (work / "win" / "manifest.json").exists():
        cli("windows", corpus / "cv", "--out", work / "win", "--seed", "13", "--no-progress")
    clips, wins = shards(corpus, "cv"), shards(work / "win", "win")
    speech = {**seconds_by_key(clips), **seconds_by_key(wins)}
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}, 2 threads, 2 workers")
    print(f"1. training throughput, tiny Whisper with a 30-s encoder, batch 8, {args.steps} "
          f"steps each:")
    for vocab in ("full", "transcripts"):
        res = {}
        print("   softmax over " + ("all 51,865 tokens:" if vocab == "full" else
                                  "the training transcripts' tokens (vocabulary: transcripts):"))
        for name, sh in (("single clips", clips), ("30-s windows", wins)):
            r = train_speed(sh, args.steps, work / f"trace-{vocab}-{name.replace(' ', '-')}",
                            [clips, wins] if vocab == "transcripts" else None)
            audio = sum(speech[k] for k in r["keys"])
            res[name] = audio / r["seconds"]
            print(f"     {name}: {r['seconds'] / r['steps']:.2f} s/step, {len(r['keys'])} samples, "
                  f"{audio:.0f} s transcribed audio, {r['label_tokens'] / r['steps']:.0f} label "
                  f"tokens/step -> {res[name]:.1f} audio-s per training-s")
            res[name + " s/step"] = r["seconds"] / r["steps"]
        ratio = res["30-s windows"] / res["single clips"]
        print(f"     windows vs single clips: {ratio:.1f}x (goal >= 4x)")
        step_ratio = res["single clips s/step"] / res["30-s windows s/step"]
        # CV sv-SE speech shares from benchmarks/windows_bench.py (padded 13.4 %, windows 87.1 %)
        cv = 0.871 / 0.134 * step_ratio
        print(f"     derived for CV sv-SE clip lengths: speech share 87.1 % vs 13.4 % "
              f"(windows_bench.py, log-normal model of CV 17.0 sv-SE) x this step-time ratio "
              f"{step_ratio:.2f} -> {cv:.1f}x")
    print(f"2. on-the-fly loader for 30-s windows, 2 DataLoader workers, {args.loader_windows} "
          f"windows after the first batch:")
    for augment in (False, True):
        ws = loader_speed(wins, args.loader_windows, augment)
        print(f"   {'with' if augment else 'without'} augmentation (default recipe): "
              f"{ws:.1f} windows/s ({ws / 28:.2f}x of the ~28 windows/s whisper-small trains "
              f"at on an A100)")


if __name__ == "__main__":
    main()
