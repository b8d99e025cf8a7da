r"""Frame sets of point clouds: PCA sign frames, skewness weights, degenerate frames.

A *frame* of a cloud :math:`X` (rows :math:`x_i \in \mathbb R^d`) is an
orthogonal matrix :math:`F` whose columns are axes; the cloud in that frame
is :math:`(X - t) F`. A frame *set* :math:`\mathcal F(X)` is equivariant when
:math:`\mathcal F(X R^\top + t') = R\,\mathcal F(X)` for every group element
:math:`(R, t')`: then averaging any function over the set is exactly
equivariant (Puny et al., *Frame Averaging for Invariant and Equivariant
Network Design*, ICLR 2022).

* :func:`pca_frames`: the eigenvectors :math:`U` of the centred (masked)
  covariance with all :math:`2^d` sign flips :math:`U \operatorname{diag}(s)`
  for O(d), or the :math:`2^{d-1}` flips of determinant :math:`+1` for SO(d).
  Equivariant whenever the eigenvalues are distinct.
* :func:`skewness_weights`: smooth weights of the sign frames from the
  third moment along each axis (the ``frames="weighted"`` option).
* :func:`degenerate_base_frames`: the frame set of one cloud whose covariance
  has (numerically) repeated eigenvalues, built from the inputs themselves;
  see that function for the construction and what it guarantees.

Everything here runs in float64 on detached tensors: frames carry no
gradient (see :class:`~geonorm.o3.frames.FrameAveraging`).
"""

from __future__ import annotations

import itertools

import torch

from .._numerics import eigen_gap_rtol, tiny_for
from ..linalg import eigh

Tensor = torch.Tensor

__all__ = [
    "centred_covariance",
    "degenerate_base_frames",
    "degenerate_clouds",
    "pca_frames",
    "sign_patterns",
    "skewness_weights",
]


def sign_patterns(d: int, *, proper: bool, device=None) -> Tensor:
    r"""All sign vectors :math:`s \in \{\pm 1\}^d` (``[2^d, d]``, float64), or the
    :math:`2^{d-1}` with :math:`\prod_j s_j = +1` when ``proper``.

    >>> sign_patterns(2, proper=True)
    tensor([[-1., -1.],
            [ 1.,  1.]], dtype=torch.float64)
    """
    s = torch.tensor(list(itertools.product((-1.0, 1.0), repeat=d)), dtype=torch.float64)
    if proper:
        s = s[s.prod(-1) > 0]
    return s.to(device)


