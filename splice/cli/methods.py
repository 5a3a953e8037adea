"""``splice methods``: the registered methods, what each needs, and whether it is ready on this machine
(:mod:`splice.runner.readiness`); with names, each method's options and their values in every preset."""

from __future__ import annotations

import json

import click

from splice.cli import options as opt


@click.command("methods")
@click.argument("names", nargs=-1)
@opt.method_args
@opt.preset()
@opt.weights("Weights spec to check instead of each method's default.")
@opt.as_json("Print a JSON list on stdout instead of the table (with NAMES: also every option and its presets).")
@click.option("-a", "--all-details", is_flag=True, help="Also print each unmet need's fix under its method.")
def command(names, method_args, preset, weights, as_json, all_details):
    """List registered methods: paper, needs, devices, and READY / NOT READY here.

    With NAMES, also each method's options: type, help, and value in every preset.

    \b
    Examples:
      splice methods
      splice methods -a
      splice methods splice --json
      splice methods splice --method-args steps=5 -a
      splice methods cross-image-attention --method-args repo=~/src/cross-image-attention -a
      splice methods external --method-args config=my_method.yaml -a
    """
    from splice.core.devices import available_devices
    from splice.core.method import RunSettings
    from splice.core.registry import methods as registry
    from splice.runner.jobs import method_overrides
    from splice.runner.readiness import all_statuses

    wanted = list(names) or registry.names()
    for n in wanted:
        registry.target(n)
    overrides = method_overrides(method_args, wanted) if method_args else {}
    settings = RunSettings(preset=preset, weights=weights)
    statuses = all_statuses(wanted, settings, overrides, with_options=bool(names))
    if as_json:
        click.echo(json.dumps([s.to_dict() for s in statuses], indent=1, default=str))
        return
    rows = [("METHOD", "STATUS", "DEVICES", "SETS", "NEEDS", "PAPER")]
    for s in statuses:
        devices = ",".join(d if d in s.devices_here else f"({d})" for d in s.devices) or "-"
        sets = ",".join(t for t, on in (("all", s.in_benchmark), ("smoke", s.in_smoke)) if on) or "-"
        needs = ", ".join(n["name"] + ("" if n["ready"] else " (missing)") for n in s.needs) or "nothing"
        rows.append((s.name, "READY" if s.ready else "NOT READY", devices, sets, clip_text(needs, 48), s.paper or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        line = "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + clip_text(r[-1], 70)
        click.echo(line.rstrip())
    if all_details:
        for s in statuses:
            for p in s.problems:
                click.echo(f"  {s.name}: {p}")
    for s in statuses:
        if s.options:
            click.echo(f"\n{s.name} options (preset {s.preset} runs {s.name}'s {s.preset_resolved}):")
            for o in s.options:
                value = o["presets"].get(s.preset_resolved)
                click.echo(f"  {o['name']:<24} {o['type']:<28} {value!r:<14} {o['help']}".rstrip())
    n_ready = sum(s.ready for s in statuses)
    click.echo(f"{n_ready}/{len(statuses)} ready; devices here: {', '.join(available_devices())}"
               + ("" if all_details else "; -a shows how to fix the others"), err=True)


def clip_text(text: str, n: int) -> str:
    """``text`` cut to ``n`` characters with an ellipsis (table cells of `splice methods` and `splice metrics`)."""
    return text if len(text) <= n else text[: n - 1] + "…"
