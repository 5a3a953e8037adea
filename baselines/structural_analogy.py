"""``structural-analogy``: "Structural-analogy from a Single Image Pair" (Benaim, Mokady, Bermano, Cohen-Or, Wolf;
Computer Graphics Forum 2021, arXiv:2004.02222), trained from scratch on one pair.

Written for this project from the paper and the facts of the authors' public code (rmokady/structural-analogy,
``train.py`` argument defaults and README command); no code is copied. Image A is our structure image, B our
appearance image; the output is A's structure with B's appearance (the A->B translation).

What is trained (per the official code):

- Both images are stretched to ``img_size`` x ``img_size`` squares (default 220) and form a pyramid whose sizes
  come from ``min_size`` (18), ``max_size`` (250) and the initial ``scale_factor`` (0.75): with the defaults
  11 scales, 19 ... 220 px, factor (18/220)^(1/10) ~= 0.7785 (see :func:`pyramid`). Each level is a bilinear
  (antialiased) resize of the original image, values in [-1, 1].
- For each scale, coarse to fine, and for each domain X in {A, B}: a generator G_X (5 conv layers 3x3, zero
  padding 1, BatchNorm + LeakyReLU(0.2), tanh output; 32 channels, doubled every 4 scales up to 128) and a
  critic D_X (same blocks without padding, 1-channel patch score). The generators of all but the last
  ``switch_res`` (2) scales are residual (output + input image). A new scale starts from the previous scale's
  weights when the channel count did not change. Conv weights ~ N(0, 0.02), BatchNorm weights ~ N(1, 0.02).
- A generator maps an image of its own domain *or of the other domain* to its domain: fake_X = G_X(noise +
  upsampled sample from the coarser scales), mix = G_A(fake_B) (B->A) and G_B(fake_A) (A->B).
- Critic loss (WGAN-GP): -2 D_X(real_X) + D_X(fake_X) + D_X(mix_X) + gradient penalties (weight 0.1) on
  real/fake and real/mix interpolations. Generator loss: -D_A(mix_A) - D_A(fake_A) + lambda_g (-D_B(mix_B) -
  D_B(fake_B)) + alpha * reconstruction MSE (the coarse-to-fine chain without added noise must give the real
  image) + beta * cycle MSE (G_A(G_B(fake_A)) = fake_A and vice versa). Adam, betas (0.5, 0.999), lr 5e-4 for
  generators and 1e-4 for critics, one critic and one generator step per iteration, ``niter`` = 20,000
  iterations per scale. The published command uses ``--beta 10 --alpha 1`` (the argparse default beta is 1);
  ``paper`` uses the published command.
- The added noise amplitude of a scale is 0.1 x RMSE(real, reconstruction from the coarser scales); at the
  coarsest scale the training noise has unit amplitude and 0.1 is stored (as the official code does).

Output: ``output="real"`` (default) translates the real structure image with the finest B generator, as the
official ``eval.py`` does ("from real"), so the output is pixel-aligned with the stretched structure image;
``output="sample"`` returns the training script's final A->B image instead (the translation of a random sample
of A, which is only roughly aligned). The geometry record is the stretch to the ``img_size`` square. Like the
official scripts (``save_image(normalize=True)``), the output is stretched to its own min..max range.

Coarse to fine, a sample is carried to the next scale as the official ``draw_concat`` does it
(:func:`official_upsample`: 8-bit truncation, MATLAB-style cubic enlargement by 1/scale_factor, top-left crop);
``tests/baselines/test_official_parity.py`` checks it, the networks, the pyramid and the sampling chains against
numbers from the official code (rmokady/structural-analogy at 95ddf63).

Deviations: the official code draws noise that is never used (``noisy_real_*``), which we skip (it changes only
which random numbers later draws get, not the objective); its ``.cuda()`` calls are replaced by the device.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from PIL import Image

from splice.core.errors import ConfigError
from splice.core.geometry import Geometry
from splice.core.imageio import load_rgb
from splice.core.method import Method, MethodResult, Pair, Requirement, RunSettings
from splice.core.options import resolve as resolve_options

from ._single_pair import (
    check_device,
    load_checkpoint,
    preset_name,
    rng_state,
    save_checkpoint,
    set_rng_state,
    train_seeded,
    trained_info,
)

log = logging.getLogger(__name__)

VERSION = "2"  # 2: the official coarse-to-fine upsampling (1: torch bicubic)
METHOD = "structural-analogy"
CHECKPOINT = "structural_analogy.pt"


@dataclass(frozen=True)
class StructuralAnalogyConfig:
    """Settings; defaults are the official ``train.py`` defaults with the README's ``--beta 10 --alpha 1``."""

    img_size: int = 220  # side of the square both images are stretched to (the output size)
    min_size: int = 18  # side at the coarsest scale
    max_size: int = 250
    scale_factor: float = 0.75  # initial pyramid factor; the actual one is recomputed (see pyramid())
    niter: int = 20000  # iterations per scale
    lr_g: float = 0.0005
    lr_d: float = 0.0001
    beta1: float = 0.5
    lambda_grad: float = 0.1  # gradient-penalty weight
    alpha: float = 1.0  # reconstruction weight
    beta: float = 10.0  # cycle weight (README command; argparse default 1.0)
    lambda_g: float = 1.0  # weight of B's adversarial terms
    noise_amp: float = 0.1
    nfc: int = 32
    min_nfc: int = 32
    nfc_max: int = 128
    ker_size: int = 3
    num_layer: int = 5
    switch_res: int = 2  # the last switch_res scales use non-residual generators
    # "real": G_B(real A) at the finest scale; "sample": the training's final A->B sample
    output: Literal["real", "sample"] = "real"


