"""Training input: streaming shards -> audio -> (on-the-fly augmentation) -> log-mel features ->
token ids, for transformers' Trainer. ``features.py`` computes Whisper's log-mel features over a
clip's real length only; ``data.py`` is the streaming pipeline."""
