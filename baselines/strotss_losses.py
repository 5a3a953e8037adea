"""The pieces of STROTSS (Kolkin, Salavon, Shakhnarovich, "Style Transfer by Relaxed Optimal
Transport and Self-Similarity", CVPR 2019), as the authors' code (nkolkin13/STROTSS at 9a1543a)
computes them, written as small functions.

- Image parametrisation: a 5-level Laplacian pyramid whose bands are the optimised parameters
  (``pyr_lap.py``: ``dec_lap_pyr``/``syn_lap_pyr``, bilinear with ``align_corners=True``, the
  deprecated ``F.upsample_bilinear``). Image resizing, the content's finest band and the
  scale-to-scale upsampling use ``align_corners=False`` (``F.upsample(..., mode='bilinear')``).
- Hypercolumn sampling (``vgg_pt.py: forward_cat``, ``stylize_objectives.py:
  spatial_feature_extract``): features of many VGG layers read at the same image locations;
  coordinates are halved each time a layer's height drops; output and content are read
  bilinearly (clamped edges), the style nearest (truncated coordinates).
- Sampling (``stylize_objectives.py: init_inds, shuffle_feature_inds, get_feature_inds``;
  ``utils.py: load_style_folder``): :class:`StrotssSampler` draws from numpy's legacy
  ``RandomState`` in exactly the official order, so a seed gives the official indices.
- Style: the relaxed earth mover's distance (REMD) ``max(mean_i min_j C_ij, mean_j min_i C_ij)``
  with cosine cost, a moment term on means and covariances, and a colour-palette REMD on raw RGB
  in a decorrelated basis with cosine + Euclidean cost (``contextual_loss.py``).
- Content: self-similarity. Pairwise cosine distances within the output's hypercolumns and
  within the content's, each divided by its column sums, compared with a mean absolute
  difference times the number of locations (``contextual_loss.py: dp_loss``).
- Total: ``(a * content + remd + m * (moment + palette / max(a, 1))) / (a + 1 + m)`` with content
  weight ``a`` (16 x the user's weight, halved at every finer scale) and ``m = 1``.

Deviation kept on purpose: norms and column sums are clamped at 1e-8 (the official code has no
epsilon and gives NaN for an all-zero hypercolumn or a pure-black RGB sample).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

#: the decorrelated colour basis the palette term compares colours in (rows: luma, two chroma;
#: ``utils.py`` calls it "YUV").
COLOUR_BASIS = (
    (0.577350, 0.577350, 0.577350),
    (-0.577350, 0.788675, -0.211325),
    (-0.577350, -0.211325, 0.788675),
)

_EPS = 1e-8

#: iterations between the official code's (dead) grid re-draws, see :class:`StrotssSampler`
REDRAW_EVERY = 10


# -- resizing and the Laplacian pyramid ---------------------------------------------------------------
def strotss_resample(x: torch.Tensor, size: tuple[int, int], align_corners: bool = False) -> torch.Tensor:
    """Bilinear resize of a (N, C, H, W) tensor to ``size`` = (H, W), no antialiasing."""
    return F.interpolate(x, size=tuple(int(s) for s in size), mode="bilinear", align_corners=align_corners)


def laplacian(x: torch.Tensor) -> torch.Tensor:
    """The finest band ``x - up(down(x))``: bilinear to (H//2, W//2) and back, ``align_corners=False``."""
    h, w = x.shape[-2:]
    return x - strotss_resample(strotss_resample(x, (max(h // 2, 1), max(w // 2, 1))), (h, w))


def make_laplacian_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """``levels`` band-pass images (finest first) followed by the low-pass residual (``align_corners=True``)."""
    bands = []
    current = x
    for _ in range(levels):
        h, w = current.shape[-2:]
        small = strotss_resample(current, (max(h // 2, 1), max(w // 2, 1)), align_corners=True)
        bands.append(current - strotss_resample(small, (h, w), align_corners=True))
        current = small
    bands.append(current)
    return bands


def fold_laplacian_pyramid(pyramid: list[torch.Tensor]) -> torch.Tensor:
    """Inverse of :func:`make_laplacian_pyramid` (exact up to float rounding)."""
    current = pyramid[-1]
    for band in reversed(pyramid[:-1]):
        current = band + strotss_resample(current, band.shape[-2:], align_corners=True)
    return current


# -- sampling -------------------------------------------------------------------------------------
def grid_strides(height: int, width: int, cells: int = 128**2) -> tuple[int, int]:
    """Row and column strides of the location grid: ``floor`` and ``ceil`` of ``sqrt(HW // cells)``, at least 1."""
    ratio = (height * width) // cells
    return max(int(math.floor(math.sqrt(ratio))), 1), max(int(math.ceil(math.sqrt(ratio))), 1)


class StrotssSampler:
    """Every random choice of STROTSS, drawn from ``numpy.random.RandomState(seed)`` in the official order.

    The official code draws from numpy's global legacy generator (never seeded); after
    ``np.random.seed(s)`` it makes, per scale (``st_helper.style_transfer``):

    1. ``style_draws`` times: a shuffle of all style pixel coordinates (listed column-major:
       entry k is (k % H, k // H)), of which the first ``style_samples`` are kept
       (``vgg_pt.forward_cat``); the draws are stacked newest first (``utils.load_style_folder``);
    2. the location grid: ``randint(stride_r)``, ``randint(stride_c)`` offsets (``init_inds``);
       the row and the column of every grid point (column-major again) are kept as two lists;
    3. per iteration ``i``: when ``i % 10 == 0`` a grid re-draw (two more ``randint`` calls whose grid
       is appended to a list of which only the first is ever read, so it changes nothing but the
       random stream), then in-place shuffles of the row list, the column list and an unused list of
       style indices (``shuffle_feature_inds``); the first ``n_locations`` rows and columns, paired
       by position, are that iteration's locations (``get_feature_inds``).

    ``randint(1)`` draws no number. With the same seed this class gives the official indices.
    """

    def __init__(self, seed: int) -> None:
        self.random = np.random.RandomState(seed)
        self.rows = np.zeros(0, dtype=np.int64)
        self.cols = np.zeros(0, dtype=np.int64)
        self.strides = (1, 1)
        self._style_order = np.zeros(0, dtype=np.int64)

    def style_pixels(self, height: int, width: int, count: int, draws: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows and columns of the style locations of one scale (``draws`` x ``min(count, HW)``, newest draw first)."""
        picked: list[np.ndarray] = []
        for _ in range(draws):
            self.random.randint(0, 1)  # the official "which style image" choice among one: no draw
            order = np.arange(height * width, dtype=np.int64)
            self.random.shuffle(order)
            picked.insert(0, order[: min(count, height * width)])
        flat = np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)
        self._style_order = np.arange(flat.size, dtype=np.int64)
        return flat % height, flat // height

    def start_scale(self, height: int, width: int, cells: int = 128**2) -> None:
        """Draw the location grid of a scale on the content image's (height, width)."""
        self.strides = grid_strides(height, width, cells)
        rows, cols = self._grid(height, width)
        self.rows, self.cols = rows, cols

    def _grid(self, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        sr, sc = self.strides
        r0, c0 = self.random.randint(sr), self.random.randint(sc)
        rows = np.arange(height, dtype=np.int64)[r0::sr]
        cols = np.arange(width, dtype=np.int64)[c0::sc]
        return np.tile(rows, cols.size), np.repeat(cols, rows.size)

    def step(self, iteration: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        """The locations of ``iteration`` (rows, columns; ``count`` of them, fewer on tiny images)."""
        if iteration % REDRAW_EVERY == 0:
            self.random.randint(self.strides[0])  # the official re-draw, never read
            self.random.randint(self.strides[1])
        self.random.shuffle(self.rows)
        self.random.shuffle(self.cols)
        self.random.shuffle(self._style_order)
        return self.rows[:count].copy(), self.cols[:count].copy()


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
