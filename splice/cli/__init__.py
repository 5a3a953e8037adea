"""The ``splice`` command line: a thin click group over library functions.

Each sub-command lives in its own module of this package and is imported only when it is
invoked, so ``splice --help`` stays fast and a broken optional dependency of one command
never breaks the others. Errors a user can cause (:class:`splice.core.errors.UserError`) are
printed as one line on stderr with a non-zero exit code, never as a traceback.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

from splice import __version__
from splice.core.errors import UserError

#: command name -> "module:attribute" (relative to this package)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run", "Train Splice on one pair and write its output, record and checkpoint."),
    "score": ("score", "Score outputs: ViT distances, Mask R-CNN layout IoU, or a whole run on any metric."),
    "bench": ("bench", "Run methods over data sets into a resumable run store."),
    "datasets": ("datasets", "List, check and import the evaluation data sets."),
    "methods": ("methods", "List the registered methods and whether each is ready here."),
    "metrics": ("metrics", "List the registered metrics: what each compares, its direction, whether it is ready."),
    "table": ("table", "Print metric tables (mean ± std, counts) from a run's stored records."),
    "report": ("report", "Build grids, tables, plots and index.html from a run."),
    "study": ("study", "Plan, export, serve and analyse the 2AFC user study."),
    "perf": ("perf", "Seconds per step and peak memory of Splice on any device, ours against the reference's way."),
    "gpu-check": ("gpucheck", "Exercise every CUDA path end to end; one JSON summary (make gpu-check)."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module = importlib.import_module(f"{__name__}.{COMMANDS[name][0]}")
        return getattr(module, "command")

    def format_commands(self, ctx, formatter):
        rows = [(name, COMMANDS[name][1]) for name in sorted(COMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="splice-bench", message="%(prog)s %(version)s")
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-vv for debug).")
def cli(verbose: int) -> None:
    """splice-bench: reproduce and extend the Splice (CVPR 2022) comparisons.

    \b
    Examples:
      splice run structure.jpg appearance.jpg -o out/ --preset paper
      splice methods -a
      splice score vit --structure s.jpg --appearance a.jpg --output out/output.png --json
      splice bench --methods splice,reinhard --datasets demo --root datasets --out runs/demo
    """
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    try:
        rc = cli.main(args=argv, prog_name="splice", standalone_mode=False)
    except UserError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    sys.exit(rc if isinstance(rc, int) else 0)
