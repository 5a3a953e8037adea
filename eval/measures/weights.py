"""Where the registry's models get their weights, offline first.

Every model a measure needs is named by a *spec*: a public name (a torchvision tag such as
``IMAGENET1K_V1``, a timm tag such as ``dino`` / ``lvd142m``, an open_clip tag such as ``openai``),
a local file (``.pth`` / ``.pt`` / ``.bin`` / ``.safetensors``), or ``random`` (a fixed-seed random
initialisation, for tests and smoke runs; every record made with it says so). A public name is
looked for on disk only (``$SPLICE_WEIGHTS_DIR`` under the official file name, then the library's
own cache); the Hugging Face hub is asked only when :func:`splice.core.weightfiles.hf_hub_reachable`
says it answers, and torchvision's files are never downloaded. A missing file is one
:class:`~splice.core.errors.WeightsError` line naming the file, where to put it, and the ``random``
alternative, in well under a second offline; with ``allow_random`` it becomes a warned random
fallback instead.

:class:`WeightsSource` is that resolution, made without loading anything, so that readiness
(``splice metrics``) and loading agree.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from splice.core.errors import ConfigError, WeightsError
from splice.core.method import Requirement
from splice.core.paths import weights_dir
from splice.core.weightfiles import WEIGHT_SUFFIXES, file_sha256, hf_hub_reachable, read_state_dict

log = logging.getLogger(__name__)

RANDOM = "random"
RANDOM_SEED = 0
"""``random`` weights are drawn from this seed, whatever the run's seed: a resumed or repeated
scoring run must see the same model."""


@contextlib.contextmanager
def seeded(seed: int = RANDOM_SEED) -> Iterator[None]:
    """Torch's global generator set to ``seed`` inside, restored after (libraries build models with it)."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def is_file_spec(spec: str) -> bool:
    return Path(spec).suffix in WEIGHT_SUFFIXES or os.sep in spec


@dataclass(frozen=True)
class WeightsSource:
    """One model's weights: what was asked for, where the file is (or would go), how to provide it.

    Attributes:
        what: a human name (``VGG16 ImageNet weights``).
        spec: as given (a tag, a path or ``random``).
        kind: ``tag`` | ``file`` | ``random``.
        path: the file found (None for ``random`` or a tag not found here).
        how: one line: what to download and where to put it.
        fetch: for tags a library can download: a callable returning the downloaded file or None.
        fallback_from: the spec a warned random fallback replaced.
    """

    what: str
    spec: str
    kind: str
    path: Path | None = None
    how: str = ""
    fetch: Callable[[], Path | None] | None = dataclasses.field(default=None, compare=False, repr=False)
    fallback_from: str | None = None

    @property
    def random(self) -> bool:
        return self.kind == RANDOM

    @property
    def present(self) -> bool:
        return self.random or (self.path is not None and self.path.is_file())

    def requirement(self, allow_random: bool = False) -> Requirement:
        how = "random weights (smoke runs and tests only)" if self.random else self.how
        return Requirement(name=f"{self.what} ({self.spec})", how=how, ready=self.present or allow_random,
                           path=str(self.path) if self.path else None)  # fmt: skip

    def message(self) -> str:
        if self.kind == "file":
            return f"{self.what}: file not found: {self.path}; {self.how}"
        return (f"{self.what} {self.spec!r} not found (offline?): {self.how}; or use weights=random "
                f"(--allow-random-weights) for a smoke run with meaningless values")  # fmt: skip

    def require(self, allow_random: bool = False) -> WeightsSource:
        """This source with its file present (fetched when a library can and the hub answers), or a
        warned random fallback when ``allow_random``; otherwise a one-line :class:`WeightsError`."""
        if self.present:
            return self
        if self.kind == "tag" and self.fetch is not None:
            got = self.fetch()
            if got is not None and Path(got).is_file():
                return dataclasses.replace(self, path=Path(got))
        if allow_random and self.kind != "file":
            log.warning("%s; continuing with RANDOM weights as allowed", self.message())
            return WeightsSource(self.what, RANDOM, RANDOM, fallback_from=self.spec)
        raise WeightsError(self.message())

    def identity(self) -> dict[str, Any]:
        """For the record: what was asked for and what was loaded."""
        sha = file_sha256(self.path) if not self.random and self.path is not None else None
        out = {"spec": self.spec, "source": self.kind, "path": str(self.path) if self.path else None, "sha256": sha,
               "random": self.random}  # fmt: skip
        if self.random:
            out["seed"] = RANDOM_SEED
        if self.fallback_from:
            out["fallback_from"] = self.fallback_from
        return out

    def key(self) -> dict[str, Any]:
        """For cache keys: the file's content (where it lives does not change a value), or the spec."""
        ident = self.identity()
        if ident["sha256"]:
            return {"sha256": ident["sha256"]}
        return {"spec": self.spec, "random": self.random, "seed": RANDOM_SEED if self.random else None}


