"""Bad input through the CLI (issue #14): outputs that overlap their inputs, a folder named
sweaug in the cwd, two runs into one output, impossible shard sizes, corrupt manifests, unsafe
YAML, relative flag paths, tokens pasted into --repo-id. Each must end in a clean `error: ...`
(exit 2) or a correct result, never a traceback or lost data."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, sweaug, tree_bytes

CV = ROOT / "sweaug" / "sample" / "cv"
NOISY = ROOT / "recipes" / "augment" / "noisy.yaml"
DEFAULT = ROOT / "recipes" / "augment" / "default.yaml"
TOKEN = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz01234567"  # made up, shaped like a real token
BUILD = ["build", "--sources", "cv", "--cv-dir", CV, "--no-progress", "--shard-samples", "8"]


def run(env, *args, cwd) -> subprocess.CompletedProcess:
    """The CLI from another working directory (`python -m` imports from the cwd first: only
    for a cwd without a sweaug folder)."""
    return subprocess.run([sys.executable, "-m", "sweaug.cli", *map(str, args)], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def clean_error(p: subprocess.CompletedProcess) -> str:
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr, p.stderr
    assert p.stderr.startswith("error: "), p.stderr
    return p.stderr


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, env) -> Path:
    out = tmp_path_factory.mktemp("bad") / "corpus"
    sweaug(env, *BUILD, "--out", out)
    return out


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


# --- case 7: an output that is, contains or is inside its input --------------------------------

@pytest.mark.parametrize("where,how", [("cv", "is"), (".", "contains"), ("cv/sub", "is inside"),
                                       ("link", "is")])
def test_augment_refuses_an_output_overlapping_its_input(corpus, env, tmp_path, where, how):
    c = tmp_path / "corpus"
    shutil.copytree(corpus, c, ignore=shutil.ignore_patterns(".sweaug"))
    (c / "link").symlink_to(c / "cv")
    before = snapshot(c)
    out = c / where
    err = clean_error(sweaug(env, "augment", c / "cv", "--recipe", DEFAULT, "--seed", "1",
                             "--out", out, "--no-progress", check=False))
    assert f"--out {out} {how} the input folder {c / 'cv'}" in err
    assert snapshot(c) == before  # nothing written, nothing removed


@pytest.mark.parametrize("where,how", [("cv", "is"), ("cv/corpus", "is inside"),
                                       (".", "contains")])
def test_build_refuses_an_output_overlapping_a_source_folder(env, tmp_path, where, how):
    shutil.copytree(CV, tmp_path / "cv")
    before = snapshot(tmp_path)
    err = clean_error(run(env, "build", "--sources", "cv", "--cv-dir", "cv", "--out", where,
                          "--no-progress", cwd=tmp_path))
    assert f"--out {where} {how} the input --cv-dir cv" in err
    assert snapshot(tmp_path) == before


def test_build_refuses_an_output_inside_an_eval_folder(corpus, env, tmp_path):
    err = clean_error(sweaug(env, *BUILD, "--eval", corpus / "cv", "--out", corpus / "cv" / "x",
                             check=False))
    assert "is inside the input --eval" in err and not (corpus / "cv" / "x").exists()


# --- case 10: a folder named sweaug in the cwd --------------------------------------------------

LAUNCHER = """\
import sys
import sweaug.build.executors
if {fallback}:  # the Python 3.10 path: no PYTHONSAFEPATH
    sweaug.build.executors._SAFE_PATH = False
if __name__ == "__main__":
    from sweaug.cli import main
    sys.exit(main())