PRESETS: dict[str, StructuralAnalogyConfig] = {
    "paper": StructuralAnalogyConfig(),
    # five scales 16..32 px, 8 channels, 10 iterations per scale: a few seconds on one CPU core
    "smoke": StructuralAnalogyConfig(img_size=32, min_size=16, niter=10, nfc=8, min_nfc=8, nfc_max=16),
}


def resolve_config(settings: RunSettings) -> StructuralAnalogyConfig:
    cfg = resolve_options(StructuralAnalogyConfig, PRESETS, settings.preset, settings.options, METHOD)
    if settings.max_side:
        cfg = dataclasses.replace(cfg, img_size=min(cfg.img_size, int(settings.max_side)))
    if not 0 < cfg.scale_factor < 1:
        raise ConfigError(f"{METHOD}: scale_factor={cfg.scale_factor} must be between 0 and 1")
    receptive = (cfg.ker_size - 1) * cfg.num_layer
    if cfg.min_size <= receptive or cfg.img_size < cfg.min_size:
        raise ConfigError(
            f"{METHOD}: need {receptive} < min_size <= img_size (got min_size={cfg.min_size}, "
            f"img_size={cfg.img_size}); the critic has no padding"
        )
    if cfg.niter < 1 or cfg.num_layer < 3:
        raise ConfigError(f"{METHOD}: niter must be >= 1 and num_layer >= 3")
    return cfg


# --------------------------------------------------------------------------------------------- pyramid
@dataclass(frozen=True)
class Pyramid:
    """Square sizes per scale, coarsest first, and the factor between consecutive scales."""

    sizes: tuple[int, ...]
    scale_factor: float

    @property
    def stop_scale(self) -> int:
        return len(self.sizes) - 1


def pyramid(img_size: int, min_size: int, max_size: int, scale_factor: float) -> Pyramid:
    """The official pyramid arithmetic (kept bit-for-bit, float rounding included).

    n = ceil(log_f(min/img)) + 1 scales are planned, minus ceil(log_f(min(max, img)/img)); the factor is
    then recomputed as (min/img)^(1/stop) so that stop steps lead from ``img_size`` down to ``min_size``,
    and scale i has side ceil(img * factor^(stop - i)). With the defaults (220, 18, 250, 0.75): stop = 10,
    factor = 0.77855, sides 19, 24, 30, 39, 49, 63, 81, 104, 134, 172, 220 (the coarsest is 19, not 18,
    because 220 * factor^10 evaluates to 18.000000000000004 before the ceiling).
    """
    num_scales = math.ceil(math.log(min_size / img_size, scale_factor)) + 1
    scale_to_stop = math.ceil(math.log(min(max_size, img_size) / img_size, scale_factor))
    stop = num_scales - scale_to_stop
    if stop < 1:
        return Pyramid(sizes=(img_size,), scale_factor=1.0)
    factor = math.pow(min_size / img_size, 1.0 / stop)
    sizes = tuple(math.ceil(math.pow(factor, stop - i) * img_size) for i in range(stop + 1))
    return Pyramid(sizes=sizes, scale_factor=factor)


