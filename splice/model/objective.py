"""Splice's loss (SPLICE.md, "Each training step", 4), computed with as few ViT passes as
the math allows.

Per step the reference runs six ViT passes, three of them computing gradients for the
frozen ViT's weights. Here:

- targets (no grad): one batched pass over [S_crop, T_crop] gives SelfSim(S_crop),
  Keys(T_crop) and CLS(T_crop) (only the T row finishes the last block);
- outputs (grad w.r.t. the images only): one batched pass over [x, y] gives SelfSim(x),
  CLS(x) and Keys(y) (only the x row finishes the last block);
- the full-image term (every ``entire_every`` steps) reuses the structure image's target
  self-similarity, computed once per run.

Every term is an MSE against a target computed without gradient:

=====================  ===========================================  ===================
term                   value                                         when
=====================  ===========================================  ===================
appearance             MSE(CLS(x), CLS(T_crop))        x 10          every step
structure              MSE(SelfSim(x), SelfSim(S_crop)) x 1          step >= 1
identity               MSE(Keys(y), Keys(T_crop))      x 1           step >= 1
entire_structure       MSE(SelfSim(G(S)), SelfSim(S))  x 1           step % 75 == 0
entire_appearance      MSE(CLS(G(S)), CLS(T_crop))     x 10          step % 75 == 0
=====================  ===========================================  ===================
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from splice.model.vit import ViTExtractor, self_similarity

TERMS = ("appearance", "structure", "identity", "entire_structure", "entire_appearance")


def term_weights(cfg) -> dict[str, float]:
    return {
        "appearance": cfg.lambda_appearance,
        "structure": cfg.lambda_structure,
        "identity": cfg.lambda_identity,
        "entire_structure": cfg.lambda_entire_structure,
        "entire_appearance": cfg.lambda_entire_appearance,
    }


def active_terms(step: int, cfg) -> tuple[str, ...]:
    """Which terms contribute at ``step`` (warm-up at step 0; full image every N steps)."""
    terms = ["appearance"]
    if step > 0:
        terms += ["structure", "identity"]
    if step % cfg.entire_every == 0:
        terms += ["entire_structure", "entire_appearance"]
    return tuple(terms)


def _ssim32(keys: torch.Tensor) -> torch.Tensor:
    with torch.autocast(keys.device.type, enabled=False):
        return self_similarity(keys.float())


def _mse32(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(a.float(), b.float())


class SpliceObjective:
    """Computes the loss terms of one step; see the module docstring."""

    def __init__(self, extractor: ViTExtractor, cfg, structure_full: torch.Tensor, precision: str = "fp32"):
        self.vit = extractor
        self.cfg = cfg
        self.weights = term_weights(cfg)
        self.structure_full = structure_full
        self.autocast = precision == "bf16"
        self._entire_target: torch.Tensor | None = None

    def amp(self):
        if self.autocast:
            return torch.autocast(self.structure_full.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def entire_target(self) -> torch.Tensor:
        """SelfSim of the full, un-augmented structure image (constant: computed once)."""
        if self._entire_target is None:
            with torch.no_grad(), self.amp():
                keys, _ = self.vit.keys_and_cls(self.structure_full)
            self._entire_target = _ssim32(keys)
        return self._entire_target

    def __call__(self, G, crops, generator_full=None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss (with grad) and the unweighted terms (detached) for ``crops.step``."""
        step = crops.step
        terms = active_terms(step, self.cfg)
        crop_terms = step > 0
        vit = self.vit
        out: dict[str, torch.Tensor] = {}
        with self.amp():
            # targets: one batched pass, no gradient
            with torch.no_grad():
                if crop_terms:
                    batch = torch.cat([vit.prepare(crops.structure), vit.prepare(crops.appearance)])
                    keys_t, cls_t = vit.keys_and_cls(batch, cls_rows=[1], prepared=True)
                    ssim_s, keys_tc = _ssim32(keys_t[:1]), keys_t[1:]
                else:
                    _, cls_t = vit.keys_and_cls(crops.appearance, cls_rows=[0])
            # outputs: x = G(S_crop), y = G(T_crop), separate BatchNorm statistics as in the reference
            x = G(crops.structure)
            if crop_terms:
                y = G(crops.appearance)
                batch = torch.cat([vit.prepare(x), vit.prepare(y)])
                keys_o, cls_x = vit.keys_and_cls(batch, cls_rows=[0], prepared=True)
                out["structure"] = _mse32(_ssim32(keys_o[:1]), ssim_s)
                out["identity"] = _mse32(keys_o[1:], keys_tc)
            else:
                _, cls_x = vit.keys_and_cls(x, cls_rows=[0])
            out["appearance"] = _mse32(cls_x, cls_t)
            if "entire_structure" in terms:
                target = self.entire_target()
                if self.cfg.checkpoint_full:
                    e = checkpoint(G, self.structure_full, use_reentrant=False)
                else:
                    e = G(self.structure_full)
                keys_e, cls_e = vit.keys_and_cls(e, cls_rows=[0])
                out["entire_structure"] = _mse32(_ssim32(keys_e), target)
                out["entire_appearance"] = _mse32(cls_e, cls_t)
        loss = sum(self.weights[k] * out[k] for k in terms)
        return loss, {k: v.detach() for k, v in out.items()}