def centred_covariance(x: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    r"""Masked centroid :math:`c = \sum_i m_i x_i / \sum_i m_i` ``[B, d]`` and
    covariance :math:`C = \sum_i m_i (x_i - c)(x_i - c)^\top / \sum_i m_i` ``[B, d, d]``
    of ``x`` ``[B, N, d]`` (float64, detached).
    """
    x = x.detach().double()
    w = x.new_ones(x.shape[:-1]) if mask is None else mask.to(x.dtype)  # [B, N]
    total = w.sum(-1).clamp_min(1.0)  # [B]
    c = (w.unsqueeze(-1) * x).sum(-2) / total.unsqueeze(-1)  # [B, d]
    xc = (x - c.unsqueeze(-2)) * w.unsqueeze(-1)  # [B, N, d]
    cov = xc.transpose(-1, -2) @ xc / total[:, None, None]  # [B, d, d]
    return c, cov


def pca_frames(
    x: Tensor, mask: Tensor | None = None, *, proper: bool = False
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    r"""PCA sign frames of a batch of clouds ``x`` ``[B, N, d]``.

    Returns ``(frames, centroid, eigenvalues, axes)``: ``frames``
    ``[B, S, d, d]`` are :math:`U \operatorname{diag}(s)` for the sign
    patterns :math:`s` of :func:`sign_patterns` (for SO(d), :math:`U` is
    first made proper by flipping its last column, which leaves the set of
    determinant-one frames unchanged), ``centroid`` ``[B, d]``,
    ``eigenvalues`` ``[B, d]`` ascending and ``axes`` :math:`U` ``[B, d, d]``.
    All float64 and detached; eigenvectors come from :func:`geonorm.linalg.eigh`.

    Examples
    --------
    >>> x = torch.tensor([[[0.0, 0.0], [2.0, 0.0], [0.0, 1.0], [2.0, 1.0]]])
    >>> frames, c, lam, _ = pca_frames(x)
    >>> frames.shape
    torch.Size([1, 4, 2, 2])
    >>> c.tolist(), lam.tolist()
    ([[1.0, 0.5]], [[0.25, 1.0]])
    """
    c, cov = centred_covariance(x, mask)
    lam, u = eigh(cov)  # [B, d], [B, d, d]
    if proper:
        flip = torch.ones_like(lam)
        flip[:, -1] = torch.linalg.det(u).sign()
        u = u * flip.unsqueeze(-2)
    signs = sign_patterns(x.shape[-1], proper=proper, device=x.device)  # [S, d]
    frames = u.unsqueeze(1) * signs[None, :, None, :]  # [B, S, d, d]
    return frames, c, lam, u


def degenerate_clouds(eigenvalues: Tensor, rtol: float | None = None) -> Tensor:
    r"""``[B]`` bool: some gap :math:`\lambda_{j+1} - \lambda_j \le \text{rtol}\,\lambda_{\max}`.

    ``rtol`` defaults to :func:`geonorm._numerics.eigen_gap_rtol` of float64
    (the frames are computed in float64). A cloud with fewer than ``d``
    distinct points, or colinear points in 3-D, has repeated zero
    eigenvalues and is degenerate; coplanar points with distinct in-plane
    eigenvalues are not.
    """
    rtol = eigen_gap_rtol(torch.float64) if rtol is None else rtol
    scale = eigenvalues[:, -1:].abs().clamp_min(tiny_for(torch.float64))  # [B, 1]
    gaps = eigenvalues.diff(dim=-1)  # [B, d - 1]
    return (gaps <= rtol * scale).any(-1)


def _clusters(lam: Tensor, rtol: float) -> list[list[int]]:
    """Indices of runs of eigenvalues closer than ``rtol * max`` (ascending ``lam``)."""
    scale = max(float(lam[-1].abs()), tiny_for(torch.float64))
    out = [[0]]
    for j in range(1, lam.shape[0]):
        if float(lam[j] - lam[j - 1]) <= rtol * scale:
            out[-1].append(j)
        else:
            out.append([j])
    return out


def _complete(basis: Tensor, k: int) -> Tensor:
    """Orthonormal ``[k, k]`` whose first columns are ``basis`` ``[k, m]``."""
    eye = torch.eye(k, dtype=basis.dtype, device=basis.device)
    q, _ = torch.linalg.qr(torch.cat([basis, eye], dim=1))  # [k, k]
    # QR may flip signs of the leading columns; restore them (signs are averaged anyway).
    m = basis.shape[1]
    if m:
        q[:, :m] = basis
    return q[:, :k]


def _subspace_bases(q: Tensor, k: int, rtol: float) -> list[Tensor]:
    r"""Bases ``[k, k]`` of a k-dim eigenspace built from the inputs' coordinates ``q`` ``[M, k]``.

    Level by level: the residuals of the inputs orthogonal to the columns so
    far; those whose norm ties the largest (within ``rtol``) each extend the
    basis by their direction. When every residual vanishes (relative to the
    largest input) or one column is left, the basis is completed arbitrarily.
    """
    scale = float(torch.linalg.vector_norm(q, dim=-1).max()) if q.numel() else 0.0
    partial = [q.new_zeros(k, 0)]
    done: list[Tensor] = []
    while partial:
        nxt = []
        for b in partial:
            if b.shape[1] >= k - 1:
                done.append(_complete(b, k))
                continue
            r = q - (q @ b) @ b.T  # [M, k] residuals orthogonal to b
            norms = torch.linalg.vector_norm(r, dim=-1)  # [M]
            top = float(norms.max()) if norms.numel() else 0.0
            if top <= rtol * scale or scale == 0.0:
                done.append(_complete(b, k))
                continue
            for i in torch.nonzero(norms >= (1 - rtol) * top).flatten().tolist():
                nxt.append(torch.cat([b, (r[i] / norms[i]).unsqueeze(1)], dim=1))
        partial = nxt
    return done


def degenerate_base_frames(
    vectors: Tensor, eigenvalues: Tensor, axes: Tensor, rtol: float | None = None
) -> Tensor:
    r"""Base frames ``[K, d, d]`` of one cloud with repeated covariance eigenvalues.

    The eigenvalues ``[d]`` (ascending) are grouped into clusters closer than
    ``rtol`` (:func:`~geonorm._numerics.eigen_gap_rtol`) times the largest.
    A cluster of one eigenvalue contributes its eigenvector. In the
    eigenspace :math:`V` of a cluster of size :math:`k \ge 2` the axes are not
    determined by the covariance, so they are built from ``vectors``
    ``[M, d]`` — the cloud's centred points and every extra vector input,
    all equivariant: the first axis is the direction of a projection
    :math:`P_V v` of largest norm, the next the direction of a largest
    residual orthogonal to it, and so on; every vector tying for the largest
    norm (to ``rtol``) gives its own frame, so the set does not depend on the
    order or on which of equal candidates is picked. When every residual is
    zero the remaining axes are arbitrary: no input has a component there.
    The returned frames are the products over clusters; the caller applies the
    sign patterns to every one.

    Guarantee: for every group element :math:`g`, the frame set of
    :math:`g \cdot X` is :math:`g` times the frame set of :math:`X` up to
    column signs (and rounding), provided the same clusters, ties and zero
    residuals are detected for both — which fails only when a gap, a norm
    ratio or a residual lies within rounding of its threshold. Where the
    remaining axes were arbitrary, all inputs vanish there, the backbone's
    inputs do not depend on the choice, and averaging over the sign flips of
    those axes makes vector outputs' components there exactly zero — the
    value every equivariant function takes there.

    Examples
    --------
    >>> pts = torch.tensor([[1.0, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0]], dtype=torch.float64)
    >>> lam, u = torch.linalg.eigh(pts.T @ pts / 4)
    >>> degenerate_base_frames(pts, lam, u).shape   # one frame per point (ties)
    torch.Size([4, 3, 3])
    """
    rtol = eigen_gap_rtol(torch.float64) if rtol is None else rtol
    d = axes.shape[-1]
    per_cluster = []
    for idx in _clusters(eigenvalues, rtol):
        v = axes[:, idx]  # [d, k]
        if len(idx) == 1:
            per_cluster.append([v])
            continue
        bases = _subspace_bases(vectors @ v, len(idx), rtol)  # each [k, k]
        per_cluster.append([v @ b for b in bases])  # each [d, k]
    frames = [torch.cat(combo, dim=1) for combo in itertools.product(*per_cluster)]
    return torch.stack(frames).reshape(-1, d, d)  # [K, d, d]


def skewness_weights(
    x: Tensor, centroid: Tensor, axes: Tensor, signs: Tensor, mask: Tensor | None,
    temperature: float,
) -> Tensor:
    r"""Weights ``[B, S]`` of the sign frames from the skewness along each axis.

    With :math:`\kappa_j = \sum_i m_i ((x_i - c)\cdot u_j)^3 / (\sum_i m_i
    \,\lambda_j^{3/2})` (the standardized third moment, odd in the sign of
    :math:`u_j`), frame :math:`U\operatorname{diag}(s)` gets

    .. math::

        w_s \propto \prod_j \sigma(s_j \kappa_j / \tau),

    normalized over the sign set. Flipping an axis flips :math:`\kappa_j`, so
    :math:`w` moves with the frames and the weighted average stays exactly
    equivariant; it is smooth in the input, tends to a single frame (a
    canonicalization) for strongly skewed clouds as :math:`\tau \to 0` and to
    the uniform average as :math:`\tau \to \infty`.
    """
    xd = x.detach().double() - centroid.unsqueeze(-2)  # [B, N, d]
    w = xd.new_ones(xd.shape[:-1]) if mask is None else mask.to(xd.dtype)  # [B, N]
    proj = xd @ axes  # [B, N, d]
    m3 = (w.unsqueeze(-1) * proj**3).sum(-2)  # [B, d]
    m2 = (w.unsqueeze(-1) * proj**2).sum(-2)  # [B, d]
    kappa = m3 * w.sum(-1, keepdim=True).clamp_min(1.0).sqrt() / m2.clamp_min(
        tiny_for(torch.float64)
    ).pow(1.5)  # [B, d]
    logits = torch.nn.functional.logsigmoid(signs[None] * kappa[:, None] / temperature)  # [B, S, d]
    return torch.softmax(logits.sum(-1), dim=-1)  # [B, S]
