r"""The geometry protocol's contract as executable checks: :func:`check_geometry`.

A :class:`~geonorm.riemannian.Geometry` that passes runs correctly inside
:class:`~geonorm.riemannian.RiemannianBatchNorm`: after ``centre`` the batch
mean is :meth:`~geonorm.riemannian.Geometry.neutral`; ``scale`` sets the
dispersion; the fused ``normalize`` equals the composition of the steps, and
``normalize_and_decode`` its decoding; ``encode_many`` equals one call per point;
``bias`` moves the mean to the bias point; ``interpolate`` hits both end
points; ``exp`` inverts ``log`` at any base point and ``transport`` carries
``log_x(y)`` to ``-log_y(x)``; statistics with a ``reduce`` that sums over two
ranks equal the pooled statistics. Every geometry's tests run it, and a user
adding a geometry runs it too.
"""

from __future__ import annotations

import contextlib
import threading

import torch

from .._numerics import machine_eps

Tensor = torch.Tensor

__all__ = ["check_geometry"]


def _close(name: str, got: Tensor, want: Tensor, tol: float) -> None:
    got, want = got.detach(), want.detach()
    err = float((got - want).abs().max())
    scale = max(float(want.abs().max()), 1.0)
    if not err <= tol * scale:
        raise AssertionError(f"check_geometry: {name}: max error {err:.3e} > {tol:.1e} (scale {scale:.3g})")


def _two_rank_reduce():
    """A ``reduce`` per simulated rank that sums the two ranks' values, in lockstep threads."""
    barrier = threading.Barrier(2)
    slots: list[Tensor | None] = [None, None]

    def make(rank: int):
        def reduce(t: Tensor) -> Tensor:
            slots[rank] = t
            barrier.wait()
            total = slots[0] + slots[1]
            barrier.wait()  # both have read before the next call overwrites
            return total

        return reduce

    return make(0), make(1), barrier


def _run_two_ranks(fn, halves):
    """``fn(half, reduce)`` on two threads joined by a summing ``reduce``; both results."""
    *reduces, barrier = _two_rank_reduce()
    out: list = [None, None]
    errors: list = []

    def work(rank: int) -> None:
        try:
            out[rank] = fn(halves[rank], reduces[rank])
        except threading.BrokenBarrierError:
            pass  # the other rank failed; its error is re-raised below
        except BaseException as exc:  # re-raised in the caller
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=work, args=(r,)) for r in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    if errors:
        raise errors[0]
    return out


