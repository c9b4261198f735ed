"""`sweaug app`: the models a run offers, transcription with language/task forced (chunked,
bad input -> a message), the served page through Gradio's client and headless Chromium, and
`--export-space` (the exported Space's own app.py transcribes a fixture clip)."""
from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import FIX, ROOT, sweaug, tiny_recipe

CLIPS = FIX / "cv" / "cv-corpus-12.0-2022-12-07" / "sv-SE" / "clips"
CLIP = CLIPS / "common_voice_sv-SE_36100162.mp3"  # 48 kHz mono espeak-ng Swedish, 2.1 s
RECIPE = tiny_recipe("tiny", 5, """\
evaluation: {sets: [cv/test], max_samples: 3, bootstrap: 100, max_new_tokens: 8}
reference: cv
mixes:
  - name: cv
    data: {cv/train: 1.0}
  - name: cv-long
    data: {cv/train: 1.0}
    training: {max_steps: 50}
""", max_steps=3, logging_steps=1, save_steps=100)


@pytest.fixture(scope="module")
def run(tmp_path_factory, env) -> Path:
    """A real tiny ablation run: mix `cv` finished; `cv-long` killed during training (a
    checkpoint folder, no results.json)."""
    base = tmp_path_factory.mktemp("app")
    corpus = base / "corpus"
    sweaug(env, "build", "--sources", "cv", "--cv-dir", ROOT / "sweaug" / "sample" / "cv",
           "--out", corpus, "--no-progress")
    (base / "r.yaml").write_text(RECIPE)
    sweaug(env, "ablate", base / "r.yaml", "--corpus", corpus, "--out", base / "runs",
           "--mix", "cv")
    run = base / "runs" / "tiny"
    (run / "cv-long" / "checkpoints" / "checkpoint-20").mkdir(parents=True)
    return run


@pytest.fixture(scope="module")
def app(run):
    from sweaug.app import discover
    from sweaug.app.transcribe import App

    entries, _ = discover(run)
    return App(entries, max_minutes=0.25)  # 15 s: long clips are cheap to make here


def _wav(path: Path, audio: np.ndarray, sr: int) -> Path:
    sf.write(path, audio, sr, subtype="PCM_16")
    return path


def _speech(sr: int = 16000) -> np.ndarray:
    """The fixture clip, mono, at ``sr``."""
    from sweaug.build.audio import decode, to_mono_16k

    x, src = decode(str(CLIP))
    mono = to_mono_16k(x, src)
    if sr != 16000:
        import soxr
        mono = soxr.resample(mono, 16000, sr)
    return mono.astype(np.float32)


# ---------------------------------------------------------------- what is offered


def test_run_offers_finished_mixes_only(run, tmp_path):
    from sweaug.app import AppError, discover

    entries, skipped = discover(run)
    assert [e.name for e in entries] == ["cv"]
    assert "not finished" in skipped["cv-long"]
    cv = entries[0]
    assert cv.model == str(run / "cv" / "model") and cv.base_model == "tiny-random"
    assert cv.trained_on.startswith("cv 30 samples") and cv.steps == 3
    res = json.loads((run / "cv" / "results.json").read_text())["eval"]["cv/test"]
    assert cv.evals[0]["set"] == "cv/test" and cv.evals[0]["wer"] == res["wer"]
    assert f"{100 * res['wer']:.1f} %" in cv.wer_line() and "3 of 8 evaluated" in cv.wer_line()
    assert "| cv/test |" in cv.info_markdown() and "Trained on: cv 30 samples" in cv.info_markdown()
    # one mix folder, and its model folder, serve the same model
    assert discover(run / "cv")[0] == entries and discover(run / "cv" / "model")[0] == entries
    with pytest.raises(AppError, match=r"mix 'cv-long' cannot be served: not finished"):
        discover(run, ["cv-long"])
    with pytest.raises(AppError, match=r"mix 'nope' does not exist; finished: cv"):
        discover(run, ["nope"])
    # a plain model folder (no results): served, its WER unknown
    plain = tmp_path / "whisper-sv"
    shutil.copytree(run / "cv" / "model", plain)
    (entry,), _ = discover(plain)
    assert entry.name == "whisper-sv" and entry.evals == () and "unknown" in entry.wer_line()
    # a run whose mixes are all unfinished, and a folder that is nothing
    bare = tmp_path / "bare"
    (bare / "cv" / "checkpoints").mkdir(parents=True)
    shutil.copy(run / "run.json", bare / "run.json")
    with pytest.raises(AppError, match=r"no finished mix to serve \(cv: not finished .*"
                                       r"cv-long: not started"):
        discover(bare)
    with pytest.raises(AppError, match="neither an ablation run folder"):
        discover(tmp_path / "bare" / "cv" / "checkpoints")


