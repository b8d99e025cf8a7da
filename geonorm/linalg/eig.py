r"""One eigendecomposition, many matrix functions, a Daleckii–Krein backward.

Every symmetric matrix function in geonorm goes through
:func:`~geonorm.linalg.apply_spectral`: one ``torch.linalg.eigh`` of the symmetrized input, a
scalar function per requested output, and a backward pass through the Loewner
matrix of divided differences (:mod:`geonorm.linalg.spectral`) instead of
through ``eigh``'s own autograd. ``eigh``'s backward divides by eigenvalue
gaps :math:`1/(\lambda_i - \lambda_j)` and returns ``NaN`` or ``inf`` when two
eigenvalues coincide — as they do for the identity matrix that SPD parameters
are initialised to. The Loewner form replaces that quotient by the derivative
on the diagonal and on coinciding eigenvalues, so it is exact and finite there.

Double backward (``gradgradcheck``, Hessian-vector products) is supported
through the second divided differences; a third derivative raises.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch.autograd.function import once_differentiable

from .._checks import check_floating, check_square, check_sym_and_spectrum, check_sym_matrix
from .._numerics import compute_dtype, spectral_floor
from .spectral import (
    SpectralFunction,
    first_divided_differences,
    second_divided_differences,
)

Tensor = torch.Tensor

__all__ = ["apply_spectral", "sym", "eigh"]


def sym(x: Tensor) -> Tensor:
    r"""Symmetric part :math:`(X + X^\top)/2` of a batch of square matrices."""
    return (x + x.transpose(-1, -2)).mul_(0.5)


def eigh(x: Tensor) -> tuple[Tensor, Tensor]:
    """Eigenvalues (ascending) and eigenvectors of the symmetric part of ``x``.

    No gradient flows through this function; use :func:`~geonorm.linalg.apply_spectral` for
    differentiable matrix functions. Half precision input is decomposed in
    float32 and the result stays in float32, the compute dtype that
    ``apply_spectral(..., eig=...)`` expects.
    """
    with torch.no_grad():
        s, u, _ = _decompose(x.to(compute_dtype(x.dtype)), False)
        return s, u


def _decompose(x: Tensor, asymmetry: bool) -> tuple[Tensor, Tensor, Tensor | None]:
    r"""``torch.linalg.eigh`` of :math:`S = (X + X^\top)/2` and, if asked, :math:`\max(X - X^\top)` (0-d).

    The asymmetry is read from :math:`S` once it is decomposed, in place:
    :math:`S - X = (X^\top - X)/2`, antisymmetric, so its largest entry is
    half the largest absolute entry of :math:`X - X^\top` (NaN propagates).
    No second matrix-sized temporary: at batch sizes where one does not fit
    the allocator's cache, a fresh allocation costs page faults, more than the
    arithmetic. Called only where no graph is recorded (no grad mode, the
    Function's forward, or an input that needs no gradient).
    """
    xs = sym(x)
    s, u = torch.linalg.eigh(xs)
    if not asymmetry:
        return s, u, None
    asym = xs.sub_(x).amax().mul_(2.0) if xs.numel() else xs.new_zeros(())
    return s, u, asym


def eigh_and_asymmetry(x: Tensor) -> tuple[tuple[Tensor, Tensor], Tensor]:
    r""":func:`eigh` of ``x`` and :math:`\max(X - X^\top)`, for a symmetry check to read."""
    with torch.no_grad():
        s, u, asym = _decompose(x.to(compute_dtype(x.dtype)), True)
        return (s, u), asym


def _rebuild(u: Tensor, values: Tensor) -> Tensor:
    """U diag(values) U^T for ``u`` ``[..., n, n]`` and ``values`` ``[..., n]``."""
    return (u * values.unsqueeze(-2)) @ u.transpose(-1, -2)


def _floored(fns: Sequence[SpectralFunction], s: Tensor) -> Tensor:
    """The eigenvalues the positive functions see (``s`` itself when none is positive)."""
    return spectral_floor(s) if any(fn.positive for fn in fns) else s


def _loewners(fns: Sequence[SpectralFunction], s: Tensor, fss: Sequence[Tensor], floored: Tensor | None = None):
    positive = _floored(fns, s) if floored is None else floored
    return [
        first_divided_differences(fn, positive if fn.positive else s, fs)
        for fn, fs in zip(fns, fss)
    ]


class _SpectralForward(torch.autograd.Function):
    """(Y_1, ..., Y_K) with Y_k = U f_k(Λ) Uᵀ for X = sym(x); with ``meta``, (Λ, asymmetry, Y_1, ...).

    The eigenvalues Λ and the asymmetry (0 unless ``checked``) are then
    non-differentiable outputs; the double backward goes through
    _LoewnerAdjoint.
    """

    @staticmethod
    def forward(ctx, x: Tensor, fns: tuple[SpectralFunction, ...], eig, checked: bool, meta: bool):  # type: ignore[override]
        s, asym, *outs = _spectral_values(x, fns, eig, checked, ctx)
        ctx.fns = fns
        ctx.n_meta = 2 if meta else 0
        ctx.set_materialize_grads(False)
        if not meta:  # only the matrix functions: every output of a Function costs time
            return tuple(outs)
        s_out = s if eig is None else s.clone()
        asym = s.new_zeros(()) if asym is None else asym
        ctx.mark_non_differentiable(s_out, asym)
        return (s_out, asym, *outs)

    @staticmethod
    def backward(ctx, *grads: Tensor):  # type: ignore[override]
        grads = grads[ctx.n_meta:]
        x, s, floored, u, *fss = ctx.saved_tensors
        if len(grads) == 1:  # the common case: one function
            if grads[0] is None:
                return None, None, None, None, None
            fns, fs_sel, grads_sel = ctx.fns, fss, grads
        else:
            idx = [i for i, g in enumerate(grads) if g is not None]
            if not idx:
                return None, None, None, None, None
            fns = tuple(ctx.fns[i] for i in idx)
            fs_sel = [fss[i] for i in idx]
            grads_sel = [grads[i] for i in idx]
        if torch.is_grad_enabled():  # create_graph: keep the backward differentiable
            grad_x = _LoewnerAdjoint.apply(x, s, u, fns, fs_sel, *grads_sel)
        else:
            grad_x = _loewner_adjoint(s, u, fns, fs_sel, grads_sel, floored)
        return grad_x, None, None, None, None


def _needs_graph(x: Tensor) -> bool:
    """Whether a call on ``x`` must go through :class:`_SpectralForward` (autograd records it).

    True when autograd would record the call (grad mode and ``x`` requiring a
    gradient) and whenever a forward-mode dual level or a ``torch.func``
    transform is active, where the Function's rules are what keeps repeated
    eigenvalues exact.
    """
    return (
        (x.requires_grad and torch.is_grad_enabled())
        or torch.autograd.forward_ad._current_level >= 0
        or torch._C._are_functorch_transforms_active()
    )


def _spectral_values(x: Tensor, fns: tuple[SpectralFunction, ...], eig, checked: bool, ctx=None):
    """``(Λ, asymmetry or None, U f_1(Λ) Uᵀ, ...)``; with ``ctx``, saved for :class:`_SpectralForward`'s backward.

    Without ``ctx`` this is the whole call when nothing needs a graph: an
    ``autograd.Function`` costs tens of microseconds per call in Python, more
    than the decomposition of a few small matrices, and the statistics of a
    batch norm, its running averages and an optimizer step need no graph.
    """
    if eig is None:
        s, u, asym = _decompose(x, checked)
    else:
        (s, u), asym = eig, None
    floored = _floored(fns, s)
    fss = [fn.f(floored if fn.positive else s) for fn in fns]
    if ctx is not None:
        ctx.save_for_backward(x, s, floored, u, *fss)
    return (s, asym, *(_rebuild(u, fs) for fs in fss))


def _loewner_adjoint(s, u, fns, fss, grads, floored=None) -> Tensor:
    """Σ_k U (L_k ∘ Uᵀ sym(G_k) U) Uᵀ (the Daleckii–Krein adjoint)."""
    ut = u.transpose(-1, -2)
    inner = None
    for lw, g in zip(_loewners(fns, s, fss, floored), grads):
        term = lw * (ut @ sym(g) @ u)  # [..., n, n]
        inner = term if inner is None else inner.add_(term)
    return u @ inner @ ut


class _LoewnerAdjoint(torch.autograd.Function):
    r"""Σ_k U (L_k ∘ Uᵀ sym(G_k) U) Uᵀ, differentiable once more in x and G_k."""

    @staticmethod
    def forward(ctx, x, s, u, fns, fss, *grads):  # type: ignore[override]
        ctx.fns = fns
        ctx.save_for_backward(s, u, *grads)
        return _loewner_adjoint(s, u, fns, fss, grads)

    @staticmethod
    @once_differentiable
    def backward(ctx, h: Tensor):  # type: ignore[override]
        s, u, *grads = ctx.saved_tensors
        fns = ctx.fns
        ut = u.transpose(-1, -2)
        h_rot = ut @ sym(h) @ u  # [..., n, n]
        positive = spectral_floor(s)
        grad_gs = []
        grad_x = None
        for fn, g in zip(fns, grads):
            s_fn = positive if fn.positive else s
            lw = first_divided_differences(fn, s_fn)
            grad_gs.append(u @ (lw * h_rot) @ ut)
            if ctx.needs_input_grad[0]:
                f3 = second_divided_differences(fn, s_fn)  # [..., n, n, n]
                g_rot = ut @ sym(g) @ u
                # T_ab = Σ_c f[a,b,c] (G_ac H_cb + H_ac G_cb)
                t = torch.einsum("...abc,...ac,...cb->...ab", f3, g_rot, h_rot)
                t = t + torch.einsum("...abc,...ac,...cb->...ab", f3, h_rot, g_rot)
                term = u @ t @ ut
                grad_x = term if grad_x is None else grad_x + term
        return (grad_x, None, None, None, None, *grad_gs)


def apply_spectral(
    x: Tensor,
    fns: Sequence[SpectralFunction],
    *,
    check: bool = True,
    return_eigvals: bool = False,
    eig: tuple[Tensor, Tensor] | None = None,
) -> tuple[Tensor, ...]:
    r"""Apply scalar functions to the eigenvalues of symmetric matrices.

    Computes :math:`F_k(X) = U f_k(\Lambda) U^\top` for every ``f_k`` in
    ``fns`` from a single eigendecomposition of :math:`X = U \Lambda U^\top`
    (the symmetric part of ``x`` is used). The backward pass is the
    Daleckii–Krein formula summed over the outputs, exact and finite for
    repeated eigenvalues.

    Parameters
    ----------
    x : Tensor
        ``[..., n, n]`` symmetric matrices (any leading batch dimensions).
    fns : sequence of SpectralFunction
        The scalar functions to apply.
    check : bool
        Validate ``x`` (square, finite, symmetric) and, for functions on
        positive eigenvalues, that every eigenvalue is positive. Internal
        callers that have validated already pass ``False``; eigenvalues are
        then floored at the smallest normal number before a function on
        positive eigenvalues is applied, so the result stays finite.
    return_eigvals : bool
        Also return the eigenvalues ``[..., n]`` (ascending, no gradient) as
        the first element of the tuple.
    eig : tuple of Tensor, optional
        A precomputed ``(eigenvalues, eigenvectors)`` of ``x`` (from
        :func:`eigh`), so several calls on the same matrices share one
        decomposition. It must be in the compute dtype (float32 for half
        inputs) and belong to ``x``: it is not checked.

    Returns
    -------
    tuple of Tensor
        One ``[..., n, n]`` tensor per function, in ``x``'s dtype. Half
        precision inputs are computed in float32 and cast back; inside an
        autocast region the spectral work stays in the compute dtype too.

    Examples
    --------
    >>> from geonorm.linalg.spectral import log_function, power_function
    >>> x = torch.diag(torch.tensor([1.0, 4.0], dtype=torch.float64))
    >>> log_x, sqrt_x = apply_spectral(x, [log_function(), power_function(0.5)])
    >>> torch.diagonal(sqrt_x)
    tensor([1., 2.], dtype=torch.float64)
    """
    if check:
        check_floating(x, "x")
        check_square(x, "x")
    fns = tuple(fns)
    in_dtype = x.dtype
    work = compute_dtype(in_dtype)
    xw = x.to(work) if work != in_dtype else x
    compiling = torch.compiler.is_compiling()
    checked = check and not compiling
    graph = compiling or _needs_graph(x)
    meta = eig is None and (check or return_eigvals)  # the Function must return Λ (and the asymmetry)
    args = (xw, fns, eig, checked, meta) if graph else (xw, fns, eig, checked)
    run = _SpectralForward.apply if graph else _spectral_values
    try:
        if torch.is_autocast_enabled(x.device.type):
            with torch.autocast(x.device.type, enabled=False):  # keep the products in `work`
                res = run(*args)
        else:
            res = run(*args)
    except RuntimeError:  # LAPACK refuses some non-finite input: say why
        if check:
            check_sym_matrix(x, "x")
        raise
    if not graph or meta:
        s, asym, *outs = res
    else:
        s, asym, outs = (None if eig is None else eig[0]), None, list(res)
    if check:  # one host synchronisation for symmetry, finiteness and the spectrum
        positive = [fn.name for fn in fns if fn.positive]
        what = f" for {', '.join(positive)}" if positive else ""
        check_sym_and_spectrum(
            x, s, "x", positive=bool(positive), what=what, asymmetry=asym if eig is None else None
        )
    if work != in_dtype:
        s = None if s is None else s.to(in_dtype)
        outs = [o.to(in_dtype) for o in outs]
    return (s, *outs) if return_eigvals else tuple(outs)
