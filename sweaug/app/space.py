"""``sweaug app ... --export-space DIR``: a ready Hugging Face Space (Gradio SDK).

The Space holds ``README.md`` (Space metadata: ``sdk: gradio``, ``sdk_version``, ``app_file``...,
written with huggingface_hub's ``SpaceCardData``), ``app.py``, ``requirements.txt``,
``sweaug_space.json`` (the models with their training data and WER), the model files under
``models/<mix>/`` (or, with ``--model-id``, a Hub model id the Space loads), and the few
modules of sweaug the app runs on (``sweaug/build/audio.py``, ``build/text.py`` — the
normalizer that ``train/evaluate.py`` imports — ``train/features.py``, ``train/evaluate.py``,
``train/pretrained.py`` (where a model loads from), ``app/``: the standard library, numpy,
soundfile, soxr, num2words, torch and transformers only), so that the Space runs the very code
tested here.

Written into a temporary folder beside ``DIR`` and renamed into place; an earlier export in
``DIR`` is replaced, any other non-empty ``DIR`` is refused.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from .models import AppError, ModelEntry

CONFIG = "sweaug_space.json"
PACKAGE = Path(__file__).resolve().parents[1]
#: what the Space's app imports (checked by the tests: the exported app runs on these alone)
VENDORED = ("__init__.py", "records.py", "build/__init__.py", "build/audio.py", "build/text.py",
            "train/__init__.py",
            "train/features.py", "train/pretrained.py",
            "train/evaluate.py", "app/__init__.py", "app/models.py", "app/transcribe.py",
            "app/ui.py")
MODEL_FILES = re.compile(r".*\.json|.*\.safetensors|merges\.txt|vocab\.txt|.*\.tiktoken")
GRADIO_TESTED = "6.31.0"  # sdk_version when gradio is not installed where the export runs
REQUIREMENTS = ("torch", "transformers", "numpy", "soundfile", "soxr", "num2words")
HUB_ID = r"[\w.-]+/[\w.-]+"  # owner/name

APP_PY = '''\
"""Swedish speech recognition: a Hugging Face Space written by `sweaug app --export-space`.

The models, their training data and WER are in sweaug_space.json; the code is sweaug's own
(sweaug/app/). Language and task are forced to {language!r} / {task!r} for every transcript.
Locally: pip install gradio -r requirements.txt && python app.py
"""
import json
import os
from pathlib import Path

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

from sweaug.app.models import ModelEntry  # noqa: E402
from sweaug.app.transcribe import App  # noqa: E402
from sweaug.app.ui import build_ui, launch  # noqa: E402

HERE = Path(__file__).resolve().parent
CONFIG = json.loads((HERE / "{config}").read_text(encoding="utf-8"))
APP = App([ModelEntry.from_json({{**m, "model": str(HERE / m["model"]) if m["local"]
                                  else m["model"]}}) for m in CONFIG["models"]],
          max_minutes=CONFIG["max_minutes"],
          language=CONFIG["language"], task=CONFIG["task"], title=CONFIG["title"])
predict = APP.predict  # (audio file path, model name) -> (transcript, status)
demo = build_ui(APP)

if __name__ == "__main__":
    launch(demo, APP)
'''

README_BODY = """
# {title}

Record or upload Swedish speech and get its transcript from a Whisper model fine-tuned in an
ablation run of sweaug (`sweaug ablate`). Language and task are forced
(`language={language!r}`, `task={task!r}`) for every transcript. Recordings up to {minutes:g}
minutes are cut into pieces of the model's window at the quietest moments; longer ones are
refused with a message.

| model (training mix) | trained on | WER |
|---|---|---|
{rows}

Files: `app.py` (the Space), `{config}` (the models above), `models/` (model files, when not a
Hub model), `sweaug/` (the parts of sweaug the app runs on, Apache-2.0).

