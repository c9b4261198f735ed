"""The command line: parse flags, call one function per command, print. Nothing else."""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from . import __version__

SOURCE_NAMES = ("cv", "fleurs", "voxpopuli", "rixvox", "local")


def _fail(msg: str) -> None:
    from .publish.planning import mask_tokens

    click.echo(f"error: {mask_tokens(msg)}", err=True)  # no Hugging Face token, wherever it came
    sys.exit(2)


def _mask_tokens_in_logs() -> None:
    """Every log record of this process (sweaug's and its libraries', e.g. huggingface_hub's
    retry lines, whose URLs hold the repo id; whichever handler prints it) with each Hugging
    Face token masked, from its creation on."""
    make = logging.getLogRecordFactory()
    if getattr(make, "masks_tokens", False):
        return

    def record(*args, **kwargs) -> logging.LogRecord:
        from .publish.planning import mask_tokens

        rec = make(*args, **kwargs)
        msg = rec.getMessage()
        if "hf_" in msg:
            rec.msg, rec.args = mask_tokens(msg), None
        return rec

    record.masks_tokens = True
    logging.setLogRecordFactory(record)


# One convention for the flags several commands share (README, "Flags every command shares"):
SEED = 13  # --seed of every command that draws randomness; recorded in what it writes
SHARD_SAMPLES, SHARD_MB = 1000, 512  # --shard-samples / --shard-mb of every command writing shards
WORKERS_HELP = ("Worker processes (default: the CPUs this process may use, at most 8); the "
                "output is byte-identical for any count.")


