"""Each registered measure equals one direct call of the library that defines it (random weights, fixed seeds).

The measures split a library's forward into a per-image part (cached) and a pairwise part; these
tests build the library's own object the library's own way, call it once on the same two images,
and require the same number to 1e-6.
"""

from __future__ import annotations

import copy
import types
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from eval.measures import create
from eval.measures.features import FeatureStore
from splice.core.imageio import to_tensor
from tests.support.images import make_image

TOL = 1e-6


def _images(w=64, h=56):
    return make_image(w, h, seed=3), make_image(w, h, seed=4)


# -- LPIPS ----------------------------------------------------------------------------------------------------------


def _lpips_reference(net: str, trunk_state: dict | None):
    """lpips.LPIPS as its README builds it (trunk random: pnet_rand=True), trunk weights copied in by index."""
    lpips = pytest.importorskip("lpips")
    torch.manual_seed(123)  # a different random trunk: the copied weights must be what counts
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # lpips passes torchvision the deprecated pretrained=False
        ref = lpips.LPIPS(net=net, pnet_rand=True, verbose=False).eval()
    if trunk_state is not None:
        for slice_ in (ref.net.slice1, ref.net.slice2, ref.net.slice3, ref.net.slice4, ref.net.slice5):
            for idx, module in slice_.named_children():  # slice modules are named by torchvision's index
                if isinstance(module, torch.nn.Conv2d):
                    module.weight.data.copy_(trunk_state[f"{idx}.weight"])
                    module.bias.data.copy_(trunk_state[f"{idx}.bias"])
    return ref


@pytest.mark.parametrize("name,net", [("lpips_vgg", "vgg"), ("lpips_alex", "alex")])
def test_lpips_equals_lpips_package(name, net):
    a, b = _images()
    m = create(name, {"weights": "random"})
    got = m.score(a, b)
    trunk = {k.split(".", 1)[1]: v for k, v in m.model.net.state_dict().items()}
    # VGG16's random classifier (120 M parameters) makes a second build slow: the same object's forward then
    ref = _lpips_reference(net, trunk) if net == "alex" else copy.deepcopy(m.model)
    with torch.no_grad():
        want = ref(to_tensor(a)[None], to_tensor(b)[None], normalize=True).item()
        per_layer = ref(to_tensor(a)[None], to_tensor(b)[None], retPerLayer=True, normalize=True)[1]
    assert got["value"] == pytest.approx(want, abs=TOL)
    assert [got[f"layer{k + 1}"] for k in range(5)] == pytest.approx([float(x) for x in per_layer], abs=TOL)
    assert m.score(a, a)["value"] == 0.0


def test_lpips_loads_a_torchvision_trunk_file(tmp_path):
    """A features-only AlexNet state dict on disk is the trunk lpips computes with (keys features.N.*)."""
    a, b = _images()
    torch.manual_seed(7)
    from torchvision.models import alexnet

    trunk = {k: v.clone() for k, v in alexnet().features.state_dict().items()}
    path = tmp_path / "alexnet-features.pth"
    torch.save({f"features.{k}": v for k, v in trunk.items()}, path)
    m = create("lpips_alex", {"weights": str(path)})
    with torch.no_grad():
        want = _lpips_reference("alex", trunk)(to_tensor(a)[None], to_tensor(b)[None], normalize=True).item()
    assert m.score(a, b)["value"] == pytest.approx(want, abs=TOL)
    assert m.record_base()["random_weights"] is False
    assert m.record_base()["weights"]["trunk"]["sha256"] and m.record_base()["weights"]["lin"]["sha256"]


def test_lpips_max_side_shrinks_both_images_before_the_library():
    lpips = pytest.importorskip("lpips")
    a, b = _images(96, 80)
    m = create("lpips_alex", {"weights": "random", "max_side": 48})
    got = m.score(a, b)["value"]
    small = [im.resize((48, 40), resample=3) for im in (a, b)]  # 3 = bicubic
    ref = _lpips_reference("alex", {k.split(".", 1)[1]: v for k, v in m.model.net.state_dict().items()})
    with torch.no_grad():
        want = ref(to_tensor(small[0])[None], to_tensor(small[1])[None], normalize=True).item()
    assert lpips and got == pytest.approx(want, abs=TOL)


# -- DISTS ----------------------------------------------------------------------------------------------------------


