"""``splice score``: metrics for one triple of images, or for every finished job of a run.

\b
  splice score vit --structure S --appearance T --output O [--json]
  splice score iou --structure S --output O [--geometry G] [--json]
  splice score --out runs/NAME [--metrics iou,vit]
"""

from __future__ import annotations

import json
import logging

import click

from splice.core.errors import UserError
from splice.cli._score_eval import iou_command, run_mode, run_options

log = logging.getLogger(__name__)


@click.group("score", invoke_without_command=True)
@run_options
@click.pass_context
def command(ctx: click.Context, **kwargs) -> None:
    """Score outputs: ViT distances (`vit`), layout IoU (`iou`), or a whole run (`--out`).

    \b
    Examples:
      splice score vit --structure s.jpg --appearance a.jpg --output out/output.png --json
      splice score --out runs/demo --metrics iou,vit
    """
    if ctx.invoked_subcommand is None:
        if kwargs.get("out"):
            run_mode(ctx, **kwargs)
            return
        click.echo(ctx.get_help(), err=True)
        ctx.exit(2)


@command.command("vit")
@click.option("--structure", "-s", required=True, type=click.Path(dir_okay=False), help="Structure image S.")
@click.option("--appearance", "-a", required=True, type=click.Path(dir_okay=False), help="Appearance image T.")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False), help="Output image O.")
@click.option("--backbone", default="vit_base_patch8_224", show_default=True, help="timm ViT (B/8, S/8, B/16, S/16).")
@click.option("--weights", default=None, help="timm tag (default <backbone>.dino), a local state-dict file, or 'random'.")
@click.option("--device", default="auto", show_default=True, help="auto|cpu|cuda|cuda:N|mps")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
def vit_command(structure, appearance, output, backbone, weights, device, as_json) -> None:
    """The Splice objective as metrics on full images.

    \b
    structure_distance  = MSE(SelfSim(O), SelfSim(S))   lower is better
    appearance_distance = MSE(CLS(O), CLS(T))           lower is better
    appearance_cosine   = cos(CLS(O), CLS(T))           higher is better
    When O and S differ in size, O is resized to S (bicubic) and "aligned" says "resize".

    \b
    Example:
      splice score vit -s structure.jpg -a appearance.jpg -o runs/x/output.png --json
    """
    import torch

    from eval.vit_distances import score_images

    from splice.core.imageio import load_rgb
    from splice.core.method import resolve_device
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

__all__ = ["command", "UserError"]
