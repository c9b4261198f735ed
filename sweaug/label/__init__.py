"""Teacher labels (``sweaug label``): a Whisper teacher transcribes a shard folder; its
transcripts are scored against the existing ones, weak labels are dropped (counted by reason),
unlabelled audio is pseudo-labelled. teacher.py runs the model, checks.py decides, stage.py is
the per-shard job and the manifest."""