"""


@pytest.mark.parametrize("fallback", [False, True], ids=["safe-path", "chdir"])
@pytest.mark.parametrize("shadow", ["empty", "init"])
def test_workers_import_the_installed_sweaug_not_the_cwd(corpus, env, tmp_path, shadow,
                                                         fallback):
    # like the `sweaug` console script: a launcher outside the cwd, so that only the workers
    # (multiprocessing's forkserver, `python -c`: the cwd first on sys.path) could go wrong
    launcher = tmp_path / "bin" / "sweaug_launcher.py"
    launcher.parent.mkdir()
    launcher.write_text(LAUNCHER.format(fallback=fallback))
    project = tmp_path / "project"
    (project / "sweaug").mkdir(parents=True)
    if shadow == "init":
        (project / "sweaug" / "__init__.py").write_text("")
    p = subprocess.run([sys.executable, launcher, *map(str, BUILD), "--out", "out",
                        "--workers", "2"], env=env, cwd=project, capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stderr
    assert tree_bytes(project / "out") == tree_bytes(corpus)  # same bytes as one worker


def test_demo_ablation_jobs_import_the_installed_sweaug(env, tmp_path, monkeypatch):
    """`sweaug demo`'s side-by-side ablation jobs are `python -m sweaug.cli ...` subprocesses:
    from a cwd holding a sweaug folder they must still run this sweaug (here they stop at once,
    on a recipe that names no mixes, with sweaug's own error)."""
    from sweaug.ablate.recipe import AblationError
    from sweaug.demo import _ablate_side_by_side

    project = tmp_path / "project"
    (project / "sweaug").mkdir(parents=True)
    (project / "sweaug" / "__init__.py").write_text("")
    recipe = tmp_path / "demo.yaml"
    recipe.write_text("name: demo\nmixes: []\n")
    monkeypatch.chdir(project)
    monkeypatch.setenv("PYTHONPATH", env["PYTHONPATH"])
    with pytest.raises(AblationError):
        _ablate_side_by_side(recipe, tmp_path / "runs", tmp_path / "corpus", echo=lambda m: None)
    logs = sorted((tmp_path / "runs" / "logs").glob("*.log"))
    assert len(logs) == 2
    for log in logs:
        text = log.read_text()
        assert "ImportError" not in text and "Traceback" not in text, text
        assert text.startswith("error: ") and str(recipe) in text, text  # sweaug's CLI


# --- case 11: two runs into one output ----------------------------------------------------------

HOLDER = """\
import os, sys, time
from pathlib import Path
from sweaug.build import shards
orig, flag = shards.ShardWriter.write, Path(os.environ["STARTED"])
def write(self, key, files):  # the first sample: say so, then wait for the test's go
    if not flag.exists():
        flag.write_text("started")
        t = time.monotonic()
        while not Path(os.environ["GO"]).exists() and time.monotonic() - t < 120:
            time.sleep(0.05)
    orig(self, key, files)
shards.ShardWriter.write = write
if __name__ == "__main__":
    from sweaug.cli import main
    sys.exit(main())
"""


def _start_holder(env, tmp_path, *args) -> subprocess.Popen:
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    e = dict(env, STARTED=str(tmp_path / "started"), GO=str(tmp_path / "go"))
    p = subprocess.Popen([sys.executable, script, *map(str, args)], env=e,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t = time.monotonic()
    while not (tmp_path / "started").exists():  # inside its first job: temporary files exist
        assert p.poll() is None and time.monotonic() - t < 120, p.communicate()
        time.sleep(0.05)
    return p


def test_a_second_run_into_the_same_output_is_refused(corpus, env, tmp_path):
    out = tmp_path / "out"
    first = _start_holder(env, tmp_path, *BUILD, "--out", out)
    try:
        second = sweaug(env, *BUILD, "--out", out, check=False)
        err = clean_error(second)
        assert (f"another sweaug run (pid {first.pid} on host {socket.gethostname()}, started "
                in err and f"is writing to {out}" in err and "build --sources cv" in err)
        augment = sweaug(env, "augment", corpus / "cv", "--recipe", DEFAULT, "--seed", "1",
                         "--out", out, "--no-progress", check=False)
        assert f"pid {first.pid}" in clean_error(augment)
    finally:
        (tmp_path / "go").write_text("go")
        _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr  # the first run was not disturbed
    assert tree_bytes(out) == tree_bytes(corpus)
    assert not (out / ".sweaug" / "lock.json").exists()  # released


def test_a_lock_left_by_a_killed_run_is_taken_over(corpus, env, tmp_path):
    out = tmp_path / "out"
    first = _start_holder(env, tmp_path, *BUILD, "--workers", "2", "--out", out)
    first.send_signal(signal.SIGKILL)
    # its pool's workers (which hold its stdout) end with it instead of living on as orphans
    first.communicate(timeout=30)
    p = sweaug(env, *BUILD, "--out", out)
    assert f"taking over the lock of a sweaug run that is gone (pid {first.pid}" in p.stderr
    assert tree_bytes(out) == tree_bytes(corpus)


def test_the_lock_of_a_url_output_names_its_holder():
    """Any other fsspec URL (s3://, gs://, here memory://): a lock object, best effort."""
    import fsspec

    from sweaug.build.storage import LOCK_INFO, OutputBusy, OutputLock, open_store

    url = "memory://sweaug-lock-test/corpus"
    store = open_store(url)
    other = {"host": "elsewhere", "pid": 1, "command": "sweaug build x", "started": "then"}
    store.write_bytes(LOCK_INFO, json.dumps(other).encode())
    with pytest.raises(OutputBusy, match=r"pid 1 on host elsewhere, started then: sweaug build x"
                                         r"\) is writing to memory://.*delete memory://"):
        OutputLock(url).__enter__()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    store.write_bytes(LOCK_INFO, json.dumps(dict(other, host=socket.gethostname(),
                                                 pid=dead.pid)).encode())
    with OutputLock(url):  # a dead pid on this host: taken over
        assert json.loads(store.read_bytes(LOCK_INFO))["pid"] == os.getpid()
        with OutputLock(url):  # re-entrant in one process
            pass
        assert store.read_bytes(LOCK_INFO) is not None
    assert store.read_bytes(LOCK_INFO) is None
    fsspec.filesystem("memory").rm("/sweaug-lock-test", recursive=True)


# --- case 13: shard sizes, a corrupt manifest, unsafe YAML --------------------------------------

@pytest.mark.parametrize("flag,value", [("--shard-samples", "0"), ("--shard-samples", "-3"),
                                        ("--shard-mb", "0"), ("--shard-mb", "-1")])
def test_impossible_shard_sizes_are_refused(corpus, env, tmp_path, flag, value):
    build = BUILD[:-2] + [flag, value, "--out", tmp_path / "b"]
    assert f"{flag} must be at least 1, got {value}" in clean_error(sweaug(env, *build,
                                                                           check=False))
    augment = ["augment", corpus / "cv", "--recipe", DEFAULT, "--seed", "1", "--out",
               tmp_path / "a", "--no-progress", flag, value]
    assert f"{flag} must be at least 1, got {value}" in clean_error(sweaug(env, *augment,
                                                                           check=False))
    assert not (tmp_path / "b").exists() and not (tmp_path / "a").exists()


def test_a_truncated_manifest_is_named_with_its_line(corpus, env, tmp_path):
    c = tmp_path / "corpus"
    shutil.copytree(corpus, c, ignore=shutil.ignore_patterns(".sweaug"))
    text = (c / "manifest.json").read_text()
    (c / "manifest.json").write_text(text[:300])
    line = text[:300].count("\n") + 1
    err = clean_error(sweaug(env, "augment", c / "cv", "--recipe", DEFAULT, "--seed", "1",
                             "--out", tmp_path / "a", "--no-progress", check=False))
    assert f"{c / 'manifest.json'}:{line}: not valid JSON" in err
    (c / "manifest.json").write_text("[1, 2]")
    err = clean_error(sweaug(env, "augment", c / "cv", "--recipe", DEFAULT, "--seed", "1",
                             "--out", tmp_path / "a", "--no-progress", check=False))
    assert "manifest.json: not a sweaug manifest" in err


@pytest.mark.parametrize("body,line", [
    ("name: t\ntransforms:\n  - Gain: {p: 0.5}\n  - Gain: !!python/object/apply:os.system [x]\n",
     4),
    ("name: !!python/object/apply:os.system [x]\ntransforms:\n  - Gain: {p: 0.5}\n", 1),
    ("name: t\ntransforms:\n  - Gain: {p: !!python/object:os.system 0.5}\n", 3),
    ("name: [a, b]\ntransforms:\n  - Gain: {p: 0.5}\n", 1),
])
def test_augment_recipe_with_unsafe_yaml_names_file_and_line(corpus, env, tmp_path, body, line):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(body)
    err = clean_error(sweaug(env, "augment", corpus / "cv", "--recipe", recipe, "--seed", "1",
                             "--out", tmp_path / "a", "--no-progress", check=False))
    assert err.startswith(f"error: {recipe}:{line}: "), err


def test_ablation_recipe_with_unsafe_yaml_names_file_and_line(env, tmp_path):
    recipe = tmp_path / "ab.yaml"
    recipe.write_text("name: x\nmixes:\n  - name: a\n    data: !!python/object/apply:os.system"
                      " [x]\n")
    err = clean_error(sweaug(env, "ablate", recipe, "--dry-run", check=False))
    assert str(recipe) in err and ("line 4" in err or f"{recipe}:4:" in err), err


# --- case 14: flags resolve from the cwd, recipe paths from the recipe's folder -----------------

def test_relative_noise_dir_flag_is_relative_to_the_cwd(corpus, env, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(ROOT / "sweaug" / "sample" / "noise", work / "noisebad")
    p = run(env, "augment", corpus / "cv", "--recipe", NOISY, "--seed", "1", "--out", "aug",
            "--noise-dir", "noisebad", "--no-progress", "--splits", "test", cwd=work)
    assert p.returncode == 0, p.stderr
    # a path written inside a recipe still resolves from the recipe's folder
    recipes = tmp_path / "recipes"
    shutil.copytree(ROOT / "sweaug" / "sample" / "noise", recipes / "mynoise")
    (recipes / "r.yaml").write_text("name: r\ntransforms:\n  - AddBackgroundNoise: "
                                    "{p: 1.0, sounds_path: mynoise}\n")
    p = run(env, "augment", corpus / "cv", "--recipe", recipes / "r.yaml", "--seed", "1",
            "--out", "aug2", "--no-progress", "--splits", "test", cwd=work)
    assert p.returncode == 0, p.stderr
    err = clean_error(run(env, "augment", corpus / "cv", "--recipe", NOISY, "--seed", "1",
                          "--out", "aug3", "--noise-dir", "mynoise", "--no-progress", cwd=work))
    assert f"folder {work / 'mynoise'} does not exist" in err


# --- case 16: tokens ----------------------------------------------------------------------------

@pytest.mark.parametrize("repo_id", [f"{TOKEN}/swedish", f"someone/x{TOKEN}", f"{TOKEN}"])
def test_a_token_in_repo_id_is_refused_without_echoing_it(corpus, env, tmp_path, repo_id):
    c = tmp_path / "corpus"
    shutil.copytree(corpus, c, ignore=shutil.ignore_patterns(".sweaug"))
    for extra in ([], ["--dry-run"]):
        p = sweaug(dict(env, HF_TOKEN=""), "publish", c, "--repo-id", repo_id,
                   "--include-common-voice", *extra, check=False)
        err = clean_error(p)
        assert "looks like a Hugging Face token" in err
        assert TOKEN not in p.stdout + p.stderr and TOKEN[3:] not in p.stdout + p.stderr
    assert not (c / ".sweaug").exists()  # nothing staged under a token's name


def test_error_messages_never_show_a_token(corpus, env):
    p = sweaug(env, "publish", corpus, "--repo-id", "me/x", "--dry-run", "--include-common-voice",
               "--default-config", TOKEN, check=False)
    err = clean_error(p)
    assert "--default-config hf_***" in err and TOKEN not in p.stdout + p.stderr


LOGGER = """\
import sys
from huggingface_hub.utils import logging
from sweaug import cli
@cli.main.command()
def leak():  # as huggingface_hub logs (its own handler, and the root logger's)
    logging.get_logger("huggingface_hub.utils._http").warning(
        "'%s' thrown while requesting GET https://huggingface.co/api/datasets/%s/x", "Timeout",
        sys.argv[-1])
if __name__ == "__main__":
    sys.exit(cli.main(sys.argv[1:-1]))
"""


def test_log_lines_never_show_a_token(env, tmp_path):
    """huggingface_hub's retry lines name the URL, where a repo id (or worse) appears."""
    script = tmp_path / "logger.py"
    script.write_text(LOGGER)
    p = subprocess.run([sys.executable, script, "leak", TOKEN], env=env, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stderr.count("thrown while requesting GET") == 2, p.stderr  # both handlers
    assert p.stderr.count("datasets/hf_***/x") == 2
    assert TOKEN not in p.stdout + p.stderr