def channels_at(scale: int, base: int, cap: int) -> int:
    """Channels double every 4 scales, capped (32, 32, 32, 32, 64, ..., 128 with the defaults)."""
    return min(base * 2 ** (scale // 4), cap)


# --------------------------------------------------------------------------------------------- networks
def _build_networks():
    """Define the torch modules lazily so importing this module does not import torch."""
    import torch
    from torch import nn

    def conv_block(cin: int, cout: int, ker: int, pad: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, ker, 1, pad), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2))

    def body_widths(nfc: int, min_nfc: int, num_layer: int) -> list[tuple[int, int]]:
        widths = []
        for i in range(num_layer - 2):
            n = nfc // 2 ** (i + 1)
            widths.append((max(2 * n, min_nfc), max(n, min_nfc)))
        return widths

    class PatchGenerator(nn.Module):
        """Fully convolutional generator; ``residual`` adds its second input to the output."""

        def __init__(self, nfc: int, min_nfc: int, num_layer: int, ker: int, residual: bool):
            super().__init__()
            self.residual = residual
            pad = ker // 2
            widths = body_widths(nfc, min_nfc, num_layer)
            self.head = conv_block(3, nfc, ker, pad)
            self.body = nn.Sequential(*[conv_block(i, o, ker, pad) for i, o in widths])
            self.tail = nn.Sequential(nn.Conv2d(widths[-1][1] if widths else nfc, 3, ker, 1, pad), nn.Tanh())

        def forward(self, x: torch.Tensor, base: torch.Tensor | None = None) -> torch.Tensor:
            y = self.tail(self.body(self.head(x)))
            if self.residual:
                return y + (x if base is None else base)
            return y

    class PatchCritic(nn.Module):
        """WGAN critic: the same blocks without padding, one score per receptive field."""

        def __init__(self, nfc: int, min_nfc: int, num_layer: int, ker: int):
            super().__init__()
            widths = body_widths(nfc, min_nfc, num_layer)
            self.head = conv_block(3, nfc, ker, 0)
            self.body = nn.Sequential(*[conv_block(i, o, ker, 0) for i, o in widths])
            self.tail = nn.Conv2d(widths[-1][1] if widths else nfc, 1, ker, 1, 0)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.tail(self.body(self.head(x)))

    def init_weights(module: nn.Module) -> None:
        # conv weights ~ N(0, 0.02), BatchNorm weights ~ N(1, 0.02) and zero bias; conv biases keep torch's init
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    return PatchGenerator, PatchCritic, init_weights


def gradient_penalty(critic, real, fake, weight: float):
    """WGAN-GP term as the official code computes it.

    One interpolation weight u ~ U(0, 1) for the whole image, x = u real + (1 - u) fake (no gradient to the
    generator); the gradient of sum(critic(x)) w.r.t. x is normed over the *channel* axis at every pixel, and
    the penalty is weight * mean over pixels of (norm - 1)^2.
    """
    import torch

    u = torch.rand(1, 1, device=real.device).expand(real.shape)
    x = (u * real.detach() + (1 - u) * fake.detach()).requires_grad_(True)
    out = critic(x)
    (grad,) = torch.autograd.grad(out, x, grad_outputs=torch.ones_like(out), create_graph=True)
    return ((grad.norm(2, dim=1) - 1) ** 2).mean() * weight


