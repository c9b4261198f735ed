"""What training prints and what it keeps (issue #19, point 5).

The console gets one line per logging step from :class:`ProgressLog`::

    [train] cv: step 40/200  loss 2.314  lr 9.5e-06  61.2 samples/s  ETA 02:11

(samples/s: the effective batch — per-device batch x gradient accumulation x processes — times
the steps since the previous line, over the wall time between the two, evaluation time left
out; ETA: the steps left at that rate), one line per evaluation during training
(``[train] cv: eval at step 40  loss 2.201  wer 61.3 %  (best: step 40)``) and one when it ends.
The Trainer's own printing is off: no ``{'loss': ...}`` dicts (PrinterCallback /
ProgressCallback removed, ``disable_tqdm``) and, while :func:`quiet_transformers` is entered,
no progress bars of transformers or huggingface_hub ("Writing model shards"); transformers'
log records go through sweaug's logging (``WARNING sweaug.train: transformers: ...``) at
warning level instead of transformers' own stderr handler.

Kept in the mix's run folder, ``<run>/<mix>/train_log.jsonl``, one JSON object a line,
appended (one ``write`` of a whole line each, flushed; a resumed run appends to the same file):

- ``{"time", "start": {...}}`` where a training run (or a resumed one) starts;
- ``{"time", "step", "log": {...}}``: every dict the Trainer logs (``on_log``: loss,
  grad_norm, learning_rate, epoch; eval_loss, eval_wer, ...; the final train_runtime, ...);
- ``{"time", "step", "warning", "from"}``: transformers' warnings (``from``: its logger) and
  Python warnings (``from``: ``py.warnings:<category>``) raised while training — printed
  too, except transformers' :data:`FILE_ONLY` and libraries' deprecation warnings about their
  own internals (:data:`LIBRARY_DEPRECATIONS` raised outside sweaug), which are kept here only.

Only the main process (rank 0) prints progress and writes the file.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import time
import warnings
from pathlib import Path

log = logging.getLogger("sweaug.train")
LOG_FILE = "train_log.jsonl"
# transformers warnings that say nothing the user can act on: kept in the file, not printed
FILE_ONLY = ("mtime may not be reliable on this filesystem",)
# Python warnings of these categories raised in a library's code (not sweaug's) while training:
# kept in the file, not printed (e.g. peft calling a transformers property deprecated in v5)
LIBRARY_DEPRECATIONS = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)
OWN = str(Path(__file__).resolve().parents[1])


class JsonLines:
    """Append-only JSON lines; each record is one ``write`` of a complete line (no
    interleaving with another process appending to the same file), flushed at once."""

    def __init__(self, path: Path | None):
        self.path = Path(path) if path is not None else None
        self._f = None
        self.step = 0  # the latest global step seen (for warnings, which carry none)

    def write(self, record: dict) -> None:
        if self.path is None:
            return
        if self._f is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._f = open(self.path, "a", encoding="utf-8")
        line = json.dumps({"time": round(time.time(), 3), **record}, ensure_ascii=False,
                          default=_jsonable, allow_nan=True)
        self._f.write(line + "\n")
        self._f.flush()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def _jsonable(x):
    try:
        return float(x)  # tensors, numpy scalars
    except (TypeError, ValueError):
        return str(x)


def clock(seconds: float) -> str:
    """``mm:ss`` (``h:mm:ss`` from an hour on); ``--:--`` when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "--:--"
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class _Route(logging.Handler):
    """On transformers' root logger while training: every record (warning and above) to the
    JSON lines, and — unless it is in :data:`FILE_ONLY` — through sweaug's logger."""

    def __init__(self, sink: JsonLines, console: bool, file_only: tuple = ()):
        super().__init__(logging.WARNING)
        self.sink, self.console, self.file_only = sink, console, FILE_ONLY + tuple(file_only)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = record.getMessage()
            self.sink.write({"step": self.sink.step, "warning": msg, "from": record.name})
            if self.console and not any(f in msg for f in self.file_only):
                log.log(record.levelno, "transformers: %s", msg)
        except Exception:  # a log line must never end a training run
            self.handleError(record)


