r"""Poincaré 2-D convolution: HNN++ β-concatenation of each patch, then the Poincaré FC layer.

Feature maps are ``[B, C, H, W]`` whose channel vectors are points of the
``C``-dimensional ball of curvature :math:`-c`. For a :math:`k_h \times k_w`
patch of points :math:`x_1, \dots, x_K` (:math:`K = k_h k_w`, zero padding
= the origin), the HNN++ β-concatenation (Shimizu, Mukuta & Harada, ICLR
2021) is

.. math::

    \operatorname{concat}_\beta(x_1, \dots, x_K) = \exp_0\Bigl(
        \frac{B(\tfrac{n}{2}, \tfrac12)}{B(\tfrac{n_i}{2}, \tfrac12)}
        \bigl(\log_0 x_1, \dots, \log_0 x_K\bigr)\Bigr),
    \qquad n_i = C,\; n = K C,

(:math:`B` the beta function; the factor keeps the expected norm of the
concatenation that of its parts), and the output pixel is the
:func:`~geonorm.hyperbolic.poincare_fc` of that point of the
:math:`n`-ball. Output size by the standard formula
:math:`\lfloor (H + 2p - k)/s \rfloor + 1` (van Spengler, Berkhout & Mettes,
*Poincaré ResNet*, ICCV 2023, whose code has :math:`\lfloor(H - k + 1 + 2p)/s\rfloor`,
wrong for :math:`s > 1`).

The layer never forms the patches. With :math:`u = \log_0 x` scaled by the
β factor, the patch point is :math:`X = \tanh(\sqrt{c}\|U\|)\,U/(\sqrt{c}\|U\|)`,
so :math:`\langle X, z_k\rangle = \frac{\tanh(\sqrt{c}\|U\|)}{\sqrt{c}\|U\|}
\langle U, z_k\rangle` is a Euclidean convolution of :math:`u` and
:math:`c\|X\|^2 = \tanh^2(\sqrt{c}\|U\|)`, with :math:`\|U\|^2` a box sum of
the pixels' :math:`\|u\|^2`: two ``conv2d`` calls replace the unfold.

Identity initialisation: Poincaré ResNet initialises weights to
:math:`\tfrac12 I`; for a patch this is applied to the kernel's centre tap,
divided by the β factor (``weight[centre] = I / (2β)``, zero elsewhere), so
that a stride-1 "same" convolution is close to the identity on small inputs
(for :math:`1 \times 1` kernels the two coincide; the paper code's
``eye(K C, C_out)`` is the identity only there). Output channels beyond
``C_in`` keep the HNN++ normal draw (as :func:`~geonorm.hyperbolic.linear.init_hnn_weight`:
zero columns would stay dead under the tangent ReLU).
"""

from __future__ import annotations

import math

import geoopt
import torch
import torch.nn.functional as F

from .._checks import check_floating, check_int
from .ball import _artanh, _c, _check_squared_norms, _max_tanh_arg, expmap0, logmap0
from .._numerics import safe_sqrt
from .linear import _fc_map, init_hnn_weight, layer_ball

Tensor = torch.Tensor

__all__ = ["PoincareConv2d", "beta_concat", "beta_ratio", "conv_output_size"]


def beta_ratio(n_i: int, n: int) -> float:
    r""":math:`B(n/2, 1/2) / B(n_i/2, 1/2)`, the β-concatenation factor (log-gamma, no overflow).

    >>> round(beta_ratio(8, 72), 6)  # about sqrt(n_i / n) = 1/3
    0.324227
    """
    def log_beta(k: float) -> float:
        return math.lgamma(k / 2) + math.lgamma(0.5) - math.lgamma(k / 2 + 0.5)

    return math.exp(log_beta(n) - log_beta(n_i))


