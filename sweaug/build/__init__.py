"""Stage 2, ``sweaug build``: the records of every source -> one normalized, filtered corpus of
deterministic WebDataset tar shards with a manifest.

* ``pipeline.py`` — one build, the orchestrator: sources -> text -> filters + leakage ->
  partitions -> jobs -> manifest;
* ``text.py`` — transcript normalization (the training target and the comparison form);
* ``audio.py`` — decode, downmix, resample to 16 kHz (soxr), quality checks, 16-bit FLAC;
* ``filters.py`` — training-set filters, each a named drop reason;
* ``leakage.py`` — no training sentence or speaker shared with an evaluation set;
* ``partitions.py`` — deterministic partitions of the record stream and the worker that turns
  one into shards;
* ``shards.py`` — atomic, byte-deterministic tar shards (write and read);
* ``jobs.py`` — resume, staging, final shard names (build and augment share it);
* ``executors.py`` — where a job runs: this process, a process pool or Ray;
* ``storage.py`` — a local folder or an fsspec URL as the output, with its lock;
* ``manifest.py`` — reading a corpus manifest and showing it as a table.

Imports ``sweaug.records``, ``sweaug.files``, ``sweaug.sources`` (and the package version)
only; nothing is imported here, and no lower stage imports this package.
"""
