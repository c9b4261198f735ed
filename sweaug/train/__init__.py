"""Training input: streaming shards -> audio -> (on-the-fly augmentation) -> log-mel features ->
token ids, for transformers' Trainer. ``features.py`` computes Whisper's log-mel features over a
clip's real length only; ``data.py`` is the streaming pipeline; ``labels.py`` builds the token
ids of a sentence or of a ``sweaug windows`` window (timestamps, prompt, no-speech);
``evaluate.py`` scores sentences, ``longform.py`` windows (timestamp error, hallucination rate)
and stitched long-form recordings."""
