"""A tiny randomly initialised COCO-panoptic Mask2Former (133 labels) saved like a hub checkpoint, for tests.

0.36 M parameters, built in ~0.1 s; ``save_pretrained`` writes config.json, model.safetensors and (with the
processor) preprocessor_config.json, which ``--panoptic-weights FOLDER`` loads offline.
"""

from __future__ import annotations

from pathlib import Path


def tiny_mask2former(seed: int = 0, peaky: bool = False):
    """The tiny model. Random heads give every query nearly the same class scores and soft masks near 0.5, so
    the 80 thing classes summed into "object" win everywhere; ``peaky`` scales the class head (x100) and the
    mask embedding (x300) so that queries get distinct classes and sharp masks (several labels per image)."""
    import torch
    from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, SwinConfig

    from eval.labelmaps import coco_panoptic

    id2label = {c.id: c.name for c in coco_panoptic()}
    backbone = SwinConfig(image_size=64, patch_size=4, embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2],
                          window_size=4, drop_path_rate=0.0, out_features=["stage1", "stage2", "stage3", "stage4"])
    cfg = Mask2FormerConfig(backbone_config=backbone, feature_size=32, mask_feature_size=32, hidden_dim=32,
                            encoder_feedforward_dim=64, dim_feedforward=64, encoder_layers=1, decoder_layers=2,
                            num_attention_heads=2, num_queries=8, id2label=id2label,
                            label2id={v: k for k, v in id2label.items()})  # fmt: skip
    torch.manual_seed(seed)
    model = Mask2FormerForUniversalSegmentation(cfg).eval()
    if peaky:
        params = dict(model.named_parameters())
        with torch.no_grad():
            params["class_predictor.weight"].mul_(100.0)
            params["model.transformer_module.decoder.mask_predictor.mask_embedder.2.0.weight"].mul_(300.0)
    return model


def save_tiny_mask2former(folder: Path, seed: int = 0, peaky: bool = True, processor: bool = True) -> Path:
    """Write the tiny model (and a default image processor) into ``folder`` as ``save_pretrained`` does."""
    from transformers import Mask2FormerImageProcessor

    tiny_mask2former(seed, peaky).save_pretrained(folder)
    if processor:
        Mask2FormerImageProcessor(size={"height": 384, "width": 384}).save_pretrained(folder)
    return Path(folder)
