"""``sweaug app``: a Gradio page that transcribes Swedish speech with the fine-tuned models of an
ablation run (or one model folder), showing what each was trained on and its WER.

* ``models.py`` — what to serve: finished mixes of a run (``<mix>/model/`` + ``results.json``),
  one mix, or a plain model folder; each model's training data and WER (with CI) for the page.
* ``transcribe.py`` — any upload -> 16 kHz mono (``sweaug.build.audio``) -> window-sized pieces cut at
  quiet moments -> Whisper with language and task forced; ``App.predict`` (plain, importable:
  ``(audio_path, mix) -> (transcript, status)``; bad input -> a status message, never raises).
* ``ui.py`` — the ``gr.Blocks`` page (gradio is imported only there: ``sweaug[app]``).
* ``space.py`` — ``--export-space DIR``: a ready Hugging Face Space.
"""
from .models import AppError, ModelEntry, discover

__all__ = ["AppError", "ModelEntry", "discover"]
