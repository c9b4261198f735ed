"""One convention for the flags several commands share (issue #19 point 7; README "Flags every
command shares"): the same name means the same thing with the same default everywhere, and
every option says what it does in --help."""
from __future__ import annotations

import os

import click
import pytest

from sweaug.cli import SEED, SHARD_MB, SHARD_SAMPLES, default_workers, main


def _options(command: str) -> dict[str, click.Option]:
    cmd = main.commands[command]
    return {o.opts[0]: o for o in cmd.params if isinstance(o, click.Option)}


def test_shared_flags_have_one_default():
    for cmd in ("augment", "demo", "view"):
        assert _options(cmd)["--seed"].default == SEED == 13, cmd
    for cmd in ("build", "augment", "windows", "label"):
        assert _options(cmd)["--shard-samples"].default == SHARD_SAMPLES == 1000, cmd
        assert _options(cmd)["--shard-mb"].default == SHARD_MB == 512, cmd
        assert _options(cmd)["--no-progress"].is_flag, cmd
    for cmd in ("build", "augment", "demo"):
        w = _options(cmd)["--workers"]
        assert w.default in (None, click.core.UNSET)  # default_workers() when unset
        assert "the CPUs this process may use, at most 8" in w.help, cmd
        assert "byte-identical for any count" in w.help, cmd
    for cmd in ("ablate", "publish"):
        assert _options(cmd)["--dry-run"].is_flag, cmd
    # label: one worker unless asked, each loads the teacher (README's flag table says so)
    assert _options("label")["--workers"].default == 1


def test_default_workers_is_the_usable_cpus_capped():
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert default_workers() == max(1, min(n, 8))


@pytest.mark.parametrize("command", sorted(main.commands))
def test_every_option_has_help(command):
    cmd = main.commands[command]
    groups = cmd.commands.values() if isinstance(cmd, click.Group) else [cmd]
    for c in groups:
        missing = [o.opts[0] for o in c.params if isinstance(o, click.Option) and not o.help]
        assert not missing, f"{command} {c.name}: options without help: {missing}"
