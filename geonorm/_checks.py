"""Input validation shared by every room of geonorm.

Each check raises a ``TypeError`` (wrong kind of object or dtype) or a
``ValueError`` (wrong shape or value) whose message starts with the argument's
name, then says what was expected and what was received. Checks here are cheap
(a shape test or one reduction); the one that costs a factorization,
:func:`check_spd`, is called only where a caller asked for validation.
"""

from __future__ import annotations

import math

import torch

from ._numerics import semidefinite_rtol, symmetry_rtol

__all__ = [
    "check_int",
    "check_choice",
    "check_real",
    "check_tensor",
    "check_floating",
    "check_square",
    "check_finite",
    "check_symmetric",
    "check_sym_matrix",
    "check_spd",
    "check_dtype_matches",
    "check_positive_spectrum",
    "check_sym_and_spectrum",
]


def check_int(value: object, name: str, *, minimum: int = 1, allow_none: bool = False):
    """Return ``value`` if it is an ``int`` (not a ``bool``) of at least ``minimum``, or
    ``None`` when ``allow_none``; otherwise raise ``ValueError``.

    >>> check_int(0, "lmax", minimum=0)
    0
    >>> check_int(0, "n")
    Traceback (most recent call last):
    ...
    ValueError: n: expected a positive int, got 0
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = {0: "a non-negative int", 1: "a positive int"}.get(minimum, f"an int >= {minimum}")
        raise ValueError(f"{name}: expected {kind}{' or None' if allow_none else ''}, got {value!r}")
    return value


def check_choice(value: object, name: str, allowed) -> str:
    """``value`` if it is one of the strings ``allowed``, else ``ValueError``.

    >>> check_choice("a", "mode", ("a", "b"))
    'a'
    """
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


def check_real(
    value: object,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
) -> float:
    """Return ``value`` as a float if it is a finite real number (not a ``bool``) in range.

    The range is ``[low, high]`` (``(low, high]`` with ``low_open``); a bound
    that is ``None`` is not checked. Raises ``TypeError`` for a non-number and
    ``ValueError`` outside the range.

    >>> check_real(0.1, "momentum", low=0.0, high=1.0, low_open=True)
    0.1
    >>> check_real(True, "eps", low=0.0)
    Traceback (most recent call last):
    ...
    TypeError: eps: expected a real number, got bool
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    ok = math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        lo = "" if low is None else f"{'(' if low_open else '['}{low:g}, "
        hi = "inf)" if high is None else f"{high:g}]"
        where = f" in {lo}{hi}" if lo else ("" if high is None else f" <= {high:g}")
        raise ValueError(f"{name}: expected a finite real number{where}, got {value!r}")
    return float(value)