def test_model_card_with_a_paired_difference():
    from sweaug.app import ModelEntry

    ev = {"set": "cv/test", "wer": 0.2012, "wer_lo": 0.19, "wer_hi": 0.213, "nwer": 0.15,
          "nwer_lo": 0.14, "nwer_hi": 0.16, "n": 5259, "n_total": 5259, "capped": False,
          "reference": "cv", "diff": -0.012, "diff_lo": -0.02, "diff_hi": -0.004,
          "verdict": "better"}
    e = ModelEntry.from_json({"name": "cv+aug", "model": "models/cv_aug", "steps": 4000,
                              "trained_on": "cv 9 samples", "evals": [ev],
                              "base_model": "openai/whisper-small"})
    assert ModelEntry.from_json(e.to_json()) == e
    md = e.info_markdown()
    assert "**cv+aug** — fine-tuned from `openai/whisper-small` for 4000 steps" in md
    assert "| cv/test | 20.1 % (19.0–21.3) | 15.0 % (14.0–16.0) | 5259 | -1.2 (-2.0 to -0.4) " \
           "vs cv: better |" in md
    assert e.wer_line() == "WER on cv/test 20.1 % (95 % CI 19.0–21.3 %)"


def test_cli_refuses_clearly(run, tmp_path, env):
    bare = tmp_path / "bare"
    (bare / "cv" / "checkpoints").mkdir(parents=True)
    p = sweaug(env, "app", bare, check=False)
    assert p.returncode == 2 and "no finished mix to serve" in p.stderr, p.stderr
    p = sweaug(env, "app", tmp_path / "missing", check=False)
    assert p.returncode == 2 and "no such folder" in p.stderr
    p = sweaug(env, "app", run, "--max-minutes", "0", "--export-space", tmp_path / "s", check=False)
    assert p.returncode == 2 and "--max-minutes must be positive" in p.stderr
    # without gradio (the optional extra): a clear error before any model loads
    no_gradio = "import sys; sys.modules['gradio'] = None; from sweaug.cli import main; main()"
    p = subprocess.run([sys.executable, "-c", no_gradio, "app", str(run)], env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "needs the app extra" in p.stderr \
        and 'pip install -c constraints.txt -e ".[app]"' in p.stderr, p.stderr
    assert "Traceback" not in p.stderr


# ---------------------------------------------------------------- transcription


def test_chunks_cut_at_pauses_within_the_window():
    from sweaug.app.transcribe import chunk_bounds

    sr, window = 16000, 5 * 16000
    rng = np.random.default_rng(0)
    parts, pauses = [], []
    for i in range(6):  # 1.9 s of "speech", then 0.4 s of silence
        parts.append(0.3 * rng.standard_normal(int(1.9 * sr)).astype(np.float32))
        start = sum(p.size for p in parts)
        pauses.append((start, start + int(0.4 * sr)))
        parts.append(np.zeros(int(0.4 * sr), np.float32))
    audio = np.concatenate(parts)
    bounds = chunk_bounds(audio, window)
    assert bounds[0][0] == 0 and bounds[-1][1] == audio.size
    assert all(a < b and b - a <= window for a, b in bounds)
    assert all(bounds[i][1] == bounds[i + 1][0] for i in range(len(bounds) - 1))
    for _, cut in bounds[:-1]:  # every cut falls in a pause
        assert any(lo <= cut < hi for lo, hi in pauses), cut
    assert chunk_bounds(audio, window) == bounds
    assert chunk_bounds(audio[:window], window) == [(0, window)]


def test_predict_transcribes_any_format_and_explains_bad_input(app, tmp_path):
    from sweaug.app.transcribe import chunk_bounds

    text, status = app.predict(str(CLIP), "cv")
    assert isinstance(text, str) and text and status.startswith("Transcribed 2.1 s")
    assert "language 'sv' and task 'transcribe' forced" in status
    assert "Model **cv**" in status and "WER on cv/test" in status
    # 44.1 kHz stereo WAV of the same speech: decoded, downmixed and resampled
    stereo = np.stack([_speech(44100), 0.5 * _speech(44100)], axis=1)
    text, status = app.predict(str(_wav(tmp_path / "stereo.wav", stereo, 44100)), "cv")
    assert text and status.startswith("Transcribed 2.1 s of audio in 1 piece"), status
    # 12 s (a longer recording): cut into window-sized pieces, one transcript
    long = np.concatenate([np.concatenate([_speech(), np.zeros(8000, np.float32)])] * 5)
    text, status = app.predict(str(_wav(tmp_path / "long.wav", long, 16000)), "cv")
    pieces = [long[a:b] for a, b in chunk_bounds(long, 5 * 16000)]
    assert len(pieces) >= 3 and all(p[-1] == 0 for p in pieces[:-1])  # each ends in a pause
    assert text and f"Transcribed 12.9 s of audio in {len(pieces)} pieces of at most 5 s" \
        in status, status
    bad = {
        "silence.wav": (_wav(tmp_path / "silence.wav", np.zeros(32000, np.float32), 16000),
                        "silence.wav is silent"),
        "over.wav": (_wav(tmp_path / "over.wav", np.tile(_speech(), 8), 16000),
                     "over.wav is 0.3 minutes long; this app transcribes at most 0.25 minutes"),
        "notes.mp3": (tmp_path / "notes.mp3", "Could not read notes.mp3: it is not an audio file"),
        "empty.wav": (tmp_path / "empty.wav", "Could not read empty.wav: it is empty"),
        "none": (None, "No audio: record with the microphone or upload a file first"),
    }
    (tmp_path / "notes.mp3").write_text("not audio at all\n")
    (tmp_path / "empty.wav").write_bytes(b"")
    for name, (path, message) in bad.items():
        text, status = app.predict(None if path is None else str(path), "cv")
        assert text == "" and status.startswith("⚠️") and message in status, (name, status)
        assert str(tmp_path) not in status  # the server's paths are not shown
    # the default cap: a recording over 10 minutes is refused from its header, before decoding
    from sweaug.app.transcribe import load_audio
    from sweaug.app import AppError
    lecture = _wav(tmp_path / "lecture.wav", np.zeros(int(10.5 * 60 * 8000), np.float32), 8000)
    with pytest.raises(AppError, match=r"lecture.wav is 10.5 minutes long; this app transcribes "
                                       r"at most 10 minutes. Cut it into shorter parts."):
        load_audio(str(lecture), 600)
    text, status = app.predict(str(CLIP), "nope")
    assert text == "" and "Unknown model 'nope'; choose one of: cv" in status


def test_a_model_that_cannot_be_forced_to_swedish_is_refused(run, tmp_path):
    from sweaug.app import discover
    from sweaug.app.transcribe import App

    bad = tmp_path / "unforced"
    shutil.copytree(run / "cv" / "model", bad)
    gen = json.loads((bad / "generation_config.json").read_text())
    del gen["lang_to_id"]  # generate() would detect the language clip by clip
    (bad / "generation_config.json").write_text(json.dumps(gen))
    (entry,), _ = discover(bad)
    text, status = App([entry]).predict(str(CLIP))
    assert text == "" and "cannot force language 'sv' and task 'transcribe'" in status
    assert "no lang_to_id" in status and "not served" in status


def test_predict_reads_formats_libsndfile_does_not_through_ffmpeg(app, tmp_path):
    if shutil.which("ffmpeg") is None:
        pytest.fail("this test needs ffmpeg: apt-get install ffmpeg (.ci/run does this)",
                    pytrace=False)
    webm = tmp_path / "recording.webm"  # what some browsers record
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(CLIP), "-c:a", "libopus",
                    str(webm)], check=True)
    text, status = app.predict(str(webm), "cv")
    assert text and status.startswith("Transcribed 2.1 s"), status