# --------------------------------------------------------------------------------------------- training
def _pyramid_tensors(image: Image.Image, sizes: tuple[int, ...], device: str):
    import numpy as np
    import torch

    out = []
    for s in sizes:
        arr = np.asarray(image.resize((s, s), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
        t = torch.from_numpy(arr.copy()).permute(2, 0, 1).unsqueeze(0)
        out.append((t * 2 - 1).to(device))
    return out


@lru_cache(maxsize=64)
def _cubic_taps(in_len: int, out_len: int, scale: float):
    """Taps of the official ``imresize_in`` (MATLAB-style cubic, a = -0.5, no antialiasing when enlarging) along
    one axis: (out_len, 6) weights and the input indices they read.

    Output pixel i (1-based) sits at input coordinate ``i / scale + (1 - 1/scale) / 2``; taps start at
    ``floor(coord - 2) - 1``. The official code casts the tap positions to unsigned integers *before* computing
    the weights, so a negative position wraps to about 1.8e19 and its weight is 0: at the top/left edge the
    remaining weights are renormalised (MATLAB's mirror padding only takes effect at the bottom/right edge).
    """
    import numpy as np

    coord = np.arange(1, out_len + 1) / scale + 0.5 * (1 - 1.0 / scale)
    pos = np.floor(coord - 2.0)[:, None] + np.arange(6) - 1
    d = np.abs(coord[:, None] - pos - 1)
    w = (1.5 * d**3 - 2.5 * d**2 + 1) * (d <= 1) + (-0.5 * d**3 + 2.5 * d**2 - 4 * d + 2) * ((1 < d) & (d <= 2))
    w[pos < 0] = 0.0
    sums = w.sum(axis=1)
    sums[sums == 0] = 1.0
    w = w / sums[:, None]
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    index = mirror[np.mod(pos.astype(np.int64), 2 * in_len)]
    return w, index


def _resize_axis(x, axis: int, weights, index):
    """Σ_k weights[:, k] * x[index[:, k]] along ``axis`` of a float64 tensor, taps added in order."""
    import torch

    w = torch.from_numpy(weights).to(x.device)
    idx = torch.from_numpy(index).to(x.device)
    shape = [1] * x.dim()
    shape[axis] = -1
    out = None
    for k in range(w.shape[1]):
        term = x.index_select(axis, idx[:, k]) * w[:, k].view(shape)
        out = term if out is None else out + term
    return out


def official_upsample(x, scale_factor: float, size: int):
    """The official coarse-to-fine step (``imresize2(G_z, 1/scale_factor)`` then ``[:, :, :size, :size]``).

    The image (values in [-1, 1]) goes to 8 bits by *truncation* (``torch2uint8``: ``255 * denorm(x)``,
    ``astype(uint8)``), is enlarged by ``1/scale_factor`` to ``ceil(side / scale_factor)`` with the MATLAB-style
    cubic of :func:`_cubic_taps` (rows, then columns, in float64), back to [-1, 1] in float32 (``np2torch``), and
    its top-left ``size`` x ``size`` is kept. So the enlarged image covers only ``size / (side / scale_factor)`` of
    the coarse image's field of view.
    """
    import math

    import torch

    enlarge = 1 / scale_factor
    side = x.shape[-1]
    out_len = math.ceil(side * enlarge)
    if out_len < size:
        raise ValueError(f"upsampling {side} px by 1/{scale_factor} gives {out_len} px < the next scale's {size}")
    u8 = torch.trunc(255 * ((x + 1) / 2).clamp(0, 1)).double()
    weights, index = _cubic_taps(side, out_len, enlarge)
    y = _resize_axis(_resize_axis(u8, 2, weights, index), 3, weights, index)
    y = ((y / 255).float() - 0.5) * 2
    return y.clamp(-1, 1)[:, :, :size, :size].contiguous()


class _Chain:
    """The trained generators of one domain and their noise amplitudes, coarse to fine (``train.py draw_concat``)."""

    def __init__(self, sizes: tuple[int, ...], switch_scale: int, device: str, scale_factor: float):
        self.sizes = sizes
        self.scale_factor = scale_factor
        self.switch_scale = switch_scale
        self.device = device
        self.generators: list = []
        self.amps: list[float] = []

    def apply(self, generator, scale: int, x, base=None):
        return generator(x, base if base is not None else x) if scale <= self.switch_scale else generator(x)

    def random_sample(self, n: int):
        """A random image at scale ``n`` drawn through the trained scales 0..n-1 ("rand" mode)."""
        import torch

        s0 = self.sizes[0]
        x = torch.zeros(1, 3, s0, s0, device=self.device)
        for k, g in enumerate(self.generators[:n]):
            z = torch.randn(1, 3, self.sizes[k], self.sizes[k], device=self.device)
            x = self.apply(g, k, self.amps[k] * z + x, base=x)
            x = official_upsample(x, self.scale_factor, self.sizes[k + 1])
        return x

    def reconstruction(self, n: int):
        """The chain 0..n-1 run from one noise image without added noise ("rec" mode)."""
        import torch

        s0 = self.sizes[0]
        x = torch.randn(1, 3, s0, s0, device=self.device)
        for k, g in enumerate(self.generators[:n]):
            x = self.apply(g, k, x)
            x = official_upsample(x, self.scale_factor, self.sizes[k + 1])
        return x


def train_pair(
    structure: Image.Image,
    appearance: Image.Image,
    cfg: StructuralAnalogyConfig,
    device: str = "cpu",
    progress: bool = False,
    checkpoint: Path | None = None,
    checkpoint_tag: dict[str, Any] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Train both pyramids on (A=structure, B=appearance); return the output tensor (1, 3, S, S) in [-1, 1]
    and a summary. Call inside :func:`seeded` for determinism."""
    import torch
    import torch.nn.functional as F
    from tqdm import tqdm

    PatchGenerator, PatchCritic, init_weights = _build_networks()
    pyr = pyramid(cfg.img_size, cfg.min_size, cfg.max_size, cfg.scale_factor)
    stop = pyr.stop_scale
    switch_scale = stop - cfg.switch_res
    reals_a = _pyramid_tensors(structure, pyr.sizes, device)
    reals_b = _pyramid_tensors(appearance, pyr.sizes, device)
    chain_a = _Chain(pyr.sizes, switch_scale, device, pyr.scale_factor)
    chain_b = _Chain(pyr.sizes, switch_scale, device, pyr.scale_factor)
    prev: dict[str, Any] = {}  # previous scale's state dicts, for weight reuse
    nfc_prev = 0
    losses: list[dict[str, float]] = []
    start = 0
    resumed_from = None

    def make(scale: int, residual: bool, nfc: int, min_nfc: int):
        g_a, g_b = (PatchGenerator(nfc, min_nfc, cfg.num_layer, cfg.ker_size, residual).to(device) for _ in range(2))
        d_a, d_b = (PatchCritic(nfc, min_nfc, cfg.num_layer, cfg.ker_size).to(device) for _ in range(2))
        for m in (g_a, g_b, d_a, d_b):
            init_weights(m)
        return g_a, g_b, d_a, d_b

    tag = checkpoint_tag or {}
    state = load_checkpoint(checkpoint, tag) if checkpoint is not None else None
    if state is not None:
        for n, (sd_a, sd_b) in enumerate(zip(state["generators_a"], state["generators_b"])):
            nfc = channels_at(n, cfg.nfc, cfg.nfc_max)
            g_a, g_b, _, _ = make(n, n <= switch_scale, nfc, channels_at(n, cfg.min_nfc, cfg.nfc_max))
            g_a.load_state_dict(sd_a)
            g_b.load_state_dict(sd_b)
            for g in (g_a, g_b):
                g.requires_grad_(False)
            chain_a.generators.append(g_a)
            chain_b.generators.append(g_b)
        chain_a.amps, chain_b.amps = list(state["amps_a"]), list(state["amps_b"])
        prev, nfc_prev, losses = state["prev"], state["nfc_prev"], list(state["losses"])
        set_rng_state(state["rng"], device)
        start = resumed_from = len(chain_a.generators)
        log.info("%s: resuming after scale %d from %s", METHOD, start - 1, checkpoint)

    total = (stop + 1) * cfg.niter
    bar = tqdm(total=total, initial=start * cfg.niter, disable=not progress, desc=METHOD, unit="it", leave=False)
    last_mix_b = None
    for n in range(start, stop + 1):
        size = pyr.sizes[n]
        nfc = channels_at(n, cfg.nfc, cfg.nfc_max)
        residual = n <= switch_scale
        g_a, g_b, d_a, d_b = make(n, residual, nfc, channels_at(n, cfg.min_nfc, cfg.nfc_max))
        if nfc == nfc_prev:
            for name, net in (("g_a", g_a), ("g_b", g_b), ("d_a", d_a), ("d_b", d_b)):
                net.load_state_dict(prev[name])
        opt_d = torch.optim.Adam([*d_a.parameters(), *d_b.parameters()], lr=cfg.lr_d, betas=(cfg.beta1, 0.999))
        opt_g = torch.optim.Adam([*g_a.parameters(), *g_b.parameters()], lr=cfg.lr_g, betas=(cfg.beta1, 0.999))
        real_a, real_b = reals_a[n], reals_b[n]
        amp_a = amp_b = cfg.noise_amp
        for it in range(cfg.niter):
            with torch.no_grad():
                if n == 0:
                    prev_a = torch.zeros(1, 3, size, size, device=device)
                    noise_a = torch.randn(1, 3, size, size, device=device)
                    prev_b = torch.zeros_like(prev_a)
                    noise_b = torch.randn(1, 3, size, size, device=device)
                    rec_a = torch.randn(1, 3, size, size, device=device)
                    rec_b = torch.randn(1, 3, size, size, device=device)
                else:
                    prev_a = chain_a.random_sample(n)
                    noise_a = amp_a * torch.randn(1, 3, size, size, device=device) + prev_a
                    prev_b = chain_b.random_sample(n)
                    noise_b = amp_b * torch.randn(1, 3, size, size, device=device) + prev_b
                    rec_a = chain_a.reconstruction(n)
                    rec_b = chain_b.reconstruction(n)
                    if it == 0:
                        amp_a = cfg.noise_amp * torch.sqrt(F.mse_loss(real_a, rec_a)).item()
                        amp_b = cfg.noise_amp * torch.sqrt(F.mse_loss(real_b, rec_b)).item()
            fake_a = g_a(noise_a, prev_a) if residual else g_a(noise_a)
            fake_b = g_b(noise_b, prev_b) if residual else g_b(noise_b)
            gen_a = chain_a.apply(g_a, n, rec_a)
            gen_b = chain_b.apply(g_b, n, rec_b)
            mix_a = chain_a.apply(g_a, n, fake_b)  # B -> A
            mix_b = chain_b.apply(g_b, n, fake_a)  # A -> B

            # critics
            d_a.requires_grad_(True)
            d_b.requires_grad_(True)
            opt_d.zero_grad(set_to_none=True)
            loss_d = 0.0
            for d, real, fake, mix in ((d_a, real_a, fake_a, mix_a), (d_b, real_b, fake_b, mix_b)):
                loss_d = loss_d + (
                    -2 * d(real).mean()
                    + d(mix.detach()).mean()
                    + d(fake.detach()).mean()
                    + gradient_penalty(d, real, mix, cfg.lambda_grad)
                    + gradient_penalty(d, real, fake, cfg.lambda_grad)
                )
            loss_d.backward()
            opt_d.step()

            # generators
            d_a.requires_grad_(False)
            d_b.requires_grad_(False)
            opt_g.zero_grad(set_to_none=True)
            adv = -d_a(mix_a).mean() - d_a(fake_a).mean() + cfg.lambda_g * (-d_b(mix_b).mean() - d_b(fake_b).mean())
            rec = cfg.alpha * (F.mse_loss(gen_a, real_a) + F.mse_loss(gen_b, real_b))
            loss_g = adv + rec
            cyc = torch.zeros((), device=device)
            if cfg.beta > 0:
                cyc = cfg.beta * (
                    F.mse_loss(chain_a.apply(g_a, n, mix_b), fake_a) + F.mse_loss(chain_b.apply(g_b, n, mix_a), fake_b)
                )
                loss_g = loss_g + cyc
            loss_g.backward()
            opt_g.step()
            bar.update(1)
        last_mix_b = mix_b.detach()
        losses.append(
            {"scale": n, "size": size, "critic": loss_d.item(), "adversarial": adv.item(),
             "reconstruction": rec.item(), "cycle": cyc.item()}
        )
        log.info("%s: scale %d/%d (%dpx) done: %s", METHOD, n, stop, size, losses[-1])
        prev = {k: {p: v.detach().clone() for p, v in net.state_dict().items()}
                for k, net in (("g_a", g_a), ("g_b", g_b), ("d_a", d_a), ("d_b", d_b))}
        nfc_prev = nfc
        for g in (g_a, g_b):
            g.requires_grad_(False)
        chain_a.generators.append(g_a)
        chain_b.generators.append(g_b)
        chain_a.amps.append(amp_a)
        chain_b.amps.append(amp_b)
        if checkpoint is not None and n < stop:
            save_checkpoint(checkpoint, tag, {
                "generators_a": [g.state_dict() for g in chain_a.generators],
                "generators_b": [g.state_dict() for g in chain_b.generators],
                "amps_a": chain_a.amps, "amps_b": chain_b.amps, "prev": prev, "nfc_prev": nfc_prev,
                "losses": losses, "rng": rng_state(device),
            })
    bar.close()

    with torch.no_grad():
        if cfg.output == "real" or last_mix_b is None:
            out = chain_b.apply(chain_b.generators[stop], stop, reals_a[stop])
        else:
            out = last_mix_b
    summary = {
        "pyramid": list(pyr.sizes),
        "scale_factor": pyr.scale_factor,
        "switch_scale": switch_scale,
        "noise_amps": {"a": chain_a.amps, "b": chain_b.amps},
        "iterations": total,
        "losses": losses,
        "resumed_from_scale": resumed_from,
    }
    return out, summary


def to_image_minmax(tensor) -> Image.Image:
    """(1, 3, H, W) -> 8-bit RGB, stretched to the tensor's own min..max as the official scripts save every
    image (``save_image(..., normalize=True)``), rounded to the nearest level."""
    import torch

    t = tensor.detach().float().cpu()[0]
    low, high = float(t.min()), float(t.max())
    t = (t - low) / max(high - low, 1e-5)
    arr = (t * 255 + 0.5).clamp(0, 255).to(torch.uint8)
    return Image.fromarray(arr.permute(1, 2, 0).numpy(), mode="RGB")


# --------------------------------------------------------------------------------------------- method
class StructuralAnalogy(Method):
    name = METHOD
    paper = "Benaim et al., Structural-analogy from a Single Image Pair, CGF 2021"
    summary = "Two SinGAN-like pyramids (A->B, B->A) trained on the pair: WGAN-GP + reconstruction + cycle."
    devices = ("cpu", "cuda")
    supports_max_side = True
    in_benchmark = True
    in_smoke = True
    Options = StructuralAnalogyConfig
    presets = PRESETS

    def requirements(self, settings: RunSettings) -> list[Requirement]:
        return []  # trained from scratch on the pair: no weights

    def config(self, settings: RunSettings) -> dict[str, Any]:
        cfg = resolve_config(settings)
        return {"method": METHOD, "version": VERSION, "preset": preset_name(settings), **dataclasses.asdict(cfg)}

    def run(self, pair: Pair, settings: RunSettings) -> MethodResult:

        cfg = resolve_config(settings)
        device = check_device(settings.device, self.devices, METHOD)
        s = load_rgb(pair.structure, role="structure image")
        a = load_rgb(pair.appearance, role="appearance image")
        out, summary = train_seeded(
            settings, device, self.config(settings), CHECKPOINT,
            lambda **ckpt: train_pair(s.image, a.image, cfg, device=device, progress=settings.progress, **ckpt),
        )
        image = to_image_minmax(out)
        geometry = Geometry.resize(s.size, (cfg.img_size, cfg.img_size))
        info = {
            **trained_info(s, a, settings),
            "output_mode": cfg.output,
            "input_transform": f"both images stretched to {cfg.img_size}x{cfg.img_size} (bilinear), per scale",
            **summary,
        }
        return MethodResult(image=image, geometry=geometry, info=info)