Upload: `hf upload OWNER/NAME . --repo-type space` from this folder (after `hf auth login`).
"""


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"


def _requirements() -> str:
    lines = ["# written by `sweaug app --export-space`; gradio comes from the README's "
             "sdk_version"]
    for pkg in REQUIREMENTS:
        try:
            v = [int(x) for x in re.findall(r"\d+", version(pkg))[:2]]
        except (PackageNotFoundError, ValueError):
            lines.append(pkg)
            continue
        lines.append(f"{pkg}>={v[0]}.{v[1]},<{v[0] + 1}")
    return "\n".join(lines) + "\n"


def _gradio_version() -> str:
    try:
        return version("gradio")
    except PackageNotFoundError:
        return GRADIO_TESTED


def _readme(entries: list[ModelEntry], cfg: dict, model_id: str | None) -> str:
    from huggingface_hub import SpaceCard, SpaceCardData

    data = SpaceCardData(
        title=cfg["title"][:80], sdk="gradio", sdk_version=_gradio_version(),
        python_version="3.11", app_file="app.py", license="apache-2.0",
        models=sorted({m for m in [model_id, *(e.base_model for e in entries)]
                       if m and re.fullmatch(HUB_ID, m) and not Path(m).exists()}) or None,
        tags=["automatic-speech-recognition", "whisper", "swedish", "sweaug"],
        emoji="🎙️", colorFrom="blue", colorTo="yellow", pinned=False,
        short_description="Swedish speech recognition with fine-tuned Whisper"[:60])
    rows = "\n".join(f"| {e.name} | {e.trained_on or 'unknown'} | {e.wer_line()} |"
                     for e in entries)
    body = README_BODY.format(title=cfg["title"], language=cfg["language"], task=cfg["task"],
                              minutes=cfg["max_minutes"], rows=rows, config=CONFIG)
    return str(SpaceCard(f"---\n{data.to_yaml()}\n---\n{body}"))


def _copy_model(src: Path, dst: Path) -> None:
    files = sorted(p for p in src.iterdir() if p.is_file() and MODEL_FILES.fullmatch(p.name))
    if not any(p.name.endswith(".safetensors") for p in files):
        files += sorted(src.glob("pytorch_model*.bin"))
    dst.mkdir(parents=True)
    for p in files:
        shutil.copyfile(p, dst / p.name)


def export_space(entries: list[ModelEntry], out: Path, model_id: str | None = None,
                 title: str = "", max_minutes: float = 10.0, language: str = "sv",
                 task: str = "transcribe") -> Path:
    """Write the Space for ``entries`` to ``out`` (see the module docstring); returns ``out``."""
    from .ui import TITLE

    out = Path(out)
    if not max_minutes > 0:
        raise AppError(f"--max-minutes must be positive, got {max_minutes}")
    if model_id is not None:
        if not re.fullmatch(HUB_ID, model_id):
            raise AppError(f"--model-id {model_id!r} is not a Hub model id (owner/name)")
        if len(entries) != 1:
            raise AppError("--model-id names one Hub model: pick the mix it was trained as with "
                           "--mix (finished: " + ", ".join(e.name for e in entries) + ")")
    if out.exists() and not out.is_dir():
        raise AppError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / CONFIG).is_file():
        raise AppError(f"{out}: exists and is not an earlier Space export (no {CONFIG}); "
                       f"choose another folder or empty it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        models, used = [], set()
        for e in entries:
            if model_id:
                models.append({**e.to_json(), "model": model_id, "local": False})
                continue
            slug = _slug(e.name)
            while slug in used:
                slug += "_"
            used.add(slug)
            _copy_model(Path(e.model), tmp / "models" / slug)
            models.append({**e.to_json(), "model": f"models/{slug}", "local": True})
        cfg = {"title": title or TITLE, "language": language, "task": task,
               "max_minutes": max_minutes, "models": models}
        (tmp / CONFIG).write_text(json.dumps(cfg, ensure_ascii=False, indent=1, sort_keys=True)
                                  + "\n", encoding="utf-8")
        (tmp / "app.py").write_text(APP_PY.format(config=CONFIG, language=language, task=task),
                                    encoding="utf-8")
        (tmp / "requirements.txt").write_text(_requirements(), encoding="utf-8")
        (tmp / "README.md").write_text(_readme(entries, cfg, model_id), encoding="utf-8")
        (tmp / ".gitattributes").write_text(
            "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n"
                    for p in ("*.safetensors", "*.bin")), encoding="utf-8")
        for rel in VENDORED:
            (tmp / "sweaug" / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(PACKAGE / rel, tmp / "sweaug" / rel)
        os.chmod(tmp, 0o755)
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old{os.getpid()}")
            os.replace(out, old)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
