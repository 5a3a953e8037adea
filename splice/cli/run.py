"""``splice run``: Splice on one pair, with a record, a checkpoint and resume."""

from __future__ import annotations

import datetime as _dt
import shutil
import sys
from pathlib import Path

import click

from splice.core.errors import UserError

RANDOM_BANNER = (
    "WARNING: RANDOM ViT WEIGHTS - the output is NOT a meaningful Splice result "
    "(no DINO weights available; see README 'Weights')"
)


@click.command("run")
@click.argument("structure", type=click.Path(dir_okay=False))
@click.argument("appearance", type=click.Path(dir_okay=False))
@click.option("-o", "--out", "outdir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--preset", default="paper", show_default=True, help="paper | paper-10k | fast | smoke")
@click.option("--steps", type=int, default=None, help="Override the preset's number of steps.")
@click.option("--backbone", default=None, help="DINO ViT: vit_base_patch8_224 (B/8, default), S/8, B/16, S/16.")
@click.option("--weights", default=None,
              help="timm tag (default <backbone>.dino), a local .pth/.safetensors state dict, or 'random'.")
@click.option("--allow-random-weights", is_flag=True,
              help="If the default weights are unavailable, fall back to random ones (smoke runs; marked everywhere).")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N | mps")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds initialisation and augmentations.")
@click.option("--resize", type=int, default=None, help="Resize the structure image's shorter side to this (px).")
@click.option("--precision", type=click.Choice(["fp32", "bf16"]), default=None, help="bf16 = autocast (faster, not identical).")
@click.option("--memory-format", type=click.Choice(["auto", "channels-last", "nchw"]), default=None,
              help="Generator layout; auto = channels-last on CUDA and for bf16 (see README 'Speed').")
@click.option("--compile", "compile_", is_flag=True, default=None, help="torch.compile the generator (for CUDA; on a CPU compilation takes minutes).")
@click.option("--checkpoint-full", is_flag=True, default=None,
              help="Activation checkpointing for the full-image pass (less memory for HD images, same numbers).")
@click.option("--save-every", type=int, default=0, show_default=True, help="Save a snapshot every N steps.")
@click.option("--checkpoint-every", type=int, default=None, help="Checkpoint every N steps (default 50).")
@click.option("--resume", is_flag=True, help="Continue from OUTDIR/checkpoint.pt (no-op if the run finished).")
@click.option("--force", is_flag=True, help="Replace a finished or unfinished run in OUTDIR.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def command(structure, appearance, outdir, preset, steps, backbone, weights, allow_random_weights, device, seed,
            resize, precision, memory_format, compile_, checkpoint_full, save_every, checkpoint_every, resume, force, quiet) -> None:
    """Train Splice on STRUCTURE (layout to keep) and APPEARANCE (look to transfer).

    Writes OUTDIR/output.png (at the structure image's resolution, or the --resize'd
    one), OUTDIR/record.json and OUTDIR/checkpoint.pt. A killed run continues with --resume.

    \b
    Examples:
      splice run cat.jpg ibex.jpg -o out/cat_ibex                     # the paper: 2000 steps, ViT-B/8
      splice run cat.jpg ibex.jpg -o out/cat_ibex --resume            # after a crash
      splice run s.png a.png -o out/x --preset smoke --device cpu --allow-random-weights
      splice run s.png a.png -o out/x --weights ~/dino_vitbase8_pretrain.pth --precision bf16
    """
    from splice.core.atomic import atomic_write_json, read_json
    from splice.model.config import SpliceConfig
    from splice.core.method import resolve_device
    from splice.model.pipeline import run_pair
    from splice.core.resources import package_versions
    from splice.model.train import CHECKPOINT

    out = Path(outdir)
    s_path, a_path = Path(structure), Path(appearance)
    for p in (s_path, a_path):
        if p.exists() and out.resolve() == p.resolve().parent:
            raise UserError(f"-o {out} is the folder of the input {p.name}; choose another output folder "
                            "(nothing is ever written into input folders)")
    record_path, ckpt_path = out / "record.json", out / CHECKPOINT
    if record_path.exists() and not force:
        try:
            finished = read_json(record_path).get("status") == "ok"
        except (OSError, ValueError):
            finished = False
        if finished and resume:
            click.echo(f"{out} already holds a finished run; nothing to do", err=True)
            return
        if finished:
            raise UserError(f"{out} already holds a finished run; use --force to replace it or choose another -o")
    if ckpt_path.exists() and not resume and not force:
        raise UserError(f"{out} holds an unfinished run; add --resume to continue it or --force to start over")
    if force:
        for p in (record_path, ckpt_path):
            p.unlink(missing_ok=True)
        shutil.rmtree(out / "snapshots", ignore_errors=True)

    cfg = SpliceConfig.from_preset(
        preset, steps=steps, backbone=backbone, weights=weights, resize=resize, precision=precision, memory_format=memory_format,
        compile=compile_, checkpoint_full=checkpoint_full, save_every=save_every, checkpoint_every=checkpoint_every,
    )
    dev = resolve_device(device)
    out.mkdir(parents=True, exist_ok=True)
    image, geometry, info, result = run_pair(
        s_path, a_path, cfg, seed=seed, device=dev, workdir=out, resume=resume, allow_random=allow_random_weights,
        progress=not quiet and sys.stderr.isatty() or (not quiet and bool(_env_progress())),
        snapshot_dir=out / "snapshots" if save_every else None,
    )
    if info["random_weights"]:
        click.echo(RANDOM_BANNER, err=True)
    from splice.core.atomic import atomic_save_image

    atomic_save_image(out / "output.png", image)
    record = {
        "status": "ok",
        "method": "splice",
        "random_weights": info["random_weights"],
        "warning": RANDOM_BANNER if info["random_weights"] else None,
        "config": cfg.to_dict(),
        "config_hash": cfg.hash(),
        "preset": cfg.preset,
        "seed": seed,
        "device": dev,
        "output": "output.png",
        "output_size": list(image.size),
        "geometry": geometry.to_dict(),
        "checkpoint": CHECKPOINT,
        "versions": package_versions(),
        "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **info,
    }
    atomic_write_json(record_path, record)
    click.echo(f"wrote {out / 'output.png'} ({image.size[0]}x{image.size[1]}) in {result.seconds_this_run:.1f} s "
               f"({result.seconds_per_step:.3f} s/step, peak {result.peak_memory_mb:.0f} MB)", err=True)


def _env_progress() -> str | None:
    import os

    return os.environ.get("SPLICE_PROGRESS")