def beta_concat(points: list[Tensor] | tuple[Tensor, ...], *, c: object) -> Tensor:
    r"""HNN++ β-concatenation of points ``[..., n_i]`` (equal ``n_i``) into ``[..., sum n_i]``.

    :math:`\exp_0\bigl(\tfrac{B(n/2,1/2)}{B(n_i/2,1/2)}(\log_0 x_1, \dots)\bigr)`.

    >>> x = torch.tensor([0.3, 0.0], dtype=torch.float64)
    >>> beta_concat([x], c=1.0)  # one block: unchanged
    tensor([0.3000, 0.0000], dtype=torch.float64)
    """
    n_i = points[0].shape[-1]
    if any(p.shape[-1] != n_i for p in points):
        raise ValueError(f"points: expected blocks of equal size {n_i}, got {[p.shape[-1] for p in points]}")
    ratio = beta_ratio(n_i, n_i * len(points))
    return expmap0(torch.cat([logmap0(p, c=c) * ratio for p in points], -1), c=c)


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """The standard output size ``floor((size + 2 padding - kernel) / stride) + 1``.

    >>> conv_output_size(28, 3, 2, 1)
    14
    """
    return (size + 2 * padding - kernel) // stride + 1


def _pair(v: object, name: str, minimum: int) -> tuple[int, int]:
    pair = tuple(v) if isinstance(v, (tuple, list)) else (v, v)
    if len(pair) != 2:
        raise ValueError(f"{name}: expected an int or a pair of ints, got {v!r}")
    return check_int(pair[0], name, minimum=minimum), check_int(pair[1], name, minimum=minimum)