def check_tensor(x: object, name: str) -> torch.Tensor:
    """Raise ``TypeError`` unless ``x`` is a ``torch.Tensor``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    return x


def check_floating(x: torch.Tensor, name: str) -> torch.Tensor:
    """Raise ``TypeError`` unless ``x`` has a real floating-point dtype."""
    check_tensor(x, name)
    if not x.is_floating_point():
        raise TypeError(
            f"{name}: expected a real floating-point tensor "
            f"(float16, bfloat16, float32 or float64), got dtype {x.dtype}"
        )
    return x


def check_square(x: torch.Tensor, name: str) -> torch.Tensor:
    """Raise ``ValueError`` unless ``x`` has shape ``[..., n, n]`` with n >= 1."""
    check_tensor(x, name)
    if x.ndim < 2 or x.shape[-1] != x.shape[-2] or x.shape[-1] == 0:
        raise ValueError(
            f"{name}: expected a batch of square matrices of shape [..., n, n] "
            f"with n >= 1, got shape {list(x.shape)}"
        )
    return x


def check_finite(x: torch.Tensor, name: str) -> torch.Tensor:
    """Raise ``ValueError`` if ``x`` holds a NaN or an infinity."""
    finite = torch.isfinite(x.detach())
    if not bool(finite.all()):
        n_bad = int((~finite).sum())
        raise ValueError(
            f"{name}: expected finite values, got {n_bad} NaN or infinite "
            f"entr{'y' if n_bad == 1 else 'ies'}"
        )
    return x


def _finite_and_symmetric(x: torch.Tensor, name: str, rtol: float | None) -> None:
    """One pass and one host sync for both checks (non-finite values give NaN maxima)."""
    if rtol is None:
        rtol = symmetry_rtol(x.dtype)
    if x.numel() == 0:
        return
    xd = x.detach()
    stats = torch.stack([(xd - xd.transpose(-1, -2)).abs().amax(), xd.abs().amax()])
    _report_finite_and_symmetric(x, name, rtol, *stats.tolist())


def _report_finite_and_symmetric(x: torch.Tensor, name: str, rtol: float, asym: float, peak: float) -> None:
    """The errors of :func:`_finite_and_symmetric` from its two statistics, read back."""
    if not (math.isfinite(asym) and math.isfinite(peak)):
        check_finite(x, name)
    scale = max(peak, 1.0)
    if asym > rtol * scale:
        raise ValueError(
            f"{name}: expected symmetric matrices (max |X - X^T| <= {rtol:.1e} "
            f"relative), got max |X - X^T| = {asym:.3e} at scale {scale:.3e}"
        )


def check_symmetric(
    x: torch.Tensor, name: str, rtol: float | None = None
) -> torch.Tensor:
    r"""Raise ``ValueError`` unless ``x`` is finite and symmetric up to a relative tolerance.

    The test is :math:`\max|X - X^\top| \le \text{rtol}\cdot\max(\max|X|, 1)`
    over the whole batch, with ``rtol`` defaulting to
    :func:`geonorm._numerics.symmetry_rtol`. Non-finite input raises the
    :func:`check_finite` error.
    """
    _finite_and_symmetric(x, name, rtol)
    return x


def check_sym_matrix(x: object, name: str) -> torch.Tensor:
    """Tensor, floating, square ``[..., n, n]``, finite and symmetric."""
    check_floating(x, name)  # type: ignore[arg-type]
    check_square(x, name)  # type: ignore[arg-type]
    _finite_and_symmetric(x, name, None)  # type: ignore[arg-type]
    return x  # type: ignore[return-value]


def check_spd(x: object, name: str) -> torch.Tensor:
    """Symmetric matrix check plus positive definiteness (one Cholesky).

    Raises ``ValueError`` naming how many matrices of the batch are not
    positive definite.
    """
    check_floating(x, name)  # type: ignore[arg-type]
    check_square(x, name)  # type: ignore[arg-type]
    if x.numel() == 0:  # type: ignore[union-attr]
        return x  # type: ignore[return-value]
    # one host synchronisation for finiteness, symmetry and the factorization's verdict; the
    # factorization reads the lower triangle, which is the symmetric part's once symmetry holds
    xd = x.detach()  # type: ignore[union-attr]
    _, info = torch.linalg.cholesky_ex(xd.float() if xd.dtype in (torch.float16, torch.bfloat16) else xd)
    asym = (xd - xd.transpose(-1, -2)).abs().amax()
    stats = torch.stack([asym, xd.abs().amax(), (info != 0).sum().to(asym.dtype)]).tolist()
    _report_finite_and_symmetric(x, name, symmetry_rtol(xd.dtype), stats[0], stats[1])
    bad = int(stats[2])
    if bad:
        total = max(int(info.numel()), 1)
        raise ValueError(
            f"{name}: expected symmetric positive definite matrices, got {bad} of "
            f"{total} that are not positive definite (Cholesky failed)"
        )
    return x


def check_dtype_matches(x: torch.Tensor, name: str, expected: torch.dtype, owner: str) -> torch.Tensor:
    """Raise ``TypeError`` unless ``x.dtype`` is ``expected`` (the dtype of ``owner``).

    geonorm's layers with floating parameters follow ``torch.nn.Linear``: input
    of another floating dtype is an error, not a silent promotion (convert the
    layer with ``.double()``/``.to(dtype)`` or the input). Under autocast the
    check is skipped: autocast chooses the dtypes of the operations.

    >>> check_dtype_matches(torch.ones(2), "x", torch.float64, "the weight")
    Traceback (most recent call last):
    ...
    TypeError: x: expected dtype torch.float64 (the dtype of the weight), got torch.float32
    """
    if x.dtype != expected and not torch.is_autocast_enabled(x.device.type):
        raise TypeError(f"{name}: expected dtype {expected} (the dtype of {owner}), got {x.dtype}")
    return x


def check_positive_spectrum(
    eigvals: torch.Tensor, name: str, *, semidefinite: bool = False, what: str = ""
) -> torch.Tensor:
    r"""Raise ``ValueError`` unless eigenvalues ``[..., n]`` (ascending) are positive.

    For the spectrum a layer computed anyway (``eigh``), so checking costs one
    reduction and no extra decomposition. ``semidefinite=True`` accepts
    eigenvalues down to :math:`-\text{rtol} \cdot \max_i|\lambda_i|` per
    matrix, with ``rtol`` from :func:`geonorm._numerics.semidefinite_rtol`:
    zero and rounding-level negative eigenvalues of a positive semi-definite
    matrix pass, a genuinely indefinite matrix does not. Non-finite
    eigenvalues raise the :func:`check_finite` error. Under ``torch.compile``
    the check is skipped (it needs a host synchronisation).

    >>> check_positive_spectrum(torch.tensor([[-1.0, 2.0]]), "x")
    Traceback (most recent call last):
    ...
    ValueError: x: expected symmetric positive definite matrices, got 1 of 1 with a non-positive eigenvalue (smallest -1.000e+00)
    """
    if torch.compiler.is_compiling() or eigvals.numel() == 0:
        return eigvals
    s = eigvals.detach()
    smallest = s[..., 0]
    if semidefinite:
        level = -semidefinite_rtol(s.dtype) * s.abs().amax(dim=-1)
        bad = smallest < level
    else:
        bad = smallest <= 0
    stats = torch.stack([bad.sum().to(s.dtype), smallest.min(), s.sum()])
    n_bad, low, total = stats.tolist()
    if not math.isfinite(total):
        check_finite(eigvals, name)
    if n_bad:
        kind = "semi-definite" if semidefinite else "definite"
        sign = "significantly negative" if semidefinite else "non-positive"
        raise ValueError(
            f"{name}: expected symmetric positive {kind} matrices{what}, got {int(n_bad)} of "
            f"{max(smallest.numel(), 1)} with a {sign} eigenvalue (smallest {low:.3e})"
        )
    return eigvals


def check_sym_and_spectrum(
    x: torch.Tensor,
    eigvals: torch.Tensor,
    name: str,
    *,
    positive: bool = True,
    semidefinite: bool = False,
    what: str = "",
    extra: tuple[torch.Tensor, ...] = (),
    asymmetry: torch.Tensor | None = None,
) -> list[float]:
    r""":func:`check_symmetric` of ``x`` and :func:`check_positive_spectrum` of its
    eigenvalues ``[..., n]`` (ascending), with one host synchronisation for both.

    For a layer that has decomposed :math:`(X + X^\top)/2` anyway: the
    asymmetry, the peak, the count of non-positive eigenvalues and the
    smallest eigenvalue are reduced on the device and read back together.
    The messages are those of the two separate checks, in the same order
    (non-finite, then asymmetric, then not positive). ``positive=False``
    checks symmetry only. Under ``torch.compile`` nothing is checked (a host
    synchronisation breaks the graph); shapes are the caller's business.

    The symmetry test is that of :func:`check_symmetric` with the spectral
    norm :math:`\max_i |\lambda_i|` as the scale (no pass over ``x`` for its
    largest entry); ``asymmetry``, :math:`\max (X - X^\top)`, may be passed
    when the caller has formed :math:`X - X^\top` anyway.

    ``extra``: 0-d tensors the caller wants on the host too (statistics for a
    warning), read back in the same synchronisation and returned as floats
    (an empty list when nothing is checked).

    >>> x = torch.diag(torch.tensor([-1.0, 2.0]))
    >>> check_sym_and_spectrum(x, torch.linalg.eigvalsh(x), "x")
    Traceback (most recent call last):
    ...
    ValueError: x: expected symmetric positive definite matrices, got 1 of 1 with a non-positive eigenvalue (smallest -1.000e+00)
    """
    if torch.compiler.is_compiling() or x.numel() == 0:
        return []
    s = eigvals.detach() if eigvals.requires_grad else eigvals
    if asymmetry is None:
        # X - X^T is antisymmetric: its largest entry is its largest absolute entry (NaN propagates)
        xd = x.detach()
        asymmetry = (xd - xd.transpose(-1, -2)).amax()
    # the scale is the spectral norm max |λ| (at least max |X_ij|, at most n times it): the
    # larger of -min λ and max λ over the batch, formed on the host from one aminmax
    smallest = s[..., 0]
    low, high = torch.aminmax(s)
    margin = None
    if semidefinite and positive:
        # per matrix λ_1 >= -rtol max(|λ_1|, |λ_n|), which for rtol < 1 is λ_1 + rtol λ_n >= 0
        # (the eigenvalues ascend); the count is taken only when one fails
        margin = torch.add(smallest, s[..., -1], alpha=semidefinite_rtol(s.dtype))
        crit = margin.min()
    else:
        crit = low
    # one read-back; stack promotes dtypes, and tolist reads tensors with a graph as well
    stats = torch.stack([asymmetry, low, high, crit, *extra]).tolist()
    if not all(map(math.isfinite, stats[:3])):
        check_finite(x, name)
    asym, lowest, peak = stats[0], stats[1], max(stats[2], -stats[1])
    rtol = symmetry_rtol(x.dtype)
    scale = max(peak, 1.0)
    if asym > rtol * scale:
        raise ValueError(
            f"{name}: expected symmetric matrices (max |X - X^T| <= {rtol:.1e} "
            f"relative), got max |X - X^T| = {asym:.3e} at scale {scale:.3e}"
        )
    if positive and (stats[3] < 0 if semidefinite else stats[3] <= 0):
        n_bad = int((margin < 0).sum()) if semidefinite else int((smallest <= 0).sum())
        kind = "semi-definite" if semidefinite else "definite"
        sign = "significantly negative" if semidefinite else "non-positive"
        raise ValueError(
            f"{name}: expected symmetric positive {kind} matrices{what}, got {n_bad} of "
            f"{max(smallest.numel(), 1)} with a {sign} eigenvalue (smallest {lowest:.3e})"
        )
    return stats[len(stats) - len(extra):] if extra else []
