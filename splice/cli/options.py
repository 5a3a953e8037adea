"""The command-line vocabulary: every option that more than one command takes is defined here, once.

A long option means the same thing in every command, and so does a short one (``-o`` is always
``--out``, the folder a command writes its results into or reads a run store from). Commands take
these factories instead of spelling ``click.option`` themselves; ``tests/cli/test_vocabulary.py``
checks that no command redefines a name of :data:`VOCABULARY` or reuses a short flag.
"""

from __future__ import annotations

from typing import Any, Callable

import click

#: long option -> what it means, in every command that takes it
VOCABULARY: dict[str, str] = {
    "--out": "the folder of results: a run store (bench, score, table, report, study) or one run's folder (run)",
    "--dest": "where a derived artefact is written (a report, a study export, an analysis)",
    "--root": "the data root that manifest image paths are relative to",
    "--device": "one device: auto, cpu, cuda, cuda:N or mps",
    "--devices": "a list of devices for workers: auto, cpu, cuda, cuda:0,cuda:1, mps",
    "--preset": "the named settings of every method (or, in score and metrics, every metric): paper, ..., smoke",
    "--method-args": "a method option, k=v (every selected method that has k) or method.k=v",
    "--metric-args": "a metric option, k=v (every selected metric that has k) or metric.k=v",
    "--metrics": "a comma list of metric names of the registry (`splice metrics`), or all",
    "--methods": "a comma list of method names (--method is the same)",
    "--datasets": "a comma list of data-set names (--dataset is the same)",
    "--pairs": "a comma list of pair ids",
    "--weights": "model weights: a tag, a local file or 'random'",
    "--backbone": "the DINO ViT architecture: B/8, S/8, B/16, S/16 or a timm vit_* name",
    "--backbones": "a comma list of DINO ViT architectures (each as --backbone)",
    "--memory-gb": "the memory of one device in GB (what perf fits an image into; what bench packs jobs into)",
    "--allow-random-weights": "fall back to random weights when the real ones are missing (marked everywhere)",
    "--seed": "the random seed",
    "--json": "print JSON on stdout (logs stay on stderr)",
    "--no-progress": "no progress bar (--quiet is the same)",
    "--force": "redo what is already done / replace what exists",
    "--cache-dir": "the feature cache folder",
    "--dry-run": "say what would be done; write nothing",
    "--segmenter": "the layout segmenter: maskrcnn (objects) or panoptic (objects and stuff); default per data set",
    "--keep-work": "keep a finished job's checkpoints and scratch files (by default only output and record stay)",
}

#: short flag -> the one long option it stands for, everywhere
SHORT_FLAGS: dict[str, str] = {
    "-o": "--out",
    "-h": "--help",
    "-v": "--verbose",
    "-a": "--all-details",
    "-g": "--geometry",
    "-m": "--metric",
    "-f": "--format",
}


class VocabularyOption(click.Option):
    """A click option made by this module (the vocabulary test recognises it)."""


def _option(*names: str, **kwargs: Any) -> Callable:
    return click.option(*names, cls=VocabularyOption, **kwargs)


def out(help: str, required: bool = True, dest: str = "out") -> Callable:
    return _option("-o", "--out", dest, required=required, type=click.Path(), metavar="DIR", help=help)


def dest(help: str, required: bool = False) -> Callable:
    return _option("--dest", required=required, type=click.Path(), metavar="DIR", default=None, help=help)


def root(help: str = "Data root that the manifests' image paths are relative to.", required: bool = False) -> Callable:
    return _option("--root", required=required, type=click.Path(), metavar="DIR", default=None, help=help)


def device(default: str = "auto") -> Callable:
    return _option("--device", default=default, show_default=True, help="auto | cpu | cuda | cuda:N | mps")


def devices() -> Callable:
    return _option("--devices", default="auto", show_default=True,
                   help="auto, cpu, cuda, cuda:0,cuda:1 or mps; one worker per device.")  # fmt: skip


def preset(default: str = "paper", help: str = "paper | paper-10k | fast | smoke (a method without it runs its "
                                                 "paper settings).") -> Callable:  # fmt: skip
    return _option("--preset", default=default, show_default=True, help=help)


