"""The README's example of reading shards with webdataset runs as written, on a fresh build,
with only what sweaug installs (no torchaudio): it yields 16 kHz float audio and the
transcripts of the shards."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from conftest import CV12, ROOT, sweaug
from sweaug.build.shards import iter_samples

MARKER = "<!-- reading-shards-webdataset"


def readme_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text.count(MARKER) == 1, "the README's webdataset reading example lost its marker"
    after = text.split(MARKER, 1)[1]
    m = re.match(r"[^\n]*-->\n```python\n(.*?)\n```\n", after, re.S)
    assert m, "no ```python block right after the marker"
    return m.group(1)


@pytest.fixture(scope="module")
def built(tmp_path_factory, env):
    root = tmp_path_factory.mktemp("readme")
    sweaug(env, "build", "--sources", "cv", "--cv-dir", CV12, "--out", root / "corpus",
           "--no-progress")
    return root


def test_readme_webdataset_example_reads_the_shards(built, monkeypatch, capsys):
    pytest.importorskip("webdataset")
    code = readme_example()
    assert "torch_audio" not in code and 'shards = ' in code
    monkeypatch.chdir(built)  # the example's paths are relative: corpus/cv/train-*.tar
    ns: dict = {}
    exec(compile(code, "README.md (webdataset example)", "exec"), ns)
    printed = capsys.readouterr().out

    # what the shards hold, read with sweaug's own tar reader
    truth = [(key, files) for shard in sorted((built / "corpus" / "cv").glob("train-*.tar"))
             for key, files in iter_samples(shard)]
    assert truth and [str(p) for p in ns["shards"]] == \
        sorted(f"corpus/cv/{p.name}" for p in (built / "corpus" / "cv").glob("train-*.tar"))
    first = json.loads(truth[0][1]["json"])
    audio, sr, meta = ns["audio"], ns["sr"], ns["meta"]
    assert sr == 16000 and isinstance(audio, np.ndarray) and audio.dtype == np.float32
    assert audio.ndim == 1 and audio.shape[0] == first["num_samples"]
    assert meta["text"] == first["text"] and first["text"] in printed
    shown = re.search(r"print\(.*\)  # (.*)", code).group(1)  # the README's comment: the output
    assert printed.strip() == shown
    # the whole dataset the example builds: every sample, decoded, in shard order
    rows = list(ns["ds"])
    assert len(rows) == len(truth)
    for ((a, rate), m), (key, files) in zip(rows, truth):
        want = json.loads(files["json"])
        assert rate == 16000 and a.dtype == np.float32 and a.shape == (want["num_samples"],)
        assert m["key"] == key and m["text"] == want["text"] and np.abs(a).max() > 0


def test_the_readme_says_why_not_torch_audio(built):
    """The pitfall the example avoids, as the README states it: without torchaudio (sweaug
    does not install it), webdataset's torch_audio decoder fails with a DecodingError."""
    import importlib.util

    wds = pytest.importorskip("webdataset")
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    intro = text.split(MARKER, 1)[0].rstrip().rsplit("\n\n", 1)[-1]
    assert "wds.torch_audio" in intro and "torchaudio" in intro and "DecodingError" in intro
    if importlib.util.find_spec("torchaudio") is not None:
        pytest.skip("torchaudio is installed here")
    shard = sorted((built / "corpus" / "cv").glob("train-*.tar"))[0]
    ds = wds.WebDataset(str(shard), shardshuffle=False).decode(wds.torch_audio)
    with pytest.raises(Exception) as e:
        next(iter(ds))
    assert type(e.value).__name__ == "DecodingError"
