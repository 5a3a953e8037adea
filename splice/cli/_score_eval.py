"""The eval parts of ``splice score``: run mode (options on the group) and ``splice score iou``.

Kept apart from :mod:`splice.cli.score` (the lead's group and ``vit`` sub-command) so the
two can change independently; :mod:`splice.cli.score` applies :func:`run_options` to the
group, calls :func:`run_mode` when no sub-command is given, and adds :data:`iou_command`.
Layout IoU follows PROTOCOL.md (the Splice paper, Tumanyan et al. CVPR 2022, Table 2).
"""

from __future__ import annotations

import json
import logging
import sys

import click

from splice.core.errors import ConfigError

log = logging.getLogger(__name__)

RANDOM_LINE = "WARNING: RANDOM WEIGHTS: metric models are randomly initialised; these numbers mean nothing"


def _csv(value: str | None) -> list[str] | None:
    items = [v.strip() for v in (value or "").split(",") if v.strip()]
    return items or None


def detector_options(f):
    """Mask R-CNN options shared by run mode and ``splice score iou``."""
    for opt in reversed([
        click.option("--detector", default="maskrcnn_resnet50_fpn_v2", show_default=True,
                     type=click.Choice(["maskrcnn_resnet50_fpn_v2", "maskrcnn_resnet50_fpn", "detectron2"]),
                     help="Mask R-CNN backend (detectron2 only when installed)."),
        click.option("--detector-weights", default=None,
                     help="torchvision tag (default COCO_V1), a local state-dict file, or 'random'."),
        click.option("--detector-size", type=int, default=None,
                     help="Detector input short side (default: the model's, 800). Smaller = faster, less accurate."),
        click.option("--score-threshold", type=float, default=0.5, show_default=True,
                     help="Keep detections >= this score."),
        click.option("--mask-threshold", type=float, default=0.5, show_default=True,
                     help="Binarise soft masks at this value."),
        click.option("--batch-size", type=int, default=2, show_default=True, help="Images per detector forward pass."),
        click.option("--device", default="auto", show_default=True, help="auto|cpu|cuda|cuda:N|mps"),
        click.option("--allow-random-weights", is_flag=True,
                     help="Use random weights when the default ones are missing (smoke runs; marked everywhere)."),
        click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
                     help="Mask/feature cache (default $SPLICE_CACHE_DIR or ~/.cache/splice-bench)."),
    ]):  # fmt: skip
        f = opt(f)
    return f


def run_options(f):
    """Options of the ``splice score`` group that drive run mode."""
    f = detector_options(f)
    for opt in reversed([
        click.option("--out", "out", type=click.Path(file_okay=False), default=None,
                     help="Run store to score (run mode): every finished job gets metrics/{iou,vit}.json."),
        click.option("--metrics", default="iou,vit", show_default=True, help="Comma list: iou, vit."),
        click.option("--methods", default=None, help="Comma list of methods to score (default: all)."),
        click.option("--datasets", default=None, help="Comma list of data sets to score (default: all)."),
        click.option("--backbone", default=None, help="ViT for the vit metric (default vit_base_patch8_224)."),
        click.option("--weights", default=None, help="ViT weights: timm tag, a local file, or 'random'."),
        click.option("--root", type=click.Path(file_okay=False), default=None,
                     help="Folder that relative input paths in job records are relative to (default: cwd)."),
        click.option("--force", is_flag=True, help="Rescore jobs that already have a record for these settings."),
        click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout."),
        click.option("--no-progress", is_flag=True, help="No progress bar."),
    ]):  # fmt: skip
        f = opt(f)
    return f


