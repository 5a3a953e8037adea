"""The Deep-Image-Prior "skip" U-Net that Splice trains on one pair (SPLICE.md, "Generator").

Ulyanov, Vedaldi, Lempitsky, "Deep Image Prior", CVPR 2018; the configuration Splice uses:
5 levels, 16-32-64-128-128 channels down and up, 4 skip channels per level, 3x3
convolutions (1x1 on the skip branch), stride-2 convolutions to go down, bilinear x2 to
go up, zero padding, BatchNorm + LeakyReLU(0.2) after every convolution, an extra 1x1
convolution on the way up, a 1x1 output convolution and a Sigmoid. Skip and deeper
branches are centre-cropped to the smaller size before concatenation, so any H x W works.
BatchNorm is used in training mode (batch statistics) always, also for the final output.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import init


def _conv(cin: int, cout: int, k: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=(k - 1) // 2, bias=True)


def _conv_bn_act(cin: int, cout: int, k: int, stride: int = 1) -> list[nn.Module]:
    return [_conv(cin, cout, k, stride), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True)]


class _SkipConcat(nn.Module):
    """Concatenate the skip branch and the deeper branch, centre-cropped to the smaller size."""

    def __init__(self, skip: nn.Module, deeper: nn.Module):
        super().__init__()
        self.skip = skip
        self.deeper = deeper

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.skip(x), self.deeper(x)
        h, w = min(a.shape[2], b.shape[2]), min(a.shape[3], b.shape[3])
        parts = []
        for t in (a, b):
            dh, dw = (t.shape[2] - h) // 2, (t.shape[3] - w) // 2
            parts.append(t[:, :, dh : dh + h, dw : dw + w])
        return torch.cat(parts, dim=1)


class SkipGenerator(nn.Module):
    """DIP skip network; input and output are RGB images in [0, 1]."""

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        channels_down: tuple[int, ...] = (16, 32, 64, 128, 128),
        channels_up: tuple[int, ...] = (16, 32, 64, 128, 128),
        channels_skip: tuple[int, ...] = (4, 4, 4, 4, 4),
        upsample_mode: str = "bilinear",
    ):
        super().__init__()
        n = len(channels_down)
        self.body = self._level(0, in_channels, channels_down, channels_up, channels_skip, upsample_mode, n)
        self.out = nn.Sequential(_conv(channels_up[0], out_channels, 1), nn.Sigmoid())

    def _level(self, i, cin, down, up, skip, mode, n) -> nn.Sequential:
        deeper: list[nn.Module] = [*_conv_bn_act(cin, down[i], 3, 2), *_conv_bn_act(down[i], down[i], 3)]
        if i < n - 1:
            deeper.append(self._level(i + 1, down[i], down, up, skip, mode, n))
            k = up[i + 1]
        else:
            k = down[i]
        deeper.append(nn.Upsample(scale_factor=2, mode=mode))
        skip_branch = nn.Sequential(*_conv_bn_act(cin, skip[i], 1))
        return nn.Sequential(
            _SkipConcat(skip_branch, nn.Sequential(*deeper)),
            nn.BatchNorm2d(skip[i] + k),
            *_conv_bn_act(skip[i] + k, up[i], 3),
            *_conv_bn_act(up[i], up[i], 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x))


def init_weights(net: nn.Module, gain: float = 0.02) -> nn.Module:
    """Splice's initialisation: Xavier-normal(gain) conv/linear weights, zero biases,
    BatchNorm weight ~ N(1, gain) and bias 0 (applied children first, as ``Module.apply``)."""

    def fn(m: nn.Module) -> None:
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            init.xavier_normal_(m.weight, gain=gain)
            if m.bias is not None:
                init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            init.normal_(m.weight, 1.0, gain)
            init.zeros_(m.bias)

    return net.apply(fn)


def build_generator(seed: int | None = None) -> SkipGenerator:
    """A freshly initialised generator; with ``seed`` the weights depend on it alone."""
    if seed is None:
        return init_weights(SkipGenerator())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return init_weights(SkipGenerator())
