"""A plain, literal reading of SPLICE.md: the oracle for tests and the baseline for ``make perf``.

It computes the same loss as :class:`splice.model.objective.SpliceObjective`, the way the reference
code does: one ViT pass per feature per image (six per step, ten on full-image steps),
each running the whole ViT with hooks registered and removed on every call, textbook
softmax attention, and the frozen ViT's parameters requiring grad (so backward also
computes their gradients, which nothing uses). Never use it for real runs.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from splice.model.objective import active_terms, term_weights
from splice.model.vit import ViTExtractor


class PlainExtractor:
    """Reference-style feature access: a full forward with hooks per request."""

    def __init__(self, extractor: ViTExtractor):
        self.ext = copy.deepcopy(extractor)
        for p in self.ext.vit.parameters():
            p.requires_grad_(True)  # as the reference: gradients for the frozen ViT's weights

    def _run(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        vit = self.ext.vit
        saved: dict[str, list[torch.Tensor]] = {"block": [], "qkv": []}
        handles = []
        for blk in vit.blocks:
            handles.append(blk.attn.qkv.register_forward_hook(lambda m, i, o: saved["qkv"].append(o)))
        try:
            x = self.ext.tokens(self.ext.prepare(image))
            for blk in vit.blocks:
                x = self._block(blk, x)
                saved["block"].append(x)
            vit.norm(x)  # the full model runs its final norm too; the features are taken before it
        finally:
            for h in handles:
                h.remove()
        return saved

    @staticmethod
    def _block(blk, x: torch.Tensor) -> torch.Tensor:
        attn = blk.attn
        b, n, c = x.shape
        heads = attn.num_heads
        qkv = attn.qkv(blk.norm1(x)).reshape(b, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        a = ((q @ k.transpose(-2, -1)) * attn.scale).softmax(dim=-1)
        h = (a @ v).transpose(1, 2).reshape(b, n, c)
        x = x + attn.proj(h)
        return x + blk.mlp(blk.norm2(x))

    def keys(self, image: torch.Tensor) -> torch.Tensor:
        """(heads, tokens, head_dim) keys of the last block, as the reference returns them."""
        qkv = self._run(image)["qkv"][-1][0]
        t, three_d = qkv.shape
        heads = self.ext.num_heads
        return qkv.reshape(t, 3, heads, three_d // 3 // heads).permute(1, 2, 0, 3)[1]

    def ssim(self, image: torch.Tensor) -> torch.Tensor:
        k = self.keys(image)
        h, t, d = k.shape
        x = k.transpose(0, 1).reshape(t, h * d)[None]
        norm = x.norm(dim=2, keepdim=True)
        return (x @ x.permute(0, 2, 1)) / torch.clamp(norm @ norm.permute(0, 2, 1), min=1e-8)

    def cls(self, image: torch.Tensor) -> torch.Tensor:
        return self._run(image)["block"][-1][0, 0, :]


def plain_loss(G, ext: PlainExtractor, crops, structure_full: torch.Tensor, cfg):
    """The step's loss term by term, literally (same return value as ``SpliceObjective``)."""
    step = crops.step
    terms = active_terms(step, cfg)
    out: dict[str, torch.Tensor] = {}
    x = G(crops.structure)
    y = G(crops.appearance)  # the reference computes it at step 0 too
    if "appearance" in terms:
        with torch.no_grad():
            target = ext.cls(crops.appearance)
        out["appearance"] = F.mse_loss(ext.cls(x), target)
    if "structure" in terms:
        with torch.no_grad():
            target = ext.ssim(crops.structure)
        out["structure"] = F.mse_loss(ext.ssim(x), target)
    if "identity" in terms:
        with torch.no_grad():
            target = ext.keys(crops.appearance)
        out["identity"] = F.mse_loss(ext.keys(y), target)
    if "entire_structure" in terms:
        e = G(structure_full)
        with torch.no_grad():
            target = ext.ssim(structure_full)
        out["entire_structure"] = F.mse_loss(ext.ssim(e), target)
        with torch.no_grad():
            target = ext.cls(crops.appearance)
        out["entire_appearance"] = F.mse_loss(ext.cls(e), target)
    w = term_weights(cfg)
    loss = sum(w[k] * out[k] for k in terms)
    return loss, {k: v.detach() for k, v in out.items()}
