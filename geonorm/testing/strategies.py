r"""Hypothesis strategies for geometric test data (needs ``hypothesis``).

Structure (condition numbers, multiplicities, irreps, determinants) is drawn
by hypothesis, so it shrinks towards simple cases; bulk random numbers
(eigenvectors, features) come from a torch generator seeded by a drawn
integer. Everything is built in float64 and cast to ``dtype`` at the end.

Use with :func:`deterministic_settings` (``derandomize=True``, no
deadline), as the project's tests do:

>>> from hypothesis import given
>>> @deterministic_settings(max_examples=3)
... @given(spd_matrices(3, max_condition=1e8))
... def check(x):
...     assert bool((torch.linalg.eigvalsh(x) > 0).all())
>>> check()
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from e3nn import o3
from hypothesis import settings
from hypothesis import strategies as st

from .actions import GroupAction
from .elements import GroupElement
from .groups import Group, random_orthogonal

Tensor = torch.Tensor

__all__ = [
    "deterministic_settings",
    "seeds",
    "orthogonal_matrices",
    "rotations",
    "spd_matrices",
    "irreps_strings",
    "irreps_features",
    "point_clouds",
    "group_elements",
    "multivectors",
]

_PARITIES = {"both": (1, -1), "even": (1,), "odd": (-1,)}


def deterministic_settings(max_examples: int = 10, **kwargs: Any) -> settings:
    """Hypothesis settings for geonorm tests: derandomized, no deadline, few examples.

    No example database either (``database=None``), so a run does not depend
    on what earlier runs left on disk. ``kwargs`` override or extend these.

    >>> deterministic_settings(5).derandomize, deterministic_settings().deadline
    (True, None)
    """
    options: dict[str, Any] = {"derandomize": True, "deadline": None, "database": None}
    options.update(kwargs)
    return settings(max_examples=max_examples, **options)


def seeds() -> st.SearchStrategy[torch.Generator]:
    """Seeded CPU ``torch.Generator`` s (the seed is drawn, so it shrinks to 0)."""
    return st.integers(0, 2**63 - 1).map(lambda s: torch.Generator().manual_seed(s))


def _size(value: int | st.SearchStrategy[int], name: str) -> st.SearchStrategy[int]:
    if isinstance(value, st.SearchStrategy):
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected a positive int or a strategy, got {value!r}")
    return st.just(value)


def _batch(batch_shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(batch_shape)
    if any(isinstance(b, bool) or not isinstance(b, int) or b < 0 for b in shape):
        raise ValueError(f"batch_shape: expected a tuple of non-negative ints, got {batch_shape!r}")
    return shape


def orthogonal_matrices(
    n: int | st.SearchStrategy[int],
    *,
    proper: bool | None = None,
    dtype: torch.dtype = torch.float64,
) -> st.SearchStrategy[Tensor]:
    """Haar-random ``[n, n]`` orthogonal matrices; ``proper``: det +1, False: −1, None: either.

    >>> from hypothesis import given
    >>> @deterministic_settings(3)
    ... @given(orthogonal_matrices(4, proper=False))
    ... def check(q):
    ...     assert round(float(torch.linalg.det(q))) == -1
    >>> check()
    """
    signs = st.booleans() if proper is None else st.just(bool(proper))

    @st.composite
    def build(draw: st.DrawFn) -> Tensor:
        size = draw(_size(n, "n"))
        return random_orthogonal(size, proper=draw(signs), generator=draw(seeds())).to(dtype)

    return build()


def rotations(
    *, group: str = "so3", dtype: torch.dtype = torch.float64
) -> st.SearchStrategy[Tensor]:
    """``[3, 3]`` rotations: ``group="so3"`` (det +1) or ``"o3"`` (det ±1)."""
    if group not in ("so3", "o3"):
        raise ValueError(f"group: expected 'so3' or 'o3', got {group!r}")
    return orthogonal_matrices(3, proper=True if group == "so3" else None, dtype=dtype)


def spd_matrices(
    n: int | st.SearchStrategy[int] = 3,
    *,
    batch_shape: Sequence[int] = (),
    min_condition: float = 1.0,
    max_condition: float = 1e6,
    repeated_eigenvalues: bool = False,
    scale: float = 1.0,
    dtype: torch.dtype = torch.float64,
) -> st.SearchStrategy[Tensor]:
    r"""SPD matrices ``[*batch_shape, n, n]`` with a controlled condition number.

    :math:`X = Q \operatorname{diag}(\lambda) Q^\top` with Haar-random ``Q``.
    The condition number :math:`\kappa = \lambda_{\max}/\lambda_{\min}` is
    log-uniform in ``[min_condition, max_condition]`` (up to ``1e12``); the
    extreme eigenvalues are :math:`\text{scale}\,\kappa^{\mp 1/2}` and the
    others log-uniform between them. With ``repeated_eigenvalues`` the
    spectrum has fewer than ``n`` distinct values (at least one eigenvalue
    is repeated, exactly; a scalar matrix included when ``n = 2``).

    Condition numbers beyond about ``1e6`` are not SPD in float32 once cast;
    keep ``dtype=torch.float64`` for them.

    >>> from hypothesis import given
    >>> @deterministic_settings(4)
    ... @given(spd_matrices(4, min_condition=1e10, max_condition=1e12))
    ... def check(x):
    ...     ev = torch.linalg.eigvalsh(x)
    ...     assert 0.9e10 < float(ev[-1] / ev[0]) < 1.1e12
    >>> check()
    """
    shape = _batch(batch_shape)
    if not 1.0 <= min_condition <= max_condition <= 1e12:
        raise ValueError(
            "min_condition, max_condition: expected 1 <= min_condition <= max_condition "
            f"<= 1e12, got {min_condition!r}, {max_condition!r}"
        )
    if not scale > 0:
        raise ValueError(f"scale: expected a positive float, got {scale!r}")
    lo, hi = math.log(min_condition), math.log(max_condition)

    @st.composite
    def spectrum(draw: st.DrawFn, size: int) -> list[float]:
        if repeated_eigenvalues:
            if size < 2 or (size == 2 and min_condition > 1.0):
                raise ValueError(
                    f"repeated_eigenvalues: needs n >= 3 (or n = 2 with min_condition = 1), "
                    f"got n = {size}, min_condition = {min_condition}"
                )
            k = draw(st.integers(1 if min_condition == 1.0 else 2, size - 1))
        else:
            k = size
        log_kappa = draw(st.floats(lo, hi)) if k > 1 else 0.0
        inner = draw(st.lists(st.floats(0.0, 1.0), min_size=max(k - 2, 0), max_size=max(k - 2, 0)))
        ts = ([0.0, 1.0] if k > 1 else [0.5]) + inner
        values = [scale * math.exp(log_kappa * (t - 0.5)) for t in ts]  # k distinct levels
        slots = list(range(k)) + draw(
            st.lists(st.integers(0, k - 1), min_size=size - k, max_size=size - k)
        )
        return sorted(values[i] for i in slots)

    @st.composite
    def build(draw: st.DrawFn) -> Tensor:
        size = draw(_size(n, "n"))
        count = math.prod(shape)
        mats = []
        for _ in range(count):
            lam = torch.tensor(draw(spectrum(size)), dtype=torch.float64)  # [n]
            q = random_orthogonal(size, generator=draw(seeds()))  # [n, n]
            x = (q * lam) @ q.T  # [n, n]
            mats.append(0.5 * (x + x.T))
        out = torch.stack(mats) if mats else torch.zeros(0, size, size, dtype=torch.float64)
        return out.reshape(*shape, size, size).to(dtype)  # [*batch, n, n]

    return build()


def irreps_strings(
    *, max_l: int = 2, max_mul: int = 3, max_terms: int = 3, parity: str = "both"
) -> st.SearchStrategy[str]:
    """e3nn irreps strings such as ``"2x0e+1x1o"`` (``parity``: both, even or odd).

    >>> from hypothesis import given
    >>> @deterministic_settings(5)
    ... @given(irreps_strings(max_l=1))
    ... def check(s):
    ...     assert o3.Irreps(s).lmax <= 1
    >>> check()
    """
    if parity not in _PARITIES:
        raise ValueError(f"parity: expected one of {', '.join(_PARITIES)}, got {parity!r}")
    limits = (("max_l", max_l, 0), ("max_mul", max_mul, 1), ("max_terms", max_terms, 1))
    for name, v, least in limits:
        if isinstance(v, bool) or not isinstance(v, int) or v < least:
            raise ValueError(f"{name}: expected an int >= {least}, got {v!r}")
    term = st.tuples(
        st.integers(1, max_mul), st.integers(0, max_l), st.sampled_from(_PARITIES[parity])
    )
    return st.lists(term, min_size=1, max_size=max_terms).map(
        lambda ts: "+".join(f"{m}x{ell}{'e' if p == 1 else 'o'}" for m, ell, p in ts)
    )


def irreps_features(
    irreps: str | o3.Irreps | st.SearchStrategy,
    *,
    batch_shape: Sequence[int] = (4,),
    dtype: torch.dtype = torch.float64,
) -> st.SearchStrategy[Tensor]:
    """Standard Gaussian features ``[*batch_shape, irreps.dim]`` of given (or drawn) irreps.

    >>> from hypothesis import given
    >>> @deterministic_settings(3)
    ... @given(irreps_features("2x0e+1x1o", batch_shape=(5,)))
    ... def check(x):
    ...     assert x.shape == (5, 5)
    >>> check()
    """
    shape = _batch(batch_shape)
    source = irreps if isinstance(irreps, st.SearchStrategy) else st.just(irreps)

    @st.composite
    def build(draw: st.DrawFn) -> Tensor:
        ir = o3.Irreps(draw(source))
        x = torch.randn(*shape, ir.dim, generator=draw(seeds()), dtype=torch.float64)
        return x.to(dtype)

    return build()


def point_clouds(
    n_points: int | st.SearchStrategy[int],
    *,
    batch_shape: Sequence[int] = (),
    dim: int = 3,
    dtype: torch.dtype = torch.float64,
) -> st.SearchStrategy[Tensor]:
    """Standard Gaussian point clouds ``[*batch_shape, n_points, dim]``."""
    shape = _batch(batch_shape)

    @st.composite
    def build(draw: st.DrawFn) -> Tensor:
        size = draw(_size(n_points, "n_points"))
        gen = draw(seeds())
        return torch.randn(*shape, size, dim, generator=gen, dtype=torch.float64).to(dtype)

    return build()


def group_elements(
    group: Group | GroupAction, *, dtype: torch.dtype = torch.float64
) -> st.SearchStrategy[GroupElement]:
    """Random elements of ``group`` (or of an action's group), one per draw.

    >>> from hypothesis import given
    >>> from geonorm.testing import IrrepsAction
    >>> @deterministic_settings(3)
    ... @given(group_elements(IrrepsAction("1o")))
    ... def check(g):
    ...     assert g.rotation.shape == (3, 3)
    >>> check()
    """
    g = group.group if isinstance(group, GroupAction) else group
    if not isinstance(g, Group):
        raise TypeError(f"group: expected a Group or a GroupAction, got {type(group).__name__}")
    return seeds().map(lambda gen: g.sample(1, gen, dtype)[0])


def multivectors(
    algebra: Any,
    batch_shape: Sequence[int] = (),
    *,
    dtype: torch.dtype = torch.float64,
) -> st.SearchStrategy[Tensor]:
    """Multivectors ``[*batch_shape, 2^n]`` of a :class:`~geonorm.clifford.CliffordAlgebra`.

    Each grade is drawn present or absent (so pure grades, vectors and
    zeros occur) and scaled by a drawn factor in [1e-3, 1e3]; coefficients
    are Gaussian.

    >>> from hypothesis import given
    >>> from geonorm.clifford import CliffordAlgebra
    >>> alg = CliffordAlgebra((1, 1, 1))
    >>> @deterministic_settings(3)
    ... @given(multivectors(alg, (2,)))
    ... def check(x):
    ...     assert x.shape == (2, 8)
    >>> check()
    """
    shape = _batch(batch_shape)

    @st.composite
    def build(draw: st.DrawFn) -> Tensor:
        gen = draw(seeds())
        x = torch.randn(*shape, algebra.dim, generator=gen, dtype=torch.float64)
        scale = torch.zeros(algebra.dim, dtype=torch.float64)
        for k, sl in enumerate(algebra.grade_slices()):
            if draw(st.booleans()):
                scale[sl] = 10.0 ** draw(st.floats(-3, 3))
        return (x * scale).to(dtype)

    return build()
