"""sincut (single-image CUT, Park et al., ECCV 2020): PatchNCE and R1 against hand-computed values, network sizes
against the official training log, the schedule and the crop sampler, and the method end to end at smoke
settings (geometry record, determinism under a seed, resume from a checkpoint)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from baselines import sincut
from baselines.sincut_networks import (
    PatchSampleMLP,
    SinCUTDiscriminator,
    SinCUTGenerator,
    nonsaturating_loss,
    patch_nce_loss,
    r1_penalty,
)
from splice.core.errors import ConfigError
from splice.core.method import Pair, RunSettings
from splice.core.registry import methods
from tests.support.images import make_image


# ----------------------------------------------------------------------------------------- losses
def test_patch_nce_on_hand_made_features():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    k = torch.tensor([[0.6, 0.8], [0.8, 0.6]], requires_grad=True)
    loss = patch_nce_loss(q, k, temperature=0.5)
    # row 0: positive q0.k0 = 0.6, negatives [q0.k0 -> -10 (self, masked), q0.k1 = 0.8]; logits / 0.5
    # = [1.2, -20, 1.6]; cross-entropy towards class 0 = log(e^1.2 + e^-20 + e^1.6) - 1.2. Row 1 is symmetric.
    expected = math.log(math.exp(1.2) + math.exp(-20) + math.exp(1.6)) - 1.2
    assert loss.shape == (2,)
    assert loss.tolist() == pytest.approx([expected, expected], abs=1e-6)
    loss.sum().backward()
    assert k.grad is None and q.grad is not None  # keys are targets: no gradient


def test_patch_nce_identity_features_and_groups():
    eye = torch.eye(2)
    # temperature 1, q = k = identity: logits [1, -10, 0] -> log(e + e^-10 + 1) - 1
    assert patch_nce_loss(eye, eye, temperature=1.0).tolist() == pytest.approx(
        [math.log(math.e + math.exp(-10) + 1) - 1] * 2, abs=1e-6)
    # two groups of one: the only "negative" is the masked self-pair -> log(e + e^-10) - 1
    assert patch_nce_loss(eye, eye, temperature=1.0, negatives_groups=2).tolist() == pytest.approx(
        [math.log(math.e + math.exp(-10)) - 1] * 2, abs=1e-6)


def test_r1_and_nonsaturating_on_a_linear_discriminator():
    w = torch.full((3, 2, 2), 0.5)
    real = torch.randn(4, 3, 2, 2).requires_grad_(True)
    pred = (real * w).flatten(1).sum(1, keepdim=True)
    # grad_x D = w for every sample: R1 = 1.0 / 2 * |w|^2 = 0.5 * 12 * 0.25
    assert r1_penalty(pred, real, weight=1.0).item() == pytest.approx(1.5)
    p = torch.tensor([[0.0], [2.0]])
    assert nonsaturating_loss(p, real=True).item() == pytest.approx((math.log(2) + math.log1p(math.exp(-2))) / 2)
    assert nonsaturating_loss(p, real=False).item() == pytest.approx((math.log(2) + math.log1p(math.exp(2))) / 2)


# ----------------------------------------------------------------------------------------- networks
def test_paper_networks_match_the_official_parameter_counts():
    torch.manual_seed(0)
    cfg = sincut.SinCUTConfig()
    g = SinCUTGenerator(cfg.ngf, cfg.n_blocks, cfg.n_downsampling, cfg.crop_size)
    d = SinCUTDiscriminator(cfg.ndf, cfg.crop_size)
    feats = g.encode(torch.zeros(1, 3, 64, 64), cfg.nce_layers)
    f = PatchSampleMLP([x.shape[1] for x in feats], cfg.netf_nc)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    # the official sincut training log prints G 3.068 M, F 0.281 M, D 5.885 M
    assert (count(g), count(d), count(f)) == (3_068_404, 5_885_473, 280_832)
    assert [x.shape[1:] for x in feats] == [(3, 64, 64), (160, 32, 32), (160, 32, 32)]
    assert d(torch.zeros(2, 3, 64, 64)).shape == (2, 1)
    assert g(torch.zeros(1, 3, 52, 76)).shape == (1, 3, 52, 76)  # any multiple of 4 at test time


def test_patch_sampler_uses_the_same_locations_for_query_and_key():
    torch.manual_seed(0)
    f = PatchSampleMLP([3], nc=8)
    feat = torch.randn(2, 3, 4, 4)
    out_k, ids = f([feat], num_patches=5)
    out_q, _ = f([feat.clone()], num_patches=5, patch_ids=ids)
    assert out_k[0].shape == (10, 8) and torch.equal(out_k[0], out_q[0])
    # unit length up to the 1e-7 added to the norm (visible here: fresh Xavier(0.02) outputs are ~1e-4 long)
    norms = out_k[0].norm(dim=1)
    assert torch.all(norms < 1) and torch.allclose(norms, torch.ones(10), atol=5e-3)


# ----------------------------------------------------------------------------------------- schedule, data
def test_published_schedule():
    cfg = sincut.SinCUTConfig()
    assert cfg.total_iters == 100_000  # (8 + 8) epochs of 100,000 crops in batches of 16
    factors = [sincut.lr_factor(e, 8, 8) for e in range(16)]
    assert factors[:8] == [1.0] * 8
    assert factors[8] == pytest.approx(8 / 9) and factors[15] == pytest.approx(1 / 9)
    assert (cfg.lr, cfg.beta1, cfg.beta2, cfg.lambda_nce, cfg.lambda_identity, cfg.nce_layers, cfg.crop_size) == (
        0.002, 0.0, 0.99, 4.0, 1.0, (0, 2, 4), 64)


def test_multiple_of_4():
    assert sincut.multiple_of_4((96, 80)) == (96, 80)
    assert sincut.multiple_of_4((102, 74)) == (104, 72)  # Python rounds halves to even, as the official code
    assert sincut.multiple_of_4((101, 7)) == (100, 8)


def test_crop_sampler_takes_grid_cells():
    img = torch.arange(2 * 3 * 16 * 32, dtype=torch.float32).view(2, 3, 16, 32)[0]  # (3, 16, 32)
    sampler = sincut.CropSampler(img, crop=16, scale_max=1.0, flip=False, rng=np.random.default_rng(0))
    halves = [img[:, :, :16], img[:, :, 16:]]
    seen = set()
    for _ in range(12):
        crop = sampler.one()
        assert crop.shape == (3, 16, 16)
        match = [i for i, h in enumerate(halves) if torch.equal(crop, h)]
        assert len(match) == 1
        seen.add(match[0])
    assert seen == {0, 1}
    zoomed = sincut.CropSampler(img, crop=8, scale_max=3.0, flip=True, rng=np.random.default_rng(1)).batch(5, "cpu")
    assert zoomed.shape == (5, 3, 8, 8)


# ----------------------------------------------------------------------------------------- method
def _pair(tiny_pair):
    s, a = tiny_pair
    return Pair("tiny", s, a)


def test_registered_needs_no_weights():
    m = methods.create("sincut")
    assert isinstance(m, sincut.SinCUT)
    assert m.requirements(RunSettings()) == [] and m.in_smoke and "cpu" in m.devices


def test_end_to_end_smoke(tiny_pair):
    res = methods.create("sincut").run(_pair(tiny_pair), RunSettings(preset="smoke", seed=0))
    assert res.image.mode == "RGB" and res.image.size == (96, 80)
    assert res.geometry.to_dict() == {"kind": "identity", "source": [96, 80], "box": [0, 0, 96, 80], "output": [96, 80]}
    info = res.info
    assert info["seed"] == 0 and info["random_weights"] is False and info["iterations"] == 12
    assert set(info["final_losses"]) == {"D_gan", "D_R1", "G_gan", "NCE", "NCE_Y", "idt", "lr"}
    assert all(math.isfinite(v) for v in info["final_losses"].values())
    # smoke: 1 + 1 epochs of 6 iterations; the last one runs in epoch 1 at 0.002 * (1 - (1 + 1 - 1) / 2)
    assert info["final_losses"]["lr"] == pytest.approx(0.001)
    assert info["inputs"]["appearance"]["size"] == [72, 72]


def test_geometry_of_odd_sizes_and_max_side(tmp_path):
    s, a = tmp_path / "s.png", tmp_path / "a.png"
    make_image(102, 74, seed=3).save(s)
    make_image(70, 90, seed=4).save(a)
    m = methods.create("sincut")
    res = m.run(Pair("odd", s, a), RunSettings(preset="smoke", seed=0, options={"iters_per_epoch": 1}))
    assert res.image.size == (104, 72)
    assert res.geometry.to_dict() == {
        "kind": "stretch", "source": [102, 74], "box": [0, 0, 102, 74], "output": [104, 72]}
    res = m.run(Pair("odd", s, a), RunSettings(preset="smoke", seed=0, max_side=64, options={"iters_per_epoch": 1}))
    # shorter side 74 -> 64: 102 * 64 / 74 = 88.2 -> 88; both multiples of 4 already
    assert res.image.size == (88, 64) and res.geometry.output == (88, 64) and res.geometry.source == (102, 74)
    assert res.info["appearance_size"] == [64, 82]


def test_deterministic_under_a_seed(tiny_pair):
    m = methods.create("sincut")
    fast = {"iters_per_epoch": 2}
    one = m.run(_pair(tiny_pair), RunSettings(preset="smoke", seed=3, options=fast)).image.tobytes()
    two = m.run(_pair(tiny_pair), RunSettings(preset="smoke", seed=3, options=fast)).image.tobytes()
    other = m.run(_pair(tiny_pair), RunSettings(preset="smoke", seed=4, options=fast)).image.tobytes()
    assert one == two
    assert one != other


def test_resume_after_interruption_gives_the_same_bytes(tiny_pair, tmp_path, monkeypatch):
    m = methods.create("sincut")
    opts = {"iters_per_epoch": 3, "checkpoint_every": 2}  # 6 iterations, checkpoints after 2 and 4
    reference = m.run(_pair(tiny_pair), RunSettings(preset="smoke", seed=2, options=opts)).image.tobytes()

    work = tmp_path / "work"
    real_save = sincut.save_checkpoint

    def save_then_die(path, tag, state):
        real_save(path, tag, state)
        if state["iteration"] == 4:
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(sincut, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        m.run(_pair(tiny_pair), RunSettings(preset="smoke", seed=2, options=opts, workdir=work))
    monkeypatch.setattr(sincut, "save_checkpoint", real_save)
    # another seed must not pick up this checkpoint
    other = m.run(_pair(tiny_pair), RunSettings(preset="smoke", seed=9, options=opts, workdir=tmp_path / "w2"))
    assert other.info["resumed_from_iteration"] is None
    res = m.run(_pair(tiny_pair), RunSettings(preset="smoke", seed=2, options=opts, workdir=work))
    assert res.info["resumed_from_iteration"] == 4
    assert res.image.tobytes() == reference
    assert not (work / sincut.CHECKPOINT).exists()


@pytest.mark.parametrize("options, fragment", [
    ({"crop_size": 24}, "crop_size=24 must be a power of two"),
    ({"nce_layers": "0,9"}, "nce_layers=(0, 9) must lie in 0..4"),
    ({"nce_idt": "maybe"}, "sincut.nce_idt: 'maybe' is not true or false"),
    ({"lambda_nc": 1}, "unknown option 'lambda_nc'"),
])
def test_bad_options_are_one_line_config_errors(options, fragment):
    with pytest.raises(ConfigError) as e:
        methods.create("sincut").config(RunSettings(preset="smoke", options=options))
    assert fragment in str(e.value) and "\n" not in str(e.value)
