"""Training step of the demo's tiny Whisper, side by side in one run (a script, not a timed
test: this machine is noisy): ``vocabulary: full`` with torch's default AdamW (the baseline),
``vocabulary: transcripts``, and ``transcripts`` with the fused AdamW (``optim:
adamw_torch_fused``) — the demo's settings.

The demo's model (2+2 layers, d_model 128, the real 51,865-token vocabulary, 3.2 s window),
batch 8, labels of 19 tokens, AdamW; each step is forward + backward + optimizer step, through
the same code the Trainer runs (``KeptLogits`` as ``proj_out`` and ``kept_token_loss``). Timed alternately, best of ``--rounds`` rounds of ``--steps`` steps, with 1 and
2 torch threads. Prints seconds per step and the speed-up over ``full``.

    python benchmarks/tiny_step.py [--kept 214] [--steps 20] [--rounds 3]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
NAMES = ("full", "transcripts", "transcripts+fused")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kept", type=int, default=214, help="kept tokens (the demo: 214)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()

    import torch
    import transformers

    from sweaug.train.vocab import KeptLogits, index_of, kept_token_loss
    from sweaug.train.whisper import tiny_whisper

    transformers.logging.set_verbosity_error()
    models = {}
    for name in NAMES:
        model, _, _ = tiny_whisper(seconds=3.2, d_model=128, layers=2, heads=4, seed=13)
        model.train()
        models[name] = (model, torch.optim.AdamW(model.parameters(), lr=1e-3,
                                                 fused=name.endswith("fused") or None))
    cfg = models["full"][0].config
    g = torch.Generator().manual_seed(0)
    kept = sorted(set(torch.randperm(50_000, generator=g)[:a.kept - 1].tolist())
                  | {cfg.decoder_start_token_id})
    for name in NAMES[1:]:
        models[name][0].proj_out = KeptLogits(models[name][0].proj_out, kept)
    index = index_of(cfg.vocab_size, kept)
    x = torch.randn(8, 80, 320, generator=g)
    labels = torch.tensor(kept)[torch.randint(0, len(kept), (8, 19), generator=g)]

    def step(name: str) -> None:
        model, opt = models[name]
        if name == "full":
            loss = model(input_features=x, labels=labels).loss
        else:  # the Trainer's loss for `vocabulary: transcripts`
            loss, _ = kept_token_loss(model, {"input_features": x, "labels": labels}, index, cfg)
        loss.backward()
        opt.step()
        opt.zero_grad()

    print(f"tiny Whisper, batch 8, 3.2 s window, labels of 19 tokens; kept tokens: {len(kept)} "
          f"of {cfg.vocab_size}; best of {a.rounds} x {a.steps} steps")
    print(f"{'threads':>7} " + " ".join(f"{n + ' s/step':>24}" for n in NAMES)
          + " " + " ".join(f"{'x ' + n:>24}" for n in NAMES[1:]))
    for threads in (1, 2):
        torch.set_num_threads(threads)
        best = {n: float("inf") for n in models}
        for n in models:
            for _ in range(3):
                step(n)  # warm-up
        for _ in range(a.rounds):
            for n in models:
                t0 = time.perf_counter()
                for _ in range(a.steps):
                    step(n)
                best[n] = min(best[n], (time.perf_counter() - t0) / a.steps)
        print(f"{threads:>7} " + " ".join(f"{best[n]:>24.3f}" for n in NAMES) + " "
              + " ".join(f"{best['full'] / best[n]:>23.2f}x" for n in NAMES[1:]))


if __name__ == "__main__":
    main()