def default_workers() -> int:
    """``--workers`` unset: the CPUs this process may use (its affinity), at most 8."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        n = os.cpu_count() or 1
    return max(1, min(n, 8))


def _check_shard_flags(shard_samples: int, shard_mb: int) -> None:
    if shard_samples < 1:
        _fail(f"--shard-samples must be at least 1, got {shard_samples}")
    if shard_mb < 1:
        _fail(f"--shard-mb must be at least 1, got {shard_mb}")


@click.group()
@click.version_option(__version__, prog_name="sweaug")
@click.option("-v", "--verbose", is_flag=True, help="Log what each stage does.")
def main(verbose: bool) -> None:
    """Build, augment and ablate Swedish speech corpora for Whisper fine-tuning."""
    _mask_tokens_in_logs()
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


@main.command()
@click.option("--sources", required=True, help="Comma-separated: " + ",".join(SOURCE_NAMES))
@click.option("--out", required=True,
              help="Output folder, or an fsspec URL (s3://bucket/corpus, gs://..., file:///...).")
@click.option("--language", default="sv", show_default=True, help="ISO 639-1 language code.")
@click.option("--cv-dir", help="Common Voice release tarball (cv-corpus-*-sv-SE.tar.gz) or its "
              "extracted folder. Each --*-dir also takes a URL (s3://, gs://, hf://, file://): "
              "copied once into --cache-dir.")
@click.option("--cv-extra", type=click.Choice(["validated"]), multiple=True,
              help="Also take validated.tsv clips that are in no split (leakage-guarded).")
@click.option("--fleurs-dir",
              help="Local copy of google/fleurs (data/<config>/...); default: fetch from the Hub.")
@click.option("--fleurs-revision", help="Hub revision of google/fleurs (default: pinned).")
@click.option("--voxpopuli-dir",
              help="Local copy of facebook/voxpopuli (data/<lang>/...); default: the Hub.")
@click.option("--voxpopuli-revision", help="Hub revision of facebook/voxpopuli (default: pinned).")
@click.option("--rixvox-dir",
              help="Local copy of KBLab/rixvox (data/...); default: stream from the Hub.")
@click.option("--rixvox-revision", help="Hub revision of KBLab/rixvox (default: pinned).")
@click.option("--local-dir",
              help="Folder with audio + metadata.tsv/.csv/.jsonl (path, text[, speaker][, split]).")
@click.option("--split-by-speaker", "split_by_speaker", metavar="TRAIN,DEV,TEST",
              callback=lambda ctx, param, v: _split_fractions(v),
              help="Split the local rows that have no split speaker-disjointly, e.g. 0.8,0.1,0.1 "
                   "(shares of rows; a row without a speaker is its own speaker); rows with a "
                   "split keep it.")
@click.option("--split-seed", type=int, default=SEED, show_default=True,
              help="Seed of --split-by-speaker: same rows and seed, same split.")
@click.option("--max-hours", type=float, help="Per split, for streamed sources (rixvox).")
@click.option("--eval", "eval_dirs", multiple=True, type=click.Path(path_type=Path, exists=True),
              help="Extra evaluation shard folder(s) to guard against (repeatable).")
@click.option("--workers", type=int, help=WORKERS_HELP[:-1] + "; with --executor ray: partitions "
              "in flight at once (default: the cluster's CPUs).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local",
              show_default=True, help="Where partitions run: a local process pool or Ray tasks "
              "(pip install 'sweaug[ray]'). Same bytes either way.")
@click.option("--ray-address", help="Ray cluster to join (auto, ray://host:10001); default: "
              "start a local Ray. Workers read the inputs by path: on a cluster, put them on "
              "storage every node mounts at the same path; --out may be a URL.")
@click.option("--retries", type=int, default=3, show_default=True,
              help="Ray task retries of a failed partition.")
@click.option("--storage-option", "storage_options", multiple=True, metavar="KEY=VALUE",
              help="fsspec option for a URL --out (repeatable; JSON values allowed), e.g. "
                   "endpoint_url=http://localhost:9000 or anon=false.")
@click.option("--shard-samples", type=int, default=SHARD_SAMPLES, show_default=True,
              help="Max samples per shard; also the unit of work for loose files.")
@click.option("--shard-mb", type=int, default=SHARD_MB, show_default=True, help="Max MiB per shard.")
@click.option("--min-duration", type=float, default=0.5, show_default=True,
              help="Min clip seconds (training splits; shorter clips are skipped, counted).")
@click.option("--max-duration", type=float, default=30.0, show_default=True,
              help="Max clip seconds (training splits): Whisper's window is 30 s.")
@click.option("--min-cps", type=float, default=1.0, show_default=True,
              help="Min characters per second (training splits).")
@click.option("--max-cps", type=float, default=25.0, show_default=True,
              help="Max characters per second (training splits).")
@click.option("--max-clip-fraction", type=float, default=0.01, show_default=True,
              help="Max share of samples at full scale (training splits).")
@click.option("--cache-dir", type=click.Path(path_type=Path),
              help="Extraction/index cache (default ~/.cache/sweaug); Hub files use the HF cache.")
@click.option("--strict", is_flag=True, help="Stop on unexpected per-item errors.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def build(sources, out, language, cv_dir, cv_extra, fleurs_dir, fleurs_revision, voxpopuli_dir,
          voxpopuli_revision, rixvox_dir, rixvox_revision, local_dir, max_hours, eval_dirs,
          workers, executor, ray_address, retries, storage_options, shard_samples, shard_mb,
          min_duration, max_duration, min_cps, max_cps, max_clip_fraction, cache_dir, strict,
          no_progress, split_by_speaker, split_seed):
    """Build normalized WebDataset shards from public Swedish speech sources."""
    from .build.pipeline import BuildConfig, build as run_build
    from .build.filters import FilterConfig
    from .records import ConfigError, SourceError
    from .sources import SourceOptions
    from .build.storage import parse_storage_options

    names = [s.strip() for s in sources.split(",") if s.strip()]
    unknown = [n for n in names if n not in SOURCE_NAMES]
    if unknown or not names:
        _fail(f"unknown source(s) {', '.join(unknown) or '(none)'}; choose from "
              f"{', '.join(SOURCE_NAMES)}")
    if workers is not None and workers < 1:
        _fail("--workers must be at least 1")
    if workers is None and executor == "local":
        workers = default_workers()
    if retries < 0:
        _fail("--retries must be at least 0")
    _check_shard_flags(shard_samples, shard_mb)
    if split_by_speaker and "local" not in names:
        _fail("--split-by-speaker splits the rows of --sources local that have no split; "
              "local is not in --sources")
    paths = {n: p if p is None or "://" in p else Path(p) for n, p in (
        ("cv", cv_dir), ("fleurs", fleurs_dir), ("voxpopuli", voxpopuli_dir),
        ("rixvox", rixvox_dir), ("local", local_dir))}
    revisions = {"fleurs": fleurs_revision, "voxpopuli": voxpopuli_revision,
                 "rixvox": rixvox_revision}
    try:
        filters = FilterConfig(min_duration, max_duration, min_cps, max_cps, max_clip_fraction)
        opts = {n: SourceOptions(path=paths[n], language=language, cache_dir=cache_dir,
                                 revision=revisions.get(n), max_hours=max_hours,
                                 extra=tuple(cv_extra) if n == "cv" else ())
                for n in names}
        cfg = BuildConfig(out=out, sources=opts, workers=workers, shard_samples=shard_samples,
                          shard_bytes=shard_mb * 1024 * 1024, filters=filters,
                          eval_dirs=tuple(eval_dirs), strict=strict, executor=executor,
                          ray_address=ray_address, retries=retries,
                          storage_options=parse_storage_options(storage_options),
                          split_by_speaker=split_by_speaker, split_seed=split_seed)
        # run_build refuses an --out overlapping an input and takes the output's lock
        manifest = _with_bar(no_progress, lambda bar: run_build(cfg, progress=bar))
    except (SourceError, ConfigError) as e:
        _fail(str(e))
    out = out.rstrip("/") or out
    _shards_written(manifest, out, files=f"manifest.json and {out}/leakage.tsv")
    for warning in manifest.get("warnings", []):
        click.echo(f"warning: {warning}", err=True)


def _split_fractions(value: str | None):
    """--split-by-speaker's TRAIN,DEV,TEST, checked (a usage error otherwise)."""
    from .records import ConfigError
    from .sources.speaker_split import parse_fractions

    try:
        return None if value is None else parse_fractions(value)
    except ConfigError as e:
        raise click.BadParameter(str(e).removeprefix("--split-by-speaker "),
                                 param_hint="--split-by-speaker") from None


