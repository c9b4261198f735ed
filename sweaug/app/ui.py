"""The Gradio page of ``sweaug app`` (built lazily: gradio is the optional extra ``sweaug[app]``).

Analytics are off (``GRADIO_ANALYTICS_ENABLED=False``, ``analytics_enabled=False``), no share
link is ever opened, and the default theme's fonts are served by gradio itself: the page loads
nothing from outside the app.
"""
from __future__ import annotations

import os

from .models import AppError
from .transcribe import FORMATS, App

TITLE = "Swedish speech recognition (sweaug)"


def gradio():
    """The gradio module, with analytics off; :class:`AppError` when it is not installed."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        import gradio as gr
    except ImportError:
        raise AppError("the app needs gradio, which is not installed: pip install "
                       '-c constraints.txt -e ".[app]"') from None
    return gr


def intro(app: App, seconds: float) -> str:
    return (f"Record with the microphone or upload a recording ({FORMATS}; any sample rate, "
            f"mono or stereo) and get its transcript. Language and task are forced: every "
            f"transcript is Swedish (`language={app.language!r}`, `task={app.task!r}`), never a "
            f"translation or another language Whisper thinks it hears. Recordings of up to "
            f"**{app.max_seconds / 60:g} minutes** are cut into pieces of at most {seconds:g} s "
            f"(the model's window) at the quietest moments; longer ones are refused.")


def build_ui(app: App):
    """The ``gr.Blocks`` page: model picker with the model's training data and WER, audio input,
    transcript and status. ``app.predict`` is exposed to clients as ``/transcribe``."""
    gr = gradio()
    default = app.names[0]
    seconds = app.load(default).seconds  # the default model loads now: errors show at start
    with gr.Blocks(title=app.title or TITLE, analytics_enabled=False) as demo:
        gr.Markdown(f"# {app.title or TITLE}\n\n{intro(app, seconds)}")
        with gr.Row():
            with gr.Column(scale=1):
                mix = gr.Dropdown(app.names, value=default, label="Model (training mix)",
                                  interactive=len(app.names) > 1, elem_id="mix")
                info = gr.Markdown(app.info(default), elem_id="model-info")
            with gr.Column(scale=1):
                audio = gr.Audio(sources=["upload", "microphone"], type="filepath",
                                 label="Swedish speech", elem_id="audio", buttons=["download"])
                button = gr.Button("Transcribe", variant="primary", elem_id="transcribe")
        text = gr.Textbox(label="Transcript", lines=4, interactive=False, buttons=["copy"],
                          elem_id="transcript")
        status = gr.Markdown(elem_id="status")
        mix.change(app.info, mix, info, api_name="info")
        button.click(app.predict, [audio, mix], [text, status], api_name="transcribe")
    return demo


def upload_limit(app: App) -> int:
    """Bytes an upload may have: the longest recording served as 48 kHz stereo 32-bit float WAV
    (the largest common format), plus 10 %; gradio refuses larger uploads with a message."""
    return int(app.max_seconds * 48_000 * 2 * 4 * 1.1) + (1 << 20)


def launch(demo, app: App, host: str | None = None, port: int | None = None) -> None:
    """Serve ``demo`` (built from ``app``) until interrupted, one transcription at a time, never
    with a share link (``host``/``port`` None: gradio's defaults, e.g. what a Space sets)."""
    demo.queue(default_concurrency_limit=1)
    demo.launch(server_name=host, server_port=port, share=False, inbrowser=False,
                show_error=True, max_file_size=upload_limit(app))


def serve(app: App, host: str = "127.0.0.1", port: int | None = None) -> None:
    """Build the page and serve it until interrupted."""
    launch(build_ui(app), app, host, port)
