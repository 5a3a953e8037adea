"""``splice perf`` (``make perf``, ``python -m splice.perf``): seconds per step and peak memory of Splice on
any device, ours against the reference's way of computing, and the largest image that fits in a
given memory (:mod:`splice.model.perf`)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from splice.cli import options as opt


@click.command("perf")
@opt.device("auto")
@opt.backbones("S/8,B/8")
@click.option("--sizes", default="512,hd", show_default=True,
              help="Comma list: 512 (a 512x512 pair), hd (a 1920x1080 structure image) or WxH.")
@click.option("--modes", default=None,
              help="Comma list: reference (the public code's way), fp32, bf16, compile (fp32, compiled generator), "
                   "bf16-compile, fp32-cl, bf16-cl (channels-last). [default: reference,fp32,bf16; on CUDA "
                   "also compile]")  # fmt: skip
@click.option("--steps", type=click.IntRange(min=1), default=4, show_default=True, help="Timed crop steps.")
@opt.memory_gb("Report the largest structure image whose peak fits in this memory.", default=8.0)
@opt.dest("Folder for perf.json [default: perf-results].")
@opt.as_json("Print perf.json on stdout instead of the tables.")
def command(device, backbones, sizes, modes, steps, memory_gb, dest, as_json) -> None:
    """Seconds per step and peak memory of Splice: ours against the reference's way (random weights).

    Each configuration runs in its own process; ratios are taken within one run (the machine is
    noisy). The largest image that fits in --memory-gb is a line fitted to the peaks measured at
    the --sizes given (at least two; see `splice.model.perf.fit_memory`).

    \b
    Examples:
      splice perf                                           # ViT-S/8 and B/8, 512 px and HD, this machine's device
      splice perf --device cuda:1 --backbones B/8 --memory-gb 24
      splice perf --device cpu --sizes 512 --modes reference,fp32 --steps 2
      python -m splice.perf --device cpu                    # the same command
    """
    from splice.core.atomic import atomic_write_json
    from splice.core.devices import resolve_device
    from splice.core.paths import ensure_writable_dir
    from splice.model.perf import (
        CUDA_DEFAULT_MODES,
        DEFAULT_MODES,
        MODES,
        fit_memory,
        machine,
        parse_size,
        run_all,
        size_label,
    )
    from splice.model.weights import canonical_backbone

    dev = resolve_device(device)
    archs = [canonical_backbone(b, option="--backbones") for b in opt.split(backbones) or []]
    if not archs:
        raise click.UsageError(f"--backbones {backbones!r}: give at least one, e.g. B/8,S/8")
    size_list = opt.split(sizes) or []
    try:
        for s in size_list:
            parse_size(s)
    except ValueError as e:
        raise click.UsageError(f"--sizes {sizes!r}: {e}") from None
    if not size_list:
        raise click.UsageError(f"--sizes {sizes!r}: use a comma list of 512, hd or WxH")
    default_modes = CUDA_DEFAULT_MODES if dev.startswith("cuda") else DEFAULT_MODES
    mode_list = opt.split(modes) or list(default_modes)
    bad = [m for m in mode_list if m not in MODES]
    if bad:
        raise click.UsageError(f"--modes {modes!r}: use a comma list of {', '.join(MODES)}")
    folder = ensure_writable_dir(dest or "perf-results", "--dest")

    def report(r: dict) -> None:
        if "error" in r:
            click.echo(f"{r['backbone']} {r['size']} {r['mode']}: failed: {r['error']}", err=True)
        else:
            click.echo(f"{r['backbone']} {r['size']:>4} {r['mode']:>12}: {r['seconds_per_step']:.3f} s/step "
                       f"(min {r['min_seconds_per_step']:.3f}), full-image step {r['full_image_step_seconds']:.3f} s, "
                       f"peak {r['peak_memory_mb']:.0f} MB", err=True)  # fmt: skip

    rows = run_all(size_list, mode_list, steps, archs, dev, report)
    fits = fit_memory(rows, memory_gb)
    m = machine(dev)
    result = {"rows": rows, "fits": fits, "steps": steps, **m}
    path = atomic_write_json(Path(folder) / "perf.json", result)
    if as_json:
        click.echo(json.dumps(result, indent=1))
    else:
        where = m.get("device_name") or f"cpu: {m['processor']}, {m['cpu_count']} cores"
        click.echo(f"\nSplice seconds per step on {dev} ({where}), random weights, {steps} timed steps")
        click.echo("| backbone | input | mode | s/step | vs reference | full-image step (s) | peak memory (MB) |")
        click.echo("|---|---|---|---|---|---|---|")
        for r in rows:
            if "error" in r:
                click.echo(f"| {r['backbone']} | {size_label(r['size'])} | {r['mode']} | failed: {r['error']} "
                           f"| | | |")  # fmt: skip
                continue
            click.echo(f"| {r['backbone']} | {size_label(r['size'])} | {r['mode']} | {r['seconds_per_step']:.3f} | "
                       f"{r['ratio_vs_reference']:.2f}x | {r['full_image_step_seconds']:.3f} | "
                       f"{r['peak_memory_mb']:.0f} |")  # fmt: skip
        click.echo(f"\nLargest structure image whose peak fits in {memory_gb:g} GB: peak = a + b * P fitted to the "
                   "measured sizes, P = W*H + (short side)^2 (see splice.model.perf.fit_memory)")  # fmt: skip
        click.echo("| backbone | mode | a (MB) | b (MB/Mpx) | square | 16:9 | beyond the largest measured |")
        click.echo("|---|---|---|---|---|---|---|")
        for f in fits:
            if "error" in f:
                click.echo(f"| {f['backbone']} | {f['mode']} | {f['error']} | | | | |")
                continue
            wide = f"{f['wide'][0]}x{f['wide'][1]}" if f.get("wide") else "none"
            square = f"{f['square_side']}x{f['square_side']}" if f["square_side"] else "none"
            reach = f"{f['extrapolation']:.1f}x the pixels" if f.get("extrapolation") else "-"
            click.echo(f"| {f['backbone']} | {f['mode']} | {f['a_mb']:.0f} | {f['b_mb_per_mpx']:.0f} | {square} | "
                       f"{wide} | {reach} |")  # fmt: skip
    click.echo(f"written: {path}", err=True)
    if any("error" in r for r in rows):
        raise SystemExit(1)