def _random_source(what: str) -> WeightsSource:
    return WeightsSource(what, RANDOM, RANDOM)


def _file_source(what: str, spec: str, layout: str) -> WeightsSource:
    path = Path(spec).expanduser()
    return WeightsSource(what, spec, "file", path, how=f"pass the path of an existing {layout} file")


def package_requirement(distribution: str, module: str) -> Requirement:
    """Whether the Python package ``module`` (pip distribution ``distribution``) can be imported."""
    ready = importlib.util.find_spec(module) is not None
    how = "installed" if ready else f"pip install {distribution} (or pip install 'splice-bench[metrics]')"
    return Requirement(name=f"Python package {distribution}", how=how, ready=ready)


# -- torchvision backbones (VGG16 / VGG19 / AlexNet ImageNet) ---------------------------------------------------

#: arch -> (torchvision's IMAGENET1K_V1 file, its VGG layout); the URLs are torchvision's
#: ``VGG16_Weights.IMAGENET1K_V1.url`` etc. (written out: importing torchvision.models takes seconds)
TORCHVISION_ARCHS: dict[str, tuple[str, str | None]] = {
    "vgg16": ("https://download.pytorch.org/models/vgg16-397923af.pth", "D"),
    "vgg19": ("https://download.pytorch.org/models/vgg19-dcbb9e9d.pth", "E"),
    "alexnet": ("https://download.pytorch.org/models/alexnet-owt-7be5be79.pth", None),
}
TORCHVISION_TAG = "IMAGENET1K_V1"


def _hub_checkpoints() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def torchvision_source(arch: str, spec: str | None) -> WeightsSource:
    """The ImageNet weights of a torchvision ``arch`` (``vgg16``, ``vgg19``, ``alexnet``): a tag
    (``IMAGENET1K_V1``), a file holding its state dict (whole model or ``features`` only), or random.

    A tag's file is looked for under torchvision's name in ``$SPLICE_WEIGHTS_DIR`` and torch hub's
    ``checkpoints`` folder; it is never downloaded.
    """
    url, _ = TORCHVISION_ARCHS[arch]
    what = f"{arch.upper() if arch != 'alexnet' else 'AlexNet'} ImageNet weights"
    spec = str(spec or TORCHVISION_TAG)
    if spec.lower() == RANDOM:
        return _random_source(what)
    if is_file_spec(spec):
        return _file_source(what, spec, f"torchvision {arch} state dict")
    tag = spec.split(".")[-1]
    tag = TORCHVISION_TAG if tag == "DEFAULT" else tag
    if tag != TORCHVISION_TAG:
        raise ConfigError(f"{arch} weights {spec!r}: use {TORCHVISION_TAG}, a file, or random")
    name = os.path.basename(url)
    candidates = [weights_dir() / name, _hub_checkpoints() / name]
    found = next((c for c in candidates if c.is_file()), None)
    how = f"download {url} and put it in {weights_dir()}/ or {_hub_checkpoints()}/ (keep the name {name})"
    return WeightsSource(what, tag, "tag", found, how=how)


def torchvision_features(arch: str):
    """The ``features`` part of a torchvision ``arch`` (same module indices), built without its classifier."""
    import torch.nn as nn

    _, layout = TORCHVISION_ARCHS[arch]
    if layout is not None:
        from torchvision.models.vgg import cfgs, make_layers

        return make_layers(cfgs[layout], batch_norm=False)
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )  # fmt: skip  (torchvision's AlexNet().features)


