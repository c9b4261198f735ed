#!/usr/bin/env bash
# Install what the tests need, from the repo's own files: Debian's FFmpeg (torchcodec, which
# `datasets` decodes audio with, loads its libraries) and Chromium (the page tests drive it with
# Playwright; never `playwright install`), then sweaug with its test, ray, s3 and app extras.
# Used by the README's test command and by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1
if command -v apt-get >/dev/null; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends ffmpeg chromium >/dev/null
else
  echo "test-setup: no apt-get: install FFmpeg and Chromium (/usr/bin/chromium) yourself" >&2
fi
# torch first, pinned: the CPU build (an unpinned torch pulls a multi-GB CUDA build)
python -m pip install -q -c constraints.txt torch==2.13.0
python -m pip install -q -c constraints.txt -e ".[test,ray,s3,app]"
# only for its tokenizer asset; --no-deps skips triton (~1 GB, unused on CPU)
python -m pip install -q --no-deps openai-whisper==20250625
