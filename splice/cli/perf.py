"""``splice perf`` (``make perf``): seconds per step and peak memory of Splice, ours against the
reference's way of computing (:mod:`splice.model.perf`)."""

from __future__ import annotations

from pathlib import Path

import click

from splice.cli import options as opt


@click.command("perf")
@click.option("--steps", type=click.IntRange(min=1), default=4, show_default=True, help="Timed crop steps.")
@click.option("--sizes", default="512,hd", show_default=True, help="Comma list: 512 (a 512x512 pair), hd (1920x1080).")
@click.option(
    "--modes",
    default="reference,fp32,bf16",
    show_default=True,
    help="Comma list: reference (the public code's way), fp32, bf16, fp32-cl (channels-last).",
)
@opt.backbone("vit_small_patch8_224")
@opt.dest("Folder for perf.json [default: perf-results].")
def command(steps, sizes, modes, backbone, dest) -> None:
    """Seconds per step and peak memory of Splice: ours against the reference's way (random weights).

    Each configuration runs in its own process; ratios are taken within one run (the machine is noisy).

    \b
    Examples:
      splice perf
      splice perf --sizes 512 --modes reference,fp32 --steps 2
    """
    from splice.core.atomic import atomic_write_json
    from splice.core.paths import ensure_writable_dir
    from splice.model.perf import SIZES, machine, run_all
    from splice.model.weights import canonical_backbone

    arch = canonical_backbone(backbone)
    size_list, mode_list = opt.split(sizes) or [], opt.split(modes) or []
    bad = [s for s in size_list if s not in SIZES]
    if bad or not size_list:
        raise click.UsageError(f"--sizes {sizes!r}: use a comma list of {', '.join(SIZES)}")
    known = ("reference", "fp32", "bf16", "fp32-cl", "bf16-cl")
    bad = [m for m in mode_list if m not in known]
    if bad or not mode_list:
        raise click.UsageError(f"--modes {modes!r}: use a comma list of {', '.join(known)}")
    folder = ensure_writable_dir(dest or "perf-results", "--dest")

    def report(r: dict) -> None:
        if "error" in r:
            click.echo(f"{r['size']} {r['mode']}: failed\n{r['error']}", err=True)
        else:
            click.echo(f"{r['size']:>4} {r['mode']:>9}: {r['seconds_per_step']:.3f} s/step "
                       f"(min {r['min_seconds_per_step']:.3f}), full-image step {r['full_image_step_seconds']:.3f} s, "
                       f"peak {r['peak_memory_mb']:.0f} MB", err=True)  # fmt: skip

    rows = run_all(size_list, mode_list, steps, arch, report)
    m = machine()
    click.echo(
        f"\nSplice seconds per step, {arch}, random weights, {steps} timed steps "
        f"(cpu: {m['processor']}, {m['cpu_count']} cores)"
    )
    click.echo("| input | mode | s/step | vs reference | full-image step (s) | peak memory (MB) |")
    click.echo("|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            continue
        label = "512x512 pair" if r["size"] == "512" else "HD 1920x1080 structure"
        click.echo(
            f"| {label} | {r['mode']} | {r['seconds_per_step']:.3f} | {r['ratio_vs_reference']:.2f}x | "
            f"{r['full_image_step_seconds']:.3f} | {r['peak_memory_mb']:.0f} |"
        )
    path = atomic_write_json(Path(folder) / "perf.json", {"rows": rows, **m})
    click.echo(f"written: {path}", err=True)
    if any("error" in r for r in rows):
        raise SystemExit(1)
