"""Stage 6, ``sweaug ablate``: fine-tune one Whisper per data mix and compare their WER.

* ``recipe.py`` — the ablation recipe (YAML): model, training settings, evaluation sets, mixes;
  validated on load, before anything is trained;
* ``run.py`` — plans every mix (preflight: model, memory, disk) and runs them, resumable, each
  through ``sweaug.train.finetune``, then evaluates each model on every set;
* ``report.py`` — the report: WER table with confidence intervals, paired Δ between trained
  mixes, ``report.md``, ``results.csv`` and ``wer.png``.

Nothing is imported here; a lower stage never imports this package.
"""
