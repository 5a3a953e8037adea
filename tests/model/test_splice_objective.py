"""The fast objective computes what a plain reading of SPLICE.md computes."""

from __future__ import annotations

import pytest
import torch

from splice.model.augment import PairSampler
from splice.model.generator import build_generator
from splice.model.objective import SpliceObjective, active_terms
from splice.model.plain import PlainExtractor, plain_loss
from tests.support.tiny import tiny_config, tiny_extractor


def _inputs(h=70, w=100, th=80, tw=66):
    g = torch.Generator().manual_seed(3)
    return torch.rand(1, 3, h, w, generator=g), torch.rand(1, 3, th, tw, generator=g)


def test_schedule():
    cfg = tiny_config(entire_every=75)
    assert active_terms(0, cfg) == ("appearance", "entire_structure", "entire_appearance")
    assert active_terms(1, cfg) == ("appearance", "structure", "identity")
    assert active_terms(75, cfg) == ("appearance", "structure", "identity", "entire_structure", "entire_appearance")
    assert active_terms(150, cfg)[-1] == "entire_appearance" and "entire_structure" not in active_terms(74, cfg)


@pytest.mark.parametrize("step,fmt", [(0, "nchw"), (1, "nchw"), (3, "nchw"), (3, "channels_last")])
def test_terms_and_gradients_match_plain(step, fmt):
    torch.manual_seed(0)
    cfg = tiny_config(entire_every=3)
    ext = tiny_extractor(cfg)
    S, T = _inputs()
    crops = PairSampler(S, T, cfg, seed=1).sample(step)
    G1 = build_generator(5)
    G2 = build_generator(5)
    S1 = S
    if fmt == "channels_last":  # the layout splice.model.train uses on CPU and CUDA
        cl = torch.channels_last
        S1, G1 = S.contiguous(memory_format=cl), G1.to(memory_format=cl)
        crops = PairSampler(S1, T.contiguous(memory_format=cl), cfg, seed=1).sample(step)
        assert crops.structure.is_contiguous(memory_format=cl)
    fast = SpliceObjective(ext, cfg, S1)
    loss1, terms1 = fast(G1, crops)
    loss1.backward()
    loss2, terms2 = plain_loss(G2, PlainExtractor(ext), crops, S, cfg)
    loss2.backward()
    assert set(terms1) == set(terms2) == set(active_terms(step, cfg))
    for k in terms1:
        assert float(terms1[k]) == pytest.approx(float(terms2[k]), rel=2e-5, abs=1e-9), k
    assert float(loss1.detach()) == pytest.approx(float(loss2.detach()), rel=2e-5)
    # conv biases before BatchNorm have zero gradient up to rounding: compare on the global scale
    # channels-last convolutions (oneDNN, opt-in for fp32 on the CPU) accumulate differently: their weight
    # gradients are ~10x further from a float64 computation than NCHW's; here up to 1% of the largest gradient
    scale = max(p.grad.abs().max().item() for p in G2.parameters())
    rtol, atol = (1e-3, 1e-5 * scale) if fmt == "nchw" else (5e-2, 2e-2 * scale)
    for (n, p1), p2 in zip(G1.named_parameters(), G2.parameters()):
        torch.testing.assert_close(p1.grad, p2.grad, rtol=rtol, atol=atol, msg=n)
    # the frozen ViT never gets gradients in the fast path
    assert all(p.grad is None and not p.requires_grad for p in ext.parameters())


def test_bf16_close_to_fp32():
    cfg = tiny_config(entire_every=3)
    ext = tiny_extractor(cfg)
    S, T = _inputs()
    crops = PairSampler(S, T, cfg, seed=1).sample(3)
    l32, t32 = SpliceObjective(ext, cfg, S, "fp32")(build_generator(5), crops)
    l16, t16 = SpliceObjective(ext, cfg, S, "bf16")(build_generator(5), crops)
    assert l16.dtype == torch.float32
    for k in t32:
        assert float(t16[k]) == pytest.approx(float(t32[k]), rel=0.1, abs=1e-4), k
    assert float(l16.detach()) == pytest.approx(float(l32.detach()), rel=0.05)


def test_entire_target_is_computed_once(monkeypatch):
    cfg = tiny_config(entire_every=1)
    ext = tiny_extractor(cfg)
    S, T = _inputs()
    obj = SpliceObjective(ext, cfg, S)
    sampler = PairSampler(S, T, cfg, seed=1)
    G = build_generator(0)
    obj(G, sampler.sample(0))
    first = obj._entire_target
    obj(G, sampler.sample(1))
    assert obj._entire_target is first
