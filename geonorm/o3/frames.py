r"""Frame averaging: any backbone made exactly E(d)/O(d)/SO(d)-invariant or equivariant.

For a backbone :math:`\phi` and a frame set :math:`\mathcal F(X)` of the input
cloud (:mod:`geonorm.o3.frame_sets`), frame averaging (Puny et al., *Frame
Averaging for Invariant and Equivariant Network Design*, ICLR 2022) outputs

.. math::

    \Phi(X, V) = \frac{1}{|\mathcal F(X)|} \sum_{F \in \mathcal F(X)}
        \rho_{\text{out}}(F)\, \phi\big((X - t)F,\; V F\big),

where :math:`t` is the centroid (for groups with translations), :math:`V`
are extra vector inputs (velocities, forces; pseudovectors get an extra
:math:`\det F`), and :math:`\rho_{\text{out}}(F)` maps the output back:
identity for invariant outputs, :math:`y \mapsto y F^\top` for vectors,
:math:`y \mapsto y F^\top + t` for positions.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from .._checks import check_floating, check_int, check_tensor
from .frame_sets import (
    degenerate_base_frames,
    degenerate_clouds,
    pca_frames,
    sign_patterns,
    skewness_weights,
)

Tensor = torch.Tensor

__all__ = ["FrameAveraging", "FRAME_GROUPS"]

#: Group name -> (dimension, proper rotations only, translations).
FRAME_GROUPS = {
    "O3": (3, False, False), "SO3": (3, True, False), "E3": (3, False, True),
    "SE3": (3, True, True), "O2": (2, False, False), "SO2": (2, True, False),
    "E2": (2, False, True), "SE2": (2, True, True),
}
_OUTPUTS = ("invariant", "equivariant", "pseudovector", "positions")
_FRAMES = ("pca", "stochastic", "weighted")
_DEGENERATE = ("frames", "ignore", "raise")
_VECTOR_KINDS = ("vector", "pseudovector")


def _choice(value: object, name: str, allowed: Sequence[str], *, upper: bool = False) -> str:
    key = value.upper() if upper and isinstance(value, str) else value
    if not isinstance(key, str) or key not in allowed:
        raise ValueError(f"{name}: expected one of {', '.join(allowed)}, got {value!r}")
    return key


class FrameAveraging(nn.Module):
    r"""Wrap ``backbone`` so that it becomes exactly invariant or equivariant.

    .. math::

        \Phi(X, V) = \sum_{F \in \mathcal F(X)} w_F\,
            \rho_{\text{out}}(F)\, \phi\big((X - t)F,\; V F\big)

    with the PCA sign frames :math:`\mathcal F(X)` of the centred, masked
    covariance (2\ :sup:`d` frames for O(d)/E(d), the :math:`2^{d-1}` of
    determinant one for SO(d)/SE(d)), :math:`t` the masked centroid for E/SE
    groups (zero otherwise) and :math:`w_F = 1/|\mathcal F|` unless
    ``frames="weighted"``. The frames are folded into the batch: the backbone
    runs once on :math:`|\mathcal F|\times` the batch.

    Parameters
    ----------
    backbone : nn.Module
        Called as ``backbone(positions, *vectors, **features)`` on the inputs
        in each frame, batch ``B * |F|`` (frame index fastest); returns a
        tensor or a tuple of tensors with leading dimension ``B * |F|``.
    group : {"O3", "SO3", "E3", "SE3", "O2", "SO2", "E2", "SE2"}
        The symmetry; translations (E, SE) centre the positions.
    output : str or tuple of str
        How each backbone output transforms: ``"invariant"`` (scalars),
        ``"equivariant"`` (vectors, last axis ``d``, rotated back),
        ``"pseudovector"`` (also times :math:`\det F`) or ``"positions"``
        (rotated back and translated by the centroid). One string applies to
        every output.
    frames : {"pca", "stochastic", "weighted"}
        ``"pca"``: the exact average. ``"stochastic"``: in training mode each
        cloud uses ``num_samples`` frames drawn uniformly (with replacement)
        from its set — equivariant in distribution, as in FAENet (Duval et
        al., ICML 2023) — and the exact average in eval mode. ``"weighted"``:
        the sign frames weighted by the skewness along each axis
        (:func:`~geonorm.o3.frame_sets.skewness_weights`, ``temperature``).
    vectors : sequence of {"vector", "pseudovector"}
        Kind of each extra geometric input after the positions (velocities
        are vectors, angular momenta pseudovectors). Every one is transformed
        into each frame — not merely repeated — and enters the degenerate
        frames below.
    degenerate : {"frames", "ignore", "raise"}
        What to do with clouds whose covariance has a relative eigen-gap below
        :func:`~geonorm._numerics.eigen_gap_rtol` (repeated eigenvalues,
        colinear points, fewer points than dimensions). ``"frames"``: average
        over the degenerate frame set of
        :func:`~geonorm.o3.frame_sets.degenerate_base_frames` (its docstring
        states the guarantee; the backbone runs once more per degenerate
        cloud, always with its whole set and uniform weights, also under
        ``frames="stochastic"`` or ``"weighted"``). ``"ignore"``: plain PCA
        frames, no check (no host synchronization). ``"raise"``: ``ValueError``.
    num_samples : int
        Frames per cloud in stochastic training.
    temperature : float
        Temperature :math:`\tau` of the weighted frames.

    Notes
    -----
    Frames are computed from detached float64 inputs and carry no gradient:
    gradients with respect to the backbone's parameters are exact, while the
    gradient with respect to the positions holds the frames fixed (the
    frame's own derivative has :math:`1/(\lambda_i - \lambda_j)` terms that
    blow up at degeneracy). Outputs are averaged in float64 and returned in
    the backbone's dtype. Padded points (``mask`` false) do not enter the
    frames; their coordinates reach the backbone as zeros, and their rows of
    node-level outputs are whatever the backbone returns for them.

    Examples
    --------
    >>> mlp = nn.Sequential(nn.Flatten(1), nn.Linear(12, 12), nn.Tanh(), nn.Unflatten(1, (4, 3)))
    >>> fa = FrameAveraging(mlp, group="E3", output="positions").double()
    >>> x = torch.randn(2, 4, 3, dtype=torch.float64)
    >>> r = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))[0]
    >>> bool(torch.allclose(fa(x @ r.T + 1.0), fa(x) @ r.T + 1.0))
    True
    """

    def __init__(
        self,
        backbone: nn.Module,
        *,
        group: str = "E3",
        output: str | Sequence[str] = "invariant",
        frames: str = "pca",
        vectors: Sequence[str] = (),
        degenerate: str = "frames",
        num_samples: int = 1,
        temperature: float = 1.0,
    ) -> None:
        super().__init__()
        if not callable(backbone):
            raise TypeError(f"backbone: expected an nn.Module or callable, got {type(backbone).__name__}")
        self.backbone = backbone
        self.group = _choice(group, "group", tuple(FRAME_GROUPS), upper=True)
        self.dim, self.proper, self.translations = FRAME_GROUPS[self.group]
        outs = (output,) if isinstance(output, str) else tuple(output)
        if not outs:
            raise ValueError("output: expected a kind or a non-empty tuple of kinds, got ()")
        self.output = tuple(_choice(o, "output", _OUTPUTS) for o in outs)
        self.frames = _choice(frames, "frames", _FRAMES)
        if isinstance(vectors, str):
            vectors = (vectors,)
        self.vectors = tuple(_choice(v, "vectors", _VECTOR_KINDS) for v in vectors)
        self.degenerate = _choice(degenerate, "degenerate", _DEGENERATE)
        self.num_samples = check_int(num_samples, "num_samples")
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
            raise ValueError(f"temperature: expected a positive float, got {temperature!r}")
        self.temperature = float(temperature)
        self.register_buffer(
            "signs", sign_patterns(self.dim, proper=self.proper), persistent=False
        )  # [S, d]

    @property
    def num_frames(self) -> int:
        """Size of the frame set of a non-degenerate cloud (:math:`2^d` or :math:`2^{d-1}`)."""
        return self.signs.shape[0]

    def extra_repr(self) -> str:
        return (
            f"group={self.group}, output={self.output if len(self.output) > 1 else self.output[0]!r}, "
            f"frames={self.frames!r}, vectors={self.vectors}, degenerate={self.degenerate!r}"
        )

    # --------------------------------------------------------------- checks
    def _check(self, x: Tensor, vecs: tuple[Tensor, ...], mask: Tensor | None, feats: dict):
        check_floating(x, "positions")
        if x.ndim != 3 or x.shape[-1] != self.dim:
            raise ValueError(
                f"positions: expected shape [batch, points, {self.dim}] for group {self.group}, "
                f"got {list(x.shape)}"
            )
        if len(vecs) != len(self.vectors):
            raise ValueError(
                f"vectors: expected {len(self.vectors)} extra vector inputs "
                f"(vectors={self.vectors}), got {len(vecs)}"
            )
        for i, v in enumerate(vecs):
            check_floating(v, f"vectors[{i}]")
            if v.ndim < 2 or v.shape[0] != x.shape[0] or v.shape[-1] != self.dim:
                raise ValueError(
                    f"vectors[{i}]: expected shape [{x.shape[0]}, ..., {self.dim}], got {list(v.shape)}"
                )
        if mask is not None:
            check_tensor(mask, "mask")
            if mask.dtype != torch.bool or mask.shape != x.shape[:2]:
                raise ValueError(
                    f"mask: expected a bool tensor of shape {list(x.shape[:2])}, "
                    f"got {mask.dtype} of shape {list(mask.shape)}"
                )
        for key, t in feats.items():
            if isinstance(t, Tensor) and (t.ndim == 0 or t.shape[0] != x.shape[0]):
                raise ValueError(
                    f"{key}: expected a tensor with batch dimension {x.shape[0]} first, "
                    f"got shape {list(t.shape)}"
                )

    # ------------------------------------------------------------ transforms
    def _into(self, x: Tensor, vecs, t: Tensor, frames: Tensor, mask: Tensor | None):
        """Inputs in every frame, folded: ``[B * F, ...]`` (frames ``[B, F, d, d]``)."""
        b, f = frames.shape[:2]
        det = torch.linalg.det(frames) if "pseudovector" in self.vectors else None  # [B, F]
        pos = (x.double() - t.unsqueeze(-2)) if self.translations else x.double()
        out = [_rotate_in(pos, frames, mask)]
        for kind, v in zip(self.vectors, vecs):
            vf = _rotate_in(v.double(), frames, mask if v.ndim == 3 else None)
            if kind == "pseudovector":
                vf = vf * det.view(b, f, *([1] * (vf.ndim - 2)))
            out.append(vf)
        dtypes = [x.dtype, *(v.dtype for v in vecs)]
        return [o.reshape(b * f, *o.shape[2:]).to(dt) for o, dt in zip(out, dtypes)]

    def _back(self, ys, t: Tensor, frames: Tensor, weights: Tensor):
        """Average the outputs ``[B * F, ...]`` over frames, each mapped back."""
        b, f = frames.shape[:2]
        single = isinstance(ys, Tensor)
        ys = (ys,) if single else tuple(ys)
        kinds = self.output * len(ys) if len(self.output) == 1 else self.output
        if len(kinds) != len(ys):
            raise ValueError(
                f"output: expected the backbone to return {len(kinds)} outputs, got {len(ys)}"
            )
        det = torch.linalg.det(frames) if "pseudovector" in kinds else None  # [B, F]
        res = []
        for i, (kind, y) in enumerate(zip(kinds, ys)):
            if not isinstance(y, Tensor) or y.ndim < 1 or y.shape[0] != b * f:
                raise ValueError(
                    f"backbone: expected output {i} to be a tensor with leading dimension "
                    f"{b * f} (batch x frames), got {getattr(y, 'shape', type(y).__name__)}"
                )
            yf = y.double().reshape(b, f, *y.shape[1:])  # [B, F, ...]
            if kind != "invariant":
                if y.shape[-1] != self.dim:
                    raise ValueError(
                        f"backbone: output {i} is {kind!r} and needs a last axis of size "
                        f"{self.dim}, got shape {list(y.shape)}"
                    )
                yf = torch.einsum("bf...k,bfjk->bf...j", yf, frames)  # [B, F, ..., d]
                if kind == "pseudovector":
                    yf = yf * det.view(b, f, *([1] * (yf.ndim - 2)))
            wv = weights.view(b, f, *([1] * (yf.ndim - 2)))
            avg = (wv * yf).sum(1)  # [B, ...]
            if kind == "positions" and self.translations:
                avg = avg + t.view(b, *([1] * (avg.ndim - 2)), self.dim)
            res.append(avg.to(y.dtype))
        return res[0] if single else tuple(res)

    def _run(self, x, vecs, t, frames, weights, mask, feats):
        f = frames.shape[1]
        inputs = self._into(x, vecs, t, frames, mask)
        rep = {k: v.repeat_interleave(f, dim=0) if isinstance(v, Tensor) else v for k, v in feats.items()}
        return self._back(self.backbone(*inputs, **rep), t, frames, weights)

    # --------------------------------------------------------------- forward
    def forward(self, positions: Tensor, *vectors: Tensor, mask: Tensor | None = None, **features: Any):
        """Frame-averaged ``backbone(positions, *vectors, **features)``.

        ``positions`` ``[B, N, d]``; ``vectors`` ``[B, N, d]`` or ``[B, ..., d]``
        (one per entry of ``vectors=``); ``mask`` ``[B, N]`` bool (true = a real
        point); ``features``: scalar inputs passed through, every tensor
        repeated per frame (leading dimension ``B``).
        """
        self._check(positions, vectors, mask, features)
        frames, t, lam, axes = pca_frames(positions, mask, proper=self.proper)  # [B, S, d, d]
        b, s = frames.shape[:2]
        if self.frames == "weighted":
            weights = skewness_weights(positions, t, axes, self.signs, mask, self.temperature)
        else:
            weights = frames.new_full((b, s), 1.0 / s)  # [B, S]
        if self.frames == "stochastic" and self.training:
            idx = torch.randint(s, (b, self.num_samples), device=frames.device)  # [B, k]
            frames = torch.gather(frames, 1, idx[:, :, None, None].expand(-1, -1, self.dim, self.dim))
            weights = frames.new_full((b, self.num_samples), 1.0 / self.num_samples)
        if self.degenerate == "ignore":
            return self._run(positions, vectors, t, frames, weights, mask, features)
        bad = degenerate_clouds(lam)  # [B]
        if not bool(bad.any()):
            return self._run(positions, vectors, t, frames, weights, mask, features)
        if self.degenerate == "raise":
            raise ValueError(
                f"positions: expected clouds with distinct covariance eigenvalues "
                f"(degenerate='raise'), got {int(bad.sum())} degenerate of {b} "
                f"(indices {torch.nonzero(bad).flatten().tolist()[:10]})"
            )
        return self._with_degenerate(positions, vectors, t, frames, weights, mask, features, bad, lam, axes)

    def _with_degenerate(self, x, vecs, t, frames, weights, mask, feats, bad, lam, axes):
        """Regular clouds in one batch; each degenerate cloud with its own frame set."""
        good = torch.nonzero(~bad).flatten()
        parts: dict[int, Any] = {}
        if good.numel():
            sub = self._run(
                x[good], tuple(v[good] for v in vecs), t[good], frames[good], weights[good],
                None if mask is None else mask[good], _index(feats, good),
            )
            parts.update({int(i): _index_out(sub, j) for j, i in enumerate(good.tolist())})
        for i in torch.nonzero(bad).flatten().tolist():
            keep = slice(None) if mask is None else mask[i]
            cands = [(x[i] - t[i]).detach().double()[keep]]  # [n, d]
            for v in vecs:
                vi = v[i].detach().double()
                cands.append((vi[keep] if v.ndim == 3 else vi).reshape(-1, self.dim))
            base = degenerate_base_frames(torch.cat(cands), lam[i], axes[i])  # [K, d, d]
            if self.proper:  # make each base frame proper; the signs then keep det = +1
                flip = torch.ones(base.shape[0], self.dim, dtype=base.dtype, device=base.device)
                flip[:, -1] = torch.linalg.det(base).sign()
                base = base * flip.unsqueeze(-2)
            fr = (base[:, None] * self.signs[None, :, None, :]).reshape(1, -1, self.dim, self.dim)
            w = fr.new_full(fr.shape[:2], 1.0 / fr.shape[1])  # [1, K*S]
            one = slice(i, i + 1)
            parts[i] = self._run(
                x[one], tuple(v[one] for v in vecs), t[one], fr, w,
                None if mask is None else mask[one], _index(feats, torch.tensor([i])),
            )
        order = [parts[i] for i in range(x.shape[0])]
        if isinstance(order[0], Tensor):
            return torch.cat(order)
        return tuple(torch.cat(col) for col in zip(*order))


def _rotate_in(v: Tensor, frames: Tensor, mask: Tensor | None) -> Tensor:
    """``v`` ``[B, ..., d]`` in every frame: ``[B, F, ..., d]`` (zero where masked)."""
    out = torch.einsum("b...j,bfjk->bf...k", v, frames)  # [B, F, ..., d]
    if mask is not None:
        out = out * mask[:, None, :, None].to(out.dtype)
    return out


def _index(feats: dict, idx: Tensor) -> dict:
    return {k: v[idx.to(v.device)] if isinstance(v, Tensor) else v for k, v in feats.items()}


def _index_out(out, j: int):
    if isinstance(out, Tensor):
        return out[j : j + 1]
    return tuple(o[j : j + 1] for o in out)