method_args = _option("--method-args", "method_args", multiple=True, metavar="K=V",
                      help="A method option: k=v (every selected method that has k) or method.k=v; repeatable. "
                           "`splice methods NAME` lists them.")  # fmt: skip


metric_args = _option("--metric-args", "metric_args", multiple=True, metavar="K=V",
                      help="A metric option: k=v (every selected metric that has k) or metric.k=v, e.g. "
                           "clip.weights=/w/clip.safetensors; repeatable. `splice metrics NAME` lists "
                           "them.")  # fmt: skip


def metrics(help: str = "Comma list of metrics of the registry (`splice metrics` lists them), or all.",
            default: str | None = None) -> Callable:  # fmt: skip
    return _option("--metrics", default=default, show_default=default is not None, metavar="A,B|all", help=help)


def metric_preset() -> Callable:
    return preset("paper", "Settings of the metrics of eval.measures: paper (their published inputs) or smoke "
                           "(small inputs, for pipeline checks).")  # fmt: skip


def methods(help: str = "Comma list of methods (default: all).", required: bool = False) -> Callable:
    return _option("--methods", "--method", "methods", default=None, required=required, metavar="A,B", help=help)


def datasets(help: str = "Comma list of data sets (default: all).", required: bool = False) -> Callable:
    return _option("--datasets", "--dataset", "datasets", default=None, required=required, metavar="A,B", help=help)


def pairs(help: str = "Comma list of pair ids (default: all).") -> Callable:
    return _option("--pairs", default=None, metavar="A,B", help=help)


def weights(help: str, multiple: bool = False, default: Any = None) -> Callable:
    return _option("--weights", default=default, multiple=multiple, metavar="SPEC", help=help)


def backbone(default: str | None = None) -> Callable:
    return _option("--backbone", default=default, show_default=default is not None,
                   help="DINO ViT: B/8 (vit_base_patch8_224), S/8, B/16, S/16, or a timm vit_* name.")  # fmt: skip


def backbones(default: str) -> Callable:
    return _option("--backbones", default=default, show_default=True, metavar="A,B",
                   help="Comma list of DINO ViTs: B/8 (the paper's), S/8, B/16, S/16, or timm vit_* names.")


def memory_gb(help: str, default: float | None = None) -> Callable:
    return _option("--memory-gb", type=click.FloatRange(min=0, min_open=True), default=default,
                   show_default=default is not None, metavar="GB", help=help)  # fmt: skip


allow_random_weights = _option("--allow-random-weights", is_flag=True,
                               help="Use random weights when the real ones are missing (smoke runs; marked in "
                                    "every record, table and report).")  # fmt: skip


def seed(help: str = "Random seed.", default: int = 0) -> Callable:
    return _option("--seed", type=int, default=default, show_default=True, help=help)


def as_json(help: str = "Print JSON on stdout (logs stay on stderr).") -> Callable:
    return _option("--json", "as_json", is_flag=True, help=help)


no_progress = _option("--no-progress", "--quiet", "no_progress", is_flag=True, help="No progress bar.")


def force(help: str) -> Callable:
    return _option("--force", is_flag=True, help=help)


cache_dir = _option("--cache-dir", type=click.Path(), default=None, metavar="DIR",
                    help="Feature cache (default $SPLICE_CACHE_DIR or ~/.cache/splice-bench).")  # fmt: skip


def segmenter(help: str = "Layout segmenter: maskrcnn (COCO objects) or panoptic (objects and stuff). "
                           "Default: per data set (mountains: panoptic, others: maskrcnn).") -> Callable:
    return _option("--segmenter", type=click.Choice(["maskrcnn", "panoptic"]), default=None, help=help)
keep_work = _option("--keep-work", is_flag=True,
                    help="Keep checkpoints and scratch files of jobs that finish ok (default: removed; output, "
                         "record and log stay).")  # fmt: skip


def dry_run(help: str = "Say what would be done; write nothing.") -> Callable:
    return _option("--dry-run", is_flag=True, help=help)


def split(value: str | tuple[str, ...] | None) -> list[str] | None:
    """A comma list (or several repeated ones) -> names; None or empty -> None."""
    if value is None:
        return None
    parts = value if isinstance(value, (list, tuple)) else [value]
    items = [v.strip() for p in parts for v in str(p).split(",") if v.strip()]
    return items or None