def random_init(features) -> None:
    """torchvision's VGG initialisation of every convolution (He normal, fan out; zero bias), from
    :data:`RANDOM_SEED`: reproducible stand-in weights."""
    import torch
    import torch.nn as nn

    with seeded():
        for m in features.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                with torch.no_grad():
                    m.bias.zero_()


def features_state(source: WeightsSource, template) -> dict[str, Any]:
    """The ``features`` tensors of the file of ``source``, keyed like ``template.state_dict()`` (``N.weight``).

    Accepts a whole torchvision model (``features.N.*``) or its ``features`` alone (``N.*``), also
    wrapped in ``{"state_dict": ...}``; a missing or misshapen tensor is one WeightsError line.
    """
    assert source.path is not None
    state = read_state_dict(source.path)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsError(f"{source.path} holds no state dict; save model.state_dict() instead")
    out = {}
    for key, ref in template.state_dict().items():
        value = state.get(f"features.{key}", state.get(key))
        if value is None or tuple(value.shape) != tuple(ref.shape):
            got = "missing" if value is None else f"shape {tuple(value.shape)}"
            raise WeightsError(f"{source.path} does not fit {source.what}: features.{key} is {got} "
                               f"(expected {tuple(ref.shape)})")  # fmt: skip
        out[key] = value
    return out


def load_torchvision_features(arch: str, source: WeightsSource):
    """``features`` of ``arch`` with the weights of ``source`` (random: :func:`random_init`), eval mode, frozen."""
    model = torchvision_features(arch)
    if source.random:
        random_init(model)
    else:
        model.load_state_dict(features_state(source, model), strict=True)
    model.requires_grad_(False)
    return model.eval()


# -- timm ViTs (DINO, DINOv2) ------------------------------------------------------------------------------------


def timm_source(arch: str, spec: str, what: str) -> tuple[WeightsSource, str]:
    """The weights of a timm ``arch`` and the pretrained tag whose preprocessing applies.

    ``spec``: a tag of ``arch`` (``dino``; ``arch.tag`` too), a file (any key layout timm's
    ``checkpoint_filter_fn`` converts: timm's, DINO's and DINOv2's release files), or random.
    A tag is looked for under its official file name in ``$SPLICE_WEIGHTS_DIR``, then in timm's
    Hugging Face cache, then fetched when the hub answers.
    """
    import timm

    if spec.lower() == RANDOM:
        return _random_source(what), ""
    if is_file_spec(spec):
        return _file_source(what, spec, f"{arch} state dict (timm, DINO or DINOv2 layout)"), ""
    tag = spec[len(arch) + 1:] if spec.startswith(arch + ".") else spec
    try:
        cfg = timm.models.get_pretrained_cfg(f"{arch}.{tag}")
    except RuntimeError:
        cfg = None
    if cfg is None:
        raise ConfigError(f"{what}: {arch}.{tag} is not a timm pretrained tag; use a tag of "
                          f"{arch} (timm.list_pretrained('{arch}*')), a file, or random")  # fmt: skip
    from splice.model.weights import _download_timm, _timm_cached_file

    release = os.path.basename(cfg.url) if cfg.url else None
    local = weights_dir() / release if release else None
    found = local if local is not None and local.is_file() else _timm_cached_file(arch, tag)
    how = f"{arch}.{tag} via timm's Hugging Face cache (fetched when online)"
    if cfg.url:
        how += f", or download {cfg.url} and put it in {weights_dir()}/"
    how += ", or pass weights=/path/to/file"
    source = WeightsSource(what, f"{arch}.{tag}", "tag", found, how=how, fetch=lambda: _download_timm(arch, tag))
    return source, tag


# -- open_clip ---------------------------------------------------------------------------------------------------

OPEN_CLIP_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def open_clip_local_name(model: str, tag: str, filename: str) -> str:
    return f"open_clip-{model}-{tag}{Path(filename).suffix}"


