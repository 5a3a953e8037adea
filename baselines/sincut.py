"""``sincut``: single-image CUT, from "Contrastive Learning for Unpaired Image-to-Image Translation" (Park, Efros,
Zhang, Zhu, ECCV 2020; Sec. 5 "single image translation", Fig. 9), trained from scratch on one pair.

Written for this project from the paper and the facts of the official code (taesungp/contrastive-unpaired-
translation, ``--model sincut``: its option defaults and data loader); no code is copied. Domain A is our
structure image, domain B our appearance image; the output is G(structure image).

Published settings (``paper`` preset, the option defaults of ``--model sincut``):

- networks: StyleGAN2-style generator with one down-sampling (``ngf`` 10) and discriminator (``ndf`` 8), MLP
  projection head with 256 channels (see :mod:`baselines.sincut_networks`);
- data: every training sample is a 64x64 crop (``crop_size``) from the image rescaled by independent random
  factors in [1/3, 1] for width and height (``random_scale_max`` 3; never below the crop size), taken from a
  64-px grid with a random offset, flipped horizontally with probability 1/2; batches of 16 crops of A and 16
  of B; 8 + 8 epochs of 100,000 crops = 100,000 iterations; the learning rate stays at 0.002 for 8 epochs and
  then decays linearly, epoch by epoch, as 1 - (e + 1 - 8) / 9 (Adam, betas (0.0, 0.99), for G, D and F);
- losses: non-saturating GAN (``lambda_GAN`` 1) with the R1 penalty on real crops (``lambda_R1`` 1, i.e.
  0.5 * E||grad D||^2, every step), PatchNCE on encoder layers 0, 2, 4 (``lambda_NCE`` 4, temperature 0.07,
  1 location per layer and crop, negatives from all crops of the batch) for G(A) vs A and, as identity
  (``nce_idt``), G(B) vs B, averaged; plus an L1 identity loss |G(B) - B| (``lambda_identity`` 1).

Output: the generator applied to the whole structure image at its native size rounded to a multiple of 4
(bilinear), as the official test mode does (``preprocess none``); the geometry record is that resize. When
``max_side`` is set, both images are first scaled so their shorter side is at most ``max_side``.

Deviations, recorded here: the official data loader precomputes zoom factors per batch but indexes them with
shuffled sample indices, so every crop effectively gets its own factors, as here; its grid-cell choice (a
shuffled permutation of 100,000 indices modulo the number of cells) is replaced by a uniform cell, which has
the same distribution up to that modulo.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
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

VERSION = "1"
METHOD = "sincut"
CHECKPOINT = "sincut.pt"


@dataclass(frozen=True)
class SinCUTConfig:
    """Settings; defaults are the official ``--model sincut`` option defaults."""

    ngf: int = 10
    ndf: int = 8
    n_blocks: int = 6
    n_downsampling: int = 1
    crop_size: int = 64
    batch_size: int = 16
    random_scale_max: float = 3.0
    flip: bool = True
    lr: float = 0.002
    beta1: float = 0.0
    beta2: float = 0.99
    n_epochs: int = 8
    n_epochs_decay: int = 8
    iters_per_epoch: int = 6250  # 100,000 crops per epoch / batch 16
    lambda_gan: float = 1.0
    lambda_nce: float = 4.0
    lambda_identity: float = 1.0
    lambda_r1: float = 1.0
    nce_idt: bool = True
    nce_layers: tuple[int, ...] = (0, 2, 4)
    nce_t: float = 0.07
    num_patches: int = 1
    netf_nc: int = 256
    init_gain: float = 0.02
    checkpoint_every: int = 5000  # iterations between resumable checkpoints (0 = never)

    @property
    def total_iters(self) -> int:
        return (self.n_epochs + self.n_epochs_decay) * self.iters_per_epoch


PRESETS: dict[str, SinCUTConfig] = {
    "paper": SinCUTConfig(),
    # tiny widths, 16-px crops, 4 crops per batch, 12 iterations: about a second on one CPU core
    "smoke": SinCUTConfig(ngf=1, ndf=1, n_blocks=4, crop_size=16, batch_size=4, n_epochs=1, n_epochs_decay=1,
                          iters_per_epoch=6, netf_nc=16, checkpoint_every=0),
}


def resolve_config(settings: RunSettings) -> SinCUTConfig:
    cfg = resolve_options(SinCUTConfig, PRESETS, settings.preset, settings.options, METHOD)
    from .sincut_networks import table_resolution

    if cfg.crop_size < 8 or table_resolution(cfg.crop_size) != cfg.crop_size:
        raise ConfigError(f"{METHOD}: crop_size={cfg.crop_size} must be a power of two >= 8 (the discriminator's)")
    n_enc = 2 + cfg.n_downsampling + cfg.n_blocks // 2
    if not cfg.nce_layers or min(cfg.nce_layers) < 0 or max(cfg.nce_layers) >= n_enc:
        raise ConfigError(f"{METHOD}: nce_layers={cfg.nce_layers} must lie in 0..{n_enc - 1} (encoder layers)")
    if cfg.batch_size < 2 and cfg.num_patches < 2:
        raise ConfigError(f"{METHOD}: PatchNCE needs negatives: use batch_size >= 2 or num_patches >= 2")
    if cfg.random_scale_max < 1 or cfg.iters_per_epoch < 1 or cfg.n_epochs + cfg.n_epochs_decay < 1:
        raise ConfigError(f"{METHOD}: random_scale_max must be >= 1 and the schedule at least one iteration")
    return cfg


def lr_factor(epoch: int, n_epochs: int, n_epochs_decay: int) -> float:
    """The official 'linear' policy: 1 for the first ``n_epochs`` epochs, then 1 - (e + 1 - n) / (decay + 1)."""
    return 1.0 - max(0, epoch + 1 - n_epochs) / float(n_epochs_decay + 1)


def to_tensor_pm1(image: Image.Image):
    import torch

    arr = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr.copy()).permute(2, 0, 1) * 2 - 1


def multiple_of_4(size: tuple[int, int]) -> tuple[int, int]:
    """The official ``make_power_2(base=4)``: each side rounded to the nearest multiple of 4 (at least 4)."""
    return tuple(max(4, int(round(s / 4) * 4)) for s in size)


class CropSampler:
    """Random zoom + grid-patch crops of one image (tensor (3, H, W) in [-1, 1]), as the SinCUT data loader."""

    def __init__(self, image, crop: int, scale_max: float, flip: bool, rng: np.random.Generator):
        self.image = image
        self.crop = crop
        self.scale_min = 1.0 / scale_max
        self.flip = flip
        self.rng = rng

    def one(self):
        import torch
        import torch.nn.functional as F

        _, h, w = self.image.shape
        zx, zy = self.rng.uniform(self.scale_min, 1.0, size=2)
        nw, nh = max(self.crop, int(round(w * zx))), max(self.crop, int(round(h * zy)))
        img = self.image
        if (nw, nh) != (w, h):
            img = F.interpolate(img[None], size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)[0]
        cols, rows = nw // self.crop, nh // self.crop
        x0 = int(self.rng.integers(0, nw - cols * self.crop + 1))
        y0 = int(self.rng.integers(0, nh - rows * self.crop + 1))
        cell = int(self.rng.integers(0, cols * rows))
        x = x0 + (cell // rows) * self.crop
        y = y0 + (cell % rows) * self.crop
        patch = img[:, y: y + self.crop, x: x + self.crop]
        if self.flip and self.rng.random() > 0.5:
            patch = torch.flip(patch, dims=[2])
        return patch

    def batch(self, n: int, device: str):
        import torch

        return torch.stack([self.one() for _ in range(n)]).to(device)


#: the losses a finished run records (keys of :func:`train_step`'s result)
FINAL_LOSSES = ("D_gan", "D_R1", "G_gan", "NCE", "NCE_Y", "idt")


def train_step(nets, optimizers, real_a, real_b, cfg: SinCUTConfig, patch_ids=None) -> dict[str, Any]:
    """One iteration of the official ``CUTModel.optimize_parameters``: a D step (non-saturating loss + R1 on the
    real crops), then a G and F step (GAN + PatchNCE of G(A) vs A and, with ``nce_idt``, of G(B) vs B, averaged,
    + L1 identity). ``patch_ids`` = (ids for A, ids for B), one tensor per NCE layer, instead of random ones
    (tests). Returns the loss tensors (detached) by the official names."""
    import torch

    from .sincut_networks import nonsaturating_loss, patch_nce_loss, r1_penalty

    netG, netD, netF = nets
    opt_g, opt_d, opt_f = optimizers
    device = real_a.device

    def nce(src, tgt, ids):
        feat_q = netG.encode(tgt, cfg.nce_layers)
        feat_k = netG.encode(src, cfg.nce_layers)
        pool_k, ids = netF(feat_k, cfg.num_patches, ids)
        pool_q, _ = netF(feat_q, cfg.num_patches, ids)
        total = 0.0
        for q, k in zip(pool_q, pool_k):
            total = total + (patch_nce_loss(q, k, cfg.nce_t, negatives_groups=1) * cfg.lambda_nce).mean()
        return total / len(cfg.nce_layers)

    ids_a, ids_b = patch_ids if patch_ids is not None else (None, None)
    bs = real_a.shape[0]
    fake = netG(torch.cat([real_a, real_b]) if cfg.nce_idt or cfg.lambda_identity > 0 else real_a)
    fake_b, idt_b = fake[:bs], (fake[bs:] if fake.shape[0] > bs else None)

    # discriminator: non-saturating loss + R1 on real crops
    netD.requires_grad_(True)
    opt_d.zero_grad(set_to_none=True)
    real_b_in = real_b.detach().requires_grad_(True)
    pred_real = netD(real_b_in)
    loss_d_fake = nonsaturating_loss(netD(fake_b.detach()), real=False)
    loss_d_real = nonsaturating_loss(pred_real, True)
    loss_d_gan = 0.5 * (loss_d_fake + loss_d_real)
    loss_r1 = torch.zeros((), device=device)
    if cfg.lambda_r1 > 0:
        loss_r1 = r1_penalty(pred_real, real_b_in, cfg.lambda_r1)
    (loss_d_gan + loss_r1).backward()
    opt_d.step()

    # generator and projection head
    netD.requires_grad_(False)
    opt_g.zero_grad(set_to_none=True)
    opt_f.zero_grad(set_to_none=True)
    loss_gan = nonsaturating_loss(netD(fake_b), real=True) * cfg.lambda_gan
    loss_nce = nce(real_a, fake_b, ids_a) if cfg.lambda_nce > 0 else torch.zeros((), device=device)
    loss_nce_y = torch.zeros((), device=device)
    nce_both = loss_nce
    if cfg.nce_idt and cfg.lambda_nce > 0:
        loss_nce_y = nce(real_b, idt_b, ids_b)
        nce_both = 0.5 * (loss_nce + loss_nce_y)
    loss_idt = torch.zeros((), device=device)
    if cfg.lambda_identity > 0 and idt_b is not None:
        loss_idt = torch.nn.functional.l1_loss(idt_b, real_b) * cfg.lambda_identity
    loss_g = loss_gan + nce_both + loss_idt
    loss_g.backward()
    opt_g.step()
    opt_f.step()
    out = {"D_fake": loss_d_fake, "D_real": loss_d_real, "D_gan": loss_d_gan, "D_R1": loss_r1,
           "D": loss_d_gan + loss_r1, "G_gan": loss_gan, "NCE": loss_nce, "NCE_Y": loss_nce_y, "idt": loss_idt,
           "G": loss_g}  # fmt: skip
    return {k: v.detach() for k, v in out.items()}


def train_pair(
    structure: Image.Image,
    appearance: Image.Image,
    cfg: SinCUTConfig,
    seed: int,
    device: str = "cpu",
    progress: bool = False,
    checkpoint: Path | None = None,
    checkpoint_tag: dict[str, Any] | None = None,
):
    """Train SinCUT on (A=structure, B=appearance) and return (G(A) as (1, 3, H, W) in [-1, 1], summary).

    Call inside :func:`baselines._single_pair.seeded`; crops are drawn from a numpy generator seeded with
    ``seed``, so the whole run is reproducible on one device.
    """
    import torch
    from tqdm import tqdm

    from .sincut_networks import PatchSampleMLP, SinCUTDiscriminator, SinCUTGenerator

    netG = SinCUTGenerator(cfg.ngf, cfg.n_blocks, cfg.n_downsampling, cfg.crop_size).to(device)
    netD = SinCUTDiscriminator(cfg.ndf, cfg.crop_size).to(device)
    with torch.no_grad():
        probe = netG.encode(torch.zeros(1, 3, cfg.crop_size, cfg.crop_size, device=device), cfg.nce_layers)
    netF = PatchSampleMLP([f.shape[1] for f in probe], cfg.netf_nc, cfg.init_gain).to(device)
    betas = (cfg.beta1, cfg.beta2)
    opt_g = torch.optim.Adam(netG.parameters(), lr=cfg.lr, betas=betas)
    opt_d = torch.optim.Adam(netD.parameters(), lr=cfg.lr, betas=betas)
    opt_f = torch.optim.Adam(netF.parameters(), lr=cfg.lr, betas=betas)
    optimizers = (opt_g, opt_d, opt_f)

    rng = np.random.default_rng(seed)
    # images live on the device: every crop resizes the whole image, which is the data loader's main cost
    sampler_a = CropSampler(to_tensor_pm1(structure).to(device), cfg.crop_size, cfg.random_scale_max, cfg.flip, rng)
    sampler_b = CropSampler(to_tensor_pm1(appearance).to(device), cfg.crop_size, cfg.random_scale_max, cfg.flip, rng)

    tag = checkpoint_tag or {}
    start, resumed_from = 0, None
    state = load_checkpoint(checkpoint, tag) if checkpoint is not None else None
    if state is not None:
        netG.load_state_dict(state["G"])
        netD.load_state_dict(state["D"])
        netF.load_state_dict(state["F"])
        for opt, sd in zip(optimizers, state["optimizers"]):
            opt.load_state_dict(sd)
        rng.bit_generator.state = state["numpy_rng"]
        set_rng_state(state["torch_rng"], device)
        start = resumed_from = int(state["iteration"])
        log.info("%s: resuming at iteration %d from %s", METHOD, start, checkpoint)

    total_iters = cfg.total_iters
    losses: dict[str, float] = {}
    bar = tqdm(total=total_iters, initial=start, disable=not progress, desc=METHOD, unit="it", leave=False)
    for it in range(start, total_iters):
        epoch = it // cfg.iters_per_epoch
        lr = cfg.lr * lr_factor(epoch, cfg.n_epochs, cfg.n_epochs_decay)
        for opt in optimizers:
            for group in opt.param_groups:
                group["lr"] = lr
        real_a = sampler_a.batch(cfg.batch_size, device)
        real_b = sampler_b.batch(cfg.batch_size, device)
        step_losses = train_step((netG, netD, netF), optimizers, real_a, real_b, cfg)
        bar.update(1)

        done = it + 1
        if checkpoint is not None and cfg.checkpoint_every and done % cfg.checkpoint_every == 0 and done < total_iters:
            save_checkpoint(checkpoint, tag, {
                "G": netG.state_dict(), "D": netD.state_dict(), "F": netF.state_dict(),
                "optimizers": [o.state_dict() for o in optimizers], "numpy_rng": rng.bit_generator.state,
                "torch_rng": rng_state(device), "iteration": done,
            })
        if done == total_iters:
            losses = {**{k: float(v.detach()) for k, v in step_losses.items() if k in FINAL_LOSSES}, "lr": lr}
    bar.close()

    full = to_tensor_pm1(structure)[None].to(device)
    with torch.no_grad():
        out = netG(full)
    n_params = {k: sum(p.numel() for p in m.parameters()) for k, m in (("G", netG), ("D", netD), ("F", netF))}
    summary = {"iterations": total_iters, "final_losses": losses, "parameters": n_params,
               "resumed_from_iteration": resumed_from}
    return out, summary


def _cap_short_side(image: Image.Image, max_side: int | None) -> tuple[Image.Image, Geometry]:
    geo = Geometry.identity(image.size)
    if max_side and min(image.size) > max_side:
        geo = Geometry.resize_short_side(image.size, int(max_side))
        image = image.resize(geo.output, Image.Resampling.BILINEAR)
    return image, geo


class SinCUT(Method):
    name = METHOD
    paper = "Park et al., Contrastive Learning for Unpaired Image-to-Image Translation (SinCUT), ECCV 2020"
    summary = "Single-image CUT trained on the pair: StyleGAN2-style G/D, PatchNCE + GAN + identity losses."
    devices = ("cpu", "cuda")
    supports_max_side = True
    in_benchmark = True
    in_smoke = True
    Options = SinCUTConfig
    presets = PRESETS

    def requirements(self, settings: RunSettings) -> list[Requirement]:
        return []  # trained from scratch on the pair: no weights

    def config(self, settings: RunSettings) -> dict[str, Any]:
        cfg = resolve_config(settings)
        return {"method": METHOD, "version": VERSION, "preset": preset_name(settings), "max_side": settings.max_side,
                **dataclasses.asdict(cfg)}  # fmt: skip

    def run(self, pair: Pair, settings: RunSettings) -> MethodResult:
        cfg = resolve_config(settings)
        device = check_device(settings.device, self.devices, METHOD)
        s = load_rgb(pair.structure, role="structure image")
        a = load_rgb(pair.appearance, role="appearance image")
        structure, geo = _cap_short_side(s.image, settings.max_side)
        appearance, _ = _cap_short_side(a.image, settings.max_side)
        size4 = multiple_of_4(structure.size)
        if size4 != structure.size:
            geo = geo.then(Geometry.resize(structure.size, size4))
            structure = structure.resize(size4, Image.Resampling.BILINEAR)
        out, summary = train_seeded(
            settings, device, self.config(settings), CHECKPOINT,
            lambda **ckpt: train_pair(structure, appearance, cfg, seed=int(settings.seed), device=device,
                                      progress=settings.progress, **ckpt),
        )
        image = _to_image(out)
        info = {
            **trained_info(s, a, settings),
            "input_transform": f"structure image resized to {size4[0]}x{size4[1]} (multiple of 4)"
            + (f" after capping the shorter side at {settings.max_side}" if settings.max_side else ""),
            "appearance_size": list(appearance.size),
            **summary,
        }
        return MethodResult(image=image, geometry=geo, info=info)


def _to_image(tensor) -> Image.Image:
    """(1, 3, H, W) in [-1, 1] -> 8-bit RGB: clipped, (x + 1) / 2 * 255 truncated, as the official ``tensor2im``."""
    import torch

    t = ((tensor.detach().float().cpu()[0].clamp(-1, 1) + 1) / 2.0 * 255.0).to(torch.uint8)
    return Image.fromarray(t.permute(1, 2, 0).numpy(), mode="RGB")


__all__ = ["SinCUT", "SinCUTConfig", "PRESETS", "train_pair", "lr_factor", "CropSampler", "multiple_of_4"]