class _HoursBar:
    """A tqdm bar with an ETA: audio hours for a build, copies for augment."""

    def __init__(self, unit: str = "h", scale: float = 3600):
        self._bar, self.unit, self.scale = None, unit, scale

    def __call__(self, done: float, total: float) -> None:
        from tqdm import tqdm

        if self._bar is None:
            self._bar = tqdm(total=round(total / self.scale, 3), unit=self.unit, desc="audio",
                             bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.2f}/{total:.2f} "
                                        + self.unit + " [{elapsed}<{remaining}]")
        self._bar.n = round(done / self.scale, 3)
        self._bar.refresh()

    def close(self):
        if self._bar is not None:
            self._bar.close()


def _with_bar(no_progress: bool, run, unit: str = "h", scale: float = 3600):
    """``run(progress)`` with a progress bar (none with --no-progress), closed however it ends;
    what ``run`` returns."""
    bar = None if no_progress else _HoursBar(unit=unit, scale=scale)
    try:
        return run(bar)
    finally:
        if bar:
            bar.close()


def _shards_written(manifest: dict, out, summary: str = "", files: str = "manifest.json") -> None:
    """What a shard-writing command prints at the end: the table, its own summary, the files."""
    from .build.manifest import format_table

    click.echo(format_table(manifest))
    if summary:
        click.echo(summary)
    click.echo(f"\nwrote {out}/{files}")


@main.command()
@click.argument("folder", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--recipe", required=True,
              help="An augmentation recipe: a file, or a bundled recipe's name (default, noisy, "
                   "telephone; `sweaug recipes` lists them).")
@click.option("--copies", type=int, default=1, show_default=True,
              help="Augmented copies of every sample (originals are not repeated).")
@click.option("--seed", type=int, default=SEED, show_default=True,
              help="Global seed (recorded in the manifest): same seed, same bytes.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder.")
@click.option("--splits", help="Comma-separated splits to augment (default: all in FOLDER).")
@click.option("--noise-dir", type=click.Path(path_type=Path),
              help="Noise folder for ${noise_dir} (default: the bundled sample's noise).")
@click.option("--rir-dir", type=click.Path(path_type=Path),
              help="Impulse responses for ${rir_dir} (default: the bundled sample's).")
@click.option("--workers", type=int, help=WORKERS_HELP)
@click.option("--shard-samples", type=int, default=SHARD_SAMPLES, show_default=True,
              help="Max samples per output shard.")
@click.option("--shard-mb", type=int, default=SHARD_MB, show_default=True,
              help="Max MiB per output shard.")
@click.option("--cache-dir", type=click.Path(path_type=Path),
              help="Where prepared noise/RIR folders are cached (default ~/.cache/sweaug).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def augment(folder, recipe, copies, seed, out, splits, noise_dir, rir_dir, workers,
            shard_samples, shard_mb, cache_dir, no_progress):
    """Write augmented copies of a shard folder (e.g. corpus/cv) with a recipe."""
    from .augment import RecipeError, load_recipe
    from .augment.offline import augment_corpus
    from .records import ConfigError, SourceError

    if workers is not None and workers < 1:
        _fail("--workers must be at least 1")
    workers = workers or default_workers()
    _check_shard_flags(shard_samples, shard_mb)
    from .bundled import resolve
    try:
        rec = load_recipe(resolve(recipe, "augment"), noise_dir=noise_dir, rir_dir=rir_dir)
        manifest = _with_bar(no_progress, lambda bar: augment_corpus(
            folder, rec, copies, seed, out,
            splits=tuple(s.strip() for s in splits.split(",")) if splits else None,
            workers=workers, shard_samples=shard_samples, shard_bytes=shard_mb << 20,
            cache_dir=cache_dir, progress=bar), unit="copies", scale=1)
    except (RecipeError, SourceError, ConfigError) as e:
        _fail(str(e))
    _shards_written(manifest, out)