@pytest.fixture
def piq_dists_offline(tmp_path, monkeypatch):
    """``piq.DISTS()`` through its own constructor, offline: alpha/beta in a private torch hub cache
    (from the dists-pytorch wheel), and torchvision's vgg16 answering with given features."""
    piq = pytest.importorskip("piq")
    from eval.measures.weights import dists_wheel_file

    wheel = dists_wheel_file()
    if wheel is None:
        pytest.skip("dists-pytorch is not installed")
    hub = tmp_path / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    (hub / "checkpoints" / "dists_weights.pt").write_bytes(wheel.read_bytes())
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))

    def build(features):
        fake = types.SimpleNamespace(features=copy.deepcopy(features))
        monkeypatch.setattr(piq.perceptual, "vgg16", lambda **kw: fake)
        return piq.DISTS()

    return build


@pytest.mark.parametrize("size", [(64, 56), (272, 264)])  # below and above piq's 256 px resize
def test_dists_equals_piq(piq_dists_offline, size):
    a, b = _images(*size)
    m = create("dists", {"weights": "random"})
    got = m.score(a, b)["value"]
    from torchvision.models.vgg import cfgs, make_layers

    vgg = make_layers(cfgs["D"])
    vgg.load_state_dict({k: v for k, v in m.model.model.state_dict().items()})  # L2 pooling has no parameters
    ref = piq_dists_offline(vgg)
    with torch.no_grad():
        want = ref(to_tensor(a)[None], to_tensor(b)[None]).item()
    assert got == pytest.approx(want, abs=TOL)
    assert m.score(a, a)["value"] == pytest.approx(0.0, abs=1e-6)
    assert m.record_base()["weights"]["alpha_beta"]["sha256"]  # the wheel's file, hashed


def test_dists_alpha_beta_from_the_wheel_sum_to_one():
    from eval.measures.perceptual import read_alpha_beta
    from eval.measures.weights import dists_source

    src = dists_source(None)
    if not src.present:
        pytest.skip("dists-pytorch is not installed")
    alpha, beta = read_alpha_beta(src)
    assert alpha.shape == beta.shape == (1, 1475, 1, 1)
    assert float(alpha.sum() + beta.sum()) == pytest.approx(1.0, abs=1e-4)


# -- CLIP -----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """A 0.2 M-parameter open_clip model registered as ``splice-tiny-clip``."""
    pytest.importorskip("open_clip")
    from tests.support.measures import register_tiny_clip

    return register_tiny_clip(tmp_path_factory.mktemp("clip-config"))


def _clip_cosine(open_clip, name, pretrained, a, b):
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=pretrained)
    with torch.no_grad():
        ea = model.eval().encode_image(preprocess(a)[None], normalize=True)
        eb = model.encode_image(preprocess(b)[None], normalize=True)
    return (ea @ eb.T).item(), ea[0], model


def test_clip_equals_open_clip(tiny_clip, tmp_path):
    import open_clip

    a, b = make_image(80, 64, seed=5), make_image(64, 96, seed=6)
    m = create("clip", {"model": tiny_clip, "weights": "random"})
    want, ea, model = _clip_cosine(open_clip, tiny_clip, None, a, b)
    assert m.score(a, b)["value"] == pytest.approx(want, abs=TOL)
    np.testing.assert_allclose(F.normalize(torch.from_numpy(m.features(a)["embedding"]), dim=-1), ea, atol=TOL)
    # a local file: open_clip's own loading of it gives the same number
    torch.manual_seed(1)
    other = open_clip.create_model(tiny_clip, pretrained=None)
    path = tmp_path / "tiny.pt"
    torch.save(other.state_dict(), path)
    m2 = create("clip", {"model": tiny_clip, "weights": str(path)})
    want2 = _clip_cosine(open_clip, tiny_clip, str(path), a, b)[0]
    assert m2.score(a, b)["value"] == pytest.approx(want2, abs=TOL)
    assert abs(want2 - want) > 1e-4 and m2.record_base()["random_weights"] is False


def test_clip_refuses_a_quick_gelu_mismatch():
    pytest.importorskip("open_clip")
    from splice.core.errors import ConfigError

    with pytest.raises(ConfigError, match="clip.model=ViT-B-32-quickgelu"):
        create("clip", {"model": "ViT-B-32", "weights": "openai"}).load()


# -- DINO / DINOv2 ----------------------------------------------------------------------------------------------


