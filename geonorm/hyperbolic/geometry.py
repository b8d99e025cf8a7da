r"""The Poincaré ball as a :class:`~geonorm.riemannian.Geometry`.

Points are ``[..., d]`` with :math:`c\|x\|^2 < 1` on the ball of curvature
:math:`-c`. The batch-norm steps are gyrovector operations (Ungar 2008;
Ganea et al. 2018):

* centre: the Möbius left translation :math:`(-\mu) \oplus_c x`, which equals
  :math:`\mathrm{Exp}_0(\Gamma_{\mu \to 0}\,\mathrm{Log}_\mu x)` (parallel
  transport of the logarithm at the mean to the origin);
* scale: the geodesic rescaling about the origin, :math:`r \otimes_c x`;
* bias: :math:`b \oplus_c x`, the translation from the origin to ``b``;
* interpolate: :math:`a \oplus_c (t \otimes_c ((-a) \oplus_c b))`.

The mean is the closed-form gyromidpoint (van Spengler, Berkhout & Mettes,
ICCV 2023) or the Fréchet mean (Lou et al., ICML 2020); the dispersion is the
Fréchet variance :math:`\sum_b w_b d_c^2(x_b, \mu)` about that mean.

Curvature: the ``c`` a user passes is the magnitude used. It lives in a
geoopt ``PoincareBall`` (shareable between layers); ``learnable=True`` trains
it through geoopt's positive parametrisation :math:`c = \mathrm{softplus}(u)`,
started at the given ``c`` (so nothing changes at initialisation). Note that
hypll's ``Curvature(v)`` means :math:`c = \mathrm{softplus}(v)` (``v = 1`` is
c ≈ 1.313). As :math:`c \to 0` every step tends to its Euclidean
counterpart, and Poincaré batch norm to Euclidean batch norm with a scalar
(isotropic) variance.
"""

from __future__ import annotations

import geoopt
import torch

from .._checks import check_int
from ..riemannian.protocol import Geometry
from .._numerics import safe_sqrt
from ..riemannian.stats import Reduce, normalise_weights, weighted_sum
from .ball import (
    _add,
    _artanh,
    _c,
    _max_tanh_arg,
    _sqrt,
    check_curvature,
    check_in_ball,
    distance,
    expmap,
    logmap,
    mobius_add,
    mobius_scalar_mul,
    transport,
)
from .means import frechet_mean, frechet_variance, gyromidpoint

Tensor = torch.Tensor

__all__ = ["PoincareBall"]


