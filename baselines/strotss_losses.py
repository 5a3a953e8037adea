"""The pieces of STROTSS (Kolkin, Salavon, Shakhnarovich, "Style Transfer by Relaxed Optimal
Transport and Self-Similarity", CVPR 2019), as small pure functions.

- Image parametrisation: a Laplacian pyramid (the optimiser updates every band; folding the
  pyramid gives the image), Sec. 2.4 of the paper.
- Hypercolumn sampling: features of many VGG layers read at the same image locations;
  coordinates are halved each time a layer's resolution drops; the output and content
  images are read bilinearly at a strided grid of locations, the style image at random
  pixel locations (nearest).
- Style: the relaxed earth mover's distance (REMD) ``max(mean_i min_j C_ij, mean_j min_i C_ij)``
  with cosine cost (Sec. 2.1), a moment-matching term on means and covariances (Sec. 2.2), and
  a colour-palette REMD on decorrelated RGB with cosine + Euclidean cost.
- Content: self-similarity. Pairwise cosine distances within the output's hypercolumns and
  within the content's, each normalised by its column sums, compared with a mean absolute
  difference (Sec. 2.3).
- Total: ``(a * content + remd + m * (moment + palette / max(a, 1))) / (a + 1 + m)`` with content
  weight ``a`` (16 x the user's weight, halved at every finer scale) and ``m = 1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

#: the decorrelated colour basis the palette term compares colours in (rows: luma, two chroma).
COLOUR_BASIS = (
    (0.577350, 0.577350, 0.577350),
    (-0.577350, 0.788675, -0.211325),
    (-0.577350, -0.211325, 0.788675),
)

_EPS = 1e-8


# -- Laplacian pyramid ----------------------------------------------------------------------------
def strotss_resample(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of a (N, C, H, W) tensor to ``size`` = (H, W) (no antialiasing)."""
    return F.interpolate(x, size=tuple(int(s) for s in size), mode="bilinear", align_corners=False)


