"""WCT2, SinCUT and Structural-analogy against numbers from the authors' code (``tests/data/official/*.json``).

Each official repository was run once, outside this project, on small inputs with every weight filled by an
integer-hash formula (``recipe`` in each JSON; :mod:`tests.support.official` re-creates inputs and weights).
Our modules get the same weights (the recipes map official state-dict keys to ours) and must give the same
numbers. Tolerances: 1e-5 absolute + 1e-5 relative elementwise (thread counts alone move convolutions by about
7e-7); the official WCT2 whitens in float32 with ``torch.svd`` and we in float64 with ``eigh``, which is the
only source of difference there (float64 inputs agree to 1e-12).

Official commits: clovaai/WCT2 05d17c0, taesungp/contrastive-unpaired-translation b3ac297,
rmokady/structural-analogy 95ddf63. STROTSS has its own file (``test_strotss_parity.py``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from baselines import structural_analogy as sa
from baselines.sincut import SinCUTConfig, train_step
from baselines.sincut_networks import PatchSampleMLP, SinCUTDiscriminator, SinCUTGenerator, patch_nce_loss
from baselines.wct2 import _prepare, _to_image_rounded
from baselines.wct2_model import TRANSFER_POINTS, WaveDecoder, WaveEncoder, WavePool, WaveUnpool, wct, wct2_transfer
from splice.core.imageio import to_tensor
from tests.support import official as O

DEMO = O.REPO / "datasets" / "demo" / "sa_208_209"


def t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


def demo_rgb(role: str, sha: str) -> Image.Image:
    img = Image.open(DEMO / ("structure.jpg" if role == "structure" else "appearance.jpg")).convert("RGB")
    if O.sha256_array(np.asarray(img)) != sha:
        pytest.skip("this libjpeg decodes the demo JPEG to other pixels than the official run saw")
    return img


def assert_pixels(x: torch.Tensor, pixels: list, atol: float = 1e-5) -> None:
    """Recorded ``[c, h, w, value]`` (batch 0) or ``[b, c, h, w, value]`` entries."""
    for *index, value in pixels:
        index = [0, *index] if len(index) == x.dim() - 1 else index
        assert float(x[tuple(index)]) == pytest.approx(value, abs=atol, rel=1e-5), index


# ================================================================================================== WCT2
@pytest.fixture(scope="module")
def wct2():
    data = O.load("wct2")
    enc, dec = WaveEncoder("cat5"), WaveDecoder("cat5")
    nets = {"encoder": enc, "decoder": dec}
    for net, module in nets.items():
        O.load_filled(module, [r for r in data["recipe"]["weights"]["table"] if r["net"] == net])
    return data["values"], enc.eval(), dec.eval()


def test_wct2_encoder_decoder_and_skips(wct2):
    """Encoder levels 1-4, every skip (conv1_2, conv2_2, conv3_4, the three Haar pools' LH/HL/HH), decoder levels
    4-1 (the content's own skips: plain auto-encoding) and encoder.forward: as the official networks."""
    V, enc, dec = wct2
    content = t(O.image(3, 48, 64, 0))[None]
    with torch.no_grad():
        skips: dict = {}
        x = content
        for level in (1, 2, 3, 4):
            x = enc.encode(x, skips, level)
            O.assert_summary(x, V["encoder_levels_content"][str(level)], what=f"encoder level {level}")
        for key in ("conv1_2", "conv2_2", "conv3_4"):
            O.assert_summary(skips[key], V["encoder_skips_content"][key], what=key)
        for key in ("pool1", "pool2", "pool3"):
            for band, value in zip(("LH", "HL", "HH"), skips[key]):
                O.assert_summary(value, V["encoder_skips_content"][f"{key}.{band}"], what=f"{key}.{band}")
        y = x
        for level in (4, 3, 2, 1):
            y = dec.decode(y, skips, level)
            O.assert_summary(y, V["decoder_levels_content"][str(level)], what=f"decoder level {level}")
        assert_pixels(y, V["decoder_output_pixels"]["pixels"])
        O.assert_summary(enc(content), V["encoder_forward_content"], what="encoder.forward")


def test_wct2_haar_pooling_and_unpooling(wct2):
    V = wct2[0]
    x = t(O.image(4, 8, 10, 5))[None] * 2 - 1
    bands = WavePool(4)(x)
    for name, band in zip(("LL", "LH", "HL", "HH"), bands):
        np.testing.assert_allclose(band.flatten().numpy(), V["wavepool"][name]["values"], atol=1e-6, rtol=0)
    O.assert_summary(WaveUnpool(4, "sum")(*bands), V["waveunpool_sum"]["summary"], what="unpool sum")
    original = t(O.image(4, 8, 10, 6))[None]
    O.assert_summary(WaveUnpool(4, "cat5")(*bands, original=original), V["waveunpool_cat5"]["summary"], what="cat5")


def test_wct2_whitening_and_colouring(wct2):
    """Same algorithm (covariance + I, rank cut at 1e-5, clamp to the content's range, alpha blend): float64 inputs
    agree to 1e-12; in float32 the official torch.svd is the less accurate side, about 1e-6 apart."""
    V = wct2[0]
    cf = t(O.image(8, 6, 7, 7))[None] * 3 - 1
    sf = t(O.image(8, 5, 9, 8))[None] * 2
    values = V["feature_wct"]
    np.testing.assert_allclose(wct(cf.double(), sf.double(), alpha=1.0).flatten().numpy(),
                               values["alpha1_float64_inputs"]["values"], atol=1e-12, rtol=0)  # fmt: skip
    np.testing.assert_allclose(wct(cf, sf, alpha=1.0).flatten().numpy(), values["alpha1"]["values"], atol=1e-5, rtol=0)
    O.assert_summary(wct(cf, sf, alpha=0.6), values["alpha0.6"]["summary"], what="alpha 0.6")


def test_wct2_transfer_synthetic(wct2):
    """The whole transfer (cat5 unpooling; encoder, skip and decoder transfer; alpha 1) and its 8-bit output:
    the official uint8 sum is 1,044,445; the float32 SVD moves at most a level or two of one pixel."""
    V, enc, dec = wct2
    content, style = t(O.image(3, 48, 64, 0))[None], t(O.image(3, 40, 56, 1))[None]
    with torch.no_grad():
        out = wct2_transfer(enc, dec, content, style, transfer_at=TRANSFER_POINTS, alpha=1.0, reg=1.0)
    official = V["transfer_synthetic"]
    O.assert_summary(out, official, what="transfer")
    assert_pixels(out, official["pixels"])
    u8 = np.asarray(_to_image_rounded(out)).astype(np.int64)
    assert abs(int(u8.sum()) - official["uint8_sum"]) <= 2


def test_wct2_input_preparation_and_real_pair(wct2):
    """Our resize + centre crop to multiples of 16 is the official ``open_image`` pixel for pixel (the demo pair at
    64, a synthetic 75x50 PNG at 32), and the transfer of the demo pair at 64 agrees."""
    V, enc, dec = wct2
    real = V["real_pair_sa_208_209"]
    tensors = {}
    for role in ("structure", "appearance"):
        img = demo_rgb(role, real[role]["decoded_rgb_sha256"])
        prepared, _ = _prepare(img, 64, 16)
        tensors[role] = to_tensor(prepared).unsqueeze(0)
        O.assert_summary(tensors[role], real[role]["open_image_64"], atol=1e-7, rtol=0, what=f"{role} open_image")
    with torch.no_grad():
        out = wct2_transfer(enc, dec, tensors["structure"], tensors["appearance"], transfer_at=TRANSFER_POINTS)
    O.assert_summary(out, real["transfer_64"], what="real transfer")
    synthetic = (O.image(3, 50, 75, 9).transpose(1, 2, 0) * 255).round().astype(np.uint8)
    official = V["open_image_synthetic_75x50_to_32"]
    assert O.sha256_array(synthetic) == official["rgb_sha256"]
    prepared = to_tensor(_prepare(Image.fromarray(synthetic), 32, 16)[0]).unsqueeze(0)
    O.assert_summary(prepared, official["summary"], atol=1e-7, rtol=0, what="synthetic open_image")
    assert_pixels(prepared, official["pixels"], atol=1e-7)


# ================================================================================================ SinCUT
def cut_key(net: str, key: str) -> str:
    """An official SinCUT state-dict key -> ours (the recipe's key mapping)."""
    if net == "G":
        key = key.replace("encoder.convs.", "encoder.").replace("decoder.convs.", "decoder.")
        for a, b in (("conv.blur.kernel", "blur.kernel"), ("conv.weight", "weight"), ("noise.weight", "noise_weight"),
                     ("activate.bias", "act.bias")):
            key = key.replace(f"decoder.3.{a}", f"decoder.3.{b}")
    if net == "F" and key.startswith("mlp_"):
        head, rest = key.split(".", 1)
        key = f"mlps.{head[4:]}.{rest}"
    return key


@pytest.fixture(scope="module")
def cut():
    data = O.load("sincut")
    cfg = SinCUTConfig()
    nets = {"G": SinCUTGenerator(cfg.ngf, cfg.n_blocks, cfg.n_downsampling, cfg.crop_size),
            "D": SinCUTDiscriminator(cfg.ndf, cfg.crop_size), "F": PatchSampleMLP([3, 160, 160], cfg.netf_nc)}
    for name, net in nets.items():
        O.load_filled(net, [r for r in data["recipe"]["weights"]["table"] if r["net"] == name])
    return data, cfg, nets


def crops(ks, size=64) -> torch.Tensor:
    return torch.stack([t(O.image(3, size, size, k)) * 2 - 1 for k in ks])


def test_sincut_fixed_filters_and_networks(cut):
    """Blur kernels (not filled: constructor values), G on a batch of 64-px crops and on a whole 52x68 image, the
    encoder's features (layers 0-5), and D on real and generated crops."""
    data, _, nets = cut
    G, D = nets["G"], nets["D"]
    for name, kernel in data["recipe"]["blur_kernels"].items():
        net, key = name.split(".", 1)
        torch.testing.assert_close(nets[net].state_dict()[cut_key(net, key)], torch.tensor(kernel), rtol=0, atol=1e-7)
    V = data["values"]
    real_a, real_b = crops([20, 21, 22, 23]), crops([30, 31, 32, 33])
    with torch.no_grad():
        fake = G(real_a)
        O.assert_summary(fake, V["G_real_a"], what="G(real_A)")
        assert_pixels(fake, V["G_real_a"]["pixels"])
        O.assert_summary(G(t(O.image(3, 52, 68, 40))[None] * 2 - 1), V["G_full_52x68"], what="G whole image")
        for layer, feat in enumerate(G.encode(real_a, tuple(range(6)))):
            O.assert_summary(feat, V["G_encoder_all_layers_real_a"][str(layer)], what=f"encoder layer {layer}")
        np.testing.assert_allclose(D(real_b).flatten().numpy(), V["D_real_b"], atol=1e-5, rtol=1e-5)
        np.testing.assert_allclose(D(fake).flatten().numpy(), V["D_G_real_a"], atol=1e-5, rtol=1e-5)
        G.decoder[3].noise_weight.fill_(0.1)  # noise injection draws from torch's CPU stream as the official does
        torch.manual_seed(123)
        O.assert_summary(G(real_a), V["G_real_a_noise0.1_seed123"], what="G with noise")
        G.decoder[3].noise_weight.fill_(0.0)


def test_sincut_patch_sampling_head_and_patchnce(cut):
    data, _, nets = cut
    V = data["values"]
    with torch.no_grad():
        feats = nets["G"].encode(crops([20, 21, 22, 23]), (0, 2, 4))
        for tag in ("ids1", "ids5"):
            ids = [torch.tensor(i) for i in V[f"F_{tag}"]["ids"]]
            pooled, _ = nets["F"](feats, ids[0].numel(), ids)
            for k, (mine, official) in enumerate(zip(pooled, V[f"F_{tag}"]["out"])):
                O.assert_summary(mine, official, what=f"F {tag} layer {k}")
    q = t(O.unit(8 * 16, 500).reshape(8, 16).astype(np.float32))
    k = t(O.unit(8 * 16, 501).reshape(8, 16).astype(np.float32)) + 0.5 * q
    q = q / (q.norm(dim=1, keepdim=True) + 1e-7)
    k = k / (k.norm(dim=1, keepdim=True) + 1e-7)
    np.testing.assert_allclose(patch_nce_loss(q, k, 0.07, 1).numpy(), V["patchnce_all_negatives"], atol=1e-5)
    np.testing.assert_allclose(patch_nce_loss(q, k, 0.07, 2).numpy(), V["patchnce_batch2_groups"], atol=1e-5)


@pytest.mark.slow
def test_sincut_one_training_step(cut):
    """One optimize_parameters with the official run's patch ids: every loss, the gradients of D, G and F, and
    parameters after the Adam steps. (Runs after the other SinCUT tests: it changes the networks.)"""
    data, cfg, nets = cut
    T = data["values"]["train_step"]
    G, D, F = nets["G"], nets["D"], nets["F"]
    betas = (cfg.beta1, cfg.beta2)
    optimizers = tuple(torch.optim.Adam(n.parameters(), lr=cfg.lr, betas=betas) for n in (G, D, F))
    used = T["patch_ids_used"]
    ids = tuple([torch.tensor([i]) for i in used[key]] for key in ("NCE (src=real_A)", "NCE_Y (src=real_B)"))
    grads_d: dict = {}

    def keep_d_grads(_):
        if not grads_d:
            grads_d.update({n: p.grad.clone() for n, p in D.named_parameters() if p.grad is not None})

    hook = D.convs[0][0].weight.register_post_accumulate_grad_hook(keep_d_grads)
    try:
        losses = train_step((G, D, F), optimizers, crops([20, 21, 22, 23]), crops([30, 31, 32, 33]), cfg, ids)
    finally:
        hook.remove()
    names = {"D_fake": "D_fake", "D_real": "D_real", "D_R1": "D_R1", "D": "D", "G_GAN": "G_gan", "NCE": "NCE",
             "NCE_Y": "NCE_Y", "idt": "idt"}  # fmt: skip
    for official, ours in names.items():
        assert float(losses[ours]) == pytest.approx(T["losses"][official], rel=1e-5, abs=1e-6), official
    assert float(losses["G"]) == pytest.approx(T["loss_G_total"], rel=1e-5)
    for key, official in T["grads_D"].items():
        O.assert_summary(grads_d[cut_key("D", key)].reshape(official["shape"]), official, atol=1e-6, what=f"grad {key}")
    for net, name in ((G, "G"), (F, "F")):  # the G/F step's gradients are still on the parameters
        params = dict(net.named_parameters())
        for key, official in T["grads_G_after_G_loss" if name == "G" else "grads_F"].items():
            grad = params[cut_key(name, key)].grad.reshape(official["shape"])
            O.assert_summary(grad, official, atol=1e-5, rtol=1e-4, what=f"grad {name}.{key}")
    state = {**{f"G.{k}": v for k, v in G.state_dict().items()}, **{f"D.{k}": v for k, v in D.state_dict().items()},
             **{f"F.{k}": v for k, v in F.state_dict().items()}}  # fmt: skip
    for key, official in T["params_after_step"].items():
        net, rest = key.split(".", 1)
        O.assert_summary(state[f"{net}.{cut_key(net, rest)}"], official, atol=1e-6, what=f"after step {key}")


# ===================================================================================== Structural-analogy
@pytest.fixture(scope="module")
def sa_data():
    return O.load("structural_analogy")


def sa_nets(data, nfc: int):
    PatchGenerator, PatchCritic, _ = sa._build_networks()
    tables = data["recipe"]["weights"]["tables"]
    nets = {"G_res": PatchGenerator(nfc, nfc, 5, 3, True), "G_nores": PatchGenerator(nfc, nfc, 5, 3, False),
            "D": PatchCritic(nfc, nfc, 5, 3)}  # fmt: skip
    for name, net in nets.items():
        O.load_filled(net, tables[f"{name}_nfc{nfc}"])
    return nets


def test_sa_pyramids(sa_data):
    """Sizes, stop scale, the recomputed factor (bit for bit), channel schedule, for seven image/min sizes."""
    for name, p in sa_data["values"]["pyramids"].items():
        mine = sa.pyramid(p["img_size"], p["min_size"], p["max_size"], p["scale_factor_init"])
        assert list(mine.sizes) == p["sizes"] and mine.stop_scale == p["stop_scale"], name
        assert mine.scale_factor == p["scale_factor"], name
        assert [sa.channels_at(n, 32, 128) for n in range(len(mine.sizes))] == p["nfc_per_scale"], name


def test_sa_pyramid_images(sa_data):
    """Each scale of the demo pair at 220 and of a synthetic PNG at 64: the official transform_input's pixels."""
    V = sa_data["values"]["pyramid_images"]
    for role in ("structure", "appearance"):
        img = demo_rgb(role, V[role]["decoded_rgb_sha256"])
        mine_all = sa._pyramid_tensors(img, sa.pyramid(220, 18, 250, 0.75).sizes, "cpu")
        for official, mine in zip(V[role]["scales"], mine_all):
            O.assert_summary(mine, official, atol=1e-6, what=f"{role} {official['shape']}")
    synthetic = (O.image(3, 50, 70, 70).transpose(1, 2, 0) * 255).round().astype(np.uint8)
    official = V["synthetic_70x50_img64"]
    assert O.sha256_array(synthetic) == official["rgb_sha256"]
    mine = sa._pyramid_tensors(Image.fromarray(synthetic), sa.pyramid(64, 18, 250, 0.75).sizes, "cpu")
    for o, m in zip(official["scales"], mine):
        O.assert_summary(m, o, atol=1e-6, what=f"synthetic {o['shape']}")
        assert_pixels(m, o["pixels"], atol=1e-6)


@pytest.mark.parametrize("nfc", [32, 64])
def test_sa_generators_and_critic(sa_data, nfc):
    """Residual and plain generators and the critic, in eval mode (the filled running statistics) and in train mode
    (batch statistics, which the official training and sampling always use), the running-stat update, and the
    WGAN-GP penalty under the same seed."""
    e = sa_data["values"]["nets"][f"nfc{nfc}"]
    nets = sa_nets(sa_data, nfc)
    x, y = (t(O.image(3, 30, 30, k))[None] * 2 - 1 for k in (80, 81))
    with torch.no_grad():
        for mode in ("eval", "train"):
            for net in nets.values():
                net.train(mode == "train")
            g = nets["G_res"](x, y)
            O.assert_summary(g, e[mode]["G_res(x, y)"], what=f"{mode} G_res")
            O.assert_summary(nets["G_nores"](x), e[mode]["G_nores(x)"], what=f"{mode} G_nores")
            O.assert_summary(nets["D"](x), e[mode]["D(x)"], what=f"{mode} D")
        assert_pixels(g, e["train"]["G_res(x, y)"]["pixels"])
        bn, after = nets["G_res"].head[1], e["train"]
        np.testing.assert_allclose(bn.running_mean[:8].numpy(), after["G_res.head.norm.running_mean_after"], atol=1e-6)
        np.testing.assert_allclose(bn.running_var[:8].numpy(), after["G_res.head.norm.running_var_after"], atol=1e-6)
    real, fake = (t(O.image(3, 30, 30, k))[None] * 2 - 1 for k in (82, 83))
    torch.manual_seed(7)
    gp = sa.gradient_penalty(nets["D"], real, fake, 0.1).detach()
    assert float(gp) == pytest.approx(e["gradient_penalty_seed7_lambda0.1"]["value"], rel=1e-5)


def test_sa_upsampling_between_scales_is_the_official_one(sa_data):
    """The official step to the next scale (``imresize2(x, 1/scale_factor)``: 8-bit truncation, MATLAB-style cubic
    enlargement to ceil(24 / 0.7785) = 31 px, then the top-left 30 x 30): ours gives the same values."""
    V = sa_data["values"]["imresize2"]
    x = torch.tanh(t(O.image(3, 24, 24, 90))[None] * 3 - 1.5)
    factor = sa.pyramid(220, 18, 250, 0.75).scale_factor
    assert 1 / factor == pytest.approx(V["scale"], rel=1e-15)
    O.assert_summary(sa.official_upsample(x, factor, 31), V["output"], atol=1e-6, what="imresize2")
    O.assert_summary(sa.official_upsample(x, factor, 30), V["output_cropped_30"], atol=1e-6, what="cropped")


def test_sa_sampling_chains_through_three_scales(sa_data):
    """``draw_concat`` of three trained generators (scales 0 and 1 residual, 2 not) on the 40-px pyramid: the
    random sample (seed 5) and the reconstruction (seed 6), including the noise draws."""
    c = sa_data["values"]["draw_concat"]
    PatchGenerator, _, _ = sa._build_networks()
    pyr = sa.pyramid(40, 18, 250, 0.75)
    assert list(pyr.sizes) == c["sizes"] and pyr.scale_factor == pytest.approx(c["scale_factor"], rel=1e-15)
    chain = sa._Chain(pyr.sizes, c["switch_scale"], "cpu", pyr.scale_factor)
    for n in range(3):
        g = PatchGenerator(c["nfc"], c["nfc"], 5, 3, n <= c["switch_scale"])
        O.load_filled(g, sa_data["recipe"]["weights"]["tables"][f"chain_G{n}"])
        chain.generators.append(g)
    chain.amps = list(c["noise_amps"])
    with torch.no_grad():
        torch.manual_seed(5)
        O.assert_summary(chain.random_sample(3), c["rand_seed5_3scales"], what="rand")
        torch.manual_seed(6)
        O.assert_summary(chain.reconstruction(3), c["rec_seed6_3scales"], what="rec")
