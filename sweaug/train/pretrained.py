"""Where a recipe's pretrained Whisper comes from, checked before anything runs.

A recipe's ``model`` is one of

* ``tiny-random`` — a small random Whisper built here (tests, smoke runs, the demo);
* a folder written by ``save_pretrained`` (``WhisperForConditionalGeneration`` and
  ``WhisperProcessor``: ``config.json``, ``preprocessor_config.json``, the tokenizer files and
  the weights) — loaded from disk only;
* a Hub id (``openai/whisper-small``) — from the Hugging Face cache when every file a run needs
  is there (then nothing is asked of the network, so ``HF_HUB_OFFLINE=1`` or no network at all
  changes nothing), else from the Hub.

:func:`resolve` answers, in a second or two and without downloading anything, whether this
machine can load the model's config, feature extractor and tokenizer (and has or can fetch the
weights), or raises :class:`ModelError` with one line saying what is missing and the command
that gets it — instead of transformers retrying an unreachable Hub for minutes and ending in a
traceback after the plan said all was well. ``sweaug ablate --dry-run`` and the preflight before
the first step call it. :func:`load_kwargs` is what every ``from_pretrained`` of the model then
passes (``local_files_only`` for a folder or a complete cache), so loading takes the path the
check took.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..records import ConfigError

TINY = "tiny-random"
# what loading a Whisper for training and evaluation reads; each entry: alternatives
CONFIG = ("config.json",)
FEATURES = ("preprocessor_config.json",)
TOKENIZER = ("tokenizer.json", "vocab.json")  # fast tokenizer, or the slow one's vocab + merges
WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
           "pytorch_model.bin.index.json")
NEEDED = {"config.json": CONFIG, "preprocessor_config.json (the feature extractor)": FEATURES,
          "tokenizer.json or vocab.json (the tokenizer)": TOKENIZER,
          "model.safetensors or pytorch_model.bin (the weights)": WEIGHTS}
HUB_TIMEOUT = 10.0  # seconds for the one request that asks the Hub whether the model exists


class ModelError(ConfigError):
    """The recipe's model cannot be loaded on this machine: one line, with what to do."""


@dataclass(frozen=True)
class ModelSource:
    """Where :func:`resolve` found the model: ``kind`` is ``tiny``, ``folder``, ``cache`` or
    ``hub``; ``location`` the folder (for ``cache``: the snapshot folder) or the Hub id;
    ``revision`` the cached snapshot's commit (``cache`` only)."""
    name: str
    kind: str
    location: str
    revision: str | None = None

    def as_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "location": self.location,
                "revision": self.revision}


def is_folder_name(name: str) -> bool:
    """Whether ``name`` is meant as a folder (``/abs``, ``./rel``, ``../rel``, ``~/...``, or an
    existing folder), not a Hub id."""
    return name.startswith(("/", "./", "../", "~")) or Path(name).is_dir()


def _download_hint(name: str) -> str:
    return (f"run `hf download {name}` (`huggingface-cli download {name}` with an older "
            f"huggingface_hub) where there is internet and copy the cache here, or set the "
            f"recipe's `model:` to a folder written by save_pretrained")


def _cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _missing_in_folder(folder: Path) -> list[str]:
    return [what for what, files in NEEDED.items()
            if not any((folder / f).is_file() for f in files)]


def _cached(name: str) -> tuple[dict[str, str], list[str]]:
    """``({file: cached path}, [what is missing])`` for the Hub id ``name`` in the local cache
    (huggingface_hub's ``try_to_load_from_cache``: no network)."""
    from huggingface_hub import try_to_load_from_cache

    found, missing = {}, []
    for what, files in NEEDED.items():
        for f in files:
            try:
                p = try_to_load_from_cache(name, f)
            except Exception:  # an id huggingface_hub rejects: reported as not cached
                p = None
            if isinstance(p, str):
                found[f] = p
                break
        else:
            missing.append(what)
    return found, missing


