"""structural-analogy (Benaim et al., CGF 2021): pyramid arithmetic, gradient penalty, networks, and the method
end to end at smoke settings (geometry record, determinism under a seed, resume from a checkpoint)."""

from __future__ import annotations

import math

import pytest
import torch

from baselines import structural_analogy as sa
from splice.core.errors import ConfigError
from splice.core.method import Pair, RunSettings
from splice.core.registry import methods


# ----------------------------------------------------------------------------------------- pyramid
def test_pyramid_from_the_official_defaults():
    pyr = sa.pyramid(220, 18, 250, 0.75)
    # ceil(log_0.75(18/220)) + 1 = ceil(8.70) + 1 = 10 planned scales, max_size 250 > 220 removes none -> stop 10
    assert pyr.stop_scale == 10
    assert pyr.scale_factor == pytest.approx((18 / 220) ** (1 / 10))  # 0.778547...
    assert pyr.scale_factor == pytest.approx(0.7785473, abs=1e-7)
    # ceil(220 * f^(10 - i)); the coarsest is 19 because 220 * f^10 evaluates to 18.000000000000004
    assert pyr.sizes == (19, 24, 30, 39, 49, 63, 81, 104, 134, 172, 220)


def test_pyramid_with_a_256_square_and_the_smoke_preset():
    # img 256 > max_size 250: ceil(log_0.75(250/256)) = 1 scale fewer than the 11 planned
    pyr = sa.pyramid(256, 18, 250, 0.75)
    assert pyr.stop_scale == 10
    assert pyr.sizes[-1] == 256 and pyr.sizes[0] == 18
    smoke = sa.PRESETS["smoke"]
    pyr = sa.pyramid(smoke.img_size, smoke.min_size, smoke.max_size, smoke.scale_factor)
    # ceil(log_0.75(0.5)) + 1 = 4 -> factor 0.5^(1/4) = 0.8409: 16, 19.03->20, 22.6->23, 26.9->27, 32
    assert pyr.sizes == (16, 20, 23, 27, 32)


def test_channels_double_every_four_scales_up_to_128():
    assert [sa.channels_at(n, 32, 128) for n in range(11)] == [32] * 4 + [64] * 4 + [128] * 3


# ----------------------------------------------------------------------------------------- pieces
def _linear_critic(weights):
    critic = torch.nn.Conv2d(3, 1, 1)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor(weights, dtype=torch.float32).view(1, 3, 1, 1))
        critic.bias.fill_(0.7)
    return critic


@pytest.mark.parametrize("weights, expected", [((1.0, 2.0, 2.0), 0.1 * (3 - 1) ** 2), ((0.3, 0.4, 0.0), 0.1 * 0.25),
                                               ((0.6, 0.8, 0.0), 0.0)])
def test_gradient_penalty_on_a_linear_critic(weights, expected):
    # For D(x) = w . x(pixel) + b the gradient at every pixel is w whatever the interpolation point, so the
    # per-pixel channel norm is |w| and the penalty is 0.1 * (|w| - 1)^2.
    torch.manual_seed(3)
    real = torch.rand(1, 3, 6, 5) * 2 - 1
    fake = (torch.rand(1, 3, 6, 5) * 2 - 1).requires_grad_(True)
    gp = sa.gradient_penalty(_linear_critic(weights), real, fake, weight=0.1)
    assert gp.item() == pytest.approx(expected, abs=1e-6)
    gp.backward()
    assert fake.grad is None  # no gradient reaches the generator through the penalty


def test_generator_and_critic_shapes_and_residual():
    G, D, init = sa._build_networks()
    torch.manual_seed(0)
    g = G(8, 8, 5, 3, residual=True)
    init(g)
    x, base = torch.zeros(1, 3, 20, 20), torch.full((1, 3, 20, 20), 0.25)
    plain = G(8, 8, 5, 3, residual=False)
    plain.load_state_dict(g.state_dict())
    assert torch.allclose(g(x, base), plain(x) + 0.25)
    d = D(8, 8, 5, 3)
    assert d(x).shape == (1, 1, 10, 10)  # five unpadded 3x3 convolutions: 20 - 10


# ----------------------------------------------------------------------------------------- method
def _pair(tiny_pair):
    s, a = tiny_pair
    return Pair("tiny", s, a)


