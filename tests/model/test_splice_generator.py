"""The DIP skip generator and Splice's augmentations."""

from __future__ import annotations

import pytest
import torch

from splice.model.augment import PairSampler, random_square_crop
from splice.model.generator import SkipGenerator, build_generator
from tests.support.tiny import tiny_config


def test_parameter_count_and_init():
    g = build_generator(0)
    assert sum(p.numel() for p in g.parameters()) == 1_037_523  # "about 1.04 M"
    bn_w = torch.cat([m.weight for m in g.modules() if isinstance(m, torch.nn.BatchNorm2d)])
    assert abs(bn_w.mean().item() - 1) < 0.01 and 0.015 < bn_w.std().item() < 0.025
    convs = [m for m in g.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(float(m.bias.detach().abs().max()) == 0 for m in convs)
    w = convs[4].weight  # xavier normal, gain 0.02: std = 0.02 * sqrt(2 / (fan_in + fan_out))
    fan_in, fan_out = w.shape[1] * w.shape[2] * w.shape[3], w.shape[0] * w.shape[2] * w.shape[3]
    assert w.std().item() == pytest.approx(0.02 * (2 / (fan_in + fan_out)) ** 0.5, rel=0.1)


@pytest.mark.parametrize("h,w", [(33, 33), (64, 97), (101, 67), (128, 128), (45, 250)])
def test_any_size_in_same_size_out(h, w):
    g = build_generator(0)
    y = g(torch.rand(1, 3, h, w))
    assert y.shape == (1, 3, h, w)
    y = y.detach()
    assert float(y.min()) >= 0 and float(y.max()) <= 1


def test_seeded_init_is_reproducible_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a, b = build_generator(7), build_generator(7)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    c = build_generator(8)
    assert not torch.equal(next(a.parameters()), next(c.parameters()))


def test_batchnorm_uses_batch_statistics():
    g = SkipGenerator().train()
    x = torch.rand(1, 3, 40, 40)
    y1 = g(x)
    g(torch.rand(1, 3, 40, 40) * 10)  # running stats change ...
    torch.testing.assert_close(g(x), y1)  # ... and do not matter


def test_crop_sizes_and_determinism():
    gen = torch.Generator().manual_seed(0)
    img = torch.rand(1, 3, 100, 150)
    for _ in range(50):
        crop, (left, top, side) = random_square_crop(img, gen, 0.95)
        assert 95 <= side <= 100 and crop.shape[-2:] == (side, side)
        assert 0 <= left <= 150 - side and 0 <= top <= 100 - side
    tall = torch.rand(1, 3, 200, 80)
    _, (_, _, side) = random_square_crop(tall, gen, 0.95)
    assert side == 80  # capped at the width
    cfg = tiny_config()
    s, t = torch.rand(1, 3, 70, 90), torch.rand(1, 3, 60, 60)
    a = [PairSampler(s, t, cfg, 5).sample(i) for i in range(3)]
    b = [PairSampler(s, t, cfg, 5).sample(i) for i in range(3)]
    assert all(torch.equal(x.structure, y.structure) and torch.equal(x.appearance, y.appearance) for x, y in zip(a, b))


def test_augmentation_rates():
    cfg = tiny_config()
    sampler = PairSampler(torch.rand(1, 3, 40, 40), torch.rand(1, 3, 40, 40), cfg, 0)
    n = 400
    flips = jit = blur = tflip = 0
    for i in range(n):
        c = sampler.sample(i)
        flips += "flip" in c.boxes["structure"]
        jit += "jitter" in c.boxes["structure"]
        blur += "blur_sigma" in c.boxes["structure"]
        tflip += "flip" in c.boxes["appearance"]
        assert "jitter" not in c.boxes["appearance"]
    assert 0.42 < flips / n < 0.58 and 0.42 < jit / n < 0.58 and 0.14 < blur / n < 0.26 and 0.42 < tflip / n < 0.58