def load_kwargs(name: str) -> dict:
    """Keyword arguments for every ``from_pretrained`` of the recipe's model:
    ``local_files_only=True`` for a folder and for a Hub id whose files are all in the cache
    (no request to the Hub, so an unreachable one cannot stall the run), else none."""
    if name == TINY:
        return {}
    if is_folder_name(name):
        return {"local_files_only": True}
    return {"local_files_only": True} if not _cached(name)[1] else {}


def _try_load(name: str, where: str, **kw) -> None:
    """Load the config, the feature extractor and the tokenizer (small files, no weights): a
    folder or cache that has the files but cannot be read fails here, named."""
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperTokenizerFast

    for what, cls in (("config", WhisperConfig), ("feature extractor", WhisperFeatureExtractor),
                      ("tokenizer", WhisperTokenizerFast)):
        try:
            cls.from_pretrained(name, **kw)
        except Exception as e:  # every loader error, with its first line only
            first = (str(e).strip().splitlines() or [""])[0]
            raise ModelError(f"model {name}: cannot load its {what} from {where} "
                             f"({type(e).__name__}: {first})") from None


@lru_cache(maxsize=None)
def resolve(name: str) -> ModelSource:
    """Check that the model ``name`` can be loaded here (see the module docstring); return where
    it is, or raise :class:`ModelError` with one line that names what is missing and how to
    get it. Downloads nothing; asks the Hub one question (does the model exist, with which
    files) only when the cache lacks something and ``HF_HUB_OFFLINE`` is not set."""
    if name == TINY:
        return ModelSource(name, "tiny", TINY)
    if is_folder_name(name):
        folder = Path(name).expanduser()
        if not folder.is_dir():
            raise ModelError(f"model folder {folder} does not exist (a recipe's `model:` is a "
                             f"Hub id like openai/whisper-small, tiny-random, or a folder "
                             f"written by save_pretrained)")
        missing = _missing_in_folder(folder)
        if missing:
            raise ModelError(f"model folder {folder} has no {'; no '.join(missing)} — save "
                             f"both parts into it: WhisperForConditionalGeneration"
                             f"(...).save_pretrained(folder) and WhisperProcessor"
                             f"(...).save_pretrained(folder)")
        _try_load(str(folder), str(folder), local_files_only=True)
        return ModelSource(name, "folder", str(folder.resolve()))
    found, missing = _cached(name)
    if not missing:
        snapshot = Path(found["config.json"]).parent
        _try_load(name, f"the Hugging Face cache ({snapshot})", local_files_only=True)
        return ModelSource(name, "cache", str(snapshot), snapshot.name)
    where = (f"not in the Hugging Face cache ({_cache_dir()})" if len(missing) == len(NEEDED)
             else f"only partly in the Hugging Face cache (missing {'; '.join(missing)})")
    if _offline():
        raise ModelError(f"model {name}: {where} and HF_HUB_OFFLINE is set: "
                         + _download_hint(name))
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    try:
        info = HfApi().model_info(name, timeout=HUB_TIMEOUT, files_metadata=False)
    except GatedRepoError:
        raise ModelError(f"model {name} is gated on the Hub: accept its terms on "
                         f"huggingface.co/{name}, then `hf auth login`") from None
    except RepositoryNotFoundError:
        raise ModelError(f"model {name}: no such model on the Hub (or it is private: "
                         f"`hf auth login`), and no folder of that name") from None
    except Exception as e:  # no network, DNS, a proxy, a timeout: one line, no retries
        first = (str(e).strip().splitlines() or [""])[0]
        raise ModelError(f"model {name}: {where} and the Hub cannot be reached "
                         f"({type(e).__name__}: {first}): " + _download_hint(name)) from None
    files = {s.rfilename for s in (info.siblings or [])}
    absent = [what for what, alts in NEEDED.items() if not files & set(alts)]
    if files and absent:
        raise ModelError(f"model {name} on the Hub has no {'; no '.join(absent)}: it is not a "
                         f"Whisper checkpoint sweaug can train")
    return ModelSource(name, "hub", name, getattr(info, "sha", None))

