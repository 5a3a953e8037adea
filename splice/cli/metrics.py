"""``splice metrics``: the metric registry (:mod:`eval.scorers`): every metric ``splice score --metrics`` takes,
what it compares, which direction is better, the model and weights it needs and whether they are here; with
names, each metric's options and its cache key."""

from __future__ import annotations

import json

import click

from splice.cli import options as opt
from splice.cli.score import detector_options, panoptic_options


@click.command("metrics")
@click.argument("names", nargs=-1)
@opt.metric_preset()
@opt.metric_args
@opt.backbone()
@opt.weights("ViT weights of the vit metric to check: timm tag, a local file, or 'random'.")
@panoptic_options
@detector_options
@opt.as_json("Print a JSON list on stdout instead of the table (with NAMES: also options and cache keys).")
@click.option("-a", "--all-details", is_flag=True, help="Also print each unmet need's fix under its metric.")
def command(names, as_json, all_details, **kw):
    """List the registered metrics: what each compares, better direction, needs, READY / NOT READY here.

    Every metric writes metrics/NAME.json per job (`splice score --metrics NAME`); its numbers compare the
    output with the structure image aligned to it, or with the appearance image (↑ higher is better,
    ↓ lower). A metric is READY when its libraries are installed and its weights are on this machine
    (--allow-random-weights: random stand-ins count as ready, for smoke runs). With NAMES, also each
    metric's options (measures: values in every preset, set with --metric-args) and its cache key, the
    settings_hash every record carries (it resolves the weights; the ViT is built for it).

    \b
    Examples:
      splice metrics
      splice metrics -a
      splice metrics --json
      splice metrics clip lpips_vgg --metric-args clip.weights=/w/clip.safetensors
      splice metrics --allow-random-weights --preset smoke lpips_alex --json
    """
    from eval.scorers import SPECS, check_metrics, describe
    from splice.cli.methods import clip_text
    from splice.cli.score import score_options
    from splice.core.errors import ConfigError, near_names

    # a name is a record (iou, vit, lpips_vgg, ...), `all`, or a table number of one (matched_iou -> iou)
    tables = {num.table: spec.name for spec in SPECS.values() for num in spec.numbers}
    wanted: list[str] = []
    for n in names or ("all",):
        if n == "all":
            wanted += list(SPECS)
        elif n in SPECS:
            wanted.append(n)
        elif n in tables:
            wanted.append(tables[n])
        else:
            near = near_names(n, [*SPECS, *tables])
            hint = f"did you mean {near[0]}? " if near else ""
            raise ConfigError(f"unknown metric {n!r}; {hint}name a record ({', '.join(SPECS)}), one of their table "
                              f"numbers ({', '.join(t for t in tables if t not in SPECS)}) or all")  # fmt: skip
    wanted = list(dict.fromkeys(wanted))
    check_metrics(wanted)
    detail = bool(names) and set(names) != {"all"}  # named metrics: also their options and cache keys
    opts = score_options(kw, tuple(wanted))
    rows = [describe(n, opts, key=detail) for n in wanted]
    if as_json:
        click.echo(json.dumps(rows, indent=1, default=str))
        return
    table = [("METRIC", "STATUS", "TABLES (↑ higher / ↓ lower is better)", "OUTPUT COMPARED WITH", "PROTO",
              "NEEDS")]  # fmt: skip
    for r in rows:
        numbers = ", ".join(f"{n['table']} {'↑' if n['higher_is_better'] else '↓'}" for n in r["numbers"])
        compares = " / ".join("aligned structure" if "structure" in c else "appearance" for c in r["compares"])
        shown = [n for n in r["needs"] if not n["ready"] or not n["name"].startswith("Python package")]
        needs = ", ".join(n["name"] + ("" if n["ready"] else " (missing)") for n in shown) or "nothing"
        table.append((r["name"], "READY" if r["ready"] else "NOT READY", numbers, compares, r["protocol_version"],
                      clip_text(needs, 60)))  # fmt: skip
    widths = [max(len(t[i]) for t in table) for i in range(len(table[0]) - 1)]
    for t in table:
        click.echo(("  ".join(c.ljust(w) for c, w in zip(t[:-1], widths)) + "  " + t[-1]).rstrip())
    if all_details:
        for r in rows:
            for p in r["problems"]:
                click.echo(f"  {r['name']}: {p}")
    for r in rows if detail else []:
        click.echo(f"\n{r['name']}: {r['description']}; model: {r['model'] or '-'}")
        click.echo(
            f"  record metrics/{r['name']}.json, protocol {r['protocol_version']}, cache key "
            f"{r['cache_key'] or '(not ready)'}" + (" [RANDOM WEIGHTS]" if r.get("random_weights") else "")
        )
        for o in r.get("options", []):
            value = o["presets"].get(r["preset"])
            click.echo(f"  {o['name']:<14} {o['type']:<14} {value!r:<18} {o['help']}".rstrip())
    n_ready = sum(r["ready"] for r in rows)
    hint = "" if all_details or n_ready == len(rows) else "; -a shows how to fix the others"
    click.echo(f"{n_ready}/{len(rows)} ready{hint}", err=True)
