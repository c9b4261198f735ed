"""``sweaug windows``: Whisper's own training format from any shard folder (issue #17).

Consecutive utterances of one split packed into windows of up to ``--seconds`` (30 s), with
segment timestamps, the previous text for prompt training, and no-speech windows.

- ``vad.py``      the energy VAD that trims each clip's leading and trailing silence
- ``plan.py``     the pure part: which utterances go into which window, where, with which
                  flags (all randomness drawn here and recorded), and the target text
- ``nospeech.py`` no-speech audio (noise, silence) from a folder
- ``stage.py``    the stage: one job per input shard, shards, resume, manifest
"""