def check_geometry(
    geometry,
    points: Tensor,
    *,
    dim: int,
    tangent: Tensor | None = None,
    steps: int = 200,
    tol: float | None = None,
    scale_keeps_mean: bool = True,
) -> None:
    r"""Check a geometry against the protocol on a batch of manifold points.

    Parameters
    ----------
    geometry : Geometry
        The geometry under test.
    points : Tensor
        Manifold points ``[B, *point_shape(dim)]`` with ``B >= 4`` and even,
        spread enough that a wrong step is visible.
    dim : int
        The point size passed to :meth:`point_shape`, :meth:`origin`, :meth:`neutral`.
    tangent : Tensor, optional
        A tangent vector at ``points[0]`` for the ``exp``/``log`` round trip;
        default ``0.1 * log(points[0], points[1])``.
    steps : int
        Iterations granted to iterative means (closed forms ignore it).
    scale_keeps_mean : bool
        Also check that ``scale`` keeps the mean at ``neutral``. True for
        means defined by :math:`\sum_b \mathrm{Log}(z_b) = 0` at the
        neutral point (Fréchet means, closed-form flat means); false for the
        gyromidpoint, whose weights (conformal factors) change under
        rescaling, so midpoint batch norm with ``scale=True`` leaves the
        output's midpoint only near the bias point.
    tol : float, optional
        Relative tolerance; default :math:`10^3 \epsilon^{2/3}` of the dtype
        (about ``4e-8`` in float64): far above the rounding of a few
        well-conditioned maps, far below the error of a wrong formula.

    Raises
    ------
    AssertionError
        Naming the failed property and the error it measured.

    Examples
    --------
    >>> from geonorm.hyperbolic import PoincareBall
    >>> x = 0.3 * torch.randn(8, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> check_geometry(PoincareBall(c=1.0, mean="frechet"), x, dim=3)
    """
    g = geometry
    if tol is None:
        tol = 1e3 * machine_eps(points.dtype) ** (2.0 / 3.0)
    b = points.shape[0]
    if b < 4 or b % 2:
        raise ValueError(f"points: expected an even batch of at least 4 points, got {b}")
    shape = g.point_shape(dim)
    if tuple(points.shape[1:]) != tuple(shape):
        raise ValueError(f"points: expected shape [B, {', '.join(map(str, shape))}], got {list(points.shape)}")
    like = {"dtype": points.dtype, "device": points.device}
    g.check_point(points, "points", strict=True)
    neutral = g.neutral(dim, **like)
    origin = g.origin(dim, **like)
    g.check_point(origin.unsqueeze(0), "origin", strict=True)

    z = g.encode(points)
    _close("decode(encode(x)) = x", g.decode(z), points, tol)
    with g.forward_scope():  # work shared inside one forward changes no result
        _close("encode inside forward_scope = encode", g.encode(points), z, tol)
        _close("decode inside forward_scope = decode", g.decode(z), points, tol)
    many = g.encode_many(points, "points", points[1], points[0])
    _close("encode_many(x, p, q) = encode(x), encode(p), encode(q)", torch.stack(many[1:]), z[[1, 0]], tol)
    _close("encode_many's batch = encode", many[0], z, tol)
    mean = g.mean(z, steps=steps)
    centred = g.centre(z, mean)
    _close("mean(centre(z, mean)) = neutral", g.mean(centred, steps=steps), neutral, tol)

    var = g.variance(centred)
    _close("variance(centre(z, mu)) = variance(z, mu)", var, g.variance(z, mean), tol)
    target = torch.tensor(0.7, **like)
    scaled = g.scale(centred, target / torch.sqrt(var))
    _close("scale sets the dispersion", g.variance(scaled), target.square(), tol)
    if scale_keeps_mean:
        _close("scale keeps the mean at neutral", g.mean(scaled, steps=steps), neutral, tol)

    point = z[1]
    _close("bias moves the mean to the bias point", g.mean(g.bias(centred, point), steps=steps), point, tol)
    fused, batch_var = g.normalize(z, mean, point, target_std=target, eps=0.0)
    _close("normalize equals centre, scale, bias", fused, g.bias(scaled, point), tol)
    _close("normalize returns the batch variance", batch_var, var, tol)
    for scoped in (False, True):
        with g.forward_scope() if scoped else contextlib.nullcontext():
            decoded, decoded_var = g.normalize_and_decode(z, mean, point, target_std=target, eps=0.0)
        where = " inside forward_scope" if scoped else ""
        _close(f"normalize_and_decode = decode(normalize){where}", decoded, g.decode(fused), tol)
        _close(f"normalize_and_decode returns the batch variance{where}", decoded_var, var, tol)

    a, c = z[0], z[2]
    _close("interpolate(a, b, 0) = a", g.interpolate(a, c, 0.0), a, tol)
    _close("interpolate(a, b, 1) = b", g.interpolate(a, c, 1.0), c, tol)

    x, y = points[0], points[1]
    v = g.log(x, y)
    _close("exp(x, log(x, y)) = y", g.exp(x, v), y, tol)
    _close("distance(x, y) = distance(y, x)", g.distance(x, y), g.distance(y, x), tol)
    t = 0.1 * v if tangent is None else tangent
    _close("log(x, exp(x, v)) = v", g.log(x, g.exp(x, t)), t, tol)
    _close("transport(x, y, log_x y) = -log_y x", g.transport(x, y, v), -g.log(y, x), tol)
    _close("transport(x, x, v) = v", g.transport(x, x, t), t, tol)

    weights = torch.linspace(0.5, 1.5, b, **like)
    pooled_mean = g.mean(z, weights, steps=steps)
    pooled_var = g.variance(z, pooled_mean, weights)
    half = b // 2
    halves = [(z[:half], weights[:half]), (z[half:], weights[half:])]

    def stats(part, reduce):
        zz, ww = part
        m = g.mean(zz, ww, reduce=reduce, steps=steps)
        return m, g.variance(zz, m, ww, reduce=reduce)

    for rank, (m, s) in enumerate(_run_two_ranks(stats, halves)):
        _close(f"two-rank reduce: mean on rank {rank} = pooled mean", m, pooled_mean, tol)
        _close(f"two-rank reduce: variance on rank {rank} = pooled variance", s, pooled_var, tol)