def open_clip_source(model: str, spec: str) -> tuple[WeightsSource, dict[str, Any]]:
    """The weights of open_clip ``model`` and its tag's configuration (``{}`` for files and random).

    ``spec``: a pretrained tag of ``model`` (``openai``), a file holding its state dict, or random.
    A tag's file is looked for in ``$SPLICE_WEIGHTS_DIR`` as ``open_clip-<model>-<tag>.<ext>``, then
    in the Hugging Face cache under the name open_clip downloads it as; fetched when the hub answers.
    """
    import open_clip

    what = f"open_clip {model} weights"
    if spec.lower() == RANDOM:
        return _random_source(what), {}
    if is_file_spec(spec):
        return _file_source(what, spec, f"open_clip {model} state dict"), {}
    cfg = open_clip.get_pretrained_cfg(model, spec)
    if not cfg:
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(model)) or "none"
        raise ConfigError(f"clip: {spec!r} is not a pretrained tag of open_clip model {model!r} (tags: {tags}); "
                          "or pass a file, or random")  # fmt: skip
    hf = cfg.get("hf_hub", "")
    repo, filename = (hf[:-1], "") if hf.endswith("/") else os.path.split(hf)
    names = [filename] if filename else list(OPEN_CLIP_FILES)
    if filename.endswith((".bin", ".pth")):
        names.insert(0, filename[:-4] + ".safetensors")
    found = next((weights_dir() / open_clip_local_name(model, spec, n) for n in names
                  if (weights_dir() / open_clip_local_name(model, spec, n)).is_file()), None)  # fmt: skip
    if found is None and repo:
        found = _hf_cached(repo, names)
    url = f"https://huggingface.co/{repo}/resolve/main/{names[0]}" if repo else cfg.get("url", "")
    how = (f"download {url} and put it at {weights_dir() / open_clip_local_name(model, spec, names[0])} "
           f"(or let open_clip fetch it online), or pass weights=/path/to/file")  # fmt: skip

    def fetch() -> Path | None:
        if not repo or not hf_hub_reachable():
            return None
        try:
            with _quiet_hub():
                return Path(open_clip.download_pretrained(cfg))
        except Exception as e:  # offline, 404: not available here
            log.info("download of open_clip %s/%s failed: %s", model, spec, e)
            return None

    return WeightsSource(what, spec, "tag", found, how=how, fetch=fetch), dict(cfg)


def _hf_cached(repo: str, names: list[str]) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub comes with timm
        return None
    for name in names:
        hit = try_to_load_from_cache(repo, name)
        if isinstance(hit, str) and os.path.exists(hit):
            return Path(hit)
    return None


@contextlib.contextmanager
def _quiet_hub() -> Iterator[None]:
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "10")
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "30")
    hub_log = logging.getLogger("huggingface_hub")
    level = hub_log.level
    hub_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        hub_log.setLevel(level)


# -- DISTS' alpha and beta ---------------------------------------------------------------------------------------

DISTS_FILE = "dists_weights.pt"  # piq's name (its release asset, torch hub's cache)


def dists_wheel_file() -> Path | None:
    """``weights.pt`` inside the official ``dists-pytorch`` wheel (alpha and beta, 12 kB), if installed."""
    spec = importlib.util.find_spec("DISTS_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "weights.pt"
    return path if path.is_file() else None


def dists_source(spec: str | None) -> WeightsSource:
    """DISTS' learned alpha and beta (``{"alpha": (1, 1475, 1, 1), "beta": ...}``): a file, or looked
    for as ``dists_weights.pt`` in ``$SPLICE_WEIGHTS_DIR`` and torch hub's cache, then in the
    ``dists-pytorch`` wheel."""
    what = "DISTS alpha/beta"
    if spec:
        if spec.lower() == RANDOM:
            return _random_source(what)
        return _file_source(what, spec, "DISTS alpha/beta (.pt with 'alpha' and 'beta')")
    candidates = [weights_dir() / DISTS_FILE, _hub_checkpoints() / DISTS_FILE]
    found = next((c for c in candidates if c.is_file()), None) or dists_wheel_file()
    how = (f"pip install dists-pytorch (its wheel ships them as weights.pt) or put piq's {DISTS_FILE} in "
           f"{weights_dir()}/")
    return WeightsSource(what, "default", "tag", found, how=how)
