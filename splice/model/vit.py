"""The frozen DINO-ViT feature extractor of Splice (SPLICE.md, "Feature extractor").

What it computes, exactly as the reference:

- pre-processing of [0, 1] images: resize so that the shorter side is 224 and the longer
  at most 480 (bilinear, no antialias), ImageNet normalisation;
- patch embedding by the stride-``p`` convolution (remainder pixels at the right and
  bottom are dropped), CLS token, positional embeddings resized the DINO way (bicubic
  ``interpolate`` with ``scale_factor=(h/p + 0.1)/sqrt(N)``, see :meth:`ViTExtractor.pos_embed`);
- keys: the last block's qkv projection split into q, k, v; k with all heads
  concatenated per token, CLS token included;
- self-similarity: token x token cosine similarity of the keys, the denominator
  ``|a||b|`` clamped at 1e-8;
- appearance: the CLS token of the last block's output, before the final LayerNorm.

How it computes it faster than the reference: parameters never require grad; one pass
per image serves the keys and the CLS token; images of one size run as one batch; a
pass that needs keys only stops at the last block's qkv projection; no hooks.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from splice.model.weights import WeightsIdentity, load_vit_weights

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SSIM_EPS = 1e-8


def self_similarity(keys: torch.Tensor, eps: float = SSIM_EPS) -> torch.Tensor:
    """(B, T, D) keys -> (B, T, T) cosine similarities, ``dot / clamp(|a||b|, eps)``."""
    norms = keys.norm(dim=-1, keepdim=True)
    return (keys @ keys.transpose(-1, -2)) / torch.clamp(norms @ norms.transpose(-1, -2), min=eps)


def vit_input_size(h: int, w: int, short: int = 224, max_size: int = 480) -> tuple[int, int]:
    """Size (H, W) after the reference's ``Resize(short, max_size=max_size)`` (torchvision rule)."""
    small, large = (w, h) if w <= h else (h, w)
    new_small, new_large = short, int(short * large / small)
    if new_large > max_size:
        new_small, new_large = int(max_size * new_small / new_large), max_size
    return (new_large, new_small) if w <= h else (new_small, new_large)


class ViTExtractor(nn.Module):
    """Keys, key self-similarity and CLS token of a frozen timm ViT (DINO layout)."""

    def __init__(self, vit: nn.Module, identity: WeightsIdentity, short_side: int = 224, max_side: int = 480):
        super().__init__()
        self.vit = vit.eval()
        for p in self.vit.parameters():
            p.requires_grad_(False)
        self.identity = identity
        self.short_side = short_side
        self.max_side = max_side
        self.patch = int(vit.patch_embed.proj.kernel_size[0])
        self.num_heads = int(vit.blocks[-1].attn.num_heads)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self._pos_cache: dict[tuple, torch.Tensor] = {}

    # -- pre-processing -------------------------------------------------------------------
    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> resized (bilinear, no antialias) and ImageNet-normalised."""
        h, w = images.shape[-2:]
        size = vit_input_size(h, w, self.short_side, self.max_side)
        if (h, w) != size:
            images = TF.resize(images, list(size), interpolation=InterpolationMode.BILINEAR, antialias=False)
        return (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)

    # -- positional embeddings --------------------------------------------------------------
    def pos_embed(self, hp: int, wp: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """(1, 1 + hp*wp, D) positional embeddings for an hp x wp patch grid, DINO style."""
        key = (hp, wp, dtype, device)
        cached = self._pos_cache.get(key)
        if cached is not None:
            return cached
        pos = self.vit.pos_embed.detach()
        n = pos.shape[1] - 1
        side = int(math.sqrt(n))
        if hp == side and wp == side:
            out = pos
        else:
            grid = pos[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2).float()
            grid = F.interpolate(
                grid, scale_factor=((hp + 0.1) / math.sqrt(n), (wp + 0.1) / math.sqrt(n)), mode="bicubic"
            )
            if grid.shape[-2:] != (hp, wp):  # cannot happen for hp, wp >= 1; guards a changed torch rule
                raise RuntimeError(f"positional embedding resize gave {tuple(grid.shape[-2:])}, wanted {(hp, wp)}")
            out = torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, hp * wp, -1).to(pos.dtype)], dim=1)
        out = out.to(device=device, dtype=dtype)
        self._pos_cache[key] = out
        return out

    # -- forward ------------------------------------------------------------------------------
    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Prepared images -> tokens after the patch embedding, CLS and positions."""
        patches = self.vit.patch_embed.proj(x)  # stride-p conv: remainder pixels dropped
        b, d, hp, wp = patches.shape
        t = patches.flatten(2).transpose(1, 2)
        cls = self.vit.cls_token.expand(b, -1, -1).to(t.dtype)
        t = torch.cat([cls, t], dim=1)
        return t + self.pos_embed(hp, wp, t.dtype, t.device)

    def keys_and_cls(
        self, images: torch.Tensor, cls_rows: Sequence[int] | None = None, prepared: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Keys (B, T, D) of every image and CLS tokens (len(cls_rows), D) of the rows asked for.

        ``cls_rows=None`` or empty: keys only; the pass stops at the last block's qkv.
        """
        x = self.tokens(images if prepared else self.prepare(images))
        blocks = self.vit.blocks
        for blk in blocks[:-1]:
            x = blk(x)
        last = blocks[-1]
        h = last.norm1(x)
        qkv = last.attn.qkv(h)
        b, t, three_d = qkv.shape
        d = three_d // 3
        keys = qkv[..., d : 2 * d]  # heads concatenated per token, as the reference's (h, t, d) -> (t, h*d)
        if not cls_rows:
            return keys, None
        rows = list(cls_rows)
        if rows != list(range(b)):
            x, qkv = x[rows], qkv[rows]
            b = len(rows)
        heads = self.num_heads
        q, k, v = qkv.reshape(b, t, 3, heads, d // heads).permute(2, 0, 3, 1, 4).unbind(0)
        q, k = last.attn.q_norm(q), last.attn.k_norm(k)
        a = F.scaled_dot_product_attention(q, k, v)
        a = last.attn.proj(last.attn.norm(a.transpose(1, 2).reshape(b, t, d)))
        x = x + last.ls1(a)
        x = x + last.ls2(last.mlp(last.norm2(x)))
        return keys, x[:, 0]

    def image_features(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Features of one (3, H, W) image in [0, 1]: ``ssim`` (T, T), ``cls`` (D,), ``keys`` (T, D)."""
        with torch.no_grad():
            keys, cls = self.keys_and_cls(image[None], cls_rows=[0])
            return {"ssim": self_similarity(keys)[0], "cls": cls[0], "keys": keys[0]}


def load_vit(
    backbone: str = "vit_base_patch8_224",
    weights: str | None = None,
    device: str | torch.device = "cpu",
    allow_random: bool = False,
    short_side: int = 224,
    max_side: int = 480,
) -> ViTExtractor:
    """The frozen extractor on ``device``; ``weights`` as in :mod:`splice.model.weights`."""
    vit, identity = load_vit_weights(backbone, weights, allow_random=allow_random)
    return ViTExtractor(vit, identity, short_side=short_side, max_side=max_side).to(device)
