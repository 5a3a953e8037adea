"""``splice score``: metrics for one triple of images, or for every finished job of a run.

\b
  splice score vit --structure S --appearance T --output O [--json]
  splice score iou --structure S --output O [--geometry G | --record R] [--segmenter maskrcnn|panoptic] [--json]
  splice score --out runs/NAME [--metrics iou,vit|all|NAME,...] [--segmenter maskrcnn|panoptic]

Layout IoU follows PROTOCOL.md (the Splice paper, Tumanyan et al. CVPR 2022, Table 2); the ViT
distances are Splice's losses on full images; every other metric of the registry (`splice metrics`) is
computed by the library that defines it (:mod:`eval.measures`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys

import click

from eval.scorers import DEFAULT_METRICS, choices
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


def panoptic_options(f):
    """The layout segmenter and the panoptic model (run mode and ``splice score iou``)."""
    for o in reversed([
        opt.segmenter(),
        click.option("--panoptic-model", default="auto", show_default=True,
                     type=click.Choice(["auto", "mask2former", "panoptic_fpn"]),
                     help="COCO-panoptic model: auto = detectron2's Panoptic FPN when detectron2 is installed, "
                          "else Mask2Former through transformers."),
        click.option("--panoptic-weights", default=None, metavar="SPEC",
                     help="Mask2Former: a Hugging Face id (default facebook/mask2former-swin-tiny-coco-panoptic) "
                          "or a save_pretrained() folder; Panoptic FPN: model_zoo, a .pkl file; or 'random'."),
        click.option("--panoptic-size", type=int, default=None,
                     help="Panoptic model input short side (default 800, longer side <= 1333*N/800)."),
    ]):  # fmt: skip
        f = o(f)
    return f


def run_options(f):
    """Options of the ``splice score`` group that drive run mode."""
    f = panoptic_options(detector_options(f))
    for o in reversed([
        opt.out("Run store to score (run mode): every finished job gets metrics/{iou|panoptic,vit}.json.",
                required=False),
        opt.metrics("Comma list of metrics (`splice metrics` lists them): iou (layout, by the data set's "
                    f"segmenter), {', '.join(choices()[2:])}; all = every one (the layout IoU by the data set's "
                    "segmenter).", default=",".join(DEFAULT_METRICS)),
        opt.metric_preset(),
        opt.metric_args,
        opt.methods("Comma list of methods to score (default: all)."),
        opt.datasets("Comma list of data sets to score (default: all)."),
        opt.backbone(),
        opt.weights("ViT weights for the vit metric: timm tag, a local file, or 'random'."),
        opt.root("Folder that relative input paths in job records are relative to (default: cwd)."),
        opt.force("Rescore jobs whose records are up to date (from the cache)."),
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

    Run mode writes metrics/iou.json (Mask R-CNN, objects) or metrics/panoptic.json (COCO panoptic, objects
    and stuff) as --segmenter says (default per data set: mountains panoptic, others maskrcnn),
    metrics/vit.json, and metrics/NAME.json for every other metric --metrics names (all: every one). A record
    is recomputed when its model or settings changed or when an image it read changed (records keep each
    image's sha256); the summary says how many and why. Per-image features are cached by content hash: a
    second run over the same outputs makes no model calls.

    \b
    Examples:
      splice score vit --structure s.jpg --appearance a.jpg --output out/output.png --json
      splice score vit --record runs/demo/outputs/demo/p1/splice/s0-abc/record.json --json
      splice score --out runs/demo --metrics iou,vit
      splice score --out runs/smoke --allow-random-weights --detector-size 320 --panoptic-size 320
      splice score --out runs/paper --metrics iou --segmenter panoptic --datasets mountains --json
      splice score --out runs/smoke --metrics all --preset smoke --allow-random-weights --backbone S/16 \\
          --detector-size 320
      splice score --out runs/paper --metrics lpips_vgg,clip --metric-args clip.weights=/w/clip.safetensors
    """
    if ctx.invoked_subcommand is None:
        if kwargs.get("out"):
            run_mode(ctx, **kwargs)
            return
        click.echo(ctx.get_help(), err=True)
        ctx.exit(2)


def score_options(kw: dict, metrics: tuple[str, ...]):
    """The :class:`eval.scoring.ScoreOptions` of the options in ``kw`` (``splice score``, ``splice metrics``);
    options a command does not take keep their defaults."""
    from eval.scorers import check_metrics, metric_overrides
    from eval.scoring import ScoreOptions
    from splice.core.devices import resolve_device

    metrics = check_metrics(metrics)
    names = [f.name for f in dataclasses.fields(ScoreOptions)]
    given = {k: v for k, v in kw.items() if k in names and k not in ("metrics", "metric_args", "methods", "datasets")}
    if "device" in given:
        given["device"] = resolve_device(given["device"])
    return ScoreOptions(metrics=metrics, methods=opt.split(kw.get("methods")), datasets=opt.split(kw.get("datasets")),
                        metric_args=metric_overrides(kw.get("metric_args") or (), metrics), **given)  # fmt: skip