def _gap(value: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected MIN,MAX in seconds, e.g. 0.1,0.6") from None
    return lo, hi


@main.command()
@click.argument("folder", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder.")
@click.option("--seconds", type=float, default=30.0, show_default=True,
              help="Window length (Whisper's is 30 s; a tiny model's may be shorter).")
@click.option("--seed", type=int, default=SEED, show_default=True,
              help="Global seed (recorded in the manifest): same seed, same bytes.")
@click.option("--splits", help="Comma-separated splits (default: all in FOLDER).")
@click.option("--workers", type=int, help=WORKERS_HELP)
@click.option("--speaker-continuity", type=float, default=0.5, show_default=True, metavar="P",
              help="Probability that the next utterance of a window is the same speaker's.")
@click.option("--gap", default="0.1,0.6", show_default=True, metavar="MIN,MAX",
              help="Silence between utterances, drawn uniformly (seconds).")
@click.option("--timestamp-fraction", type=float, default=0.5, show_default=True, metavar="F",
              help="Share of windows whose target has segment timestamps (the rest: "
                   "<|notimestamps|>).")
@click.option("--prompt-fraction", type=float, default=0.5, show_default=True, metavar="F",
              help="Share of windows that carry the previous text (prompt training).")
@click.option("--no-speech-dir", type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="Noise/music/silence files for no-speech windows (default: the bundled "
                   "noise); train/, validation/, test/ sub-folders keep the splits apart.")
@click.option("--no-speech-fraction", type=float, default=0.0, show_default=True, metavar="F",
              help="Share of all windows that are no-speech (empty transcript).")
@click.option("--shard-samples", type=int, default=SHARD_SAMPLES, show_default=True,
              help="Max windows per output shard.")
@click.option("--shard-mb", type=int, default=SHARD_MB, show_default=True,
              help="Max MiB per output shard.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def windows(folder, out, seconds, seed, splits, workers, speaker_continuity, gap,
            timestamp_fraction, prompt_fraction, no_speech_dir, no_speech_fraction,
            shard_samples, shard_mb, no_progress):
    """Pack a shard folder's utterances into Whisper's 30-s training windows: segment
    timestamps, previous-text prompts, no-speech windows (one split never mixes with another)."""
    from .records import ConfigError, SourceError
    from .windows.plan import Settings
    from .windows.stage import format_summary, windows_corpus

    if workers is not None and workers < 1:
        _fail("--workers must be at least 1")
    workers = workers or default_workers()
    _check_shard_flags(shard_samples, shard_mb)
    gap_min, gap_max = _gap(gap)
    try:
        settings = Settings(seconds, speaker_continuity, gap_min, gap_max, timestamp_fraction,
                            prompt_fraction, no_speech_fraction)
        manifest = _with_bar(no_progress, lambda bar: windows_corpus(
            folder, out, settings, seed,
            splits=tuple(s.strip() for s in splits.split(",")) if splits else None,
            workers=workers, no_speech_dir=no_speech_dir, shard_samples=shard_samples,
            shard_bytes=shard_mb << 20, progress=bar), unit="utterances", scale=1)
    except (SourceError, ConfigError) as e:
        _fail(str(e))
    _shards_written(manifest, out, format_summary(manifest))


@main.command()
@click.argument("folder", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder.")
@click.option("--teacher", help="Whisper teacher: a Hub id (KBLab/kb-whisper-large, "
              "openai/whisper-large-v3) or a save_pretrained folder. Leave it out to filter a "
              "labelled FOLDER again with its recorded labels (no model is run).")
@click.option("--teacher2", help="A second teacher: for unlabelled audio, --max-wer keeps "
              "samples where the two transcripts agree within that WER.")
@click.option("--max-wer", type=float, metavar="W", help="Keep training samples whose teacher "
              "WER against the transcript is at most W (0.1 = 10 %%).")
@click.option("--max-edge-cer", type=float, metavar="C", help="Keep training samples whose CER "
              "over the first and over the last --edge-chars characters is at most C.")
@click.option("--edge-chars", type=int, default=10, show_default=True,
              help="Characters at each edge for --max-edge-cer.")
@click.option("--max-repeats", type=int, default=4, show_default=True, metavar="R",
              help="Drop a teacher text with one n-gram R times in a row (0: no check).")
@click.option("--language-check/--no-language-check", default=True, show_default=True,
              help="Drop samples the teacher detects as another language.")
@click.option("--min-language-prob", type=float, default=0.5, show_default=True, metavar="P",
              help="... when its detected language has at least probability P (0: always).")
@click.option("--unlabelled", is_flag=True, help="Treat every sample as unlabelled: the "
              "teacher's text becomes its text (automatic for a local folder built without text).")
@click.option("--language", default="sv", show_default=True, help="Language forced on the teacher.")
@click.option("--task", default="transcribe", show_default=True,
              type=click.Choice(["transcribe", "translate"]), help="Task forced on the teacher.")
@click.option("--device", default="auto", show_default=True,
              type=click.Choice(["auto", "cpu", "cuda"]),
              help="Where the teacher runs (auto: CUDA when there is a GPU).")
@click.option("--dtype", default="auto", show_default=True,
              type=click.Choice(["auto", "float32", "float16", "bfloat16"]),
              help="auto: bf16 on a GPU that has it, else fp16 on CUDA; fp32 on a CPU.")
@click.option("--batch-size", type=int, default=16, show_default=True,
              help="Clips per teacher batch (sorted by duration).")
@click.option("--splits", help="Comma-separated splits (default: all in FOLDER).")
@click.option("--eval", "eval_dirs", multiple=True, type=click.Path(path_type=Path, exists=True),
              help="Extra evaluation shard folder(s) the pseudo-labels must not leak (repeatable).")
@click.option("--workers", type=int, default=1, show_default=True,
              help="Shards labelled at once (each worker loads the teacher: 1 per GPU).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local",
              show_default=True, help="Where shard jobs run: local processes or Ray tasks.")
@click.option("--ray-address", help="Ray cluster to join (auto, ray://host:10001).")
@click.option("--shard-samples", type=int, default=SHARD_SAMPLES, show_default=True,
              help="Max samples per output shard.")
@click.option("--shard-mb", type=int, default=SHARD_MB, show_default=True,
              help="Max MiB per output shard.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def label(folder, out, teacher, teacher2, max_wer, max_edge_cer, edge_chars, max_repeats,
          language_check, min_language_prob, unlabelled, language, task, device, dtype, batch_size, splits,
          eval_dirs, workers, executor, ray_address, shard_samples, shard_mb, no_progress):
    """Transcribe a shard folder with a Whisper teacher: scores against the transcripts, weak
    labels filtered (counted by reason), unlabelled audio pseudo-labelled."""
    from .records import ConfigError, SourceError

    if workers is not None and workers < 1:
        _fail("--workers must be at least 1")
    _check_shard_flags(shard_samples, shard_mb)
    try:
        _need_extra("label", "train")
        from .build.executors import make_executor
        from .label.checks import Thresholds
        from .label.stage import format_summary, label_corpus
        from .label.teacher import resolve_teacher

        thresholds = Thresholds(max_wer, max_edge_cer, max_repeats, language_check, edge_chars,
                                min_language_prob)
        specs = [resolve_teacher(t, device, dtype, batch_size, language, task) if t else None
                 for t in (teacher, teacher2)]
        manifest = _with_bar(no_progress, lambda bar: label_corpus(
            folder, out, specs[0], thresholds, teacher2=specs[1], unlabelled=unlabelled,
            splits=tuple(s.strip() for s in splits.split(",")) if splits else None,
            eval_dirs=tuple(eval_dirs), executor=make_executor(executor, workers, ray_address),
            shard_samples=shard_samples, shard_bytes=shard_mb << 20, progress=bar),
            unit="clips", scale=1)
    except (SourceError, ConfigError) as e:
        _fail(str(e))
    _shards_written(manifest, out, format_summary(manifest), f"manifest.json and {out}/leakage.tsv")


@main.command()
def recipes():
    """List the bundled recipes (usable by name: `sweaug augment --recipe NAME`, `sweaug ablate
    NAME`)."""
    from .bundled import KINDS, bundled, description

    for kind in KINDS:
        click.echo(f"{kind}:")
        for name, path in bundled(kind).items():
            click.echo(f"  {name:<12} {description(path)}")
        click.echo()
    click.echo("Copy one to change it: the file paths are under "
               f"{next(iter(bundled('augment').values())).parent.parent}")


# the modules of the extras that ablate, demo and app need (pyproject.toml)
_EXTRA_MODULES = {"train": ("torch", "transformers", "accelerate", "tiktoken", "tensorboard",
                            "peft"),
                  "app": ("gradio", "torch", "transformers", "tiktoken")}


def _need_extra(command: str, extra: str, error: ModuleNotFoundError | None = None) -> None:
    """Stop (exit 2) naming the extra to install when one of its modules is absent: ``error``
    (re-raised if it is about another module), or else each module looked up without importing
    it."""
    import importlib.util

    def absent(mod: str) -> bool:
        if error is not None:
            return (error.name or "").split(".")[0] == mod
        try:
            return importlib.util.find_spec(mod) is None
        except (ImportError, ValueError):
            return True

    for mod in _EXTRA_MODULES[extra]:
        if absent(mod):
            _fail(f"sweaug {command} needs the {extra} extra (no module named {mod!r}): "
                  f'pip install -c constraints.txt -e ".[{extra}]"')
    if error is not None:
        raise error


@main.command()
@click.argument("recipe")
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs"), show_default=True,
              help="Runs folder: results land in <out>/<recipe name>/.")
@click.option("--corpus", type=click.Path(path_type=Path),
              help="Corpus root the recipe's shard sets are relative to (default: the recipe's "
                   "`corpus`, else ./corpus).")
@click.option("--dry-run", is_flag=True, help="Validate and print the plan; train nothing.")
@click.option("--mix", "mixes", multiple=True,
              help="Run only these mixes (repeatable); `baseline` is the model without "
                   "fine-tuning, run only when named. One mix per cluster job, then "
                   "`sweaug report`.")
@click.option("--device", type=click.Choice(["auto", "cuda", "cpu"]), default="auto",
              show_default=True,
              help="auto: CUDA when torch sees it, else the CPU with fp32 and torch AdamW "
                   "(recorded); cuda: stop before anything runs when there is no CUDA; cpu: "
                   "the CPU even on a GPU machine.")
def ablate(recipe, out, corpus, dry_run, mixes, device):
    """Fine-tune Whisper on each data mix of a recipe and report WER with confidence intervals.

    RECIPE is a file or a bundled recipe's name (seed-table, data-mixes; `sweaug recipes`).
    Runs unchanged under `torchrun` / `accelerate launch` (one mix on several GPUs)."""
    from .ablate.run import run_recipe
    from .bundled import resolve
    from .records import ConfigError, SourceError

    if not dry_run:
        _need_extra("ablate", "train")
    try:
        run_recipe(resolve(recipe, "ablation"), out, corpus=corpus, dry_run=dry_run, only=list(mixes) or None,
                   echo=click.echo, device=device)
    except (ConfigError, SourceError) as e:
        _fail(str(e))
    except ModuleNotFoundError as e:
        _need_extra("ablate", "train", e)


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
def report(run_dir):
    """Rebuild report.md, results.csv and wer.png of an ablation run folder (<out>/<recipe>)
    from the mixes that have finished, naming those that have not."""
    from .ablate.run import report_run
    from .records import ConfigError

    try:
        report_run(run_dir, echo=click.echo)
    except ConfigError as e:
        _fail(str(e))
    except ModuleNotFoundError as e:
        _need_extra("report", "train", e)


@main.command()
@click.option("--out", type=click.Path(path_type=Path),
              help="Everything is written here  [default: sweaug-demo, with --long "
                   "sweaug-demo-long].")
@click.option("--quick", is_flag=True,
              help="The same stages with few steps (under a minute on 2 cores).")
@click.option("--long", "long_", is_flag=True,
              help="Whisper's window format instead: sentences vs 8-s windows vs windows + "
                   "no-speech windows on a tiny Whisper with an 8-s window, with sentence WER, "
                   "timestamp error, hallucination rate and long-form WER side by side.")
@click.option("--seed", type=int, default=SEED, show_default=True,
              help="Seed of the augmentation and of the training.")
@click.option("--workers", type=int, help=WORKERS_HELP[:-1] + "; 2 or more also train the two "
              "mixes side by side (the same results as one after the other).")
def demo(out, quick, long_, seed, workers):
    """Build, augment and ablate the bundled sample offline, and print the report."""
    from .demo import run_demo, run_long_demo
    from .records import ConfigError, SourceError

    if workers is not None and workers < 1:
        _fail("--workers must be at least 1")
    workers = workers or default_workers()

    _need_extra("demo", "train")  # before the build: the ablation at its end needs it
    try:
        run = run_long_demo if long_ else run_demo
        run(out or Path("sweaug-demo-long" if long_ else "sweaug-demo"), quick=quick, seed=seed,
            workers=workers, echo=click.echo)
    except (ConfigError, SourceError) as e:
        _fail(str(e))
    except ModuleNotFoundError as e:
        _need_extra("demo", "train", e)


@main.command()
@click.argument("corpus", type=click.Path(path_type=Path, exists=True, file_okay=False))
def stats(corpus: Path):
    """Print a corpus manifest as a table."""
    from .build.manifest import format_table, read_manifest
    from .records import SourceError

    try:
        click.echo(format_table(read_manifest(corpus)))
    except SourceError as e:
        _fail(str(e))


@main.command()
@click.argument("corpus", required=False,
                type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--repo-id", required=True, help="The dataset repo, e.g. someone/swedish-asr-mix "
                                               "(with --model: the model repo).")
@click.option("--model", "model_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Publish a trained mix of `sweaug ablate` (RUN_DIR/MIX, e.g. "
                   "runs/data-mixes/cv+fleurs) as a model repo with a model card, instead of "
                   "a corpus. A LoRA mix publishes its adapter.")
@click.option("--merged", is_flag=True,
              help="With --model, for a LoRA mix: publish the merged model (model/: the LoRA "
                   "merged into the base, loads without peft) instead of the adapter.")
@click.option("--license", "license_id",
              help="With --model: the model's licence (a Hub id, e.g. cc-by-4.0); default: the "
                   "licence every training source shares (asked for when they differ).")
@click.option("--private", is_flag=True, help="Create the repo private (if it does not exist).")
@click.option("--dry-run", is_flag=True,
              help="Verify and stage the repo layout, list what would be uploaded, stop.")
@click.option("--stage-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Where the repo layout is staged (default: CORPUS/.sweaug/publish/OWNER--NAME; "
                   "with --model: RUN_DIR/MIX/.sweaug/publish/OWNER--NAME).")
@click.option("--include-common-voice", is_flag=True,
              help="Also publish Common Voice-derived shards (the cv source and sets augmented "
                   "from it). CV is CC0, but Mozilla Data Collective's terms of use forbid "
                   "re-hosting what you downloaded from it: with this flag, making sure you may "
                   "publish it is your responsibility.")
@click.option("--default-config", help="The config load_dataset picks when none is named "
                                       "(default: the source with the most hours).")
def publish(corpus, repo_id, model_dir, merged, license_id, private, dry_run, stage_dir,
            include_common_voice, default_config):
    """Publish a corpus and its augmented sets as a Hugging Face dataset repo, or (--model
    RUN_DIR/MIX) a model that `sweaug ablate` trained as a model repo."""
    from .publish import PublishError, format_result, publish as run_publish

    if model_dir is not None:
        from .publish.model import format_model_result, publish_model

        if corpus is not None:
            _fail(f"give a CORPUS or --model {model_dir}, not both")
        if include_common_voice or default_config:
            _fail("--include-common-voice and --default-config are for a corpus, not --model")
        try:
            result = publish_model(model_dir, repo_id, private=private, dry_run=dry_run,
                                   stage_dir=stage_dir, merged=merged, license=license_id,
                                   progress=lambda m: click.echo(m, err=True))
        except PublishError as e:
            _fail(str(e))
        click.echo(format_model_result(result, dry_run))
        return
    if corpus is None:
        _fail("missing CORPUS (a `sweaug build` folder), or --model RUN_DIR/MIX to publish a "
              "trained model")
    if merged or license_id:
        _fail("--merged and --license are for --model RUN_DIR/MIX, not a corpus")
    try:
        result = run_publish(corpus, repo_id, private=private, dry_run=dry_run,
                             stage_dir=stage_dir, include_common_voice=include_common_voice,
                             default=default_config,
                             progress=lambda m: click.echo(m, err=True))
    except PublishError as e:
        _fail(str(e))
    click.echo(format_result(result, dry_run))


@main.command()
@click.argument("folder", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False),
              help="The HTML file to write (default: ./<folder name>-view.html).")
@click.option("--samples", type=int, default=20, show_default=True,
              help="Rows per split in the sample tables (originals per split for an augmented "
                   "set), drawn with --seed; labelled folders: the kept samples with the highest "
                   "teacher WER.")
@click.option("--seed", type=int, default=SEED, show_default=True,
              help="Seed of the sample tables' draw.")
@click.option("--worst", type=int, default=10, show_default=True,
              help="Run folders: worst recognised utterances per model and evaluation set.")
@click.option("--audio", type=click.Choice(["embed", "files", "none"]), default="embed",
              show_default=True, help="embed: FLAC inside the page (one self-contained file); "
              "files: FLAC files in <page>_audio/ next to it; none: no audio.")
@click.option("--corpus", type=click.Path(path_type=Path, file_okay=False),
              help="Run folders: the corpus the run was evaluated on; augmented folders: the "
                   "corpus they were augmented from (default: found from the folder).")
def view(folder, out, samples, seed, worst, audio, corpus):
    """Write one self-contained HTML page of a corpus, a source, augmented, windows or labelled
    folder, or an ablation run folder (opens from disk, no server)."""
    from .view import ViewError, render

    try:
        w = render(folder, out, samples=samples, seed=seed, worst=worst, audio=audio,
                   corpus=corpus)
    except ViewError as e:
        _fail(str(e))
    click.echo(f"wrote {w.path} ({w.kind} page, {w.bytes / 1e6:.1f} MB, {w.audio} audio clips"
               + (f" in {w.audio_dir}" if w.audio_dir else "") + ")")


@main.command("app")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--mix", "mixes", multiple=True,
              help="Offer only these finished mixes (repeatable; the first is the default).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to serve on (0.0.0.0: every interface).")
