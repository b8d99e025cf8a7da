r"""The two backends of the Gaunt tensor product: matrices (built once) and forward passes.

Both evaluate the two input functions on a grid, multiply pointwise and
project back; they differ in the grid and in how they get there.

``"grid"``
    Gauss–Legendre nodes :math:`z_i = \cos\theta_i` (:math:`n_\theta`) times
    uniform :math:`\varphi_b = 2\pi b / n_\varphi`. With
    :math:`D = L_1 + L_2 + L_{\text{out}}`, :math:`n_\theta = \lceil (D + 1)
    / 2\rceil` and :math:`n_\varphi = D + 1` make the quadrature exact for
    every product :math:`Y_{l_1 m_1} Y_{l_2 m_2} Y_{l_3 m_3}` it meets, so the
    result is the exact Gaunt product. Per function: harmonics
    :math:`\to (\theta_i, m)` by one small matmul per order :math:`m`
    (:math:`O(L^3)`), :math:`(\theta_i, m) \to (\theta_i, \varphi_b)` by one
    matmul over :math:`m` (:math:`O(L^3)`), and the reverse.

``"fft"`` (Luo et al., 2024)
    The coefficients of the 2-D Fourier series on the torus
    :math:`(\theta, \varphi) \in [0, 2\pi)^2`:
    :math:`Y_{lm}` only has modes :math:`e^{i(u\theta + v\varphi)}` with
    :math:`v = \pm m`, :math:`|u| \le l`, so the conversion is one small
    matmul per :math:`|m|` (:math:`O(L^3)`). The product of two Fourier
    series is the 2-D convolution of their coefficients, done with
    ``torch.fft.irfft2`` / ``rfft2`` on an
    :math:`n_u \times n_\varphi` torus grid, :math:`n_u \ge 2(L_1 + L_2) + 1`
    and :math:`n_\varphi \ge D + 1` (the smallest 2-3-5-smooth sizes), large
    enough that the modes kept are free of aliasing. The projection back
    uses the exact half-period integrals of :func:`theta_projection`.

Layouts: a batch of ``B`` samples is carried as the *last* axis (``[..., C, B]``
with ``C`` channels), so every matmul has the large dimension as its
columns (the FFT backend moves the two grid axes last around ``torch.fft``),
and the forward pass has no Python loop over degrees or orders.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from ._gaunt_basis import (
    coefficient_scale,
    fast_fft_size,
    gauss_legendre,
    legendre,
    theta_fourier,
    theta_projection,
)
from ._gaunt_layout import GauntLayout, gather_index, scatter_index

Tensor = torch.Tensor

__all__ = ["BACKENDS", "backend_arrays", "fft_forward", "fft_sizes", "grid_forward", "grid_sizes"]

BACKENDS = ("fft", "grid")


def grid_sizes(lay: GauntLayout) -> tuple[int, int]:
    """``(n_theta, n_phi)`` of the exact Gauss–Legendre x uniform grid."""
    d = lay.lmax1 + lay.lmax2 + lay.lmax_out
    return (d + 2) // 2, d + 1


def fft_sizes(lay: GauntLayout) -> tuple[int, int]:
    """``(n_u, n_phi)`` of the alias-free torus grid (fast FFT sizes)."""
    d = lay.lmax1 + lay.lmax2
    return fast_fft_size(2 * d + 1), fast_fft_size(d + lay.lmax_out + 1)


def _azimuth(lmax: int, n_phi: int) -> np.ndarray:
    r"""``[n_phi, 2 lmax + 1]`` values :math:`S_m(\varphi_b)`, ``m = -lmax .. lmax``."""
    phi = 2 * math.pi * np.arange(n_phi) / n_phi
    m = np.arange(-lmax, lmax + 1)
    out = np.where(m < 0, math.sqrt(2) * np.sin(-m * phi[:, None]), math.sqrt(2) * np.cos(m * phi[:, None]))
    out[:, lmax] = 1.0
    return out


def _scales(slots, normalization: str, mix_or_combine, lmax: int):
    scale = coefficient_scale(lmax, normalization)  # [lmax + 1]
    return scale, np.array([[row[s.cls] for s in slots] for row in mix_or_combine])


def _grid_arrays(lay: GauntLayout, normalization: str) -> dict[str, np.ndarray]:
    n_theta, n_phi = grid_sizes(lay)
    z, w = gauss_legendre(n_theta)
    top = max(lay.lmax1, lay.lmax2, lay.lmax_out)
    p = legendre(top, z)  # [l, m, n_theta]
    arrays = {}
    for name, slots, mix, lmax in (
        ("1", lay.slots1, lay.mix1, lay.lmax1),
        ("2", lay.slots2, lay.mix2, lay.lmax2),
    ):
        scale, coef = _scales(slots, normalization, mix, top)  # coef [K, J]
        a = np.zeros((2 * lmax + 1, len(mix), n_theta, len(slots)))  # [M, K, n_theta, J]
        for j, s in enumerate(slots):
            for m in range(-s.l, s.l + 1):
                a[m + lmax, :, :, j] = coef[:, j, None] * scale[s.l] * p[s.l, abs(m)][None, :]
        arrays["synth" + name] = a.reshape(2 * lmax + 1, -1, len(slots))  # [M, K n_theta, J]
        arrays["phi" + name] = _azimuth(lmax, n_phi)  # [n_phi, M]
    lo, k = lay.lmax_out, lay.num_products
    scale = coefficient_scale(top, normalization)
    proj = np.zeros((2 * lo + 1, len(lay.slots_out), k, n_theta))  # [M', J3, K, n_theta]
    for j, s in enumerate(lay.slots_out):
        comb = np.array(lay.combine[s.cls])  # [K]
        for m in range(-s.l, s.l + 1):
            proj[m + lo, j] = comb[:, None] * (w * p[s.l, abs(m)])[None, :] / scale[s.l]
    arrays["proj"] = proj.reshape(2 * lo + 1, len(lay.slots_out), -1)  # [M', J3, K n_theta]
    arrays["phi_out"] = _azimuth(lo, n_phi).T * (2 * math.pi / n_phi)  # [M', n_phi]
    return arrays


def _fft_arrays(lay: GauntLayout, normalization: str) -> dict[str, np.ndarray]:
    n_u, _ = fft_sizes(lay)
    top = max(lay.lmax1, lay.lmax2, lay.lmax_out)
    t = theta_fourier(top)  # [l, m, 2 top + 1]
    arrays = {}
    for name, slots, mix, lmax in (
        ("1", lay.slots1, lay.mix1, lay.lmax1),
        ("2", lay.slots2, lay.mix2, lay.lmax2),
    ):
        scale, coef = _scales(slots, normalization, mix, top)  # [K, J]
        n_k, n_j = len(mix), len(slots)
        a = np.zeros((lmax + 1, 2, n_k, n_u, 2, n_j))  # [k, re/im, K, u, s, J]
        for j, s in enumerate(slots):
            for m in range(s.l + 1):
                c = (1.0 if m == 0 else 1 / math.sqrt(2)) * scale[s.l] * coef[:, j]  # [K]
                u = np.arange(-s.l, s.l + 1)
                tt = t[s.l, m, u + top]  # [2l + 1]
                re, im = c[:, None] * tt.real[None], c[:, None] * tt.imag[None]  # [K, 2l + 1]
                a[m, 0, :, u % n_u, 0, j] = re.T
                a[m, 1, :, u % n_u, 0, j] = im.T
                if m > 0:
                    a[m, 0, :, u % n_u, 1, j] = im.T
                    a[m, 1, :, u % n_u, 1, j] = -re.T
        arrays["synth" + name] = a.reshape(lmax + 1, 2 * n_k * n_u, 2 * n_j)  # [k, re/im K u, s J]
    lo, k = lay.lmax_out, lay.num_products
    umax = lay.lmax1 + lay.lmax2
    jj = theta_projection(top, umax)  # [l, m, 2 umax + 1]
    scale = coefficient_scale(top, normalization)
    pos = np.arange(n_u)
    u = np.where(pos <= n_u // 2, pos, pos - n_u)  # signed mode of each FFT bin
    valid = np.abs(u) <= umax
    proj = np.zeros((lo + 1, 2, len(lay.slots_out), 2, k, n_u))  # [k, s, J3, re/im, K, u]
    for j, s in enumerate(lay.slots_out):
        comb = np.array(lay.combine[s.cls]) / scale[s.l]  # [K]
        for m in range(s.l + 1):
            c = 2 * math.pi * (1.0 if m == 0 else math.sqrt(2))
            jm = np.where(valid, jj[s.l, m, np.clip(u, -umax, umax) + umax], 0)  # [u]
            proj[m, 0, j, 0] = c * comb[:, None] * jm.real[None]
            proj[m, 0, j, 1] = -c * comb[:, None] * jm.imag[None]
            if m > 0:
                proj[m, 1, j, 0] = -c * comb[:, None] * jm.imag[None]
                proj[m, 1, j, 1] = -c * comb[:, None] * jm.real[None]
    arrays["proj"] = proj.reshape(lo + 1, 2 * len(lay.slots_out), 2 * k * n_u)  # [k, s J3, re/im K u]
    return arrays


@lru_cache(maxsize=64)
def backend_arrays(lay: GauntLayout, normalization: str, backend: str) -> dict[str, Tensor]:
    """Float64 matrices and integer index tensors of ``backend`` (cached, do not mutate)."""
    if backend == "grid":
        arrays = _grid_arrays(lay, normalization)
        order = "grid"
        idx1 = gather_index(lay.slots1, lay.mul1, lay.lmax1, lay.dim1)  # [M, J, C]
        idx2 = gather_index(lay.slots2, lay.mul2, lay.lmax2, lay.dim2)
    else:
        arrays = _fft_arrays(lay, normalization)
        order = "fft"
        # rows (k, s): s = 0 reads m = +k, s = 1 reads m = -k
        idx1, idx2 = (
            np.stack([g[lm:], g[lm::-1]], axis=1)  # [k, 2, J, C]
            for g, lm in (
                (gather_index(lay.slots1, lay.mul1, lay.lmax1, lay.dim1), lay.lmax1),
                (gather_index(lay.slots2, lay.mul2, lay.lmax2, lay.dim2), lay.lmax2),
            )
        )
    out = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
    out["index1"] = torch.from_numpy(idx1.reshape(-1).astype(np.int64))
    out["index2"] = torch.from_numpy(idx2.reshape(-1).astype(np.int64))
    out["index_out"] = torch.from_numpy(
        scatter_index(lay.slots_out, lay.mul_out, lay.lmax_out, order)
    )
    return out


def _gather(x: Tensor, index: Tensor, rows: int, slots: int, pad: bool) -> Tensor:
    """``x [B, dim]`` -> ``[rows, slots, C B]``: the selected components, samples last.

    With ``pad`` a zero column is appended first (index ``dim``): the channels
    an irrep of smaller multiplicity does not have.
    """
    if pad:
        x = torch.nn.functional.pad(x, (0, 1))  # [B, dim + 1]
    xt = x.T.contiguous()  # [dim, B]
    return xt.index_select(0, index).view(rows, slots, -1)  # [rows, J, C B]


def _product(v1: Tensor, v2: Tensor, lay: GauntLayout, shape1, shape2) -> Tensor:
    """Pointwise product of the operands; broadcast over products and, uvuv, channels."""
    if lay.channelwise:
        return v1.view(shape1) * v2.view(shape2)  # [n, K, g, C, B]
    n1, k1, g1, c1, b = shape1
    n2, k2, g2, c2, _ = shape2
    return v1.view(n1, k1, g1, c1, 1, b) * v2.view(n2, k2, g2, 1, c2, b)  # [n, K, g, C1, C2, B]


def _weigh(y: Tensor, weight: Tensor | None, mul: int) -> Tensor:
    """Scale rows ``[M, J, mul B]`` by ``weight`` ``[mul, J]`` (shared) or ``[B, mul, J]`` (per sample)."""
    if weight is None:
        return y
    m, j, cb = y.shape
    w = weight.T[:, :, None] if weight.ndim == 2 else weight.permute(2, 1, 0)  # [J, mul, B or 1]
    return (y.view(m, j, mul, cb // mul) * w[None]).view(m, j, cb)  # [M, J, C B]


def grid_forward(x1: Tensor, x2: Tensor, mats: dict[str, Tensor], lay: GauntLayout, weights) -> Tensor:
    """Gaunt product on the Gauss–Legendre grid; ``x1 [B, dim1]``, ``x2 [B, dim2]`` -> ``[B, dim_out]``."""
    w1, w2, w_out = weights
    b = x1.shape[0]
    n_theta, n_phi = grid_sizes(lay)
    m1, m2, mo = 2 * lay.lmax1 + 1, 2 * lay.lmax2 + 1, 2 * lay.lmax_out + 1
    k1, k2 = len(lay.mix1), len(lay.mix2)
    x1 = _weigh(_gather(x1, mats["index1"], m1, len(lay.slots1), lay.pad1), w1, lay.mul1)
    x2 = _weigh(_gather(x2, mats["index2"], m2, len(lay.slots2), lay.pad2), w2, lay.mul2)
    # x1: [M1, J1, C1 B], x2: [M2, J2, C2 B]
    g1 = torch.bmm(mats["synth1"], x1)  # [M1, K1 n_theta, C1 B]
    g2 = torch.bmm(mats["synth2"], x2)  # [M2, K2 n_theta, C2 B]
    v1 = mats["phi1"] @ g1.view(m1, -1)  # [n_phi, K1 n_theta C1 B]
    v2 = mats["phi2"] @ g2.view(m2, -1)  # [n_phi, K2 n_theta C2 B]
    h = _product(
        v1, v2, lay, (n_phi, k1, n_theta, lay.mul1, b), (n_phi, k2, n_theta, lay.mul2, b)
    )  # [n_phi, K, n_theta, C, B]
    k = lay.num_products
    g = mats["phi_out"] @ h.reshape(n_phi, -1)  # [M', K n_theta C B]
    y = torch.bmm(mats["proj"], g.view(mo, k * n_theta, -1))  # [M', J3, C B]
    y = _weigh(y, w_out, lay.mul_out)
    return y.view(-1, b).index_select(0, mats["index_out"]).T  # [B, dim_out]


def fft_forward(x1: Tensor, x2: Tensor, mats: dict[str, Tensor], lay: GauntLayout, weights) -> Tensor:
    """Gaunt product by 2-D FFT convolution on the torus; same contract as :func:`grid_forward`."""
    w1, w2, w_out = weights
    b = x1.shape[0]
    n_u, n_phi = fft_sizes(lay)
    k1, k2, k = len(lay.mix1), len(lay.mix2), lay.num_products
    l1, l2, lo = lay.lmax1 + 1, lay.lmax2 + 1, lay.lmax_out + 1
    x1 = _weigh(_gather(x1, mats["index1"], 2 * l1, len(lay.slots1), lay.pad1), w1, lay.mul1)
    x2 = _weigh(_gather(x2, mats["index2"], 2 * l2, len(lay.slots2), lay.pad2), w2, lay.mul2)
    # x1: [2 L1, J1, C1 B], x2: [2 L2, J2, C2 B]
    x1 = x1.view(l1, -1, x1.shape[-1])  # [L1, 2 J1, C1 B]  rows (s, j)
    x2 = x2.view(l2, -1, x2.shape[-1])  # [L2, 2 J2, C2 B]
    f1 = torch.bmm(mats["synth1"], x1)  # [L1, re/im K1 n_u, C1 B]
    f2 = torch.bmm(mats["synth2"], x2)
    z1 = f1.view(l1, 2, k1, n_u, -1).permute(2, 4, 3, 0, 1).contiguous()  # [K1, C1 B, n_u, L1, 2]
    z2 = f2.view(l2, 2, k2, n_u, -1).permute(2, 4, 3, 0, 1).contiguous()  # [K2, C2 B, n_u, L2, 2]
    s = (n_u, n_phi)
    v1 = torch.fft.irfft2(torch.view_as_complex(z1), s=s, norm="forward")  # [K1, C1 B, n_u, n_phi]
    v2 = torch.fft.irfft2(torch.view_as_complex(z2), s=s, norm="forward")
    if lay.channelwise:  # one input may have a single channel, broadcast over the other's
        h = v1.view(k1, lay.mul1, b, n_u, n_phi) * v2.view(k2, lay.mul2, b, n_u, n_phi)
        # h: [K, C, B, n_u, n_phi]
    else:
        h = v1.view(k1, lay.mul1, 1, b, n_u, n_phi) * v2.view(k2, 1, lay.mul2, b, n_u, n_phi)
        # h: [K, C1, C2, B, n_u, n_phi]
    h = h.reshape(k, -1, n_u, n_phi)  # [K, C B, n_u, n_phi]
    hh = torch.view_as_real(torch.fft.rfft2(h, norm="forward")[..., :lo])  # [K, C B, n_u, Lo, 2]
    hr = hh.permute(3, 4, 0, 2, 1).reshape(lo, 2 * k * n_u, -1)  # [Lo, re/im K n_u, C B]
    y = torch.bmm(mats["proj"], hr)  # [Lo, 2 J3, C B]  rows (s, j3)
    y = _weigh(y.view(2 * lo, len(lay.slots_out), -1), w_out, lay.mul_out)  # [2 Lo, J3, C B]
    return y.view(-1, b).index_select(0, mats["index_out"]).T  # [B, dim_out]
