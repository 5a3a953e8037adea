"""``splice score``: metrics for one triple of images, or for every finished job of a run.

\b
  splice score vit --structure S --appearance T --output O [--json]
  splice score iou --structure S --output O [--geometry G] [--json]
  splice score --out runs/NAME [--metrics iou,vit]

Layout IoU follows PROTOCOL.md (the Splice paper, Tumanyan et al. CVPR 2022, Table 2); the ViT
distances are Splice's losses on full images.
"""

from __future__ import annotations

import json
import logging
import sys

import click

from splice.cli import options as opt

log = logging.getLogger(__name__)

RANDOM_LINE = "WARNING: RANDOM WEIGHTS: metric models are randomly initialised; these numbers mean nothing"


def detector_options(f):
    """Mask R-CNN options shared by run mode and ``splice score iou``."""
    for o in reversed([
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
        click.option("--batch-size", type=click.IntRange(min=1), default=2, show_default=True,
                     help="Images per detector forward pass."),
        opt.device(),
        opt.allow_random_weights,
        opt.cache_dir,
    ]):  # fmt: skip
        f = o(f)
    return f


def run_options(f):
    """Options of the ``splice score`` group that drive run mode."""
    f = detector_options(f)
    for o in reversed([
        opt.out("Run store to score (run mode): every finished job gets metrics/{iou,vit}.json.", required=False),
        click.option("--metrics", default="iou,vit", show_default=True, help="Comma list: iou, vit."),
        opt.methods("Comma list of methods to score (default: all)."),
        opt.datasets("Comma list of data sets to score (default: all)."),
        opt.backbone(),
        opt.weights("ViT weights for the vit metric: timm tag, a local file, or 'random'."),
        opt.root("Folder that relative input paths in job records are relative to (default: cwd)."),
        opt.force("Rescore jobs that already have a record for these settings."),
        opt.as_json("Print the summary as JSON on stdout."),
        opt.no_progress,
    ]):  # fmt: skip
        f = o(f)
    return f


@click.group("score", invoke_without_command=True)
@run_options
@click.pass_context
def command(ctx: click.Context, **kwargs) -> None:
    """Score outputs: ViT distances (`vit`), layout IoU (`iou`), or a whole run (`--out`).

    \b
    Examples:
      splice score vit --structure s.jpg --appearance a.jpg --output out/output.png --json
      splice score --out runs/demo --metrics iou,vit
      splice score --out runs/smoke --allow-random-weights --detector-size 320
      splice score --out runs/paper --metrics iou --methods splice,strotss --datasets afhq --json
    """
    if ctx.invoked_subcommand is None:
        if kwargs.get("out"):
            run_mode(ctx, **kwargs)
            return
        click.echo(ctx.get_help(), err=True)
        ctx.exit(2)


def run_mode(ctx: click.Context, **kw) -> None:
    """``splice score --out runs/NAME ...``: score a whole run (see :mod:`eval.scoring`)."""
    from eval.scoring import ScoreOptions, score_run
    from splice.core.devices import resolve_device
    from splice.core.paths import ensure_writable_dir

    metrics = tuple(opt.split(kw["metrics"]) or ())
    opts = ScoreOptions(
        metrics=metrics,
        methods=opt.split(kw["methods"]),
        datasets=opt.split(kw["datasets"]),
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
    from splice.core.store import RunStore

    ensure_writable_dir(RunStore.open(kw["out"]).root, "--out")  # metric records go into the store
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
@click.option("--structure", required=True, type=click.Path(dir_okay=False), help="Structure image S.")
@click.option("--output", required=True, type=click.Path(dir_okay=False), help="Output image O.")
@click.option("--geometry", "-g", default=None,
              help="S -> O transform: identity|resize|stretch|center-crop, a JSON object, or a JSON file "
                   "(a job's record.json works). Default: none (resize if sizes differ, with a warning).")
@detector_options
@opt.as_json("Print the iou.json record on stdout.")
def iou_command(structure, output, geometry, as_json, **kw) -> None:
    """Layout IoU of one pair with COCO Mask R-CNN (the paper's Table 2 protocol).

    The structure image is aligned to the output with --geometry, both go through
    Mask R-CNN (score >= 0.5, masks binarised at 0.5), and the class-agnostic union IoU,
    the instance-matched IoU and per-class IoUs are printed. No detection in S: the pair is
    excluded (no number); none in O: IoU 0.

    \b
    Examples:
      splice score iou --structure structure.jpg --output runs/x/output.png --json
      splice score iou --structure cat.png --output out256.png --geometry resize
      splice score iou --structure s.jpg --output o.png --geometry runs/demo/outputs/demo/p/m/s0-abc/record.json
      splice score iou --structure s.jpg --output o.png --detector-weights random --allow-random-weights \\
          --detector-size 320
    """
    from eval.align import geometry_from_option
    from eval.detector import load_detector
    from eval.layout import cached_detector, score_layout
    from splice.core.devices import resolve_device
    from splice.core.imageio import load_rgb

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


@command.command("vit")
@click.option("--structure", required=True, type=click.Path(dir_okay=False), help="Structure image S.")
@click.option("--appearance", required=True, type=click.Path(dir_okay=False), help="Appearance image T.")
@click.option("--output", required=True, type=click.Path(dir_okay=False), help="Output image O.")
@opt.backbone("vit_base_patch8_224")
@opt.weights("timm tag (default <backbone>.dino), a local state-dict file, or 'random'.")
@opt.device()
@opt.as_json("Print one JSON object on stdout.")
def vit_command(structure, appearance, output, backbone, weights, device, as_json) -> None:
    """The Splice objective as metrics on full images.

    \b
    structure_distance  = MSE(SelfSim(O), SelfSim(S))   lower is better
    appearance_distance = MSE(CLS(O), CLS(T))           lower is better
    appearance_cosine   = cos(CLS(O), CLS(T))           higher is better
    When O and S differ in size, O is resized to S (bicubic) and "aligned" says "resize".

    \b
    Example:
      splice score vit --structure s.jpg --appearance a.jpg --output runs/x/output.png --json
    """
    import torch

    from eval.vit_distances import score_images
    from splice.core.devices import resolve_device
    from splice.core.imageio import load_rgb
    from splice.model.vit import load_vit

    s = load_rgb(structure, role="structure image", min_side=0)
    t = load_rgb(appearance, role="appearance image", min_side=0)
    o = load_rgb(output, role="output image", min_side=0)
    dev = resolve_device(device)
    extractor = load_vit(backbone, weights, device=dev)
    if extractor.identity.random:
        click.echo("WARNING: randomly initialised ViT: these numbers mean nothing", err=True)
    with torch.no_grad():
        result = score_images(extractor, s.image, t.image, o.image)
    result.update(
        {"backbone": extractor.identity.backbone, "weights": extractor.identity.to_dict(),
         "random_weights": extractor.identity.random, "device": dev}
    )
    if as_json:
        click.echo(json.dumps(result))
    else:
        for key in ("structure_distance", "appearance_distance", "appearance_cosine"):
            click.echo(f"{key:20s} {result[key]:.8g}")
        click.echo(f"{'aligned':20s} {result['aligned']}")
        click.echo(f"{'weights':20s} {extractor.identity.spec}")


command.add_command(iou_command)
