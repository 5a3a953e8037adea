"""Networks and the PatchNCE loss of SinCUT, the single-image mode of CUT ("Contrastive Learning for Unpaired
Image-to-Image Translation", Park, Efros, Zhang, Zhu, ECCV 2020, Sec. 5 / Fig. 9).

Written for this project from the paper and the facts of the official code (taesungp/contrastive-unpaired-
translation, ``--model sincut`` defaults: ``netG=stylegan2``, ``stylegan2_G_num_downsampling=1``, ``ngf=10``,
``netD=stylegan2``, ``ndf=8``, ``netF=mlp_sample``, ``netF_nc=256``); no code is copied. With those settings
the official training log reports G 3.068 M, F 0.281 M and D 5.885 M parameters, which these modules
reproduce (see the tests).

- Equalised-learning-rate layers (weights ~ N(0, 1), scaled by 1/sqrt(fan_in) at run time), "fused" leaky
  ReLU (bias, slope 0.2, gain sqrt(2)), blur with the [1, 3, 3, 1] binomial filter around every resampling.
- Generator: an encoder [identity, 1x1 conv, ``n_down`` down-sampling residual blocks, ``n_blocks/2``
  residual blocks] and a decoder [``n_blocks/2`` residual blocks, ``n_down`` up-sampling 3x3 convs with
  weight demodulation and per-pixel noise injection, 1x1 conv to RGB followed by the fused leaky ReLU].
  Channel widths come from a StyleGAN2-style table of the crop resolution scaled by ngf/32. PatchNCE reads
  the encoder's layers (``nce_layers`` 0, 2, 4: the input pixels, the down-sampled features, the second
  residual block).
- Discriminator: StyleGAN2 residual discriminator for ``crop_size`` inputs (1x1 conv, residual blocks
  halving the resolution down to 4x4, 3x3 conv, two linear layers); table scaled by ndf/64, capped at 384.
- Projection head F: per NCE layer a 2-layer MLP (C -> 256 -> 256, ReLU) applied to sampled locations,
  then L2 normalisation; Xavier-normal init with gain 0.02, zero bias.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

BLUR = (1.0, 3.0, 3.0, 1.0)


def _kernel2d(taps=BLUR) -> torch.Tensor:
    k = torch.tensor(taps, dtype=torch.float32)
    k = k[:, None] * k[None, :]
    return k / k.sum()


def upfirdn(x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1, pad: tuple[int, int] = (0, 0)):
    """Zero-insertion up-sampling by ``up``, padding (negative = crop), depthwise FIR filter, ``down`` stride."""
    b, c, h, w = x.shape
    if up > 1:
        z = x.new_zeros(b, c, h * up, w * up)
        z[:, :, ::up, ::up] = x
        x = z
    p0, p1 = pad
    x = F.pad(x, [max(p0, 0), max(p1, 0), max(p0, 0), max(p1, 0)])
    x = x[:, :, max(-p0, 0): x.shape[2] - max(-p1, 0), max(-p0, 0): x.shape[3] - max(-p1, 0)]
    k = torch.flip(kernel, [0, 1]).to(x)[None, None].expand(c, 1, *kernel.shape)
    x = F.conv2d(x, k, groups=c)
    return x[:, :, ::down, ::down]


class Blur(nn.Module):
    def __init__(self, pad: tuple[int, int], gain: float = 1.0):
        super().__init__()
        self.register_buffer("kernel", _kernel2d() * gain)
        self.pad = pad

    def forward(self, x):
        return upfirdn(x, self.kernel, pad=self.pad)


class FusedLeakyReLU(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x):
        return F.leaky_relu(x + self.bias, 0.2) * math.sqrt(2)


class ScaledLeakyReLU(nn.Module):
    def forward(self, x):
        return F.leaky_relu(x, 0.2) * math.sqrt(2)


class EqualConv2d(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, kernel, kernel))
        self.scale = 1.0 / math.sqrt(cin * kernel * kernel)
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.stride, self.padding = stride, padding

    def forward(self, x):
        return F.conv2d(x, self.weight * self.scale, self.bias, stride=self.stride, padding=self.padding)


class EqualLinear(nn.Module):
    def __init__(self, din: int, dout: int, activate: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(dout, din))
        self.bias = nn.Parameter(torch.zeros(dout))
        self.scale = 1.0 / math.sqrt(din)
        self.activate = activate

    def forward(self, x):
        if self.activate:
            return F.leaky_relu(F.linear(x, self.weight * self.scale) + self.bias, 0.2) * math.sqrt(2)
        return F.linear(x, self.weight * self.scale, self.bias)


class ConvLayer(nn.Sequential):
    """[blur] -> equalised conv (stride 2 when down-sampling) -> [fused or scaled leaky ReLU]."""

    def __init__(self, cin: int, cout: int, kernel: int, downsample: bool = False, bias: bool = True,
                 activate: bool = True):
        layers: list[nn.Module] = []
        if downsample:
            p = (len(BLUR) - 2) + (kernel - 1)
            layers.append(Blur(((p + 1) // 2, p // 2)))
            layers.append(EqualConv2d(cin, cout, kernel, stride=2, padding=0, bias=bias and not activate))
        else:
            layers.append(EqualConv2d(cin, cout, kernel, stride=1, padding=kernel // 2, bias=bias and not activate))
        if activate:
            layers.append(FusedLeakyReLU(cout) if bias else ScaledLeakyReLU())
        super().__init__(*layers)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, downsample: bool):
        super().__init__()
        self.conv1 = ConvLayer(cin, cin, 3)
        self.conv2 = ConvLayer(cin, cout, 3, downsample=downsample)
        self.skip = (ConvLayer(cin, cout, 1, downsample=downsample, bias=False, activate=False)
                     if cin != cout or downsample else nn.Identity())

    def forward(self, x):
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2)


class UpConv(nn.Module):
    """3x3 transposed conv (stride 2) with weight demodulation, blur, noise injection, fused leaky ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int = 3):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, kernel, kernel))
        self.scale = 1.0 / math.sqrt(cin * kernel * kernel)
        p = (len(BLUR) - 2) - (kernel - 1)
        self.blur = Blur(((p + 1) // 2 + 1, p // 2 + 1), gain=4.0)
        self.noise_weight = nn.Parameter(torch.zeros(1))
        self.act = FusedLeakyReLU(cout)

    def forward(self, x):
        w = self.weight * self.scale
        w = w * torch.rsqrt(w.pow(2).sum(dim=(1, 2, 3), keepdim=True) + 1e-8)  # demodulate per output channel
        out = F.conv_transpose2d(x, w.transpose(0, 1), stride=2, padding=0)
        out = self.blur(out)
        noise = torch.randn(out.shape[0], 1, out.shape[2], out.shape[3], device=out.device, dtype=out.dtype)
        return self.act(out + self.noise_weight * noise)


def g_channels(ngf: int) -> dict[int, int]:
    m = ngf / 32
    table = {4: 4096, 8: 2048, 16: 1024, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}
    return {r: (min(512, int(round(v * m))) if r <= 32 else int(round(v * m))) for r, v in table.items()}


def d_channels(ndf: int) -> dict[int, int]:
    m = ndf / 64
    table = {4: 4096, 8: 2048, 16: 1024, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}
    return {r: (min(384, int(v * m)) if r <= 32 else int(v * m)) for r, v in table.items()}


def table_resolution(crop_size: int) -> int:
    """The power of two nearest to the crop size, which picks the widths (64 for SinCUT)."""
    return 2 ** int(round(math.log2(crop_size)))


class SinCUTGenerator(nn.Module):
    def __init__(self, ngf: int = 10, n_blocks: int = 6, n_down: int = 1, crop_size: int = 64):
        super().__init__()
        ch = g_channels(ngf)
        res = table_resolution(crop_size)
        enc: list[nn.Module] = [nn.Identity(), ConvLayer(3, ch[res], 1)]
        for _ in range(n_down):
            enc.append(ResBlock(ch[res], ch[res // 2], downsample=True))
            res //= 2
        enc += [ResBlock(ch[res], ch[res], downsample=False) for _ in range(n_blocks // 2)]
        dec: list[nn.Module] = [ResBlock(ch[res], ch[res], downsample=False) for _ in range(n_blocks // 2)]
        for _ in range(n_down):
            dec.append(UpConv(ch[res], ch[res * 2]))
            res *= 2
        dec.append(ConvLayer(ch[res], 3, 1))
        self.encoder = nn.Sequential(*enc)
        self.decoder = nn.Sequential(*dec)

    @property
    def n_encoder_layers(self) -> int:
        return len(self.encoder)

    def encode(self, x, layers: tuple[int, ...]) -> list[torch.Tensor]:
        feats = []
        for i, layer in enumerate(self.encoder):
            x = layer(x)
            if i in layers:
                feats.append(x)
            if i >= max(layers):
                break
        return feats

    def forward(self, x):
        return self.decoder(self.encoder(x))


class SinCUTDiscriminator(nn.Module):
    def __init__(self, ndf: int = 8, crop_size: int = 64):
        super().__init__()
        ch = d_channels(ndf)
        size = table_resolution(crop_size)
        if size != crop_size or size < 8:
            raise ValueError(f"the discriminator needs a power-of-two crop size >= 8, got {crop_size}")
        convs: list[nn.Module] = [ConvLayer(3, ch[size], 1)]
        cin = ch[size]
        for i in range(int(math.log2(size)), 2, -1):
            convs.append(ResBlock(cin, ch[2 ** (i - 1)], downsample=True))
            cin = ch[2 ** (i - 1)]
        self.convs = nn.Sequential(*convs)
        self.final_conv = ConvLayer(cin, ch[4], 3)
        self.final_linear = nn.Sequential(EqualLinear(ch[4] * 16, ch[4], activate=True), EqualLinear(ch[4], 1))

    def forward(self, x):
        out = self.final_conv(self.convs(x))
        return self.final_linear(out.flatten(1))


class PatchSampleMLP(nn.Module):
    """Samples the same locations from every feature map, projects them with a per-layer MLP, L2-normalises."""

    def __init__(self, in_channels: list[int], nc: int = 256, init_gain: float = 0.02):
        super().__init__()
        self.mlps = nn.ModuleList(nn.Sequential(nn.Linear(c, nc), nn.ReLU(), nn.Linear(nc, nc)) for c in in_channels)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight, gain=init_gain)
                nn.init.zeros_(m.bias)

    def forward(self, feats: list[torch.Tensor], num_patches: int, patch_ids: list[torch.Tensor] | None = None):
        out, ids = [], []
        for i, feat in enumerate(feats):
            flat = feat.permute(0, 2, 3, 1).flatten(1, 2)  # (B, H*W, C)
            if patch_ids is None:
                idx = torch.randperm(flat.shape[1], device=feat.device)[: min(num_patches, flat.shape[1])]
            else:
                idx = patch_ids[i]
            x = self.mlps[i](flat[:, idx, :].flatten(0, 1))
            out.append(x / (x.norm(p=2, dim=1, keepdim=True) + 1e-7))
            ids.append(idx)
        return out, ids


def patch_nce_loss(feat_q: torch.Tensor, feat_k: torch.Tensor, temperature: float = 0.07,
                   negatives_groups: int = 1) -> torch.Tensor:
    """PatchNCE (the paper's Eq. 2-3) for N query/key vectors (N, D); one loss per query.

    The positive of query i is key i; the negatives are the other keys of its group (``negatives_groups=1``:
    all N keys, as SinCUT uses, where the batch holds crops of one image). Logits are cosine similarities /
    temperature with the self-pair of the negatives replaced by -10 (before dividing); cross-entropy with the
    positive as class 0. Keys get no gradient.
    """
    n, dim = feat_q.shape
    feat_k = feat_k.detach()
    l_pos = (feat_q * feat_k).sum(dim=1, keepdim=True)
    q = feat_q.reshape(negatives_groups, -1, dim)
    k = feat_k.reshape(negatives_groups, -1, dim)
    per = q.shape[1]
    l_neg = torch.bmm(q, k.transpose(1, 2))
    eye = torch.eye(per, dtype=torch.bool, device=feat_q.device)[None]
    l_neg = l_neg.masked_fill(eye, -10.0).reshape(-1, per)
    logits = torch.cat([l_pos, l_neg], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(n, dtype=torch.long, device=feat_q.device), reduction="none")


def nonsaturating_loss(pred: torch.Tensor, real: bool) -> torch.Tensor:
    """softplus(-D) for real targets, softplus(D) for fake ones, averaged per sample then over the batch."""
    x = F.softplus(-pred if real else pred)
    return x.flatten(1).mean(dim=1).mean()


def r1_penalty(pred_real: torch.Tensor, real: torch.Tensor, weight: float) -> torch.Tensor:
    """weight/2 * E[ ||grad_x D(x)||^2 ] on real samples (``real`` must require grad)."""
    (grad,) = torch.autograd.grad(pred_real.sum(), real, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean() * (weight * 0.5)
