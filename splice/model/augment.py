"""Splice's augmentations and square crops (SPLICE.md, "Each training step", 1-2).

Structure image: horizontal flip (p=0.5); with p=0.5 ColorJitter(brightness 0.4,
contrast 0.4, saturation 0.2, hue 0.1); with p=0.2 GaussianBlur(kernel 3, sigma in
[0.1, 2.0]). Appearance image: horizontal flip (p=0.5) only. Then one square random crop
of each, its side drawn uniformly in [95%, 100%] of the image height (capped at the width).

All randomness comes from one ``torch.Generator`` owned by :class:`PairSampler`, so a
run is reproducible from its seed and resumable from the generator's saved state.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.transforms import functional as TF


@dataclass
class Crops:
    """What one training step sees."""

    step: int
    structure: torch.Tensor  # (1, 3, s, s) augmented structure crop
    appearance: torch.Tensor  # (1, 3, t, t) augmented appearance crop
    boxes: dict  # crop boxes and augmentation choices, for logs and tests


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return float(torch.empty(1).uniform_(lo, hi, generator=g))


def _randint(g: torch.Generator, lo: int, hi_exclusive: int) -> int:
    return int(torch.randint(lo, hi_exclusive, (1,), generator=g))


def color_jitter(
    img: torch.Tensor, g: torch.Generator, b: float, c: float, s: float, h: float
) -> tuple[torch.Tensor, dict]:
    """torchvision's ColorJitter semantics (random order, factors in [1-x, 1+x], hue in [-h, h])."""
    order = torch.randperm(4, generator=g).tolist()
    fb = _uniform(g, max(0.0, 1 - b), 1 + b)
    fc = _uniform(g, max(0.0, 1 - c), 1 + c)
    fs = _uniform(g, max(0.0, 1 - s), 1 + s)
    fh = _uniform(g, -h, h)
    for i in order:
        if i == 0:
            img = TF.adjust_brightness(img, fb)
        elif i == 1:
            img = TF.adjust_contrast(img, fc)
        elif i == 2:
            img = TF.adjust_saturation(img, fs)
        else:
            img = TF.adjust_hue(img, fh)
    return img, {"order": order, "brightness": fb, "contrast": fc, "saturation": fs, "hue": fh}


def random_square_crop(img: torch.Tensor, g: torch.Generator, min_cover: float) -> tuple[torch.Tensor, tuple]:
    """Square crop with side round(U(min_cover*H, H)), capped at W, at a uniform position."""
    h, w = img.shape[-2:]
    side = int(round(_uniform(g, min_cover * h, h)))
    side = max(1, min(side, w, h))
    top = _randint(g, 0, h - side + 1)
    left = _randint(g, 0, w - side + 1)
    return img[..., top : top + side, left : left + side], (left, top, side)


class PairSampler:
    """Draws the augmented crops of every step from one seeded generator."""

    def __init__(self, structure: torch.Tensor, appearance: torch.Tensor, cfg, seed: int):
        self.structure = structure  # (1, 3, H, W) in [0, 1]
        self.appearance = appearance
        self.cfg = cfg
        self.generator = torch.Generator(device="cpu").manual_seed(int(seed))

    def state(self) -> torch.Tensor:
        return self.generator.get_state()

    def set_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)

    def augment_structure(self, img: torch.Tensor) -> tuple[torch.Tensor, dict]:
        g, cfg = self.generator, self.cfg
        info: dict = {}
        if _uniform(g, 0, 1) < cfg.flip_p:
            img = img.flip(-1)
            info["flip"] = True
        if _uniform(g, 0, 1) < cfg.jitter_p:
            img, info["jitter"] = color_jitter(img, g, *cfg.jitter)
        if _uniform(g, 0, 1) < cfg.blur_p:
            sigma = _uniform(g, 0.1, 2.0)
            img = TF.gaussian_blur(img, [cfg.blur_kernel, cfg.blur_kernel], [sigma, sigma])
            info["blur_sigma"] = sigma
        return img, info

    def augment_appearance(self, img: torch.Tensor) -> tuple[torch.Tensor, dict]:
        if _uniform(self.generator, 0, 1) < self.cfg.flip_p:
            return img.flip(-1), {"flip": True}
        return img, {}

    def sample(self, step: int) -> Crops:
        s, s_info = self.augment_structure(self.structure)
        t, t_info = self.augment_appearance(self.appearance)
        s_crop, s_box = random_square_crop(s, self.generator, self.cfg.crop_min_cover)
        t_crop, t_box = random_square_crop(t, self.generator, self.cfg.crop_min_cover)
        channels_last = self.structure.is_contiguous(memory_format=torch.channels_last)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        return Crops(step, s_crop.contiguous(memory_format=fmt), t_crop.contiguous(memory_format=fmt),
                     {"structure": {"box": s_box, **s_info}, "appearance": {"box": t_box, **t_info}})  # fmt: skip