def _timm_reference(name, image_size, pretrained_file=None):
    import timm
    from timm.data import create_transform, resolve_data_config

    torch.manual_seed(0)
    kw = {"pretrained": True, "pretrained_cfg_overlay": {"file": str(pretrained_file)}} if pretrained_file else {}
    model = timm.create_model(name, num_classes=0, img_size=image_size, **kw).eval()
    transform = create_transform(**resolve_data_config({"input_size": (3, image_size, image_size)}, model=model))
    return model, transform


@pytest.mark.parametrize("measure,arch,tag,size", [("dino", "vit_small_patch16_224", "dino", 32),
                                                   ("dinov2", "vit_small_patch14_dinov2", "lvd142m", 28)])  # fmt: skip
def test_dino_cls_cosine_equals_timm(measure, arch, tag, size):
    a, b = make_image(72, 60, seed=8), make_image(50, 66, seed=9)
    m = create(measure, {"model": arch, "weights": "random", "image_size": size})
    got = m.score(a, b)["value"]
    model, transform = _timm_reference(f"{arch}.{tag}", size)
    with torch.no_grad():
        ea, eb = model(transform(a)[None]), model(transform(b)[None])
        cls = model.forward_features(transform(a)[None])[:, 0]
    np.testing.assert_allclose(m.features(a)["embedding"], ea[0].numpy(), atol=TOL)
    np.testing.assert_allclose(ea, cls, atol=TOL)  # the CLS token after the final norm
    assert got == pytest.approx(F.cosine_similarity(ea, eb).item(), abs=TOL)


def test_dino_weights_file_loads_like_timm(tmp_path):
    """A state dict on disk (DINOv2's release layout: an extra mask_token, another size of position
    embedding) loads like timm's own ``pretrained_cfg_overlay=dict(file=...)``."""
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(3)
    src = timm.create_model("vit_small_patch14_dinov2", num_classes=0, img_size=42)
    state = {k: v.clone().contiguous() for k, v in src.state_dict().items()}
    state["mask_token"] = torch.zeros(1, state["cls_token"].shape[-1])
    for k in state:  # LayerScale starts at 1e-5: let the blocks (and so the image) matter
        if k.endswith(".gamma"):
            state[k] = torch.ones_like(state[k])
    path = tmp_path / "dinov2_tiny.safetensors"
    save_file(state, str(path))
    a, b = make_image(72, 60, seed=10), make_image(60, 72, seed=11)
    m = create("dinov2", {"model": "vit_small_patch14_dinov2", "weights": str(path), "image_size": 28})
    model, transform = _timm_reference("vit_small_patch14_dinov2.lvd142m", 28, path)
    with torch.no_grad():
        ea = model(transform(a)[None])
    np.testing.assert_allclose(m.features(a)["embedding"], ea[0].numpy(), atol=TOL)
    assert m.record_base()["weights"]["model"]["source"] == "file"
    assert m.score(a, b)["value"] < 1.0


# -- Gram -----------------------------------------------------------------------------------------------------------


