"""Methods run through the user's own checkout of their official repository.

Swapping Autoencoder, Cross-Image Attention and Eye-for-an-eye each ship their own CLI, pinned
dependencies and input geometry; their official code is the reference, so splice-bench does not
re-implement them (Splice, Tumanyan et al., CVPR 2022, compares with Swapping Autoencoder; the two
diffusion methods are what users compare with today). Instead a small YAML file per method says how
to run one pair, and :class:`ExternalMethod` runs it in a subprocess with a timeout.

YAML schema (``version: 1``; every string may use ``{placeholders}``, ``{{`` for a literal brace)::

    name: my-method                 # label used in records
    paper: "Author et al., Title, Venue Year"
    summary: "one line"
    repository: https://github.com/owner/repo   # what to clone (named in the missing-checkout error)
    repo: null                      # path of the checkout (~ and $VARS expand; relative = to this YAML)
    check: [run.py]                 # files that must exist in the checkout; an item may also be
                                    # {path: sub/module/__init__.py, how: "git clone ... sub"} (a one-line fix)
    requires:                       # weights and other files: what to download and where to put it
      - name: "model weights"         # how `splice methods` names it (default: the file name)
        path: "{repo}/checkpoints/model.pth"
        how: "download model.pth from <url> into checkpoints/ of the checkout"
        offline_only: false         # true: needed only when HF_HUB_OFFLINE=1 (else fetched on first run)
        when: null                  # an option name: needed only when that option is true
        relative_to: null           # repo: a relative path is taken inside the checkout
    hub_model:                      # a Hugging Face model the official code loads by a hard-coded id
      option: model                 # the option that names the model to use instead: a hub id or a local folder
      id: runwayml/stable-diffusion-v1-5
      name: "Stable Diffusion 1.5"
    datasets:                       # per data set: option overrides, or {not_applicable: "why"}; "*" = any other
      afhq: {domain: animal}
      wild-pairs: {not_applicable: "no model for this domain"}
    devices: [cuda]                 # device types the official code supports (cpu, cuda, mps)
    python: python                  # interpreter of the method's own environment ({python})
    command: ["{python}", "run.py", "--in", "{structure}", "--style", "{appearance}", "--out", "{output_dir}"]
    env: {CUDA_VISIBLE_DEVICES: "{cuda_visible}"}
    inputs:
      place: convert                # convert: write the images as loaded (EXIF applied, RGB) under the names below
                                    # copy: copy the files byte for byte under the names below; direct: original paths
      structure: structure.png
      appearance: appearance.png
    output: "results/*/out.png"     # glob, relative to {output_dir}; exactly one file must match
    geometry: "center-crop 512x512" # see splice/core/geometry.py
    timeout: 3600                   # seconds
    options: {steps: 100}           # defaults of extra placeholders; --method-args steps=50 overrides
    presets: {smoke: {steps: 5}}    # option overrides per --preset

Placeholders: ``{structure} {appearance}`` (input paths as placed), ``{output_dir}`` (an empty folder
for the method's outputs), ``{work_dir}``, ``{repo}``, ``{python}``, ``{seed}``, ``{device}``
(``cpu``/``cuda:0``), ``{cuda_index}``, ``{cuda_visible}`` (the physical GPU for
``CUDA_VISIBLE_DEVICES``, empty on CPU), ``{num_gpus}`` (1 on CUDA, else 0), ``{pair_id}``,
``{dataset}``, ``{preset}``, ``{hf_hub_cache}``, ``{home}``, and every key of ``options``.

Precedence: ``--method-args`` > environment (``SPLICE_REPO_<NAME>``, ``SPLICE_PYTHON_<NAME>``, with
``<NAME>`` the method name in upper case, ``-`` as ``_``) > the data set's overrides (``datasets:``) > the
preset's overrides > the YAML > built-ins.

``hub_model``: when the option names another model than ``id`` (a hub id already in the Hugging Face cache,
or a local folder in diffusers layout), the command runs with ``HF_HUB_CACHE`` pointing at a folder in the
job's scratch space where ``id`` is an alias of that model (every other cached model is linked as is) and
``HF_HUB_OFFLINE=1``, so code that hard-codes ``id`` loads the chosen model without being changed.

Outputs and logs: the job's scratch folder (``settings.workdir``) holds ``inputs/`` and ``output/``;
stdout and stderr go to ``<workdir>/../log.txt`` (the job folder's ``log.txt``) and the last lines
into the record. A non-zero exit, a timeout or a missing output is a one-line error that points at the log.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from string import Formatter
from typing import Any, ClassVar, Mapping

import yaml

from splice.core.atomic import atomic_save_image
from splice.core.errors import ConfigError, UserError, WeightsError
from splice.core.geometry import parse_geometry, reconcile
from splice.core.imageio import LoadedImage, load_rgb
from splice.core.method import (
    Method,
    MethodResult,
    NotApplicable,
    NotApplicableError,
    Pair,
    Requirement,
    RunSettings,
)
from splice.core.options import resolve as resolve_options
from splice.core.options import to_dict as options_dict

log = logging.getLogger(__name__)

SPECS_DIR = Path(__file__).resolve().parent / "external"
"""The YAMLs shipped with the package (``baselines/external/<name>.yaml``)."""

SCHEMA_VERSION = 1
DEFAULT_TIMEOUT = 3600.0
LOG_TAIL_LINES = 40
LOG_TAIL_CHARS = 4000

#: keys of ``--method-args`` understood by every external method (never part of the config hash)
RUNTIME_OPTIONS = ("repo", "python", "timeout", "config")
_TOP_KEYS = {
    "version", "name", "paper", "summary", "repository", "repo", "check", "requires", "devices", "python",
    "command", "env", "inputs", "output", "geometry", "timeout", "options", "presets", "in_benchmark", "notes",
    "datasets", "hub_model",
}
_PLACEMENTS = ("convert", "copy", "direct")


class ExternalError(UserError):
    """The external command failed, timed out or wrote no output (the message points at the log)."""


class CheckoutError(UserError):
    """The official repository's checkout is missing or incomplete."""


