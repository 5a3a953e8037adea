"""``splice run``: Splice on one pair, with a record, a checkpoint and resume."""

from __future__ import annotations

import re
import shlex
import shutil
import sys
from pathlib import Path

import click

from splice.cli import options as opt
from splice.core.errors import UserError

RANDOM_BANNER = (
    "WARNING: RANDOM ViT WEIGHTS - the output is NOT a meaningful Splice result "
    "(no DINO weights available; see README 'Weights')"
)


@click.command("run")
@click.argument("structure", type=click.Path(dir_okay=False))
@click.argument("appearance", type=click.Path(dir_okay=False))
@opt.out("Output folder (output.png, record.json; checkpoint.pt while unfinished).", dest="outdir")
@opt.preset()
@click.option("--steps", type=int, default=None, help="Override the preset's number of steps.")
@opt.backbone()
@opt.weights("timm tag (default <backbone>.dino), a local .pth/.safetensors state dict, or 'random'.")
@opt.allow_random_weights
@opt.device()
@opt.seed("Seeds initialisation and augmentations.")
@click.option("--resize", type=int, default=None, help="Resize the structure image's shorter side to this (px).")
@click.option("--precision", type=click.Choice(["fp32", "bf16"]), default=None,
              help="bf16 = autocast (faster, not identical).")
@click.option("--memory-format", type=click.Choice(["auto", "channels-last", "nchw"]), default=None,
              help="Generator layout; auto = channels-last on CUDA and for bf16 (see README 'Speed').")
@click.option("--compile", "compile_", is_flag=True, default=None,
              help="torch.compile the generator (for CUDA; on a CPU compilation takes minutes).")
@click.option("--checkpoint-full", is_flag=True, default=None,
              help="Activation checkpointing for the full-image pass (less memory for HD images, same numbers).")