def run_mode(ctx: click.Context, **kw) -> None:
    """``splice score --out runs/NAME ...``: score a whole run (see :mod:`eval.scoring`).

    \b
    Examples:
      splice score --out runs/demo --metrics iou,vit
      splice score --out runs/smoke --allow-random-weights --detector-size 320
      splice score --out runs/paper --metrics iou --methods splice,strotss --datasets afhq --json
    """
    from eval.scoring import ScoreOptions, score_run

    from splice.core.method import resolve_device

    metrics = tuple(_csv(kw["metrics"]) or ())
    opts = ScoreOptions(
        metrics=metrics,
        methods=_csv(kw["methods"]),
        datasets=_csv(kw["datasets"]),
        force=kw["force"],
        device=resolve_device(kw["device"]),
        allow_random_weights=kw["allow_random_weights"],
        cache_dir=kw["cache_dir"],
        detector=kw["detector"],
        detector_weights=kw["detector_weights"],
        detector_size=kw["detector_size"],
        score_threshold=kw["score_threshold"],
        mask_threshold=kw["mask_threshold"],
        batch_size=kw["batch_size"],
        backbone=kw["backbone"],
        weights=kw["weights"],
        root=kw["root"],
    )
    summary = score_run(kw["out"], opts, progress=not kw["no_progress"] and sys.stderr.isatty())
    if summary.random_weights:
        click.echo(RANDOM_LINE, err=True)
    parts = [f"{summary.jobs} finished jobs"]
    for m in metrics:
        parts.append(f"{m}: {summary.scored[m]} scored, {summary.skipped[m]} already done, "
                     f"{summary.model_calls[m]} model calls")  # fmt: skip
    if "iou" in metrics:
        parts.append(f"{summary.excluded} excluded (no detection in the structure image)")
    click.echo("; ".join(parts), err=True)
    for err in summary.errors[:20]:
        click.echo(f"error: {err['job']}: {err['error']}", err=True)
    if len(summary.errors) > 20:
        click.echo(f"... and {len(summary.errors) - 20} more errors", err=True)
    if kw["as_json"]:
        click.echo(json.dumps(summary.to_dict()))
    if summary.errors:
        ctx.exit(1)


@click.command("iou")
@click.option("--structure", "-s", required=True, type=click.Path(dir_okay=False), help="Structure image S.")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False), help="Output image O.")
@click.option("--geometry", "-g", default=None,
              help="S -> O transform: identity|resize|stretch|center-crop, a JSON object, or a JSON file "
                   "(a job's record.json works). Default: none (resize if sizes differ, with a warning).")
@detector_options
@click.option("--json", "as_json", is_flag=True, help="Print the iou.json record on stdout.")
def iou_command(structure, output, geometry, as_json, **kw) -> None:
    """Layout IoU of one pair with COCO Mask R-CNN (the paper's Table 2 protocol).

    The structure image is aligned to the output with --geometry, both go through
    Mask R-CNN (score >= 0.5, masks binarised at 0.5), and the class-agnostic union IoU,
    the instance-matched IoU and per-class IoUs are printed. No detection in S: the pair is
    excluded (no number); none in O: IoU 0.

    \b
    Examples:
      splice score iou -s structure.jpg -o runs/x/output.png --json
      splice score iou -s cat.png -o out256.png --geometry resize
      splice score iou -s s.jpg -o o.png --geometry runs/demo/outputs/demo/p/m/s0-abc/record.json
      splice score iou -s s.jpg -o o.png --detector-weights random --allow-random-weights --detector-size 320
    """
    from eval.align import geometry_from_option
    from eval.detector import load_detector
    from eval.layout import cached_detector, score_layout

    from splice.core.imageio import load_rgb
    from splice.core.method import resolve_device

    if kw["batch_size"] < 1:
        raise ConfigError("--batch-size must be at least 1")
    s = load_rgb(structure, role="structure image", min_side=0)
    o = load_rgb(output, role="output image", min_side=0)
    geo = geometry_from_option(geometry, s.size, o.size)
    det = load_detector(kw["detector"], kw["detector_weights"], device=resolve_device(kw["device"]),
                        allow_random=kw["allow_random_weights"], score_threshold=kw["score_threshold"],
                        mask_threshold=kw["mask_threshold"], min_size=kw["detector_size"],
                        batch_size=kw["batch_size"])  # fmt: skip
    cached = cached_detector(det, kw["cache_dir"])
    record = score_layout(s.image, o.image, cached, geo, where=str(output))
    record.update(structure=str(structure), output=str(output), geometry=geo.to_dict() if geo else None)
    if record["random_weights"]:
        click.echo(RANDOM_LINE, err=True)
    if as_json:
        click.echo(json.dumps(record))
        return
    if record["excluded"]:
        click.echo(f"{'iou':12s} excluded ({record['exclusion_reason']})")
    else:
        click.echo(f"{'iou':12s} {record['iou']:.6f}")
        click.echo(f"{'matched_iou':12s} {record['matched_iou']:.6f}")
    click.echo(f"{'instances':12s} structure {record['n_structure']}, output {record['n_output']}")
    for name, value in record["per_class"].items():
        click.echo(f"  {name:20s} {value:.6f}")
    click.echo(f"{'aligned':12s} {record['aligned']}")
    click.echo(f"{'detector':12s} {det.name} ({det.spec})")