def _box_sum(u2: Tensor, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int]) -> Tensor:
    """Sum over each (zero-padded) patch of a one-channel map ``[B, 1, H, W] -> [B, 1, H', W']``.

    A sum-pooling (``avg_pool2d`` with divisor 1) where the padding allows it
    (at most half the kernel); a convolution with a kernel of ones otherwise.
    """
    if all(p <= k // 2 for p, k in zip(padding, kernel)):
        return F.avg_pool2d(u2, kernel, stride, padding, count_include_pad=True, divisor_override=1)
    ones = torch.ones(1, 1, *kernel, dtype=u2.dtype, device=u2.device)
    return F.conv2d(u2, ones, stride=stride, padding=padding)


class PoincareConv2d(torch.nn.Module):
    r"""Poincaré convolution of ball-valued feature maps ``[B, C_in, H, W] -> [B, C_out, H', W']``.

    ``weight`` is ``[C_in k_h k_w, C_out]`` (rows channel-major, the order
    of :func:`torch.nn.functional.unfold`), a Euclidean parameter as in HNN++.

    Parameters
    ----------
    in_channels, out_channels : int
        Ball dimensions of the input and output pixels.
    kernel_size, stride, padding : int or (int, int)
        As :class:`torch.nn.Conv2d` (padding with the origin).
    c : float
        Curvature magnitude, used as given.
    bias : bool
        Learn the hyperplane offsets.
    id_init : bool
        Identity initialisation (module notes); otherwise HNN++'s normal one.
    learnable_curvature : bool
        Train ``c`` (geoopt's softplus parametrisation, started at ``c``).
    ball : geoopt.PoincareBall, optional
        Share one ball (and its curvature) with other layers.
    validate : bool
        Check that the input pixels are inside the ball (one norm, one host
        sync); skipped under ``torch.compile``.

    Examples
    --------
    >>> conv = PoincareConv2d(4, 4, 3, padding=1, dtype=torch.float64)
    >>> x = 1e-3 * torch.randn(2, 4, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> y = conv(x)
    >>> y.shape, bool(torch.allclose(y, x, rtol=1e-4, atol=1e-8))
    (torch.Size([2, 4, 5, 5]), True)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        *,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        c: float = 1.0,
        bias: bool = True,
        id_init: bool = True,
        learnable_curvature: bool = False,
        ball: geoopt.PoincareBall | None = None,
        validate: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.in_channels = check_int(in_channels, "in_channels")
        self.out_channels = check_int(out_channels, "out_channels")
        self.kernel_size = _pair(kernel_size, "kernel_size", 1)
        self.stride = _pair(stride, "stride", 1)
        self.padding = _pair(padding, "padding", 0)
        self.id_init = bool(id_init)
        self.validate = bool(validate)
        self.geometry = layer_ball(c, learnable_curvature, ball, device, dtype)
        kh, kw = self.kernel_size
        self.beta = beta_ratio(self.in_channels, self.in_channels * kh * kw)
        self.weight = torch.nn.Parameter(torch.empty(self.in_channels * kh * kw, self.out_channels, **factory))
        self.bias = torch.nn.Parameter(torch.empty(self.out_channels, **factory)) if bias else None
        self.reset_parameters()

    @property
    def c(self) -> float | Tensor:
        """The curvature magnitude."""
        return self.geometry.c

    def reset_parameters(self) -> None:
        kh, kw = self.kernel_size
        init_hnn_weight(self.weight, id_init=False)
        if self.id_init:
            k = min(self.in_channels, self.out_channels)  # further outputs keep the HNN++ draw
            with torch.no_grad():
                w = torch.zeros(self.in_channels, kh * kw, k, dtype=self.weight.dtype)
                centre = (kh // 2) * kw + kw // 2
                w[:, centre, :] = torch.eye(self.in_channels, k) / (2.0 * self.beta)
                self.weight[:, :k] = w.reshape(-1, k)  # [C_in*kh*kw, k]
        if self.bias is not None:
            torch.nn.init.zeros_(self.bias)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, bias={self.bias is not None}, id_init={self.id_init}, "
            f"{self.geometry.extra_repr()}"
        )

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        """``(H', W')`` by the standard formula."""
        return tuple(
            conv_output_size(n, k, s, p) for n, k, s, p in zip((h, w), self.kernel_size, self.stride, self.padding)
        )

    def forward(self, x: Tensor) -> Tensor:
        check_floating(x, "x")
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x: expected shape [B, {self.in_channels}, H, W], got {list(x.shape)}")
        h_out, w_out = self.output_size(x.shape[2], x.shape[3])
        if h_out < 1 or w_out < 1:
            raise ValueError(
                f"x: expected H, W with (H + 2 padding - kernel) // stride + 1 >= 1 for kernel "
                f"{self.kernel_size}, stride {self.stride}, padding {self.padding}, got {list(x.shape[2:])}"
            )
        c = _c(self.c, x)
        sq = (x * x).sum(1, keepdim=True)  # |x|^2 per pixel, [B, 1, H, W]
        if self.validate and not torch.compiler.is_compiling() and x.numel():
            _check_squared_norms(sq, x, "x", c)  # the norms computed anyway
        kh, kw = self.kernel_size
        # log_0 of each pixel, times the beta factor: u = f x with f = beta artanh(s)/s
        s_px = safe_sqrt(c * sq)  # sqrt(c)|x|, [B, 1, H, W]
        f = self.beta * _artanh(s_px) / s_px  # [B, 1, H, W]
        u = f * x  # [B, C_in, H, W]
        u2 = (f * s_px) ** 2 / c  # |u|^2 per pixel, [B, 1, H, W]
        opts = {"stride": self.stride, "padding": self.padding}
        s_patch = safe_sqrt(c * _box_sum(u2, self.kernel_size, self.stride, self.padding))  # sqrt(c)|U|, [B, 1, H', W']
        kernel = self.weight.t().contiguous().view(self.out_channels, self.in_channels, kh, kw)  # [C_out, C_in, kh, kw]
        uz = F.conv2d(u, kernel, **opts)  # <U, z_k>, [B, C_out, H', W']
        t = torch.tanh(s_patch.clamp_max(_max_tanh_arg(x.dtype)))  # sqrt(c)|X|
        return _fc_map((t / s_patch) * uz, t * t, self.weight, self.bias, c, dim=1)  # [B, C_out, H', W']