def run_mode(ctx: click.Context, **kw) -> None:
    """``splice score --out runs/NAME ...``: score a whole run (see :mod:`eval.scoring`)."""
    from eval.scoring import score_run, summary_lines
    from splice.core.paths import ensure_writable_dir

    metrics = tuple(opt.split(kw["metrics"]) or ())
    opts = score_options(kw, metrics)
    from splice.core.store import RunStore

    ensure_writable_dir(RunStore.open(kw["out"]).root, "--out")  # metric records go into the store
    summary = score_run(kw["out"], opts, progress=not kw["no_progress"] and sys.stderr.isatty())
    if summary.random_weights:
        click.echo(RANDOM_LINE, err=True)
    for line in summary_lines(summary, metrics):
        click.echo(line, err=True)
    for job in summary.missing_outputs:
        click.echo(f"missing output: {job}: its record says ok but the output file is gone; "
                   "run `splice bench` again to redo it", err=True)  # fmt: skip
    if set(summary.not_scored) - {"output-missing"}:  # the other jobs without a result: named, with their fix
        from splice.core.health import Fixer, attention, attention_lines, select, survey

        store = RunStore(kw["out"])
        jobs = [j for j in select(survey(store), opts.methods, opts.datasets) if j.state != "output-missing"]
        click.echo("not scored (no result yet):", err=True)
        for line in attention_lines(attention(jobs, Fixer(store)), kw["out"]):
            click.echo(f"  {line}", err=True)
    for err in summary.errors[:20]:
        click.echo(f"error: {err['job']}: {err['error']}", err=True)
    if len(summary.errors) > 20:
        click.echo(f"... and {len(summary.errors) - 20} more errors", err=True)
    if kw["as_json"]:
        click.echo(json.dumps(summary.to_dict()))
    if not summary.ok:
        ctx.exit(1)


def pair_options(*roles: str):
    """--structure/--appearance/--output, --geometry, --record and --root of the single-pair commands."""
    helps = {"structure": "Structure image S.", "appearance": "Appearance image T.", "output": "Output image O."}

    def decorate(f):
        for o in reversed([
            *(click.option(f"--{r}", default=None, type=click.Path(dir_okay=False),
                           help=helps[r] + " Default with --record: the job's.") for r in roles),
            click.option("--geometry", "-g", default=None, metavar="SPEC",
                         help="S -> O transform in the methods' text form: native, 'center-crop WxH', "
                              "'stretch WxH', 'resize WxH', 'resize-short N', 'resize-long N'. Default: none "
                              "(resize if sizes differ, with a warning)."),
            click.option("--record", default=None, type=click.Path(), metavar="FILE",
                         help="A job's record.json: its recorded geometry (as `splice score --out` uses), and "
                              "its images unless given."),
            opt.root("Folder that relative image paths in --record are relative to (default: cwd)."),
        ]):  # fmt: skip
            f = o(f)
        return f

    return decorate


def load_pair(kw: dict, roles: tuple[str, ...]):
    """(images by role, paths by role, geometry, the job record or None) of a single-pair command."""
    from eval.align import geometry_from_text, read_job_record
    from eval.scoring import input_path
    from splice.core.errors import UserError
    from splice.core.imageio import load_rgb

    rec = rec_path = None
    if kw.get("record"):
        if kw.get("geometry"):
            raise UserError("give --geometry or --record, not both (the record carries the job's geometry)")
        rec_path, rec = read_job_record(kw["record"])
    paths = {}
    for role in roles:
        value = kw.get(role)
        if value is None and rec is not None:
            value = str(rec_path.parent / rec.output) if role == "output" else \
                input_path(rec.pair.get(role), f"{role} image", kw.get("root"), str(rec_path))  # fmt: skip
        if value is None:
            raise UserError(f"--{role} is required (or --record JOB_DIR/record.json)")
        paths[role] = str(value)
    images = {r: load_rgb(p, role=f"{r} image", min_side=0).image for r, p in paths.items()}
    geometry = None
    if rec is not None:
        geometry = rec.geometry
    elif kw.get("geometry"):
        geometry = geometry_from_text(kw["geometry"], images["structure"].size, images["output"].size).to_dict()
    return images, paths, geometry, rec


def _single_record(record: dict, paths: dict[str, str], geometry: dict | None) -> dict:
    from splice.core.imageio import sha256_file

    record["images"] = {r: {"path": p, "sha256": sha256_file(p)} for r, p in paths.items()}
    record.update(paths)
    record["geometry"] = geometry
    return record