class PoincareBall(Geometry):
    r"""The Poincaré ball of curvature :math:`-c` (see the module notes).

    Parameters
    ----------
    c : float
        Curvature magnitude (> 0), used as given.
    mean : {"midpoint", "frechet"}
        The batch mean: the gyromidpoint (closed form) or the Fréchet mean
        (iterative, implicit gradient).
    learnable : bool
        Learn the curvature (geoopt's softplus parametrisation, started at ``c``).
    ball : geoopt.PoincareBall, optional
        A ball to share with other layers (then ``c`` and ``learnable`` must
        be left at their defaults; the ball's curvature is used).
    max_iter, tol
        Iteration cap and tolerance of the Fréchet mean (``None``: the
        defaults of :func:`~geonorm.hyperbolic.frechet_mean`).

    Examples
    --------
    >>> g = PoincareBall(c=1.0)
    >>> x = torch.tensor([[0.5, 0.0], [0.0, 0.5]], dtype=torch.float64)
    >>> centred = g.centre(x, g.mean(x))
    >>> g.mean(centred).abs().max() < 1e-15
    tensor(True)
    """

    name = "poincare"
    point_ndim = 1

    def __init__(
        self,
        c: float = 1.0,
        *,
        mean: str = "midpoint",
        learnable: bool = False,
        ball: geoopt.PoincareBall | None = None,
        max_iter: int | None = None,
        tol: float | None = None,
    ) -> None:
        super().__init__()
        if mean not in ("midpoint", "frechet"):
            raise ValueError(f"mean: expected 'midpoint' or 'frechet', got {mean!r}")
        self.mean_kind = mean
        self.max_iter = check_int(max_iter, "max_iter", allow_none=True)
        self.tol = tol
        if ball is not None:
            if not isinstance(ball, geoopt.PoincareBall):
                raise TypeError(f"ball: expected a geoopt.PoincareBall, got {type(ball).__name__}")
            if c != 1.0 or learnable:
                raise ValueError("c, learnable: leave them at their defaults when sharing a ball")
            self.ball = ball
            self._fixed_c = None
        else:
            c = float(check_curvature(c))
            self.ball = geoopt.PoincareBall(c=c, learnable=learnable)
            self._fixed_c = None if learnable else c

    @property
    def c(self) -> float | Tensor:
        """The curvature magnitude: a float, or the (learnable or shared) ball's 0-dim tensor."""
        return self._fixed_c if self._fixed_c is not None else self.ball.c

    @torch.no_grad()
    def reset_curvature(self, c: float) -> None:
        """Set the ball's curvature to ``c`` exactly in its parameter's dtype (inverse softplus)."""
        c = float(check_curvature(c))
        isp = self.ball.isp_c
        value = torch.tensor(c, dtype=torch.float64)
        isp.copy_((value + torch.log(-torch.expm1(-value))).to(isp.dtype))  # log(e^c - 1), stable
        if self._fixed_c is not None:
            self._fixed_c = c

    def extra_repr(self) -> str:
        c = self._fixed_c if self._fixed_c is not None else float(self.ball.c)
        learnable = self.ball.isp_c.requires_grad
        return f"c={c:g}, mean={self.mean_kind!r}, learnable={learnable}"

    # -- points ---------------------------------------------------------------
    def point_shape(self, dim: int) -> tuple[int]:
        return (dim,)

    def origin(self, dim: int, *, dtype=None, device=None) -> Tensor:
        """The centre of the ball, ``[d]``."""
        return torch.zeros(dim, dtype=dtype, device=device)

    def neutral(self, dim: int, *, dtype=None, device=None) -> Tensor:
        """The centre of the ball (the chart is the identity)."""
        return self.origin(dim, dtype=dtype, device=device)

    @property
    def manifold(self) -> geoopt.PoincareBall:
        return self.ball

    def check_point(self, x: Tensor, name: str, *, strict: bool = False) -> Tensor:
        """Finite and strictly inside the ball (one norm), whatever ``strict``."""
        return check_in_ball(x, name, c=self.c)

    # -- statistics -------------------------------------------------------------
    def mean(
        self,
        z: Tensor,
        weights: Tensor | None = None,
        *,
        reduce: Reduce | None = None,
        init: Tensor | None = None,
        steps: int | None = None,
    ) -> Tensor:
        """Gyromidpoint, or Fréchet mean (``steps`` caps its iterations)."""
        if self.mean_kind == "midpoint":
            return gyromidpoint(z, weights, c=self.c, reduce=reduce)
        max_iter = self.max_iter if steps is None else steps
        return frechet_mean(z, weights, c=self.c, init=init, max_iter=max_iter, tol=self.tol, reduce=reduce)

    def variance(
        self,
        z: Tensor,
        mean: Tensor | None = None,
        weights: Tensor | None = None,
        *,
        reduce: Reduce | None = None,
    ) -> Tensor:
        return frechet_variance(z, mean, weights, c=self.c, reduce=reduce)

    # -- the batch-norm steps -----------------------------------------------------
    def normalize(
        self,
        z: Tensor,
        mean: Tensor,
        point: Tensor,
        *,
        target_std: Tensor | None,
        eps: float,
        var: Tensor | None = None,
        detach_var: bool = True,
        reduce: Reduce | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        r"""Centre, rescale and bias in one pass, sharing :math:`\operatorname{artanh}(\sqrt{c}\|z_c\|)`.

        For the centred batch :math:`z_c = (-\mu) \oplus_c z` the distance to the
        origin is :math:`d_c(0, z_c) = (2/\sqrt{c})\,a`, :math:`a =
        \operatorname{artanh}(\sqrt{c}\|z_c\|)`, and the rescaling is
        :math:`r \otimes_c z_c = \tanh(r a)\, z_c / (\sqrt{c}\|z_c\|)`: one norm
        and one artanh give both the Fréchet variance and the rescaled batch
        (the generic composition computes a Möbius addition with the origin
        and the norm twice more). Equals the composition to rounding
        (:func:`geonorm.testing.check_geometry` checks it).
        """
        cc = _c(self.c, z)
        zc = _add(-mean, z, cc)  # centred, [B, *batch, d]
        if target_std is None:
            return _add(point, zc, cc), None
        sc_norm = safe_sqrt(cc * (zc * zc).sum(-1, keepdim=True))  # sqrt(c)|z_c|, [B, *batch, 1]
        at = _artanh(sc_norm)  # sqrt(c) d(0, z_c) / 2
        batch_var = None
        if var is None:
            d = (2.0 / _sqrt(cc)) * (at.detach() if detach_var else at).squeeze(-1)  # d(0, z_c), [B, *batch]
            batch_var = weighted_sum(d * d, normalise_weights(zc, None, point_ndim=1), reduce, 0)
            var = batch_var
        factor = (target_std / torch.sqrt(var + eps)).unsqueeze(-1)  # [*batch, 1]
        limit = _max_tanh_arg(z.dtype)
        scaled = torch.tanh((factor * at).clamp(-limit, limit)) / sc_norm * zc
        return _add(point, scaled, cc), batch_var

    def centre(self, z: Tensor, mean: Tensor) -> Tensor:
        return mobius_add(-mean, z, c=self.c)

    def scale(self, z: Tensor, factor: Tensor) -> Tensor:
        return mobius_scalar_mul(factor, z, c=self.c)  # factor [*batch] broadcasts over B

    def bias(self, z: Tensor, point: Tensor) -> Tensor:
        return mobius_add(point, z, c=self.c)

    def interpolate(self, a: Tensor, b: Tensor, t: float | Tensor) -> Tensor:
        r""":math:`a \oplus_c (t \otimes_c ((-a) \oplus_c b))`."""
        c = self.c
        return mobius_add(a, mobius_scalar_mul(t, mobius_add(-a, b, c=c), c=c), c=c)

    # -- Riemannian maps ----------------------------------------------------------
    def distance(self, x: Tensor, y: Tensor) -> Tensor:
        return distance(x, y, c=self.c)

    def log(self, x: Tensor, y: Tensor) -> Tensor:
        return logmap(x, y, c=self.c)

    def exp(self, x: Tensor, v: Tensor) -> Tensor:
        return expmap(x, v, c=self.c)

    def transport(self, x: Tensor, y: Tensor, v: Tensor) -> Tensor:
        """Parallel transport along the geodesic from ``x`` to ``y``."""
        return transport(x, y, v, c=self.c)
