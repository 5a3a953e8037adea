"""ViT pre-processing and features: the non-square details of SPLICE.md."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from splice.model.vit import load_vit, self_similarity, vit_input_size
from splice.model.weights import normalise_state_dict
from tests.support.tiny import tiny_extractor


def test_resize_rule_matches_reference_examples():
    assert vit_input_size(533, 799) == (224, 335)  # SPLICE.md: a 799x533 photo becomes 335x224
    assert vit_input_size(512, 512) == (224, 224)
    assert vit_input_size(1080, 1920) == (224, 398)
    assert vit_input_size(224, 1000) == (107, 480)  # longer side capped at 480
    assert vit_input_size(900, 300) == (480, 160)


def test_remainder_pixels_are_dropped_and_positions_interpolated_dino_style():
    ext = tiny_extractor()  # patch 16, 96 px short side, 160 max
    x = torch.rand(1, 3, 96, 150)  # 6 x 9 patches + 6 remainder columns
    keys, cls = ext.keys_and_cls(x, cls_rows=[0], prepared=True)
    assert keys.shape == (1, 1 + 6 * 9, 192)
    # the remainder columns do not influence anything
    y = x.clone()
    y[..., 144:] = torch.rand(1, 3, 96, 6)
    keys2, cls2 = ext.keys_and_cls(y, cls_rows=[0], prepared=True)
    torch.testing.assert_close(keys, keys2)
    torch.testing.assert_close(cls, cls2)
    # positions: DINO's formula, scale_factor = ((h + 0.1) / sqrt(N), (w + 0.1) / sqrt(N)), bicubic
    pos = ext.vit.pos_embed
    n = pos.shape[1] - 1
    side = int(math.sqrt(n))
    grid = pos[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
    want = F.interpolate(grid, scale_factor=((6 + 0.1) / side, (9 + 0.1) / side), mode="bicubic")
    want = torch.cat([pos[:, :1], want.permute(0, 2, 3, 1).reshape(1, 54, -1)], 1)
    torch.testing.assert_close(ext.pos_embed(6, 9, torch.float32, torch.device("cpu")), want)
    # ... which is not the size-based antialiased resampling timm would do on its own
    from timm.layers import resample_abs_pos_embed

    timm_way = resample_abs_pos_embed(pos, (6, 9), num_prefix_tokens=1)
    assert (timm_way - want).abs().max() > 1e-4


def test_square_positions_untouched():
    ext = tiny_extractor()
    assert ext.pos_embed(14, 14, torch.float32, torch.device("cpu")) is not None
    torch.testing.assert_close(ext.pos_embed(14, 14, torch.float32, torch.device("cpu")), ext.vit.pos_embed)


def test_self_similarity_hand_computed():
    k = torch.tensor([[[3.0, 4.0], [0.0, 2.0], [0.0, 0.0]]])
    s = self_similarity(k)
    want = torch.tensor([[[1.0, 0.8, 0.0], [0.8, 1.0, 0.0], [0.0, 0.0, 0.0]]])
    torch.testing.assert_close(s, want)


def test_keys_only_pass_equals_full_pass_keys_and_cls_is_before_final_norm():
    ext = tiny_extractor()
    x = torch.rand(2, 3, 96, 96)
    keys_only, none = ext.keys_and_cls(x, prepared=True)
    keys, cls = ext.keys_and_cls(x, cls_rows=[0, 1], prepared=True)
    assert none is None
    torch.testing.assert_close(keys_only, keys)
    # CLS = token 0 of the last block's output, before the final LayerNorm
    t = ext.tokens(x)
    for blk in ext.vit.blocks:
        t = blk(t)
    torch.testing.assert_close(cls, t[:, 0], rtol=1e-5, atol=1e-5)
    # batched rows equal single-image passes
    k1, c1 = ext.keys_and_cls(x[1:], cls_rows=[0], prepared=True)
    torch.testing.assert_close(k1, keys[1:], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(c1, cls[1:], rtol=1e-5, atol=1e-5)


def test_vit_parameters_frozen():
    ext = tiny_extractor()
    assert not any(p.requires_grad for p in ext.parameters())


def test_state_dict_layouts(tmp_path):
    ext = tiny_extractor()
    sd = {k: v.clone() for k, v in ext.vit.state_dict().items()}
    teacher = {f"module.backbone.{k}": v for k, v in sd.items()} | {"module.head.mlp.0.weight": torch.zeros(1)}
    dino_ckpt = {"teacher": teacher}
    assert set(normalise_state_dict(dino_ckpt)) == set(sd)
    p = tmp_path / "w.pth"
    torch.save(dino_ckpt, p)
    loaded = load_vit("vit_tiny_patch16_224", str(p), short_side=96, max_side=160)
    assert loaded.identity.source == "file" and len(loaded.identity.sha256) == 64 and not loaded.identity.random
    torch.testing.assert_close(loaded.vit.pos_embed, ext.vit.pos_embed)
    from safetensors.torch import save_file

    st = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in sd.items()}, str(st))
    assert load_vit("vit_tiny_patch16_224", str(st)).identity.source == "file"


def test_weights_errors(tmp_path, monkeypatch):
    from splice.core.errors import WeightsError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("SPLICE_WEIGHTS_DIR", str(tmp_path / "none"))
    with pytest.raises(WeightsError, match=r"dino_deitsmall16_pretrain.pth.*--weights random"):
        load_vit("vit_small_patch16_224")
    with pytest.raises(WeightsError, match="weights file not found"):
        load_vit("vit_tiny_patch16_224", str(tmp_path / "missing.pth"))
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read weights file"):
        load_vit("vit_tiny_patch16_224", str(bad))
    small = tmp_path / "s.pth"
    torch.save({"cls_token": torch.zeros(1, 1, 8)}, small)
    with pytest.raises(WeightsError, match="do not fit this backbone"):
        load_vit("vit_tiny_patch16_224", str(small))
    # offline fallback to random only when allowed, and it is marked
    ext = load_vit("vit_small_patch16_224", allow_random=True)
    assert ext.identity.random and ext.identity.spec == "random"
