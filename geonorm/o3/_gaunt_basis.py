r"""Float64 building blocks of the Gaunt tensor product: e3nn's real spherical harmonics.

Everything here is computed once in float64 NumPy and cached with
:func:`functools.lru_cache` (keyed by integers), so building many layers of
the same size costs nothing; the cached arrays are read-only. Nothing here is
differentiated or runs in ``forward``.

Convention (e3nn's, checked against ``e3nn.o3.spherical_harmonics`` in the
tests): the polar axis is :math:`y`, a point of the unit sphere is

.. math::

    r(\theta, \varphi) = (\sin\theta \sin\varphi,\; \cos\theta,\;
    \sin\theta \cos\varphi),

and the real spherical harmonic of degree :math:`l` and order
:math:`-l \le m \le l`, orthonormal on the sphere ("integral" normalization), is

.. math::

    Y_{lm}(\theta, \varphi) = \bar P_l^{|m|}(\cos\theta)\, S_m(\varphi), \qquad
    S_m(\varphi) = \begin{cases}
        \sqrt2 \sin(|m|\varphi) & m < 0 \\ 1 & m = 0 \\ \sqrt2 \cos(m\varphi) & m > 0
    \end{cases}

with :math:`\bar P_l^m = \sqrt{\tfrac{2l+1}{4\pi}\tfrac{(l-m)!}{(l+m)!}}\,P_l^m`
the associated Legendre function *without* the Condon–Shortley phase. e3nn's
"component" harmonics are :math:`\sqrt{4\pi}\,Y_{lm}` and its "norm" harmonics
:math:`\sqrt{4\pi/(2l+1)}\,Y_{lm}`.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np

__all__ = [
    "NORMALIZATIONS",
    "coefficient_scale",
    "fast_fft_size",
    "gauss_legendre",
    "legendre",
    "theta_fourier",
    "theta_projection",
]

NORMALIZATIONS = ("component", "integral", "norm")


def coefficient_scale(lmax: int, normalization: str) -> np.ndarray:
    r"""``[lmax + 1]`` factors :math:`s_l` with :math:`x^{\text{integral}}_{lm} = s_l\, x_{lm}`.

    A function :math:`f = \sum_{lm} x_{lm} Y^{N}_{lm}` written with harmonics of
    normalization :math:`N` has integral-normalized coefficients
    :math:`s_l x_{lm}`: :math:`s_l = 1` (``"integral"``), :math:`\sqrt{4\pi}`
    (``"component"``), :math:`\sqrt{4\pi / (2l + 1)}` (``"norm"``).

    >>> coefficient_scale(1, "norm") ** 2 * np.array([1, 3]) / (4 * np.pi)
    array([1., 1.])
    """
    ls = np.arange(lmax + 1, dtype=np.float64)
    if normalization == "integral":
        return np.ones(lmax + 1)
    if normalization == "component":
        return np.full(lmax + 1, math.sqrt(4 * math.pi))
    if normalization == "norm":
        return np.sqrt(4 * math.pi / (2 * ls + 1))
    raise ValueError(
        f"normalization: expected one of {', '.join(map(repr, NORMALIZATIONS))}, "
        f"got {normalization!r}"
    )


def legendre(lmax: int, z: np.ndarray) -> np.ndarray:
    r"""Normalized associated Legendre functions :math:`\bar P_l^m(z)`, ``[lmax+1, lmax+1, *z.shape]``.

    Entry ``[l, m]`` is :math:`\bar P_l^m(z)` for :math:`0 \le m \le l` and zero
    above the diagonal. Computed by the standard three-term recursion on the
    normalized functions (stable, no factorials), in float64.

    >>> p = legendre(1, np.array([1.0]))
    >>> bool(np.isclose(p[1, 0, 0], math.sqrt(3 / (4 * math.pi))))
    True
    """
    z = np.asarray(z, dtype=np.float64)
    s = np.sqrt(np.clip(1.0 - z * z, 0.0, None))
    out = np.zeros((lmax + 1, lmax + 1, *z.shape))
    pmm = np.full(z.shape, math.sqrt(1.0 / (4.0 * math.pi)))
    for m in range(lmax + 1):
        if m > 0:
            pmm = pmm * s * math.sqrt((2 * m + 1) / (2 * m))
        out[m, m] = pmm
        if m + 1 <= lmax:
            out[m + 1, m] = math.sqrt(2 * m + 3) * z * pmm
        for l in range(m + 2, lmax + 1):
            a = math.sqrt((4 * l * l - 1) / (l * l - m * m))
            b = math.sqrt(((l - 1) ** 2 - m * m) / (4 * (l - 1) ** 2 - 1))
            out[l, m] = a * (z * out[l - 1, m] - b * out[l - 2, m])
    return out


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


@cache
def theta_fourier(lmax: int) -> np.ndarray:
    r"""Fourier coefficients of :math:`\bar P_l^m(\cos\theta)` in :math:`\theta`.

    Returns a complex ``[lmax+1 (l), lmax+1 (m), 2 lmax + 1 (u)]`` array ``t``
    with :math:`\bar P_l^m(\cos\theta) = \sum_{u=-l_{\max}}^{l_{\max}}
    t_{l,m,u+l_{\max}} e^{iu\theta}` for all real :math:`\theta` (the
    function extended to the torus). :math:`\bar P_l^m(\cos\theta)` is
    :math:`\sin^m\theta` times a polynomial of degree :math:`l - m` and parity
    :math:`(-1)^{l-m}` in :math:`\cos\theta`, so only :math:`|u| \le l` with
    :math:`u \equiv l \pmod 2` occur: even :math:`m` gives a real cosine
    series, odd :math:`m` a purely imaginary sine series. Computed exactly
    (to rounding) by an FFT of :math:`2 l_{\max} + 2` samples; the entries
    that vanish by this parity rule are set to exact zeros.
    """
    n = 2 * lmax + 2
    theta = 2 * math.pi * np.arange(n) / n
    values = legendre(lmax, np.cos(theta))  # [l, m, n]
    # cos(theta) only fixes sin(theta) up to sign: restore sin^m's sign on (pi, 2 pi).
    sign = np.where(np.sin(theta) < 0, -1.0, 1.0)  # [n]
    values = values * sign[None, None, :] ** np.arange(lmax + 1)[None, :, None]
    coef = np.fft.fft(values, axis=-1) / n  # [l, m, n]
    u = np.arange(-lmax, lmax + 1)
    t = coef[..., u % n]  # [l, m, 2 lmax + 1]
    ls = np.arange(lmax + 1)
    keep = (
        ((ls[:, None, None] + u[None, None, :]) % 2 == 0)
        & (np.abs(u)[None, None, :] <= ls[:, None, None])
        & (ls[None, :, None] <= ls[:, None, None])
        & ~((ls[None, :, None] % 2 == 1) & (u[None, None, :] == 0))  # sine series: no u = 0
    )  # [l, m, u]
    t = np.where(keep, t, 0)
    t = np.where(np.arange(lmax + 1)[None, :, None] % 2 == 0, t.real + 0j, 1j * t.imag)
    return _readonly(t)


def _half_period_integral(k: np.ndarray) -> np.ndarray:
    r""":math:`\int_0^\pi e^{ik\theta} d\theta` for integer ``k``: :math:`\pi`, :math:`2i/k` (odd), 0."""
    k = np.asarray(k)
    out = np.zeros(k.shape, dtype=np.complex128)
    out[k == 0] = math.pi
    odd = k % 2 == 1
    out[odd] = 2j / k[odd]
    return out


@cache
def theta_projection(lmax: int, umax: int) -> np.ndarray:
    r"""Integrals :math:`J_{l,m,u} = \int_0^\pi e^{iu\theta}\,\bar P_l^m(\cos\theta)\sin\theta\,d\theta`.

    Complex ``[lmax+1 (l), lmax+1 (m), 2 umax + 1 (u)]`` for
    :math:`|u| \le u_{\max}`. Exact: :math:`\bar P_l^m(\cos\theta)\sin\theta`
    is a trigonometric polynomial (from :func:`theta_fourier`), and
    :math:`\int_0^\pi e^{ik\theta}d\theta` is :math:`\pi` for :math:`k = 0`,
    :math:`2i/k` for odd :math:`k` and zero otherwise. Used to project a
    function given by its torus Fourier series back onto the harmonics.
    """
    t = theta_fourier(lmax)  # [l, m, 2 lmax + 1]
    # multiply by sin(theta) = (e^{i theta} - e^{-i theta}) / (2i): degree lmax + 1
    ts = np.zeros(t.shape[:2] + (2 * lmax + 3,), dtype=np.complex128)
    ts[..., 2:] += t / 2j
    ts[..., :-2] -= t / 2j
    w = np.arange(-lmax - 1, lmax + 2)  # modes of ts
    u = np.arange(-umax, umax + 1)
    table = _half_period_integral(u[:, None] + w[None, :])  # [u, w]
    j = ts @ table.T  # [l, m, u]
    return _readonly(j)


@cache
def gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    r"""``n`` Gauss–Legendre nodes :math:`z_i \in (-1, 1)` and weights (exact to degree ``2n - 1``)."""
    z, w = np.polynomial.legendre.leggauss(n)
    return _readonly(z), _readonly(w)


def fast_fft_size(n: int) -> int:
    """Smallest integer ``>= n`` whose prime factors are 2, 3 and 5 (fast FFT lengths).

    >>> fast_fft_size(41), fast_fft_size(31)
    (45, 32)
    """
    m = max(int(n), 1)
    while True:
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 1
