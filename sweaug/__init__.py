"""sweaug: build, augment and ablate Swedish speech corpora for Whisper fine-tuning.

The data path, one module per stage::

    sources/<corpus>.py -> records.Utterance -> text.py + audio.py (normalize)
      -> filters.py + leakage.py (drop, with reasons) -> shards.py (atomic tar shards)
      -> build.py (partitions, executor, resume) -> manifest.py

Nothing heavy is imported here: ``import sweaug`` stays cheap.
"""

__version__ = "0.1.0"