# ---------------------------------------------------------------- the served page


def _client():
    """gradio_client's ``Client`` and ``handle_file``, or fail saying what to install."""
    try:
        from gradio_client import Client, handle_file
    except ImportError:
        pytest.fail("the app tests need gradio and its client: pip install -c constraints.txt "
                    "-e '.[test,app]' (.ci/run does this)", pytrace=False)
    return Client, handle_file


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _served(args: list[str], env: dict, log: Path, cwd: Path | None = None):
    """Run ``python ARGS`` (a gradio server on ``env["GRADIO_SERVER_PORT"]``) until its page
    answers; yield its URL; stop it."""
    url = f"http://127.0.0.1:{env['GRADIO_SERVER_PORT']}/"
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, *args], env=env, cwd=cwd, stdout=fh,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"{args} exited ({proc.returncode}):\n{log.read_text()}")
            try:
                urllib.request.urlopen(url, timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"{args} did not answer on {url}:\n{log.read_text()}")
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _server_env(env: dict, tmp: Path) -> dict:
    return dict(env, GRADIO_SERVER_PORT=str(_free_port()), GRADIO_TEMP_DIR=str(tmp / "gradio"),
                NO_PROXY="127.0.0.1,localhost")


@pytest.fixture(scope="module")
def server(run, env, tmp_path_factory):
    """`sweaug app RUN --port P` served on localhost (a subprocess, as a user runs it)."""
    tmp = tmp_path_factory.mktemp("server")
    e = _server_env(env, tmp)
    log = tmp / "app.log"
    with _served(["-m", "sweaug.cli", "app", str(run), "--port", e["GRADIO_SERVER_PORT"]], e,
                 log) as url:
        yield url, log