def _gram_reference(features_state, image, max_side=None):
    """torchvision's VGG19 features read at relu1_1..relu5_1 by torchvision's feature extractor; the formula by hand."""
    from torchvision.models.feature_extraction import create_feature_extractor
    from torchvision.models.vgg import cfgs, make_layers

    vgg = make_layers(cfgs["E"])[:30]
    vgg.load_state_dict(features_state)
    extractor = create_feature_extractor(vgg.eval(), return_nodes={"1": "a", "6": "b", "11": "c", "20": "d", "29": "e"})
    x = to_tensor(image)[None]
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    x = (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    with torch.no_grad():
        feats = extractor(x)
    grams = []
    for f in feats.values():
        c, hw = f.shape[1], f.shape[2] * f.shape[3]
        flat = f[0].reshape(c, hw).double()
        grams.append(flat @ flat.T / hw)
    return grams, [f.shape[2] * f.shape[3] for f in feats.values()]


def test_gram_equals_the_formula_on_torchvision_vgg19():
    a, b = make_image(64, 48, seed=12), make_image(56, 72, seed=13)  # different sizes: Grams are size-free
    m = create("gram", {"weights": "random"})
    got = m.score(a, b)
    state = m.model.state_dict()
    ga, _ = _gram_reference(state, a)
    gb, _ = _gram_reference(state, b)
    per_layer = [float(((x - y) ** 2).mean()) for x, y in zip(ga, gb)]
    layers = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    assert [got[k] for k in layers] == pytest.approx(per_layer, rel=TOL)
    assert got["value"] == pytest.approx(sum(per_layer) / 5, rel=TOL)
    assert m.score(a, a)["value"] == 0.0


def test_gram_relates_to_piq_style_loss():
    """piq.StyleLoss (unnormalised Grams, MSE, summed over layers) = sum_l ours_l * (H_l W_l)^2 on same-size images."""
    piq = pytest.importorskip("piq")
    a, b = _images(48, 40)
    m = create("gram", {"weights": "random"})
    got = m.score(a, b)
    _, positions = _gram_reference(m.model.state_dict(), a)
    vgg = copy.deepcopy(m.model).cpu()
    style = piq.StyleLoss(feature_extractor=vgg, layers=["1", "6", "11", "20", "29"], weights=[1.0] * 5,
                          reduction="none")  # fmt: skip
    with torch.no_grad():
        want = style(to_tensor(a)[None], to_tensor(b)[None]).item()
    ours = sum(got[k] * n**2 for k, n in zip(("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"), positions))
    assert ours == pytest.approx(want, rel=1e-4)


# -- Lab colour -----------------------------------------------------------------------------------------------------


def test_lab_emd_equals_skimage_and_scipy():
    pytest.importorskip("skimage")
    from scipy.stats import wasserstein_distance
    from skimage.color import rgb2lab

    a, b = make_image(64, 48, seed=14), make_image(40, 52, seed=15)
    got = create("lab_emd").score(a, b)
    la, lb = rgb2lab(np.asarray(a)).reshape(-1, 3), rgb2lab(np.asarray(b)).reshape(-1, 3)
    want = [wasserstein_distance(la[:, k], lb[:, k]) for k in range(3)]
    assert [got["L"], got["a"], got["b"]] == pytest.approx(want, abs=TOL)
    assert got["value"] == pytest.approx(np.mean(want), abs=TOL)
    flipped = a.transpose(0)  # the same pixels in another order: no colour difference
    assert create("lab_emd").score(a, flipped)["value"] == pytest.approx(0.0, abs=1e-12)


def test_every_measure_shares_one_store():
    store = FeatureStore()
    a, b = _images()
    m1 = create("lab_emd", store=store)
    m1.score(a, b)
    m1.score(a, b)
    assert store.calls[m1.model_slug] == 2 and store.hits == 2


def test_clip_tag_file_in_the_weights_dir_uses_the_tags_preprocessing(tiny_clip, tmp_path, monkeypatch):
    """A tag's file under ``open_clip-<model>-<tag>.safetensors`` is found offline, and the tag's mean/std
    reach open_clip's transform as they do when open_clip resolves the tag itself."""
    import open_clip
    from safetensors.torch import save_file

    tag_cfg = {"hf_hub": "nobody/tiny-clip/", "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25),
               "interpolation": "bicubic", "resize_mode": "shortest"}  # fmt: skip
    real = open_clip.get_pretrained_cfg
    monkeypatch.setattr(open_clip, "get_pretrained_cfg", lambda m, t: tag_cfg if t == "faketag" else real(m, t))
    monkeypatch.setenv("SPLICE_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("SPLICE_OFFLINE", "1")
    torch.manual_seed(2)
    state = {k: v.contiguous() for k, v in open_clip.create_model(tiny_clip, pretrained=None).state_dict().items()}
    path = tmp_path / f"open_clip-{tiny_clip}-faketag.safetensors"
    save_file(state, str(path))
    m = create("clip", {"model": tiny_clip, "weights": "faketag"})
    assert m.describe()["ready"] is True
    a, b = make_image(80, 64, seed=5), make_image(64, 96, seed=6)
    model, _, preprocess = open_clip.create_model_and_transforms(
        tiny_clip, pretrained=str(path), image_mean=(0.5,) * 3, image_std=(0.25,) * 3
    )
    with torch.no_grad():
        ea = model.eval().encode_image(preprocess(a)[None], normalize=True)
        eb = model.encode_image(preprocess(b)[None], normalize=True)
    assert m.score(a, b)["value"] == pytest.approx((ea @ eb.T).item(), abs=TOL)
    assert m.record_base()["weights"]["model"]["source"] == "tag"
