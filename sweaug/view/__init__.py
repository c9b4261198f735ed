"""``sweaug view``: one self-contained HTML page (no server; opens from disk) of a corpus, a
source folder, an augmented, windows or labelled folder or an ablation run folder.

``render(path, out)`` detects which of those ``path`` is (:func:`detect`), gathers the page's
data (corpus.py, augmented.py, windows.py, labels.py, run.py), and writes the page from the
jinja2 templates in ``templates/`` (autoescaped: corpus text is untrusted). Plots are
matplotlib PNGs and the audio FLAC base64 data URIs, both inside the page; ``audio="files"``
writes the FLACs next to the page instead (``<page>_audio/``), ``audio="none"`` leaves them out.
The same inputs and seed give the same bytes.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from .data import AUDIO_MODES, AUGMENTED_FORMAT, CORPUS_FORMAT, LABELLED_FORMAT, \
    WINDOWS_FORMAT, AudioSink, ViewError

__all__ = ["AUDIO_MODES", "ViewError", "Written", "detect", "render"]
log = logging.getLogger("sweaug.view")


@dataclass(frozen=True)
class Written:
    path: Path
    kind: str  # corpus | source | augmented | windows | labelled | run
    bytes: int
    audio: int  # <audio> elements with a source
    audio_dir: Path | None  # with audio="files"


def _format(mpath: Path) -> str | None:
    try:
        return json.loads(mpath.read_text(encoding="utf-8")).get("format")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        raise ViewError(f"{mpath} is not a valid JSON manifest") from None


def detect(path: Path) -> tuple[str, Path, str | None]:
    """``(kind, folder, source)``: ``("corpus", root, None)``, ``("source", root, name)``,
    ``("augmented" | "windows" | "labelled", folder, None)`` or ``("run", folder, None)``; a
    :class:`ViewError` saying what ``path`` is not, otherwise."""
    from .run import finished_mixes, looks_like_run

    path = Path(path)
    if not path.is_dir():
        raise ViewError(f"{path} is not a folder (give a corpus from `sweaug build`, one of its "
                        f"source folders, an augmented folder or an ablation run folder)")
    mpath = path / "manifest.json"
    if mpath.is_file():
        fmt = _format(mpath)
        if fmt == CORPUS_FORMAT:
            return "corpus", path, None
        if fmt == AUGMENTED_FORMAT:
            return "augmented", path, None
        if fmt == WINDOWS_FORMAT:
            return "windows", path, None
        if fmt == LABELLED_FORMAT:
            return "labelled", path, None
        raise ViewError(f"{mpath} has format {fmt!r}: sweaug view shows {CORPUS_FORMAT} "
                        f"(sweaug build), {AUGMENTED_FORMAT} (sweaug augment), "
                        f"{WINDOWS_FORMAT} (sweaug windows) and {LABELLED_FORMAT} (sweaug label) "
                        f"folders")
    parent = path.resolve().parent / "manifest.json"
    if parent.is_file() and _format(parent) == CORPUS_FORMAT:
        sources = json.loads(parent.read_text(encoding="utf-8")).get("sources", {})
        if path.resolve().name in sources:
            return "source", path.resolve().parent, path.resolve().name
    if looks_like_run(path):
        return "run", path, None
    if (path / "results.json").is_file() and looks_like_run(path.resolve().parent):
        raise ViewError(f"{path} is one model of the ablation run {path.resolve().parent}: "
                        f"pass the run folder")
    runs = sorted(p.name for p in path.iterdir() if p.is_dir() and finished_mixes(p))
    if runs:
        raise ViewError(f"{path} holds ablation runs, not one: pass one of "
                        + ", ".join(str(path / r) for r in runs))
    inner = sorted(p.name for p in path.iterdir() if (p / "manifest.json").is_file())
    if inner:
        raise ViewError(f"{path} has no manifest.json, but these folders in it do: "
                        f"{', '.join(inner)}; pass one of them")
    if any(path.glob("*.tar")):
        raise ViewError(f"{path} holds shards but no manifest.json, here or one level up that "
                        f"lists it: sweaug view needs the manifest written by `sweaug build` or "
                        f"`sweaug augment`")
    raise ViewError(f"{path} is not a corpus (no manifest.json), not an augmented folder and not "
                    f"an ablation run (no <mix>/results.json)"
                    + (": it is empty" if not any(path.iterdir()) else ""))


def _environment():
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(loader=PackageLoader("sweaug.view", "templates"),
                      autoescape=select_autoescape(["html"], default_for_string=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      keep_trailing_newline=True)
    env.filters["pct"] = lambda x, d=1: "—" if x is None else (
        "inf" if x == float("inf") else f"{100 * x:.{d}f}")
    env.filters["num"] = lambda x, d=2: "—" if x is None or x == "" else f"{float(x):.{d}f}"
    env.filters["short"] = lambda s, n=10: s if len(s) <= n + 1 else s[:n] + "…"
    return env


def render(path: Path, out: Path | None = None, *, samples: int = 20, seed: int = 0,
           worst: int = 10, audio: str = "embed", corpus: Path | None = None) -> Written:
    """Write the page of ``path`` to ``out`` (default ``./<folder name>-view.html``).

    ``samples``: rows per split in the sample tables (seeded by ``seed``; of a labelled folder:
    its worst kept samples by the teacher's WER); ``worst``: worst
    utterances per model and evaluation set of a run; ``audio``: embed | files | none;
    ``corpus``: for a run, the corpus it was evaluated on (default: found from the run's
    location); for an augmented folder, the corpus it was augmented from (default: where its
    manifest says).
    """
    from ..files import atomic_write_bytes

    if samples < 0 or worst < 0:
        raise ViewError("--samples and --worst must be 0 or more")
    kind, folder, source = detect(path)
    out = Path(out) if out is not None else Path(f"{Path(path).resolve().name}-view.html")
    if out.is_dir():
        raise ViewError(f"--out {out} is a folder: give the HTML file to write")
    if kind in ("corpus", "source", "windows", "labelled") and corpus is not None:
        raise ViewError(f"--corpus is for a run or an augmented folder, not a {kind} folder")
    sink = AudioSink(audio, out)
    try:
        if kind == "run":
            from .run import run_page
            ctx, template = run_page(folder, worst, sink, corpus), "run.html"
        elif kind == "windows":
            from .windows import windows_page
            ctx, template = windows_page(folder, samples, seed, sink), "windows.html"
        elif kind == "labelled":
            from .labels import labels_page
            ctx, template = labels_page(folder, samples, sink), "labels.html"
        elif kind == "augmented":
            from .augmented import augmented_page
            ctx, template = augmented_page(folder, samples, seed, sink, corpus), "corpus.html"
        else:
            from .corpus import corpus_page
            ctx, template = corpus_page(folder, samples, seed, sink, source), "corpus.html"
    except ViewError:
        raise
    except (KeyError, TypeError, AttributeError, ValueError) as e:  # a manifest of another shape
        log.info("reading %s failed", folder, exc_info=True)
        raise ViewError(f"{folder}: unexpected content in its manifest or results "
                        f"({type(e).__name__}: {e}); was it written by another sweaug version? "
                        f"(sweaug -v view ... shows where)") from None
    from .. import __version__
    ctx.update(audio_mode=audio, version=__version__)
    html = _environment().get_template(template).render(**ctx).encode("utf-8")
    try:
        atomic_write_bytes(out, html)
    except OSError as e:
        raise ViewError(f"cannot write {out}: {e}") from None
    sink.finish()
    return Written(out, kind, len(html), sink.count,
                   sink.folder if audio == "files" and sink.count else None)
