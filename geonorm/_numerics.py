"""The one home of geonorm's numerical constants.

Every tolerance, floor and threshold used anywhere in geonorm is derived here
from the floating-point format it applies to, so that a reader can find what a
number means in one place. Each function below states what its number is for.

Half-precision formats (``float16``, ``bfloat16``) are never used for
eigendecompositions or other spectral work: :func:`compute_dtype` maps them to
``float32``, and results are cast back to the input's dtype.
"""

from __future__ import annotations

import torch

__all__ = [
    "compute_dtype",
    "eps_for",
    "machine_eps",
    "tiny_for",
    "loewner_rtol",
    "symmetry_rtol",
    "semidefinite_rtol",
    "eigen_gap_rtol",
    "safe_sqrt",
    "spectral_floor",
    "clamp_min_positive",
    "default_tolerances",
    "ball_margin",
    "iteration_tol",
    "cast_constants_rtol",
]

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

# A small positive number per format, used as a *floor for positive
# quantities of unit scale*, such as the smallest squared norm a norm layer
# takes the square root of. (ReEig's default floor is SPDNet's absolute 1e-4
# and the batch norms' variance eps is 1e-5, both independent of the format.) It is at least machine epsilon (just
# above it for the half formats, 1e4 times it for float32 and float64), and
# 1 / eps_for(dtype) is far from overflow in every format.
_EPS = {
    torch.float16: 1e-3,
    torch.bfloat16: 1e-2,
    torch.float32: 1e-6,
    torch.float64: 1e-12,
}


