"""Evaluation speed before and after issue #15, side by side in one run: clips per second of
``evaluate_set`` on the same clips with the same model.

* ``before``: what ``sweaug ablate`` did — batches in stream order, generation up to the
  decoder's limit (``max_target_positions`` - 4 = 444 tokens for whisper-small), whatever the
  recipe's ``generation_max_length`` said;
* ``after``: batches of clips of similar length (``sort_window`` = 16 batches) and generation
  up to the recipe's ``generation_max_length`` (the seed's 225, so 221 new tokens).

Both run in fp32 on the CPU here (on CUDA, ``sweaug ablate`` also evaluates in the training
precision with SDPA; ``benchmarks/gpu_check.py`` measures that). A random-init model generates
until the limit, so with ``--model tiny-random`` (whisper-small's architecture by default) the
ratio mostly shows the honoured generation length; a trained model (``--model DIR``, e.g. a
mix's ``runs/<recipe>/<mix>/model``) stops at its end token and shows what length sorting
saves. The hypotheses of both runs are compared: sorting must not change a transcript.

    python benchmarks/eval_speed.py --corpus demo-out/corpus --set cv/test --clips 16
    python benchmarks/eval_speed.py --corpus demo-out/corpus --model demo-out/runs/demo/cv/model

Prints one JSON line last: clips/s of each, their ratio, and the settings.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

WHISPER_SMALL = {"d_model": 768, "layers": 12, "heads": 12, "max_target_positions": 448}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, required=True, help="a built corpus")
    ap.add_argument("--set", default="cv/test", help="source/split to evaluate (cv/test)")
    ap.add_argument("--clips", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--model", default="tiny-random",
                    help="a local model folder, or tiny-random (whisper-small's architecture)")
    ap.add_argument("--generation-max-length", type=int, default=225)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)

    import torch

    from sweaug.train.evaluate import evaluate_set, shard_samples
    from sweaug.train.finetune import load_whisper

    torch.set_num_threads(a.threads)
    source, split = a.set.split("/")
    shards = sorted((a.corpus / source).glob(f"{split}-*.tar"))
    if not shards:
        print(f"eval_speed: no {split}-*.tar in {a.corpus / source}", file=sys.stderr)
        return 2
    clips = list(itertools.islice(shard_samples(shards), a.clips))
    tiny = WHISPER_SMALL if a.model == "tiny-random" else {}
    model, fe, tok = load_whisper(a.model, 30.0, tiny, 0, "sv", "transcribe", attention="sdpa")
    model.eval()
    limit = int(model.config.max_target_positions) - 4
    runs = {"before": {"sort_window": 1, "max_new_tokens": limit},
            "after": {"sort_window": None,
                      "max_new_tokens": min(limit, a.generation_max_length - 4)}}
    out = {}
    for name, kw in runs.items():
        t0 = time.perf_counter()
        r = evaluate_set(model, tok, fe, clips, batch_size=a.batch, bootstrap=10, **kw)
        out[name] = {"seconds": round(time.perf_counter() - t0, 3),
                     "clips_per_second": r["clips_per_second"], "hyps": r["hyps"],
                     "max_new_tokens": r["max_new_tokens"], "sort_window": r["sort_window"]}
        print(f"{name}: {r['n']} clips in {out[name]['seconds']} s, "
              f"{r['clips_per_second']} clips/s (max_new_tokens {r['max_new_tokens']}, "
              f"sort_window {r['sort_window']})", flush=True)
    # a transcript cut at 221 tokens is a prefix of the one cut at 444: compare those
    same = all(b.startswith(c) or c.startswith(b)
               for b, c in zip(out["before"]["hyps"], out["after"]["hyps"]))
    report = {"model": a.model, "set": a.set, "clips": len(clips), "batch": a.batch,
              "threads": a.threads,
              "before_clips_per_second": out["before"]["clips_per_second"],
              "after_clips_per_second": out["after"]["clips_per_second"],
              "speedup": round(out["after"]["clips_per_second"]
                               / out["before"]["clips_per_second"], 3),
              "before": {k: v for k, v in out["before"].items() if k != "hyps"},
              "after": {k: v for k, v in out["after"].items() if k != "hyps"},
              "transcripts_agree": same}
    print(json.dumps(report), flush=True)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