@contextlib.contextmanager
def quiet_transformers(sink: JsonLines, console: bool = True, file_only: tuple = ()):
    """While training and saving: transformers at warning level, its records routed through
    :class:`_Route` (its own stderr handler off), its and huggingface_hub's progress bars off,
    Python warnings also written to ``sink``; everything restored on exit. Entered after the
    model is loaded, so a download still shows its progress bar. ``file_only``: more messages
    (substrings) kept in the file only."""
    import huggingface_hub.utils as hub
    from transformers.utils import logging as tlog

    root = tlog.get_logger()  # the "transformers" logger
    verbosity = tlog.get_verbosity()
    bars, hub_bars = tlog.is_progress_bar_enabled(), not hub.are_progress_bars_disabled()
    handler = _Route(sink, console, file_only)
    shown = warnings.showwarning
    # transformers lets its records propagate to Python's root logger when CI is set (its
    # logging._configure_library_root_logger): off here, or sweaug's root handler prints each
    # record a second time, file-only ones included
    propagate = root.propagate

    def showwarning(message, category, filename, lineno, file=None, line=None):
        try:
            sink.write({"step": sink.step, "warning": str(message),
                        "from": f"py.warnings:{category.__name__}",
                        "where": f"{filename}:{lineno}"})
        except Exception:
            pass
        if issubclass(category, LIBRARY_DEPRECATIONS) and not str(filename).startswith(OWN):
            return None  # a library's deprecation of its own internals: the file only
        return shown(message, category, filename, lineno, file, line)

    tlog.set_verbosity_warning()
    tlog.disable_default_handler()
    tlog.disable_propagation()
    root.addHandler(handler)
    tlog.disable_progress_bar()  # transformers' tqdm and huggingface_hub's
    warnings.showwarning = showwarning
    try:
        yield
    finally:
        warnings.showwarning = shown
        root.removeHandler(handler)
        root.propagate = propagate
        tlog.enable_default_handler()
        tlog.set_verbosity(verbosity)
        if bars:
            tlog.enable_progress_bar()
        elif hub_bars:
            hub.enable_progress_bars()


def remove_printing(trainer) -> None:
    """Take the Trainer's own printers out (the raw ``{'loss': ...}`` dicts, tqdm bars)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for cb in (PrinterCallback, ProgressCallback):
        while trainer.pop_callback(cb) is not None:
            pass
    try:
        from transformers.utils.notebook import NotebookProgressCallback
    except Exception:  # IPython-only
        return
    while trainer.pop_callback(NotebookProgressCallback) is not None:
        pass


def progress_callback(name: str, prefix: str, samples_per_step: int, sink: JsonLines,
                      main: bool, losses: list, metric: str | None = None):
    """The TrainerCallback that prints one line per logging step (rank 0) and writes every
    logged dict to ``sink``; ``losses`` collects ``(step, loss)`` on every rank."""
    from transformers import TrainerCallback

    class ProgressLog(TrainerCallback):
        def __init__(self):
            self.last_time = None
            self.last_step = 0
            self.paused = 0.0  # evaluation seconds since the previous line

        def on_train_begin(self, args, state, control, **kw):
            self.last_time, self.last_step = time.perf_counter(), state.global_step

        def on_step_end(self, args, state, control, **kw):
            sink.step = state.global_step

        def on_log(self, args, state, control, logs=None, **kw):
            logs = dict(logs or {})
            step = state.global_step
            sink.step = step
            if main:
                sink.write({"step": step, "log": logs})
            if "loss" in logs:
                losses.append((step, float(logs["loss"])))
                if main:
                    print(self._line(state, logs), flush=True)
            elif any(k.startswith("eval_") for k in logs):
                self.paused += float(logs.get("eval_runtime") or 0.0)
                if main:
                    print(self._eval_line(args, state, logs), flush=True)
            elif "train_runtime" in logs and main:
                sps = logs.get("train_samples_per_second")
                print(f"{prefix} {name}: done, step {step}/{state.max_steps} in "
                      f"{clock(float(logs['train_runtime']))}"
                      + (f", {float(sps):.1f} samples/s" if sps is not None else "")
                      + (" (early stopping)" if step < state.max_steps else ""), flush=True)

        def _line(self, state, logs) -> str:
            now = time.perf_counter()
            wall = (now - self.last_time - self.paused) if self.last_time else None
            steps = state.global_step - self.last_step
            self.last_time, self.last_step, self.paused = now, state.global_step, 0.0
            rate = steps * samples_per_step / wall if wall and wall > 0 and steps > 0 else None
            eta = (state.max_steps - state.global_step) * wall / steps \
                if rate is not None else None
            lr = logs.get("learning_rate")
            return (f"{prefix} {name}: step {state.global_step}/{state.max_steps}"
                    f"  loss {float(logs['loss']):.3f}"
                    + (f"  lr {float(lr):.3g}" if lr is not None else "")
                    + (f"  {rate:.1f} samples/s" if rate is not None else "  - samples/s")
                    + f"  ETA {clock(eta)}")

        def _eval_line(self, args, state, logs) -> str:
            parts = [f"{prefix} {name}: eval at step {state.global_step}"]
            if "eval_loss" in logs:
                parts.append(f"loss {float(logs['eval_loss']):.3f}")
            if "eval_wer" in logs:
                parts.append(f"wer {100 * float(logs['eval_wer']):.1f} %")
            if "eval_samples" in logs:
                parts.append(f"({int(logs['eval_samples'])} samples)")
            value, best = logs.get(f"eval_{metric}") if metric else None, state.best_metric
            if value is not None:  # the Trainer updates best_metric after this log
                better = best is None or (value > best if args.greater_is_better else value < best)
                parts.append("(best so far)" if better else
                             f"(best: step {state.best_global_step})")
            return "  ".join(parts)

    return ProgressLog()