def _check_float_dtype(dtype: torch.dtype) -> torch.dtype:
    if dtype not in _FLOAT_DTYPES:
        raise TypeError(
            f"dtype: expected one of float16, bfloat16, float32, float64, got {dtype}"
        )
    return dtype


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Return the dtype geonorm computes spectral functions in.

    Half formats (``float16`` and ``bfloat16``) have too few bits for an
    eigendecomposition, so they are computed in ``float32`` and cast back.

    >>> compute_dtype(torch.float16)
    torch.float32
    >>> compute_dtype(torch.float64)
    torch.float64
    """
    _check_float_dtype(dtype)
    if dtype in (torch.float16, torch.bfloat16):
        return torch.float32
    return dtype


def eps_for(dtype: torch.dtype) -> float:
    """Floor for positive quantities of unit scale in ``dtype``.

    Used where a positive number (a variance, an eigenvalue, a squared norm)
    must be kept away from zero before dividing by it or taking its log:
    ``1e-3`` (float16), ``1e-2`` (bfloat16), ``1e-6`` (float32), ``1e-12``
    (float64).

    >>> eps_for(torch.float32)
    1e-06
    """
    return _EPS[_check_float_dtype(dtype)]


def machine_eps(dtype: torch.dtype) -> float:
    """Unit roundoff spacing at 1.0 (``torch.finfo(dtype).eps``)."""
    return torch.finfo(_check_float_dtype(dtype)).eps


def tiny_for(dtype: torch.dtype) -> float:
    """Smallest positive normal number of ``dtype`` (``torch.finfo.tiny``)."""
    return torch.finfo(_check_float_dtype(dtype)).tiny


def loewner_rtol(dtype: torch.dtype) -> float:
    r"""Relative eigenvalue gap below which a divided difference uses derivatives.

    For a general scalar function :math:`f` the first divided difference
    :math:`f[a, b] = (f(a) - f(b)) / (a - b)` loses about
    :math:`\epsilon |f| / |a - b|` to cancellation, while replacing it by
    :math:`(f'(a) + f'(b)) / 2` errs by about :math:`|f'''| |a - b|^2 / 12`.
    Switching at a relative gap of :math:`\epsilon^{1/3}` balances the two, so
    both stay near :math:`\epsilon^{2/3}` (about ``4e-11`` in float64). The
    named functions (log, exp, powers) use exact closed forms instead and do
    not need this threshold.
    """
    return machine_eps(compute_dtype(dtype)) ** (1.0 / 3.0)


def symmetry_rtol(dtype: torch.dtype) -> float:
    r"""Relative asymmetry tolerated in an input said to be symmetric.

    A matrix passes when :math:`\max|X - X^\top| \le
    \text{rtol} \cdot \max(\max|X|, 1)`; ``rtol`` is :math:`\sqrt{\epsilon}`
    of the format (about ``3e-4`` for float32, ``1.5e-8`` for float64): far
    above the rounding of products such as :math:`A A^\top`, far below any
    genuine asymmetry.
    """
    return machine_eps(dtype) ** 0.5


def semidefinite_rtol(dtype: torch.dtype) -> float:
    r"""Relative size of a negative eigenvalue tolerated in a semi-definite input.

    A positive semi-definite matrix computed in floating point (a rank-deficient
    covariance, :math:`W X W^\top` with a wide :math:`W`) has eigenvalues that
    rounding moves by about :math:`n \epsilon \lambda_{\max}` (Weyl), so zero
    eigenvalues may come out slightly negative. A matrix is accepted as
    semi-definite when :math:`\lambda_{\min} \ge -\text{rtol} \cdot
    \max_i |\lambda_i|`, with ``rtol`` :math:`= \sqrt{\epsilon}` of the
    format (as :func:`symmetry_rtol`): far above rounding for any practical
    :math:`n`, far below the negative eigenvalues of a genuinely indefinite
    matrix. Half formats are checked in their compute dtype (float32).

    >>> semidefinite_rtol(torch.float64) == symmetry_rtol(torch.float64)
    True
    """
    return machine_eps(compute_dtype(dtype)) ** 0.5


def spectral_floor(s: torch.Tensor) -> torch.Tensor:
    r"""Floor positive-eigenvalue functions apply to the eigenvalues ``s`` ``[..., n]``.

    Returns ``s`` raised to at least :math:`\epsilon \cdot \max_i |s_i|`
    (per matrix) and to the smallest normal number: eigenvalues below the
    rounding level of the matrix carry no information, and flooring them
    there keeps :math:`\log`, inverse powers and their divided differences
    finite when rounding leaves a nominally SPD matrix with a zero or
    slightly negative eigenvalue. Only the unchecked internal paths rely on
    it; checked calls reject non-positive eigenvalues instead.
    """
    level = machine_eps(s.dtype) * s.abs().amax(dim=-1, keepdim=True)
    return torch.maximum(s, torch.clamp(level, min=tiny_for(s.dtype)))


def eigen_gap_rtol(dtype: torch.dtype) -> float:
    r"""Relative eigen-gap below which two eigenvalues count as equal (frames).

    Frame averaging (:mod:`geonorm.o3.frames`) needs eigenvectors of a
    covariance :math:`C`; a computed eigenvector is off by about
    :math:`\epsilon \|C\| / \text{gap}`. Gaps below
    :math:`\sqrt{\epsilon}\,\lambda_{\max}` (about ``1.5e-8`` relative in
    float64, ``3.5e-4`` in float32; half formats use float32's) are treated as
    degenerate, so an eigenvector that is used as a frame axis is never off by
    more than :math:`\sqrt{\epsilon}`. The same relative threshold decides
    when an input vector counts as zero, or as tied for the largest norm, in
    the degenerate frames.

    >>> eigen_gap_rtol(torch.float64) == torch.finfo(torch.float64).eps ** 0.5
    True
    """
    return machine_eps(compute_dtype(dtype)) ** 0.5


def safe_sqrt(x: torch.Tensor, floor: float | None = None) -> torch.Tensor:
    r"""Square root with a finite gradient everywhere.

    Computes :math:`\sqrt{\max(x, \text{floor})}`. The gradient is
    :math:`1 / (2\sqrt{x})` above the floor and zero below it, so a zero input
    (a zero feature vector, a batch of identical matrices) gives a zero
    gradient instead of ``inf``/``NaN``. ``floor`` defaults to
    ``tiny_for(x.dtype)``, which changes no representable result of
    consequence.

    >>> safe_sqrt(torch.tensor([4.0, 0.0]))
    tensor([2.0000e+00, 1.0842e-19])
    """
    if floor is None:
        floor = tiny_for(x.dtype)
    return torch.sqrt(torch.clamp(x, min=floor))


def clamp_min_positive(x: torch.Tensor, floor: float | None = None) -> torch.Tensor:
    """Clamp ``x`` from below at ``floor`` (default ``eps_for(x.dtype)``)."""
    if floor is None:
        floor = eps_for(x.dtype)
    return torch.clamp(x, min=floor)


def default_tolerances(dtype: torch.dtype) -> dict[str, float]:
    """Default ``rtol``/``atol`` for comparing results computed in ``dtype``.

    These are the tolerances the equivariance assertions and the test suite
    use unless told otherwise: loose enough for the rounding of a chain of
    matrix functions, tight enough that a wrong formula fails. ``rtol`` is
    a multiple of the format's machine epsilon: about 840 eps in float32 and
    4.5e6 eps in float64 (room for long chains of matrix functions), 20 eps
    in float16 and 2.6 eps in bfloat16, whose 8-bit significand leaves
    little room. ``atol`` is
    the magnitude below which a value counts as zero (the equivariance checks
    judge an output smaller than ``atol`` per entry relative to ``atol``, so
    the absolute slack is ``rtol * atol``, never ``atol`` itself).

    >>> default_tolerances(torch.float64)
    {'rtol': 1e-09, 'atol': 1e-10}
    """
    table = {
        torch.float16: {"rtol": 2e-2, "atol": 2e-2},
        torch.bfloat16: {"rtol": 2e-2, "atol": 1e-2},
        torch.float32: {"rtol": 1e-4, "atol": 1e-5},
        torch.float64: {"rtol": 1e-9, "atol": 1e-10},
    }
    return dict(table[_check_float_dtype(dtype)])


def ball_margin(dtype: torch.dtype) -> float:
    r"""Relative margin kept between Poincaré-ball points and the boundary.

    Points of the ball of curvature :math:`-c` are kept at
    :math:`\sqrt{c}\,\|x\| \le 1 - m` and the argument of
    :math:`\operatorname{artanh}` at :math:`\le 1 - m`, with
    :math:`m = \sqrt{\epsilon}` of the format (about ``1.5e-8`` for float64,
    ``3.5e-4`` for float32). Near the boundary :math:`1 - c\|x\|^2 \approx 2m`
    is computed from :math:`c\|x\|^2` with relative error about
    :math:`\epsilon / (2m) = \sqrt{\epsilon}/2`, so half the digits of the
    conformal factor :math:`\lambda_x = 2 / (1 - c\|x\|^2) \le 1/m` survive,
    and :math:`\lambda_x` and its gradients stay far from overflow.

    >>> ball_margin(torch.float64) == torch.finfo(torch.float64).eps ** 0.5
    True
    """
    return machine_eps(dtype) ** 0.5


def iteration_tol(dtype: torch.dtype) -> float:
    r"""Default stopping tolerance of geonorm's fixed-point iterations in ``dtype``.

    An iteration stops when its update, measured at unit scale, is below
    :math:`\epsilon^{3/4}` (about ``1.8e-12`` for float64, ``6.4e-6`` for
    float32): far above the rounding noise of one step (a few
    :math:`\epsilon` times the conditioning), and small enough that a
    linearly convergent iteration with rate :math:`\rho` stopped there is
    within :math:`\epsilon^{3/4} \rho / (1 - \rho)` of its limit.

    >>> iteration_tol(torch.float64) < 1e-11
    True
    """
    return machine_eps(dtype) ** 0.75


def cast_constants_rtol(source: torch.dtype) -> float:
    r"""Relative tolerance of a model whose constants were rounded in ``source``.

    A model built in float32 and cast up to float64 keeps the float32 rounding
    of its fixed constants (e3nn's Clebsch–Gordan buffers, a basis stored as
    a buffer): each is off by up to :math:`\epsilon_{\text{source}} / 2`
    relative, which breaks equivariance at that level however exactly the
    rest is computed (about ``1e-8`` for float32 constants). The tolerance is
    :math:`100\,\epsilon_{\text{source}}` (``1.2e-5`` for float32): room for
    the amplification of a deep model, still eight times below a ``1e-4``
    relative symmetry break.

    >>> cast_constants_rtol(torch.float32)
    1.1920928955078125e-05
    """
    return 100.0 * machine_eps(source)