@dataclass(frozen=True)
class Needed:
    """A file the method needs (``requires:`` in the YAML)."""

    path: str
    how: str
    offline_only: bool = False
    name: str = ""
    when: str = ""  # an option name: needed only when that option is true
    relative_to: str = ""  # "repo": a relative path is inside the checkout


@dataclass(frozen=True)
class CheckItem:
    """A file that must exist in the checkout (``check:``), and how to get it when it does not."""

    path: str
    how: str = ""


@dataclass(frozen=True)
class HubModel:
    """A Hugging Face model the official code loads by a hard-coded ``id``; ``option`` names a replacement."""

    option: str
    id: str
    name: str = ""


@dataclass(frozen=True)
class ExternalSpec:
    """One YAML file, validated. See the module docstring for the meaning of each field."""

    source: Path
    sha256: str
    name: str
    paper: str
    summary: str
    repository: str
    repo: str | None
    check: tuple[str, ...]
    requires: tuple[Needed, ...]
    devices: tuple[str, ...]
    python: str
    command: tuple[str, ...]
    env: dict[str, str]
    place: str
    structure_name: str
    appearance_name: str
    output: str
    geometry: str
    timeout: float
    options: dict[str, Any]
    presets: dict[str, dict[str, Any]]
    in_benchmark: bool = False
    notes: str = ""
    datasets: dict[str, Any] = dataclasses.field(default_factory=dict)  # name -> overrides | NotApplicable
    hub_model: HubModel | None = None

    # -- loading --------------------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike) -> "ExternalSpec":
        path = Path(path).expanduser()
        if not path.is_file():
            raise ConfigError(f"external method config not found: {path}; pass --method-args config=<file.yaml>")
        raw = path.read_bytes()
        try:
            data = yaml.safe_load(raw.decode("utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ConfigError(f"{path} is not valid YAML ({first})") from None
        return cls.from_dict(data, path, hashlib.sha256(raw).hexdigest())

    @classmethod
    def from_dict(cls, data: Any, path: Path, sha: str = "") -> "ExternalSpec":
        def bad(msg: str) -> ConfigError:
            return ConfigError(f"{path}: {msg}")

        if not isinstance(data, dict):
            raise bad("expected a mapping of settings (name:, command:, output:, geometry:, ...)")
        unknown = sorted(set(data) - _TOP_KEYS)
        if unknown:
            raise bad(f"unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_TOP_KEYS))}")
        version = data.get("version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise bad(f"version {version!r} is not supported; this splice-bench reads version {SCHEMA_VERSION}")
        for key in ("name", "command", "output", "geometry"):
            if not data.get(key):
                raise bad(f"'{key}:' is required")
        command = data["command"]
        if (
            isinstance(command, str)
            or not isinstance(command, list)
            or not all(isinstance(c, (str, int, float)) for c in command)
        ):
            raise bad('\'command:\' must be a list of arguments, e.g. ["{python}", "run.py", "--in", "{structure}"]')
        inputs = data.get("inputs") or {}
        if not isinstance(inputs, dict):
            raise bad("'inputs:' must be a mapping with place:, structure:, appearance:")
        place = str(inputs.get("place", "convert"))
        if place not in _PLACEMENTS:
            raise bad(f"inputs.place {place!r} is not one of {', '.join(_PLACEMENTS)}")
        s_name = str(inputs.get("structure", "structure.png"))
        a_name = str(inputs.get("appearance", "appearance.png"))
        for n in (s_name, a_name):
            if "/" in n or "\\" in n or n in ("", ".", ".."):
                raise bad(f"inputs file name {n!r} must be a plain file name")
        if s_name == a_name:
            raise bad("inputs.structure and inputs.appearance must differ")
        requires = []
        for i, item in enumerate(data.get("requires") or []):
            if not isinstance(item, dict) or "path" not in item or "how" not in item:
                raise bad(f"requires[{i}] needs path: and how:")
            relative_to = str(item.get("relative_to") or "")
            if relative_to not in ("", "repo"):
                raise bad(f"requires[{i}].relative_to must be repo or absent, not {relative_to!r}")
            requires.append(Needed(str(item["path"]), str(item["how"]), bool(item.get("offline_only", False)),
                                   str(item.get("name", "")), str(item.get("when") or ""), relative_to))
        checks = []
        for i, item in enumerate(data.get("check") or []):
            if isinstance(item, dict):
                if "path" not in item:
                    raise bad(f"check[{i}] needs path:")
                checks.append(CheckItem(str(item["path"]), str(item.get("how", ""))))
            else:
                checks.append(CheckItem(str(item)))
        devices = tuple(str(d) for d in (data.get("devices") or ["cpu", "cuda"]))
        for d in devices:
            if d not in ("cpu", "cuda", "mps"):
                raise bad(f"device {d!r} is not one of cpu, cuda, mps")
        options = data.get("options") or {}
        presets = data.get("presets") or {}
        if not isinstance(options, dict) or not isinstance(presets, dict):
            raise bad("'options:' and 'presets:' must be mappings")
        clash = sorted(set(options) & (set(_builtin_names()) | set(RUNTIME_OPTIONS)))
        if clash:
            raise bad(f"option name(s) {', '.join(clash)} are reserved placeholders; rename them")
        for pname, overrides in presets.items():
            if not isinstance(overrides, dict):
                raise bad(f"presets.{pname} must be a mapping of option overrides")
            extra = sorted(set(overrides) - set(options))
            if extra:
                raise bad(f"presets.{pname} sets {', '.join(extra)}, which are not in options:")
        for i, need in enumerate(requires):
            if need.when and need.when not in options:
                raise bad(f"requires[{i}].when names {need.when!r}, which is not in options:")
        datasets = _parse_datasets(data.get("datasets"), options, bad)
        hub = data.get("hub_model")
        hub_model = None
        if hub is not None:
            if not isinstance(hub, dict) or not hub.get("option") or not hub.get("id"):
                raise bad("'hub_model:' needs option: (an option name) and id: (the hub id the official code loads)")
            if hub["option"] not in options:
                raise bad(f"hub_model.option {hub['option']!r} is not in options:")
            hub_model = HubModel(str(hub["option"]), str(hub["id"]), str(hub.get("name", "")))
        env = data.get("env") or {}
        if not isinstance(env, dict):
            raise bad("'env:' must be a mapping of environment variables")
        try:
            timeout = float(data.get("timeout", DEFAULT_TIMEOUT))
        except (TypeError, ValueError):
            raise bad(f"timeout {data.get('timeout')!r} is not a number of seconds") from None
        spec = cls(
            source=path, sha256=sha, name=str(data["name"]), paper=str(data.get("paper", "")),
            summary=str(data.get("summary", "")), repository=str(data.get("repository", "")),
            repo=None if data.get("repo") in (None, "") else str(data["repo"]),
            check=tuple(checks), requires=tuple(requires), devices=devices,
            python=str(data.get("python", "python")), command=tuple(str(c) for c in command),
            env={str(k): str(v) for k, v in env.items()}, place=place, structure_name=s_name, appearance_name=a_name,
            output=str(data["output"]), geometry=str(data["geometry"]), timeout=timeout, options=dict(options),
            presets={str(k): dict(v) for k, v in presets.items()}, in_benchmark=bool(data.get("in_benchmark", False)),
            notes=str(data.get("notes", "")), datasets=datasets, hub_model=hub_model,
        )
        spec._check_placeholders()
        return spec

    def _check_placeholders(self) -> None:
        known = set(_builtin_names()) | set(self.options)
        texts = [*self.command, self.output, self.geometry, *self.env.values(), *(n.path for n in self.requires)]
        for text in texts:
            for name in _placeholders(text, self.source):
                if name not in known:
                    raise ConfigError(
                        f"{self.source}: unknown placeholder {{{name}}} in {text!r}; known: {', '.join(sorted(known))}"
                    )

    # -- resolving ------------------------------------------------------------------------------------------
    @property
    def env_name(self) -> str:
        return self.name.upper().replace("-", "_").replace(".", "_")

    def options_type(self) -> type:
        """The options dataclass of this YAML: its ``options:`` (typed by their defaults) and the run-time
        options every external method takes (``config``, ``repo``, ``python``, ``timeout``)."""
        return _options_type(self.name, tuple(self.options.items()))

    def preset_table(self) -> dict[str, dict[str, Any]]:
        return {"paper": {}, "smoke": {}, **self.presets}

    def for_dataset(self, dataset: str | None) -> dict[str, Any] | NotApplicable:
        """The ``datasets:`` entry for ``dataset`` (``"*"`` for others; ``{}`` when none or ad hoc)."""
        if dataset is None:
            return {}
        return self.datasets.get(dataset, self.datasets.get("*", {}))

    def all_options(self, settings: RunSettings) -> dict[str, Any]:
        """Every option for ``settings`` (YAML defaults < preset < data set < ``--method-args``), typed and checked."""
        entry = self.for_dataset(settings.dataset)
        if isinstance(entry, NotApplicable):
            raise NotApplicableError(f"{self.name} does not apply to data set {settings.dataset}: {entry.reason}")
        resolved = resolve_options(self.options_type(), self.preset_table(), settings.preset,
                                   {**entry, **(settings.options or {})}, self.name)  # fmt: skip
        return options_dict(resolved)

    def resolve_options(self, settings: RunSettings) -> dict[str, Any]:
        """The YAML's own option values for ``settings`` (no run-time options: they never change the output)."""
        return {k: v for k, v in self.all_options(settings).items() if k not in RUNTIME_OPTIONS}

    def resolve_repo(self, settings: RunSettings) -> Path | None:
        """The checkout path: ``--method-args repo=`` > ``$SPLICE_REPO_<NAME>`` > ``repo:`` in the YAML."""
        value = self.all_options(settings)["repo"] or os.environ.get(f"SPLICE_REPO_{self.env_name}") or self.repo
        if not value:
            return None
        path = Path(os.path.expandvars(str(value))).expanduser()
        if not path.is_absolute():
            path = (self.source.parent / path) if value == self.repo else path.resolve()
        return path

    def resolve_python(self, settings: RunSettings) -> str:
        value = str(self.all_options(settings)["python"] or os.environ.get(f"SPLICE_PYTHON_{self.env_name}")
                    or self.python)
        # `python=~/envs/x/bin/python` reaches us unexpanded (the shell expands ~ only at a word's start)
        return os.path.expanduser(os.path.expandvars(value))

    def resolve_timeout(self, settings: RunSettings) -> float:
        value = self.all_options(settings)["timeout"]
        return self.timeout if value is None else value

    def clone_hint(self) -> str:
        url = self.repository or "the official repository"
        return (
            f"git clone {url} <dir>, then set repo: in {self.source}, or export SPLICE_REPO_{self.env_name}=<dir>, "
            f"or pass --method-args repo=<dir>"
        )


def _parse_datasets(raw: Any, options: dict[str, Any], bad) -> dict[str, Any]:
    """``datasets:`` -> {name: overrides | NotApplicable}; overrides may only set YAML options."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise bad("'datasets:' must map data set names to option overrides or {not_applicable: why}")
    out: dict[str, Any] = {}
    for name, entry in raw.items():
        entry = entry or {}
        if not isinstance(entry, dict):
            raise bad(f"datasets.{name} must be a mapping (option overrides, or not_applicable: why)")
        if "not_applicable" in entry:
            if len(entry) > 1 or not str(entry["not_applicable"] or "").strip():
                raise bad(f"datasets.{name}: not_applicable: takes a one-line reason and nothing else")
            out[str(name)] = NotApplicable(" ".join(str(entry["not_applicable"]).split()))
            continue
        extra = sorted(set(entry) - set(options))
        if extra:
            raise bad(f"datasets.{name} sets {', '.join(extra)}, which are not in options:")
        out[str(name)] = dict(entry)
    return out


def _builtin_names() -> tuple[str, ...]:
    return (
        "structure", "appearance", "output_dir", "work_dir", "repo", "python", "seed", "device", "cuda_index",
        "cuda_visible", "num_gpus", "pair_id", "dataset", "preset", "hf_hub_cache", "home",
    )


def _placeholders(text: str, source: Path) -> list[str]:
    try:
        return [name for _, name, _, _ in Formatter().parse(text) if name is not None]
    except ValueError as e:
        raise ConfigError(f"{source}: bad placeholder in {text!r} ({e}); write {{{{ for a literal brace") from None


def _fill(text: str, values: dict[str, Any], source: Path) -> str:
    try:
        return text.format_map(values)
    except (KeyError, IndexError, ValueError) as e:
        raise ConfigError(f"{source}: cannot fill placeholders in {text!r} ({e})") from None


@functools.lru_cache(maxsize=64)
def _options_type(name: str, items: tuple[tuple[str, Any], ...]) -> type:
    """A frozen dataclass with the run-time options and one field per YAML option, typed by its default."""
    fields = [
        ("config", str | None, dataclasses.field(default=None, metadata={"help": "the method's YAML file"})),
        ("repo", str | None, dataclasses.field(default=None, metadata={"help": "the official checkout"})),
        ("python", str | None, dataclasses.field(default=None, metadata={"help": "its Python interpreter"})),
        ("timeout", float | None, dataclasses.field(default=None, metadata={"help": "seconds per pair"})),
    ]
    for key, default in items:
        tp = str | None if default is None else type(default)
        if isinstance(default, (list, dict)):
            tp, default = str, str(default)
        fields.append((key, tp, dataclasses.field(default=default)))
    return dataclasses.make_dataclass(f"{name.title().replace('-', '')}Options", fields, frozen=True)


def hf_hub_cache() -> Path:
    """Where huggingface_hub keeps models (``$HF_HUB_CACHE``, ``$HUGGINGFACE_HUB_CACHE``, ``$HF_HOME/hub`` or
    ``~/.cache/huggingface/hub``)."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path.home() / ".cache" / "huggingface" / "hub"


def hub_repo_dir(model_id: str, cache: Path) -> Path:
    """The cache folder of a hub model id (``models--owner--name``)."""
    return cache / ("models--" + model_id.replace("/", "--"))


def resolve_hub_model(value: str, cache: Path) -> Path | None:
    """A model given as a local folder or a hub id -> its folder (the cached snapshot of ``main``), or None."""
    folder = Path(os.path.expandvars(value)).expanduser()
    if folder.is_dir():
        return folder.resolve()
    repo_dir = hub_repo_dir(value, cache)
    ref = repo_dir / "refs" / "main"
    if ref.is_file():
        snapshot = repo_dir / "snapshots" / ref.read_text().strip()
        if snapshot.is_dir():
            return snapshot
    snapshots = sorted((repo_dir / "snapshots").glob("*"), key=lambda p: p.stat().st_mtime) if (
        repo_dir / "snapshots").is_dir() else []
    return snapshots[-1] if snapshots else None


def hub_alias_cache(dest: Path, model_id: str, folder: Path, cache: Path) -> Path:
    """A Hugging Face cache at ``dest`` where ``model_id`` resolves (offline, revision ``main``) to ``folder`` and
    every other entry of ``cache`` is linked as it is."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    alias = hub_repo_dir(model_id, dest)
    if cache.is_dir():
        for entry in cache.iterdir():
            if entry.name != alias.name:
                (dest / entry.name).symlink_to(entry.resolve(), target_is_directory=entry.is_dir())
    revision = hashlib.sha1(str(folder).encode()).hexdigest()
    (alias / "refs").mkdir(parents=True)
    (alias / "refs" / "main").write_text(revision)
    (alias / "snapshots").mkdir()
    (alias / "snapshots" / revision).symlink_to(folder, target_is_directory=True)
    return dest


def _offline() -> bool:
    return any(
        os.environ.get(v, "").strip().lower() in ("1", "true", "yes")
        for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def device_values(device: str) -> dict[str, str]:
    """Placeholders that depend on the device. ``cuda_visible`` maps the index through an inherited
    ``CUDA_VISIBLE_DEVICES`` so a worker pinned to GPU 3 still runs the method on GPU 3."""
    device = (device or "cpu").lower()
    if device.startswith("cuda"):
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        inherited = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
        visible = inherited[index] if index < len(inherited) else str(index)
        return {"device": f"cuda:{index}", "cuda_index": str(index), "cuda_visible": visible, "num_gpus": "1"}
    return {"device": device, "cuda_index": "", "cuda_visible": "", "num_gpus": "0"}


def git_commit(repo: Path) -> str | None:
    """The checked-out commit of ``repo`` read from ``.git`` (no git binary needed), or None."""
    git = repo / ".git"
    try:
        if git.is_file():  # worktrees and submodules: "gitdir: <path>"
            git = (repo / git.read_text().split(":", 1)[1].strip()).resolve()
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head
        ref = head.split(":", 1)[1].strip()
        if (git / ref).is_file():
            return (git / ref).read_text().strip()
        packed = git / "packed-refs"
        if packed.is_file():
            for line in packed.read_text().splitlines():
                if line.endswith(" " + ref):
                    return line.split(" ", 1)[0]
    except (OSError, IndexError):
        return None
    return None


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    lines = text.splitlines()[-LOG_TAIL_LINES:]
    return "\n".join(lines)[-LOG_TAIL_CHARS:]


def _last_line(text: str) -> str:
    for line in reversed(text.splitlines()):
        if line.strip() and not line.startswith("[splice-bench]"):
            return line.strip()[:200]
    return ""


@dataclass
class CommandResult:
    argv: list[str]
    returncode: int | None
    seconds: float
    timed_out: bool
    log: Path
    tail: str = ""


def run_command(argv: list[str], cwd: Path, env: dict[str, str], log_path: Path, timeout: float) -> CommandResult:
    """Run ``argv`` in ``cwd`` with stdout+stderr appended to ``log_path``; kill its whole process group on timeout."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(log_path, "ab") as logf:
        logf.write(f"$ cd {cwd} && {' '.join(argv)}\n".encode())
        logf.flush()
        try:
            proc = subprocess.Popen(
                argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: a timeout kills the method's children too
            )
        except FileNotFoundError:
            raise ExternalError(
                f"command not found: {argv[0]}; set python= (--method-args) or fix command: in the YAML"
            ) from None
        except PermissionError:
            raise ExternalError(f"command is not executable: {argv[0]}") from None
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc)
        except BaseException:  # Ctrl-C or a job cancel: never leave the method running
            _kill_group(proc)
            raise
        seconds = time.perf_counter() - start
        note = " (timed out)" if timed_out else ""
        logf.write(f"\n[splice-bench] exit code {proc.returncode}{note} after {seconds:.1f} s\n".encode())
    return CommandResult(argv=argv, returncode=proc.returncode, seconds=seconds, timed_out=timed_out, log=log_path,
                         tail=_tail(log_path))


def _kill_group(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


class ExternalMethod(Method):
    """``external``: any method described by a YAML file (``--method-args config=path.yaml``).

    Subclasses bind one shipped YAML by setting ``spec_name``; their name, paper, summary and devices
    then come from that file, and they join ``--methods all`` only when a checkout is configured.
    """

    name = "external"
    paper = "-"
    summary = "Any method run through its own command line, described by a YAML file (--method-args config=...)."
    devices = ("cpu", "cuda", "mps")
    in_benchmark = False
    in_smoke = False
    spec_name: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.spec_name:
            spec = ExternalSpec.load(SPECS_DIR / f"{cls.spec_name}.yaml")
            cls.name = spec.name
            cls.paper = spec.paper
            cls.summary = spec.summary
            cls.devices = spec.devices
            # "--methods all" includes a wrapped method once its checkout is configured (or the YAML says so).
            cls.in_benchmark = spec.in_benchmark or bool(spec.repo or os.environ.get(f"SPLICE_REPO_{spec.env_name}"))

    # -- the spec -------------------------------------------------------------------------------------------
    def spec(self, settings: RunSettings) -> ExternalSpec:
        config = (settings.options or {}).get("config")
        if config:
            return ExternalSpec.load(config)
        if self.spec_name:
            return ExternalSpec.load(SPECS_DIR / f"{self.spec_name}.yaml")
        raise ConfigError(
            "external needs a YAML file describing the method: --method-args config=path.yaml "
            f"(examples: {SPECS_DIR}/*.yaml)"
        )

    def _spec_or_none(self, overrides: Any) -> ExternalSpec | None:
        try:
            return self.spec(RunSettings(options=dict(overrides or {})))
        except ConfigError:
            return None

    def option_type(self, overrides: Any = None) -> type:
        spec = self._spec_or_none(overrides)
        return spec.options_type() if spec else _options_type(self.name, ())

    def preset_table(self, overrides: Any = None) -> dict[str, Any]:
        spec = self._spec_or_none(overrides)
        return spec.preset_table() if spec else {"paper": {}, "smoke": {}}

    def options(self, settings: RunSettings) -> Any:
        spec = self.spec(settings)
        return resolve_options(spec.options_type(), spec.preset_table(), settings.preset,
                               self.dataset_overrides(settings), self.name)  # fmt: skip

    def config(self, settings: RunSettings) -> dict[str, Any]:
        spec = self.spec(settings)
        return {
            "method": self.name,
            "spec": spec.name,
            "spec_sha256": spec.sha256[:16],
            "options": spec.resolve_options(settings),
            "geometry": spec.geometry,
        }

    def requirements(self, settings: RunSettings) -> list[Requirement]:
        return [req for _, req in self._requirements(settings)]

    def _requirements(self, settings: RunSettings) -> list[tuple[str, Requirement]]:
        """(kind, requirement): kind ``checkout`` (the clone), ``part`` (a file of the checkout with its own fix),
        ``file`` (``requires:``) or ``model`` (``hub_model:``)."""
        try:
            spec = self.spec(settings)
        except ConfigError as e:
            return [("checkout", Requirement(name="method YAML", how=str(e), ready=False))]
        repo = spec.resolve_repo(settings)
        plain = [c for c in spec.check if not c.how]
        ok = repo is not None and repo.is_dir() and all((repo / c.path).exists() for c in plain)
        short = spec.repository.removeprefix("https://").removeprefix("github.com/") or spec.name
        reqs = [("checkout", Requirement(name=f"checkout of {short}", how=spec.clone_hint(), ready=ok,
                                         path=str(repo) if repo else None))]  # fmt: skip
        values = self._static_values(spec, settings, repo)
        for item in spec.check:
            if item.how:
                path = (repo / item.path) if repo else Path("<repo>") / item.path
                how = _fill(item.how, values, spec.source)
                reqs.append(("part", Requirement(f"{item.path} in the checkout", how, path.exists(), str(path))))
        for need in spec.requires:
            if need.when and not values.get(need.when):
                continue
            path = Path(_fill(need.path, values, spec.source)).expanduser()
            if need.relative_to == "repo" and repo is not None:
                path = repo / path
            ready = path.exists() or (need.offline_only and not _offline())
            how = _fill(need.how, values, spec.source)
            if need.offline_only and not path.exists():
                how += " (downloaded on first run when online)"
            label = _fill(need.name, values, spec.source) if need.name else (path.name or str(path))
            reqs.append(("file", Requirement(name=label, how=how, ready=ready, path=str(path))))
        if spec.hub_model is not None:
            reqs.append(("model", self._model_requirement(spec, values)))
        return reqs

    @staticmethod
    def _model_requirement(spec: ExternalSpec, values: dict[str, Any]) -> Requirement:
        hub = spec.hub_model
        assert hub is not None
        value = str(values.get(hub.option) or hub.id)
        cache = hf_hub_cache()
        folder = resolve_hub_model(value, cache)
        label = f"{hub.name or 'model'} ({value})"
        if folder is not None:
            return Requirement(name=label, how=f"found at {folder}", ready=True, path=str(folder))
        if value == hub.id:
            how = (f"huggingface-cli download {hub.id} (into {cache}), or pass --method-args {hub.option}=<another hub "
                   f"id in that cache, or a local folder in diffusers layout>; the official code loads {hub.id}")
            if not _offline():
                how += " (downloaded on first run when online)"
            return Requirement(name=label, how=how, ready=not _offline(), path=str(hub_repo_dir(hub.id, cache)))
        how = (f"{value} is neither a folder nor in the Hugging Face cache {cache}: run `huggingface-cli download "
               f"{value}` or pass {hub.option}=<a local folder in diffusers layout>")
        return Requirement(name=label, how=how, ready=False, path=str(hub_repo_dir(value, cache)))

    @staticmethod
    def _static_values(spec: ExternalSpec, settings: RunSettings, repo: Path | None) -> dict[str, Any]:
        try:
            options = spec.resolve_options(settings)
        except ConfigError:
            options = dict(spec.options)
        return {
            **options, **device_values(settings.device), "repo": str(repo) if repo else "<repo>",
            "python": spec.resolve_python(settings), "seed": settings.seed, "preset": settings.preset,
            "hf_hub_cache": str(hf_hub_cache()), "home": str(Path.home()), "structure": "", "appearance": "",
            "output_dir": "", "work_dir": "", "pair_id": "", "dataset": "",
        }

    # -- data sets ------------------------------------------------------------------------------------------
    def dataset_table(self, overrides: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
        spec = self._spec_or_none(overrides)
        return spec.datasets if spec else {}

    # -- running --------------------------------------------------------------------------------------------
    def _check_ready(self, spec: ExternalSpec, settings: RunSettings) -> Path:
        device_type = (settings.device or "cpu").split(":")[0].lower()
        if device_type not in spec.devices:
            raise ConfigError(
                f"{spec.name} runs on {', '.join(spec.devices)} only (per {spec.source}); "
                f"got --device {settings.device}"
            )
        repo = spec.resolve_repo(settings)
        if repo is None or not repo.is_dir():
            where = f"no checkout at {repo}" if repo else "no checkout configured"
            raise CheckoutError(f"{spec.name}: {where}; {spec.clone_hint()}")
        missing = [c.path for c in spec.check if not c.how and not (repo / c.path).exists()]
        if missing:
            raise CheckoutError(
                f"{spec.name}: {repo} is not a checkout of {spec.repository or spec.name} "
                f"(missing {', '.join(missing)}); {spec.clone_hint()}"
            )
        for kind, req in self._requirements(settings)[1:]:
            if req.ready:
                continue
            if kind == "part":
                raise CheckoutError(f"{spec.name}: {req.path} is missing; {req.how}")
            if kind == "model":
                raise WeightsError(f"{spec.name}: {req.name} not found; {req.how}")
            raise WeightsError(f"{spec.name}: missing {req.path}; {req.how}")
        return repo

    def _model_env(self, spec: ExternalSpec, options: dict[str, Any], workdir: Path) -> dict[str, str]:
        """Environment that makes the official code's hard-coded model id load the chosen model (``hub_model``)."""
        hub = spec.hub_model
        if hub is None or str(options.get(hub.option) or hub.id) == hub.id:
            return {}
        value = str(options[hub.option])
        cache = hf_hub_cache()
        folder = resolve_hub_model(value, cache)
        if folder is None:  # _check_ready said so already; a race with a deleted cache
            raise WeightsError(f"{spec.name}: {value} is neither a folder nor in the Hugging Face cache {cache}")
        alias = hub_alias_cache(workdir / "hf-hub", hub.id, folder, cache)
        log.info("%s: %s stands for %s (alias cache %s)", spec.name, hub.id, folder, alias)
        return {"HF_HUB_CACHE": str(alias), "HUGGINGFACE_HUB_CACHE": str(alias), "HF_HUB_OFFLINE": "1"}

    def _place_inputs(self, spec: ExternalSpec, images: dict[str, LoadedImage], inputs_dir: Path) -> dict[str, Path]:
        names = {"structure": spec.structure_name, "appearance": spec.appearance_name}
        placed = {}
        for role, loaded in images.items():
            if spec.place == "direct":
                placed[role] = loaded.path.resolve()
                continue
            dest = inputs_dir / names[role]
            if spec.place == "copy":
                shutil.copyfile(loaded.path, dest)
            else:
                atomic_save_image(dest, loaded.image)
            placed[role] = dest
        return placed

    def run(self, pair: Pair, settings: RunSettings) -> MethodResult:
        spec = self.spec(settings)
        options = spec.resolve_options(settings)
        timeout = spec.resolve_timeout(settings)
        repo = self._check_ready(spec, settings)
        s = load_rgb(pair.structure, role="structure image")
        a = load_rgb(pair.appearance, role="appearance image")

        temp = None
        if settings.workdir is not None:
            workdir = Path(settings.workdir)
            log_path = workdir.parent / "log.txt"
        else:  # ad-hoc use outside a run store: scratch in a temporary folder, kept if the command fails
            temp = Path(tempfile.mkdtemp(prefix=f"splice-{spec.name}-"))
            workdir = temp / "work"
            log_path = temp / "log.txt"
        inputs_dir, output_dir = workdir / "inputs", workdir / "output"
        for d in (inputs_dir, output_dir):  # a previous, killed attempt must not leave outputs that look new
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True, exist_ok=True)
        placed = self._place_inputs(spec, {"structure": s, "appearance": a}, inputs_dir)

        values = {
            **options, **device_values(settings.device), "structure": str(placed["structure"]),
            "appearance": str(placed["appearance"]), "output_dir": str(output_dir), "work_dir": str(workdir),
            "repo": str(repo), "python": spec.resolve_python(settings), "seed": settings.seed,
            "pair_id": pair.pair_id, "dataset": pair.dataset, "preset": settings.preset,
            "hf_hub_cache": str(hf_hub_cache()), "home": str(Path.home()),
        }
        argv = [_fill(c, values, spec.source) for c in spec.command]
        env = {**os.environ, **{k: _fill(v, values, spec.source) for k, v in spec.env.items()},
               **self._model_env(spec, options, workdir)}
        env.setdefault("PYTHONUNBUFFERED", "1")  # so the log shows progress as it happens
        log.info("%s: running %s (timeout %.0f s, log %s)", spec.name, " ".join(argv), timeout, log_path)
        result = run_command(argv, repo, env, log_path, timeout)

        last = _last_line(result.tail)
        if result.timed_out:
            raise ExternalError(
                f"{spec.name}: timed out after {timeout:.0f} s; see {log_path}; "
                "raise it with --method-args timeout=SECONDS"
            )
        if result.returncode != 0:
            raise ExternalError(
                f"{spec.name}: command exited with code {result.returncode}; see {log_path}"
                + (f" (last line: {last})" if last else "")
            )
        pattern = _fill(spec.output, values, spec.source)
        matches = sorted(p for p in (Path(pattern).parent.glob(Path(pattern).name) if Path(pattern).is_absolute()
                                     else output_dir.glob(pattern)) if p.is_file())
        if not matches:
            raise ExternalError(
                f"{spec.name}: the command succeeded but wrote no file matching {pattern!r} in {output_dir}; "
                f"see {log_path}; fix output: in {spec.source}"
            )
        if len(matches) > 1:
            raise ExternalError(
                f"{spec.name}: {len(matches)} files match {pattern!r} in {output_dir} "
                f"({', '.join(p.name for p in matches[:4])}); make output: in {spec.source} match exactly one"
            )
        out = load_rgb(matches[0], role=f"{spec.name} output", min_side=0)
        try:
            predicted = parse_geometry(_fill(spec.geometry, values, spec.source), s.size)
            geometry, note = reconcile(predicted, out.size)
        except ValueError as e:
            raise ConfigError(f"{spec.name}: {e}; fix geometry: in {spec.source}") from None
        if note:
            log.warning("%s: %s", spec.name, note)
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)
        info = {
            "weights": {"checkout": str(repo), "commit": git_commit(repo), "repository": spec.repository},
            "random_weights": False,
            "inputs": {"structure": s.record(), "appearance": a.record()},
            "spec": {"name": spec.name, "file": str(spec.source), "sha256": spec.sha256},
            "options": options,
            "command": argv,
            "placement": spec.place,
            "returncode": result.returncode,
            "command_seconds": round(result.seconds, 3),
            "log": str(log_path) if temp is None else None,
            "log_tail": result.tail,
            "output_file": str(matches[0]),
            "geometry_note": note,
        }
        return MethodResult(image=out.image.copy(), geometry=geometry, info=info)


class SwappingAutoencoder(ExternalMethod):
    spec_name = "swapping-autoencoder"


class CrossImageAttention(ExternalMethod):
    spec_name = "cross-image-attention"


class EyeForAnEye(ExternalMethod):
    spec_name = "eye-for-an-eye"