def test_gradio_client_transcribes_through_the_server(server, tmp_path):
    Client, handle_file = _client()
    url, log = server
    client = Client(url, verbose=False)
    text, status = client.predict(handle_file(str(CLIP)), "cv", api_name="/transcribe")
    assert isinstance(text, str) and text and status.startswith("Transcribed 2.1 s"), status
    assert "Model **cv** — WER on cv/test" in status
    (tmp_path / "slides.pdf").write_bytes(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n")
    text, status = client.predict(handle_file(str(tmp_path / "slides.pdf")), "cv",
                                  api_name="/transcribe")
    assert text == "" and "⚠️ Could not read slides.pdf" in status
    info = client.predict("cv", api_name="/info")
    assert "**cv** — fine-tuned from `tiny-random`" in info and "| cv/test |" in info
    assert "Traceback" not in log.read_text()


def test_page_in_headless_chromium(server, tmp_path):
    from browser import open_page

    url, log = server
    shot = tmp_path / "app.png"
    with open_page(url) as page:
        page.wait_for_selector("#transcribe")
        body = page.inner_text("body")
        assert "Swedish speech recognition (sweaug)" in body
        assert "at most **" not in body  # the markdown is rendered
        assert "Trained on: cv 30 samples" in body and "cv/test" in body
        assert "10 minutes" in body and "5 s" in body
        page.locator("#audio input[type=file]").set_input_files(str(CLIP))
        page.wait_for_timeout(500)
        page.click("#transcribe")
        page.wait_for_function(
            "() => document.querySelector('#status')?.innerText.includes('Transcribed')",
            timeout=60_000)
        assert "Model cv — WER on cv/test" in page.inner_text("#status")
        assert page.input_value("#transcript textarea")
        page.screenshot(path=str(shot), full_page=True)
        assert page.errors == [], page.errors
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


# ---------------------------------------------------------------- --export-space


def test_export_space_runs_on_its_own(run, tmp_path, env):
    from huggingface_hub import SpaceCard

    space = tmp_path / "space"
    p = sweaug(env, "app", run, "--export-space", space)
    assert f"wrote a Hugging Face Space to {space} (cv)" in p.stdout
    assert "not offered: cv-long: not finished" in p.stderr
    card = SpaceCard.load(space / "README.md")
    from importlib.metadata import version
    assert card.data.sdk == "gradio" and card.data.app_file == "app.py"
    assert card.data.sdk_version == version("gradio") and card.data.title
    assert "| cv |" in card.text and "WER on cv/test" in card.text
    reqs = (space / "requirements.txt").read_text()
    assert "transformers>=" in reqs and "torch>=" in reqs and "soxr>=" in reqs
    assert "num2words>=" in reqs  # sweaug/text.py, the normalized WER's normalizer
    cfg = json.loads((space / "sweaug_space.json").read_text())
    assert cfg["language"] == "sv" and cfg["task"] == "transcribe"
    assert [(m["name"], m["model"], m["local"]) for m in cfg["models"]] == [("cv", "models/cv",
                                                                              True)]
    for f in (run / "cv" / "model").iterdir():
        assert (space / "models" / "cv" / f.name).read_bytes() == f.read_bytes()
    # the same inputs give the same bytes; an earlier export is replaced in place
    again = tmp_path / "again"
    sweaug(env, "app", run, "--export-space", again)
    files = sorted(q.relative_to(space) for q in space.rglob("*") if q.is_file())
    assert files == sorted(q.relative_to(again) for q in again.rglob("*") if q.is_file())
    assert all((space / f).read_bytes() == (again / f).read_bytes() for f in files)
    sweaug(env, "app", run, "--export-space", again)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    p = sweaug(env, "app", run, "--export-space", tmp_path / "taken", check=False)
    assert p.returncode == 2 and "is not an earlier Space export" in p.stderr
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"
    assert not [q for q in tmp_path.iterdir() if q.name.startswith(".")]  # no temp left
    # the Space's app.py, run from its folder as the Space runs it, on sweaug's modules that
    # the Space carries (not the installed sweaug), queried through Gradio's client
    code = ("import runpy, sys, sweaug; "
            "assert sweaug.__file__.startswith(sys.argv[1]), sweaug.__file__; "
            "runpy.run_path('app.py', run_name='__main__')")
    e = _server_env({k: v for k, v in env.items() if k != "PYTHONPATH"}, tmp_path)
    with _served(["-c", code, str(space)], e, tmp_path / "space.log", cwd=space) as url:
        Client, handle_file = _client()
        text, status = Client(url, verbose=False).predict(handle_file(str(CLIP)), "cv",
                                                          api_name="/transcribe")
    assert text and status.startswith("Transcribed 2.1 s") and "Model **cv**" in status
    # --model-id: the Space loads a Hub model instead of carrying the files
    hub = tmp_path / "hub"
    sweaug(env, "app", run, "--export-space", hub, "--model-id", "someone/whisper-sv")
    cfg = json.loads((hub / "sweaug_space.json").read_text())
    assert [(m["model"], m["local"]) for m in cfg["models"]] == [("someone/whisper-sv", False)]
    assert not (hub / "models").exists()
    assert SpaceCard.load(hub / "README.md").data.models == ["someone/whisper-sv"]
    p = sweaug(env, "app", run, "--model-id", "someone/whisper-sv", check=False)
    assert p.returncode == 2 and "--model-id goes with --export-space" in p.stderr
