"""One command-line vocabulary: a long option means one thing in every command, and so does a short one."""

from __future__ import annotations

import subprocess
import sys

import click

from splice import __version__
from splice.cli import COMMANDS, cli
from splice.cli.options import SHORT_FLAGS, VOCABULARY, VocabularyOption


def all_commands() -> list[tuple[str, click.Command]]:
    out = []

    def walk(prefix: str, cmd: click.Command) -> None:
        out.append((prefix, cmd))
        if isinstance(cmd, click.Group):
            ctx = click.Context(cmd)
            for name in cmd.list_commands(ctx):
                walk(f"{prefix} {name}", cmd.get_command(ctx, name))

    ctx = click.Context(cli)
    for name in cli.list_commands(ctx):
        walk(f"splice {name}", cli.get_command(ctx, name))
    return out


def test_every_command_is_reachable():
    names = {n for n, _ in all_commands()}
    assert set(f"splice {c}" for c in COMMANDS) <= names
    assert {"splice bench status", "splice bench import", "splice score vit", "splice score iou",
            "splice study export", "splice datasets check"} <= names  # fmt: skip


def test_shared_options_come_from_the_vocabulary_and_short_flags_mean_one_thing():
    problems = []
    shorts: dict[str, set[str]] = {}
    for name, cmd in all_commands():
        for p in cmd.params:
            if not isinstance(p, click.Option):
                continue
            longs = [o for o in p.opts + p.secondary_opts if o.startswith("--")]
            for s in (o for o in p.opts if not o.startswith("--")):
                shorts.setdefault(s, set()).update(longs[:1])
            if longs and longs[0] in VOCABULARY and not isinstance(p, VocabularyOption):
                problems.append(f"{name}: {longs[0]} is defined by hand; use splice.cli.options")
    for short, longs in shorts.items():
        if len(longs) != 1 or SHORT_FLAGS.get(short) not in longs:
            problems.append(f"{short} stands for {sorted(longs)}; the vocabulary says {SHORT_FLAGS.get(short)}")
    assert not problems, "\n".join(problems)


def test_every_command_has_examples_in_its_help():
    missing = [name for name, cmd in all_commands() if "Example" not in (cmd.help or "")]
    assert not missing, f"commands without examples in --help: {missing}"


def test_version():
    r = subprocess.run([sys.executable, "-m", "splice", "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == f"splice-bench {__version__}"