@click.option("--port", type=int, help="Port (default: gradio's, 7860 or the next free one).")
@click.option("--max-minutes", type=float, default=10.0, show_default=True,
              help="Longest recording transcribed (in model-window pieces); longer is refused.")
@click.option("--title", default="", help="Page title.")
@click.option("--export-space", type=click.Path(path_type=Path, file_okay=False),
              help="Write a ready Hugging Face Space (Gradio) to this folder instead of serving.")
@click.option("--model-id", help="With --export-space: the Space loads this Hub model "
              "(owner/name; the mix it was trained as: --mix) instead of copying model files.")
def app_cmd(path, mixes, host, port, max_minutes, title, export_space, model_id):
    """Serve a Gradio page that transcribes Swedish speech with the fine-tuned models of an
    ablation run (PATH: runs/<recipe>, one mix folder, or a model folder), showing each
    model's training mix and WER. Needs the app extra
    (`pip install -c constraints.txt -e ".[app]"` in a clone)."""
    from .app import AppError, discover

    try:
        entries, skipped = discover(path, mixes)
        for name, why in skipped.items():
            click.echo(f"not offered: {name}: {why}", err=True)
        if export_space is not None:
            from .app.space import export_space as export

            out = export(entries, export_space, model_id=model_id, title=title,
                         max_minutes=max_minutes)
            click.echo(f"wrote a Hugging Face Space to {out} ({', '.join(e.name for e in entries)}"
                       f"); upload: hf upload OWNER/NAME {out} . --repo-type space")
            return
        if model_id:
            _fail("--model-id goes with --export-space")
        _need_extra("app", "app")
        from .app.transcribe import App
        from .app.ui import serve

        click.echo(f"serving {', '.join(e.name for e in entries)} (loading {entries[0].name})")
        serve(App(entries, max_minutes=max_minutes, title=title), host, port)
    except AppError as e:
        _fail(str(e))
    except ModuleNotFoundError as e:
        _need_extra("app", "app", e)