def laplacian(x: torch.Tensor) -> torch.Tensor:
    """The finest band: ``x - up(down(x))`` with a factor-2 bilinear down/up sampling."""
    h, w = x.shape[-2:]
    return x - strotss_resample(strotss_resample(x, (max(h // 2, 1), max(w // 2, 1))), (h, w))


def make_laplacian_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """``levels`` band-pass images (finest first) followed by the low-pass residual."""
    bands = []
    current = x
    for _ in range(levels):
        h, w = current.shape[-2:]
        small = strotss_resample(current, (max(h // 2, 1), max(w // 2, 1)))
        bands.append(current - strotss_resample(small, (h, w)))
        current = small
    bands.append(current)
    return bands


def fold_laplacian_pyramid(pyramid: list[torch.Tensor]) -> torch.Tensor:
    """Inverse of :func:`make_laplacian_pyramid` (exact up to float rounding)."""
    current = pyramid[-1]
    for band in reversed(pyramid[:-1]):
        current = band + strotss_resample(current, band.shape[-2:])
    return current


# -- sampling -------------------------------------------------------------------------------------
def grid_locations(
    height: int, width: int, rng: np.random.Generator, cells: int = 128**2
) -> tuple[np.ndarray, np.ndarray]:
    """Row and column candidates for the output/content locations.

    A grid with strides chosen so that about ``cells`` locations remain on large images
    (stride ``floor(sqrt(HW // cells))`` along rows, ``ceil`` along columns, at least 1) and a
    random offset. Returns the row list and the column list of all grid points (same length);
    the optimiser shuffles the two lists independently every step and reads the first N pairs.
    """
    ratio = (height * width) // cells
    stride_r = max(int(math.floor(math.sqrt(ratio))), 1)
    stride_c = max(int(math.ceil(math.sqrt(ratio))), 1)
    rows = np.arange(height)[int(rng.integers(stride_r)) :: stride_r]
    cols = np.arange(width)[int(rng.integers(stride_c)) :: stride_c]
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    return rr.ravel().astype(np.float64), cc.ravel().astype(np.float64)


def random_pixels(height: int, width: int, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``count`` distinct random pixel locations (all pixels when the image is smaller)."""
    flat = rng.permutation(height * width)[: min(count, height * width)]
    return (flat // width).astype(np.float64), (flat % width).astype(np.float64)


def sample_hypercolumns(
    feats: list[torch.Tensor], rows: np.ndarray, cols: np.ndarray, bilinear: bool = True
) -> torch.Tensor:
    """Read every feature map at the given image locations -> (N, sum of channels).

    ``feats[0]`` has the image resolution; whenever a map is smaller than the one before it the
    coordinates are halved. ``bilinear=False`` reads the nearest pixel at or above-left of the
    point (truncation), as the style sampler does.
    """
    r = np.asarray(rows, dtype=np.float64)
    c = np.asarray(cols, dtype=np.float64)
    columns = []
    for i, f in enumerate(feats):
        if i > 0 and f.shape[2] < feats[i - 1].shape[2]:
            r, c = r / 2.0, c / 2.0
        _, ch, h, w = f.shape
        flat = f[0].reshape(ch, h * w)
        if not bilinear:
            ri = np.clip(r, 0, h - 1).astype(np.int64)
            ci = np.clip(c, 0, w - 1).astype(np.int64)
            columns.append(flat[:, torch.from_numpy(ri * w + ci).to(f.device)])
            continue
        r0, c0 = np.floor(r), np.floor(c)
        fr, fc = r - r0, c - c0
        r0i = np.clip(r0, 0, h - 1).astype(np.int64)
        c0i = np.clip(c0, 0, w - 1).astype(np.int64)
        r1i = np.clip(r0 + 1, 0, h - 1).astype(np.int64)
        c1i = np.clip(c0 + 1, 0, w - 1).astype(np.int64)

        def take(ri: np.ndarray, ci: np.ndarray, weight: np.ndarray) -> torch.Tensor:
            idx = torch.from_numpy(ri * w + ci).to(f.device)
            return flat[:, idx] * torch.from_numpy(weight).to(device=f.device, dtype=f.dtype)

        columns.append(
            take(r0i, c0i, (1 - fr) * (1 - fc))
            + take(r0i, c1i, (1 - fr) * fc)
            + take(r1i, c0i, fr * (1 - fc))
            + take(r1i, c1i, fr * fc)
        )
    return torch.cat(columns, 0).t().contiguous()


# -- distances ------------------------------------------------------------------------------------
def cosine_distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(N, D), (M, D) -> (N, M) matrix of ``1 - cos(x_i, y_j)``."""
    xn = x / x.norm(dim=1, keepdim=True).clamp_min(_EPS)
    yn = y / y.norm(dim=1, keepdim=True).clamp_min(_EPS)
    return 1.0 - xn @ yn.t()


def euclidean_distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(N, D), (M, D) -> (N, M) matrix of ``sqrt(clamp(|x_i - y_j|^2, 1e-5, 1e5) / D)``."""
    sq = (x * x).sum(1, keepdim=True) + (y * y).sum(1).unsqueeze(0) - 2.0 * (x @ y.t())
    return torch.sqrt(sq.clamp(1e-5, 1e5) / x.shape[1])


def relaxed_emd(cost: torch.Tensor) -> torch.Tensor:
    """Relaxed EMD of a cost matrix: the larger of the two one-sided nearest-neighbour means."""
    return torch.maximum(cost.min(dim=1).values.mean(), cost.min(dim=0).values.mean())


def to_colour_basis(rgb: torch.Tensor) -> torch.Tensor:
    """(N, 3) colours -> (N, 3) in :data:`COLOUR_BASIS`."""
    basis = torch.tensor(COLOUR_BASIS, dtype=rgb.dtype, device=rgb.device)
    return rgb @ basis.t()


def style_remd(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """REMD between output and style hypercolumns with cosine cost."""
    return relaxed_emd(cosine_distances(x, y))


def palette_remd(x_rgb: torch.Tensor, y_rgb: torch.Tensor) -> torch.Tensor:
    """REMD between colours in the decorrelated basis, cost = cosine + Euclidean distance."""
    xc, yc = to_colour_basis(x_rgb), to_colour_basis(y_rgb)
    return relaxed_emd(cosine_distances(xc, yc) + euclidean_distances(xc, yc))


def feature_moments(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (1, D) and covariance (D, D, divided by N) of the rows of ``y``."""
    mean = y.mean(0, keepdim=True)
    centred = y - mean
    return mean, centred.t() @ centred / y.shape[0]


def moment_loss(x: torch.Tensor, y: torch.Tensor | tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Mean absolute difference of the means plus that of the covariances.

    ``y`` is either the style rows or their precomputed :func:`feature_moments`.
    """
    mx, cov_x = feature_moments(x)
    my, cov_y = feature_moments(y) if isinstance(y, torch.Tensor) else y
    return (mx - my).abs().mean() + (cov_x - cov_y).abs().mean()


@dataclass
class StyleTarget:
    """The style hypercolumns of one scale and what the loss needs of them every step."""

    cols: torch.Tensor
    moments: tuple[torch.Tensor, torch.Tensor]

    @classmethod
    def from_cols(cls, cols: torch.Tensor) -> "StyleTarget":
        return cls(cols=cols, moments=feature_moments(cols))


def self_similarity_loss(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Content loss: compare column-normalised cosine self-distance matrices of output and content."""
    dx = cosine_distances(x, x)
    dc = cosine_distances(c, c)
    dx = dx / dx.sum(0, keepdim=True).clamp_min(_EPS)
    dc = dc / dc.sum(0, keepdim=True).clamp_min(_EPS)
    return (dx - dc).abs().mean() * x.shape[0]


def strotss_loss(
    out_cols: torch.Tensor,
    content_cols: torch.Tensor,
    style: torch.Tensor | StyleTarget,
    content_weight: float,
    moment_weight: float = 1.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The full objective on sampled hypercolumns (rows = locations, first 3 columns = RGB)."""
    if isinstance(style, torch.Tensor):
        style = StyleTarget.from_cols(style)
    content = self_similarity_loss(out_cols, content_cols)
    remd = style_remd(out_cols, style.cols)
    moment = moment_loss(out_cols, style.moments)
    palette = palette_remd(out_cols[:, :3], style.cols[:, :3])
    style = remd + moment_weight * (moment + palette / max(content_weight, 1.0))
    total = (content_weight * content + style) / (content_weight + 1.0 + moment_weight)
    terms = {"content": content, "remd": remd, "moment": moment, "palette": palette}
    parts = {k: float(v.detach()) for k, v in terms.items()}
    return total, parts
