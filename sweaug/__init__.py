"""sweaug: build, augment and ablate Swedish speech corpora for Whisper fine-tuning.

The data path, one package per stage (each ``__init__`` lists its modules)::

    sources/   one module per corpus: download + prepare -> records.Utterance
    build/     text + audio (normalize) -> filters + leakage (drop, with reasons)
               -> partitions -> jobs/executors -> shards (atomic tar) + manifest
    augment/   audiomentations recipes -> augmented shards (same jobs as build)
    train/     Whisper (model, tokenizer), data, mix, vocab -> finetune -> evaluate
    ablate/    recipe -> run (one fine-tune per mix) -> report (WER with CIs)
    publish/   shards and models to the Hugging Face Hub
    view/, app/  a corpus or run as an HTML page; a Gradio app over trained models

At the top: ``records.py`` (the one record type and the errors), ``files.py`` (atomic writes),
``cli.py`` (thin click commands), ``demo.py`` (the bundled end-to-end run). A stage imports
its own modules and earlier stages only (tests/test_layout.py).

Nothing heavy is imported here: ``import sweaug`` stays cheap.
"""

__version__ = "0.1.0"