@main.group()
def download():
    """Fetch a source ahead of a build."""


@download.command("cv")
@click.option("--dataset-id", required=True,
              help="The Mozilla Data Collective dataset id (the end of the dataset page's URL).")
@click.option("--dest", type=click.Path(path_type=Path), help="Download folder.")
def download_cv(dataset_id: str, dest: Path | None):
    """Common Voice from Mozilla Data Collective (needs MDC_API_KEY; never re-hosted)."""
    from .records import SourceError
    from .sources.cv import download as cv_download

    try:
        click.echo(cv_download(dataset_id, dest))
    except SourceError as e:
        _fail(str(e))


@download.command("hub")
@click.argument("source", type=click.Choice(["fleurs", "voxpopuli", "rixvox"]))
@click.option("--language", default="sv", show_default=True,
              help="Language of the files to fetch (FLEURS sv_se, VoxPopuli's language code).")
@click.option("--cache-dir", type=click.Path(path_type=Path),
              help="Extraction/index cache (default ~/.cache/sweaug); Hub files use the HF cache.")
def download_hub(source: str, language: str, cache_dir: Path | None):
    """Fetch a Hub-hosted source's files (metadata only for rixvox) into the HF cache."""
    from .records import SourceError
    from .sources import SourceOptions, get_source

    try:
        click.echo(get_source(source, SourceOptions(language=language, cache_dir=cache_dir))
                   .download())
    except SourceError as e:
        _fail(str(e))


if __name__ == "__main__":  # pragma: no cover
    main()