def test_registered_needs_no_weights_and_lists_cpu():
    m = methods.create("structural-analogy")
    assert isinstance(m, sa.StructuralAnalogy)
    assert m.requirements(RunSettings()) == []
    assert "cpu" in m.devices and m.in_smoke and m.supports_max_side
    cfg = m.config(RunSettings(preset="paper"))
    assert (cfg["img_size"], cfg["min_size"], cfg["scale_factor"], cfg["niter"]) == (220, 18, 0.75, 20000)
    assert (cfg["alpha"], cfg["beta"], cfg["lr_g"], cfg["lr_d"], cfg["lambda_grad"]) == (1.0, 10.0, 5e-4, 1e-4, 0.1)


def test_end_to_end_smoke(tiny_pair):
    m = methods.create("structural-analogy")
    res = m.run(_pair(tiny_pair), RunSettings(preset="smoke", seed=0))
    assert res.image.mode == "RGB" and res.image.size == (32, 32)
    # the 96x80 structure image is stretched to the 32x32 square
    assert res.geometry.to_dict() == {"kind": "stretch", "source": [96, 80], "box": [0, 0, 96, 80], "output": [32, 32]}
    info = res.info
    assert info["seed"] == 0 and info["random_weights"] is False and info["output_mode"] == "real"
    assert info["pyramid"] == [16, 20, 23, 27, 32] and info["iterations"] == 5 * 10
    assert info["inputs"]["structure"]["size"] == [96, 80]
    assert [row["scale"] for row in info["losses"]] == [0, 1, 2, 3, 4]
    assert all(math.isfinite(v) for row in info["losses"] for v in row.values())
    assert info["noise_amps"]["a"][0] == pytest.approx(0.1)
    bands = res.image.getextrema()
    # saved stretched to its own min..max over all channels, as the official scripts do
    assert min(b[0] for b in bands) == 0 and max(b[1] for b in bands) == 255


def test_deterministic_under_a_seed(tiny_pair):
    m = methods.create("structural-analogy")
    fast = {"niter": 3}
    one = m.run(_pair(tiny_pair), RunSettings(preset="smoke", seed=5, options=fast)).image.tobytes()
    two = m.run(_pair(tiny_pair), RunSettings(preset="smoke", seed=5, options=fast)).image.tobytes()
    other = m.run(_pair(tiny_pair), RunSettings(preset="smoke", seed=6, options=fast)).image.tobytes()
    assert one == two
    assert one != other


def test_resume_after_interruption_gives_the_same_bytes(tiny_pair, tmp_path, monkeypatch):
    m = methods.create("structural-analogy")
    opts = {"niter": 2}
    reference = m.run(_pair(tiny_pair), RunSettings(preset="smoke", seed=1, options=opts)).image.tobytes()

    work = tmp_path / "work"
    real_save = sa.save_checkpoint
    calls = []

    def save_then_die(path, tag, state):
        real_save(path, tag, state)
        calls.append(len(state["generators_a"]))
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(sa, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        m.run(_pair(tiny_pair), RunSettings(preset="smoke", seed=1, options=opts, workdir=work))
    assert (work / sa.CHECKPOINT).exists()
    monkeypatch.setattr(sa, "save_checkpoint", real_save)
    res = m.run(_pair(tiny_pair), RunSettings(preset="smoke", seed=1, options=opts, workdir=work))
    assert res.info["resumed_from_scale"] == 2
    assert res.image.tobytes() == reference
    assert not (work / sa.CHECKPOINT).exists()  # removed once the output exists


def test_output_sample_mode_and_max_side(tiny_pair):
    m = methods.create("structural-analogy")
    settings = RunSettings(preset="smoke", seed=0, max_side=24, options={"output": "sample", "niter": 1})
    res = m.run(_pair(tiny_pair), settings)
    assert res.image.size == (24, 24) and res.geometry.output == (24, 24)
    assert res.info["output_mode"] == "sample" and res.info["pyramid"][-1] == 24


@pytest.mark.parametrize("options, fragment", [
    ({"bogus": 1}, "unknown option 'bogus'"),
    ({"output": "both"}, "structural-analogy.output: 'both' is not a choice; use one of real, sample"),
    ({"niter": "many"}, "structural-analogy.niter: 'many' is not an integer"),
    ({"min_size": 8}, "min_size"),
])
def test_bad_options_are_one_line_config_errors(options, fragment):
    with pytest.raises(ConfigError) as e:
        methods.create("structural-analogy").config(RunSettings(preset="smoke", options=options))
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_string_options_are_typed():
    cfg = sa.resolve_config(RunSettings(options={"niter": "7", "beta": "1", "output": "sample"}))
    assert (cfg.niter, cfg.beta, cfg.output) == (7, 1.0, "sample")