@click.command("iou")
@pair_options("structure", "output")
@detector_options
@panoptic_options
@opt.as_json("Print the metric record on stdout.")
def iou_command(as_json, **kw) -> None:
    """Layout IoU of one pair, with COCO Mask R-CNN or a COCO-panoptic model (the paper's Table 2 protocol).

    The structure image is aligned to the output (--geometry or the job's --record), then:
    maskrcnn: both go through Mask R-CNN (score >= 0.5, masks binarised at 0.5) and the class-agnostic union
    IoU, the instance-matched IoU and per-class IoUs are printed; no detection in S: excluded (no number),
    none in O: IoU 0. panoptic: both become label maps (objects merged, stuff by class) and the layout mIoU
    over the classes of S and the pixel accuracy are printed. Default segmenter: maskrcnn, or the default of
    the record's data set with --record.

    \b
    Examples:
      splice score iou --structure structure.jpg --output runs/x/output.png --json
      splice score iou --structure cat.png --output out256.png --geometry 'stretch 256x256'
      splice score iou --record runs/demo/outputs/demo/p/m/s0-abc/record.json --segmenter panoptic
      splice score iou --structure s.jpg --output o.png --detector-weights random --allow-random-weights \\
          --detector-size 320
    """
    from eval.layout import cached_detector, cached_segmenter
    from eval.segmenter import default_segmenter
    from splice.core.devices import resolve_device

    images, paths, geometry, rec = load_pair(kw, ("structure", "output"))
    segmenter = kw["segmenter"] or (default_segmenter(rec.job.dataset) if rec is not None else "maskrcnn")
    device = resolve_device(kw["device"])
    if segmenter == "panoptic":
        from eval.segmenter import load_segmenter

        seg = load_segmenter(kw["panoptic_model"], kw["panoptic_weights"], device=device,
                             allow_random=kw["allow_random_weights"], size=kw["panoptic_size"],
                             batch_size=kw["batch_size"])  # fmt: skip
        scorer, model = cached_segmenter(seg, kw["cache_dir"]), f"{seg.name} ({seg.spec})"
    else:
        from eval.detector import load_detector

        det = load_detector(kw["detector"], kw["detector_weights"], device=device,
                            allow_random=kw["allow_random_weights"], score_threshold=kw["score_threshold"],
                            mask_threshold=kw["mask_threshold"], min_size=kw["detector_size"],
                            batch_size=kw["batch_size"])  # fmt: skip
        scorer, model = cached_detector(det, kw["cache_dir"]), f"{det.name} ({det.spec})"
    record = _single_record(scorer.score(images, geometry, where=paths["output"]), paths, geometry)
    if record["random_weights"]:
        click.echo(RANDOM_LINE, err=True)
    if as_json:
        click.echo(json.dumps(record))
        return
    if record["excluded"]:
        click.echo(f"{'iou':14s} excluded ({record['exclusion_reason']})")
    else:
        click.echo(f"{'iou':14s} {record['iou']:.6f}")
        for key in ("matched_iou", "pixel_accuracy"):
            if key in record:
                click.echo(f"{key:14s} {record[key]:.6f}")
    if segmenter == "maskrcnn":
        click.echo(f"{'instances':14s} structure {record['n_structure']}, output {record['n_output']}")
    for name, value in record["per_class"].items():
        click.echo(f"  {name:20s} {value:.6f}")
    click.echo(f"{'aligned':14s} {record['aligned']}")
    click.echo(f"{'segmenter':14s} {segmenter}: {model}")


@command.command("vit")
@pair_options("structure", "appearance", "output")
@opt.backbone("vit_base_patch8_224")
@opt.weights("timm tag (default <backbone>.dino), a local state-dict file, or 'random'.")
@opt.device()
@opt.allow_random_weights
@opt.cache_dir
@opt.as_json("Print the vit.json record on stdout.")
def vit_command(backbone, weights, device, allow_random_weights, cache_dir, as_json, **kw) -> None:
    """The Splice objective as metrics on full images (the same scorer as `splice score --out`).

    \b
    structure_distance  = MSE(SelfSim(O), SelfSim(S aligned))   lower is better
    appearance_distance = MSE(CLS(O), CLS(T))                   lower is better
    appearance_cosine   = cos(CLS(O), CLS(T))                   higher is better
    S is aligned to O with --geometry, or with the job's recorded geometry (--record); with neither and
    different sizes, S is resized to O (bicubic) and "aligned" says "resize".

    \b
    Examples:
      splice score vit --structure s.jpg --appearance a.jpg --output runs/x/output.png --json
      splice score vit --structure s.jpg --appearance a.jpg --output crop.png --geometry 'center-crop 512x512'
      splice score vit --record runs/demo/outputs/demo/p1/splice/s0-abc/record.json
    """
    from eval.vit_metrics import cached_vit
    from splice.core.devices import resolve_device
    from splice.model.vit import load_vit

    images, paths, geometry, _ = load_pair(kw, ("structure", "appearance", "output"))
    dev = resolve_device(device)
    vit = cached_vit(load_vit(backbone, weights, device=dev, allow_random=allow_random_weights), cache_dir)
    if vit.random:
        click.echo("WARNING: randomly initialised ViT: these numbers mean nothing", err=True)
    record = _single_record(vit.score(images, geometry, where=paths["output"]), paths, geometry)
    record["device"] = dev
    if as_json:
        click.echo(json.dumps(record))
    else:
        for key in ("structure_distance", "appearance_distance", "appearance_cosine"):
            click.echo(f"{key:20s} {record[key]:.8g}")
        click.echo(f"{'aligned':20s} {record['aligned']}")
        click.echo(f"{'weights':20s} {vit.weights.get('spec')}")


command.add_command(iou_command)