@click.option("--save-every", type=int, default=0, show_default=True, help="Save a snapshot every N steps.")
@click.option("--checkpoint-every", type=int, default=None, help="Checkpoint every N steps (default 50).")
@opt.method_args
@click.option("--resume", is_flag=True, help="Continue from OUT/checkpoint.pt (no-op if the run finished).")
@opt.force("Replace a finished or unfinished run in OUT.")
@opt.keep_work
@opt.no_progress
def command(structure, appearance, outdir, preset, steps, backbone, weights, allow_random_weights, device, seed,
            resize, precision, memory_format, compile_, checkpoint_full, save_every, checkpoint_every, method_args,
            resume, force, keep_work, no_progress) -> None:  # fmt: skip
    """Train Splice on STRUCTURE (layout to keep) and APPEARANCE (look to transfer).

    Writes OUT/output.png (at the structure image's resolution, or the --resize'd one) and
    OUT/record.json; OUT/checkpoint.pt exists while the run is unfinished (kept at the end with
    --keep-work). A killed run continues with --resume. Any option of
    `splice methods splice` can be set with --method-args (e.g. lr=0.001); the flags above win.

    \b
    Examples:
      splice run cat.jpg ibex.jpg -o out/cat_ibex                     # the paper: 2000 steps, ViT-B/8
      splice run cat.jpg ibex.jpg -o out/cat_ibex --resume            # after a crash
      splice run s.png a.png -o out/x --preset smoke --device cpu --allow-random-weights
      splice run s.png a.png -o out/x --weights ~/dino_vitbase8_pretrain.pth --precision bf16
      splice run s.png a.png -o out/x --method-args lambda_structure=2 --method-args entire_every=50
    """
    from splice.core.imageio import load_rgb

    # the inputs first, with Pillow alone: a missing or unreadable image is an error in a fraction of a second,
    # not after torch and the model have loaded (the pipeline reads them again)
    load_rgb(structure, role="structure image")
    load_rgb(appearance, role="appearance image")

    from splice.core.atomic import atomic_save_image, atomic_write_json, read_json
    from splice.core.devices import resolve_device
    from splice.core.options import assign, parse_assignments
    from splice.core.paths import ensure_writable_dir
    from splice.core.record import JobKey, make_record
    from splice.core.resources import measure, now
    from splice.model.config import SpliceConfig
    from splice.model.pipeline import run_pair
    from splice.model.train import CHECKPOINT
    from splice.model.weights import canonical_backbone

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
            click.echo(f"{out} already holds a finished run ({out / 'output.png'}); nothing to do", err=True)
            return
        if finished:
            raise UserError(f"{out} already holds a finished run; use --force to replace it or choose another -o")
    if ckpt_path.exists() and not resume and not force:
        raise UserError(f"{out} holds an unfinished run; add --resume to continue it or --force to start over")

    if backbone is not None:
        canonical_backbone(backbone, "--backbone")
    given = assign(parse_assignments(method_args, ["splice"]), {"splice": _splice_options()})["splice"]
    flags = dict(steps=steps, backbone=backbone, weights=weights, resize=resize, precision=precision,
                 memory_format=memory_format, compile=compile_, checkpoint_full=checkpoint_full, save_every=save_every,
                 checkpoint_every=checkpoint_every)  # fmt: skip
    cfg = SpliceConfig.from_preset(preset, **{**given, **{k: v for k, v in flags.items() if v is not None}})
    dev = resolve_device(device)
    ensure_writable_dir(out, "--out")  # before any work: an unwritable -o must not cost a training run
    if force:
        for p in (record_path, ckpt_path):
            p.unlink(missing_ok=True)
        shutil.rmtree(out / "snapshots", ignore_errors=True)

    key = JobKey(dataset="adhoc", pair_id=_pair_id(s_path, a_path), method="splice", seed=seed,
                 config_hash=cfg.hash())  # fmt: skip
    started = now()
    try:
        with measure(dev) as m:
            image, geometry, info, result = run_pair(
                s_path, a_path, cfg, seed=seed, device=dev, workdir=out, resume=resume,
                allow_random=allow_random_weights, progress=not no_progress and sys.stderr.isatty(),
                snapshot_dir=out / "snapshots" if cfg.save_every else None,
            )  # fmt: skip
    except KeyboardInterrupt:
        cont = shlex.join(["splice", *sys.argv[1:]]) if "--resume" in sys.argv else \
            shlex.join(["splice", *[a for a in sys.argv[1:] if a != "--force"], "--resume"])
        click.echo(f"interrupted; the last checkpoint is in {ckpt_path}; continue with: {cont}", err=True)
        sys.exit(130)
    if info["random_weights"]:
        click.echo(RANDOM_BANNER, err=True)
    atomic_save_image(out / "output.png", image)
    record = make_record(
        key, status="ok", pair={"pair_id": key.pair_id, "dataset": key.dataset, "structure": str(s_path),
                                "appearance": str(a_path)},
        inputs=info["inputs"], config=cfg.to_dict(),
        settings={"preset": cfg.preset, "preset_resolved": cfg.preset, "seed": seed, "device": dev,
                  "weights": cfg.weights, "allow_random_weights": allow_random_weights, "max_side": None,
                  "options": {**given, **{k: v for k, v in flags.items() if v is not None}}},
        output="output.png", geometry=geometry.to_dict(),
        info={**info, "checkpoint": CHECKPOINT if keep_work else None},
        measurement=m, device=dev, started=started,
    )  # fmt: skip
    atomic_write_json(record_path, record.to_dict())
    if not keep_work:  # a finished run needs its output and record only; --resume has nothing left to do
        ckpt_path.unlink(missing_ok=True)
    click.echo(f"wrote {out / 'output.png'} ({image.size[0]}x{image.size[1]}) in {result.seconds_this_run:.1f} s "
               f"({result.seconds_per_step:.3f} s/step, peak {result.peak_memory_mb:.0f} MB)", err=True)


def _splice_options() -> list[str]:
    from splice.core.options import option_types
    from splice.model.config import SpliceConfig

    return list(option_types(SpliceConfig))


def _pair_id(structure: Path, appearance: Path) -> str:
    """A folder-safe id for an ad-hoc pair (``structure stem + appearance stem``)."""
    raw = f"{structure.stem}+{appearance.stem}"
    return re.sub(r"[^A-Za-z0-9._+-]", "_", raw)[:128] or "pair"
