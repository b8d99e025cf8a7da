"""Frame averaging: exact equivariance for arbitrary backbones, vector inputs, masks, degeneracy."""

import math

import pytest
import torch
from torch import nn

from geonorm.o3 import FrameAveraging
from geonorm.o3.frame_sets import degenerate_clouds, pca_frames, sign_patterns
from geonorm.testing import (
    ComposedAction,
    JointAction,
    PermutationAction,
    PointCloudAction,
    TrivialAction,
    assert_equivariant,
    assert_invariant,
    equivariance_error,
)

F64 = torch.float64
N = 6


class MLP(nn.Module):
    """A non-equivariant backbone: one MLP on all coordinates (and extra vectors) flattened."""

    def __init__(self, n=N, extra=0, out=3, d=3, scalars=0):
        super().__init__()
        self.n, self.out = n, out
        self.net = nn.Sequential(nn.Linear(n * d * (1 + extra) + scalars, 32), nn.Tanh(), nn.Linear(32, n * out))

    def forward(self, x, *vectors, h=None):
        z = torch.cat([x, *vectors], -1).flatten(1)  # [B, n * d * (1 + extra)]
        if h is not None:
            z = torch.cat([z, h], -1)
        return self.net(z).view(-1, self.n, self.out)  # [B, n, out]


class MaskedDeepSet(nn.Module):
    """Per-point MLP of (x_i, masked mean of an embedding): sees only the real points."""

    def __init__(self):
        super().__init__()
        self.phi = nn.Sequential(nn.Linear(3, 16), nn.Tanh())
        self.rho = nn.Sequential(nn.Linear(19, 16), nn.Tanh(), nn.Linear(16, 3))

    def forward(self, x, keep):
        w = keep.to(x.dtype).unsqueeze(-1)  # [B, N, 1]
        pooled = (self.phi(x) * w).sum(1, keepdim=True) / w.sum(1, keepdim=True)  # [B, 1, 16]
        return self.rho(torch.cat([x, pooled.expand(-1, x.shape[1], -1)], -1))  # [B, N, 3]


def _cloud(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _seeded(module_factory):
    torch.manual_seed(0)
    return module_factory().double()


POS = PointCloudAction(group="e3")
VEC = PointCloudAction(group="e3", kind="vector")
PSEUDO = PointCloudAction(group="e3", kind="pseudovector")


# ------------------------------------------------------ exact equivariance, generic clouds
@pytest.mark.parametrize("frames", ["pca", "weighted", "stochastic"])
def test_positions_output_is_e3_equivariant(frames):
    fa = _seeded(lambda: FrameAveraging(MLP(), group="E3", output="positions", frames=frames))
    # stochastic frames are exact only in eval mode (the train mode is checked below)
    mode = "eval" if frames == "stochastic" else "both"
    assert_equivariant(fa, POS, _cloud(4, N, 3), POS, mode=mode, n_samples=4, rtol=1e-9)


@pytest.mark.parametrize("group", ["O3", "E3"])
def test_invariant_and_vector_outputs(group):
    act = PointCloudAction(group=group.lower())
    fa = _seeded(lambda: FrameAveraging(MLP(out=5), group=group, output="invariant"))
    assert_invariant(fa, act, _cloud(3, N, 3, seed=1), n_samples=4, rtol=1e-9)
    fa = _seeded(lambda: FrameAveraging(MLP(), group=group, output="equivariant"))
    assert_equivariant(fa, act, _cloud(3, N, 3, seed=2), PointCloudAction(group=group.lower(), kind="vector"),
                       n_samples=4, rtol=1e-9)  # fmt: skip


def test_velocity_and_pseudovector_inputs_are_transformed():
    """Extra vectors enter every frame rotated (frame-averaging-pytorch only repeats them)."""
    fa = _seeded(lambda: FrameAveraging(MLP(extra=2), group="E3", output=("positions", "pseudovector"),
                                        vectors=("vector", "pseudovector")))  # fmt: skip
    fa.backbone = _TwoOutputs(fa.backbone)
    x, v, w = _cloud(3, N, 3, seed=3), _cloud(3, N, 3, seed=4), _cloud(3, N, 3, seed=5)
    assert_equivariant(fa, (POS, VEC, PSEUDO), (x, v, w), (POS, PSEUDO), n_samples=4, rtol=1e-9)


class _TwoOutputs(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x, *v):
        y = self.inner(x, *v)
        return y, torch.tanh(y)


class _VelocityAsFeature(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x, v):
        return self.inner(x, v)


def test_repeating_velocities_breaks_equivariance():
    """The control for the test above: velocities passed as (repeated, unrotated) features."""
    fa = _seeded(lambda: FrameAveraging(_VelocityAsFeature(MLP(extra=1)), group="E3", output="positions"))
    x, v = _cloud(2, N, 3), _cloud(2, N, 3, seed=1)
    r = equivariance_error(lambda a, b: fa(a, v=b), (POS, VEC), (x, v), POS)
    assert r.rel_error > 1e-3


def test_scalar_features_pass_through_and_gradcheck():
    fa = _seeded(lambda: FrameAveraging(MLP(scalars=2), group="SE3", output="positions"))
    x, h = _cloud(2, N, 3), _cloud(2, 2, seed=1)
    act = JointAction(PointCloudAction(group="se3"), TrivialAction())
    assert_equivariant(lambda a, b: fa(a, h=b), act, (x, h), PointCloudAction(group="se3"), rtol=1e-9)
    # the average is smooth in the scalar features and in the parameters (frames are fixed)
    torch.autograd.gradcheck(lambda b: fa(x, h=b), (h.clone().requires_grad_(),), fast_mode=True)
    fa(x, h=h).square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in fa.parameters())


def test_so3_frames_are_not_reflection_invariant():
    """det-corrected frames: SO(3)-invariant, but a reflection changes the output (the math says so)."""
    fa = _seeded(lambda: FrameAveraging(MLP(out=4), group="SO3", output="invariant"))
    x = _cloud(3, N, 3, seed=6)
    assert_invariant(fa, PointCloudAction(group="so3"), x, n_samples=4, rtol=1e-9)
    assert fa.num_frames == 4
    r = equivariance_error(fa, PointCloudAction(group="o3"), x, TrivialAction(), n_samples=4)
    improper = [s.rel_error for s in r.samples if s.element.det < 0]
    proper = [s.rel_error for s in r.samples if s.element.det > 0]
    assert min(improper) > 1e-3 and max(proper) < 1e-9
    # whereas O(3) frames are reflection invariant
    fa_o3 = _seeded(lambda: FrameAveraging(MLP(out=4), group="O3", output="invariant"))
    assert_invariant(fa_o3, PointCloudAction(group="o3"), x, n_samples=4, rtol=1e-9)


def test_two_dimensional_groups():
    fa = _seeded(lambda: FrameAveraging(MLP(d=2, out=2), group="E2", output="positions"))
    act = PointCloudAction(group="en", dim=2)
    assert_equivariant(fa, act, _cloud(3, N, 2), act, n_samples=4, rtol=1e-9)
    fa = _seeded(lambda: FrameAveraging(MLP(d=2, out=3), group="SO2", output="invariant"))
    assert fa.num_frames == 2
    assert_invariant(fa, PointCloudAction(group="son", dim=2), _cloud(3, N, 2), rtol=1e-9)


def test_stochastic_training_uses_sampled_frames():
    fa = _seeded(lambda: FrameAveraging(MLP(), group="E3", output="invariant", frames="stochastic"))
    x = _cloud(2, N, 3)
    frames, t, _, _ = pca_frames(x)
    every = torch.stack([fa.backbone((x - t[:, None]) @ frames[:, k]) for k in range(8)], 1)  # [B, 8, N, 3]
    fa.train()
    torch.manual_seed(1)
    y = fa(x)  # one frame per cloud
    dist = (every - y[:, None]).abs().amax((-1, -2))  # [B, 8]
    assert bool((dist.amin(1) < 1e-12).all())
    fa.eval()
    torch.testing.assert_close(fa(x), every.mean(1), rtol=1e-12, atol=1e-14)


def test_permuting_points_permutes_frames_inputs():
    """The frame set is permutation invariant, so a permutation-equivariant backbone stays so."""
    fa = _seeded(lambda: FrameAveraging(MaskedDeepSet(), group="E3", output="positions"))
    x, keep = _cloud(2, N, 3), torch.ones(2, N, dtype=torch.bool)
    act = ComposedAction(PermutationAction(N, dim=-2), POS)
    assert_equivariant(lambda a: fa(a, keep=keep), act, x, act, rtol=1e-9)


# --------------------------------------------------------------------------- masks
def test_masked_clouds_equal_unpadded_result():
    fa = _seeded(lambda: FrameAveraging(MaskedDeepSet(), group="E3", output="positions"))
    sizes = (4, 6, 5)
    clouds = [_cloud(n, 3, seed=10 + n) for n in sizes]
    padded = torch.full((3, 7, 3), 123.0, dtype=F64)  # padding values must not matter
    mask = torch.zeros(3, 7, dtype=torch.bool)
    for i, c in enumerate(clouds):
        padded[i, : len(c)], mask[i, : len(c)] = c, True
    y = fa(padded, mask=mask, keep=mask)
    for i, c in enumerate(clouds):
        ref = fa(c[None], keep=torch.ones(1, len(c), dtype=torch.bool))[0]
        torch.testing.assert_close(y[i, : len(c)], ref, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------- degeneracy
def _line():
    return _cloud(1, 5, 1, seed=20) * torch.tensor([0.3, -1.2, 0.7], dtype=F64)  # colinear


def _square():  # repeated in-plane eigenvalues; the centre point makes N = 5
    return torch.tensor([[[1.0, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 0]]], dtype=F64) + 0.25


def _tetrahedron():  # isotropic covariance: all three eigenvalues equal
    return torch.tensor([[[1.0, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1], [0, 0, 0]]], dtype=F64)


def _two_points():  # fewer points than dimensions
    return torch.tensor([[[0.0, 0, 0], [1, 2, 2], [0, 0, 0], [1, 2, 2], [0.5, 1, 1]]], dtype=F64)


DEGENERATE = {"line": _line, "square": _square, "tetrahedron": _tetrahedron, "two_points": _two_points}


def test_degenerate_clouds_are_detected():
    lam = pca_frames(torch.cat([f() for f in DEGENERATE.values()] + [_cloud(1, 5, 3)]))[2]
    assert degenerate_clouds(lam).tolist() == [True] * 4 + [False]
    planar = _cloud(1, 6, 3) * torch.tensor([1.0, 0.5, 0.0], dtype=F64)  # coplanar, distinct
    assert not bool(degenerate_clouds(pca_frames(planar)[2]).any())


@pytest.mark.parametrize("name", list(DEGENERATE))
def test_degenerate_frames_keep_exact_equivariance(name):
    x = DEGENERATE[name]()
    v = _cloud(1, 5, 3, seed=21)
    fa = _seeded(lambda: FrameAveraging(MLP(n=5, extra=1), group="E3", output="positions", vectors=("vector",)))
    assert_equivariant(fa, (POS, VEC), (x, v), POS, n_samples=4, rtol=1e-9)
    fa = _seeded(lambda: FrameAveraging(MLP(n=5, out=2), group="SE3", output="invariant"))
    assert_invariant(fa, PointCloudAction(group="se3"), x, n_samples=4, rtol=1e-9)


@pytest.mark.parametrize("name", ["square", "tetrahedron"])
def test_plain_pca_frames_fail_on_repeated_eigenvalues(name):
    """The control: degenerate='ignore' (plain PCA) is not equivariant there."""
    fa = _seeded(lambda: FrameAveraging(MLP(n=5), group="E3", output="positions", degenerate="ignore"))
    assert equivariance_error(fa, POS, DEGENERATE[name](), POS, n_samples=4).rel_error > 1e-3
    fa = _seeded(lambda: FrameAveraging(MLP(n=5), group="E3", output="positions", degenerate="raise"))
    with pytest.raises(ValueError, match=r"positions: expected clouds with distinct .* got 1 degenerate of 1"):
        fa(DEGENERATE[name]())


def test_vector_outputs_vanish_where_no_input_has_a_component():
    """Colinear points, no other input: equivariant outputs lie on the line (guarantee)."""
    x = _line()
    fa = _seeded(lambda: FrameAveraging(MLP(n=5), group="O3", output="equivariant"))
    with torch.no_grad():
        y = fa(x)  # [1, 5, 3]
    direction = torch.tensor([0.3, -1.2, 0.7], dtype=F64)
    off_line = torch.linalg.cross(y, direction.expand_as(y))
    assert float(off_line.abs().max()) <= 1e-12 * float(y.abs().max())
    assert float(y.abs().max()) > 1e-3  # and the output is not trivially zero


def test_mixed_batch_matches_separate_calls():
    fa = _seeded(lambda: FrameAveraging(MLP(n=5, out=2), group="E3", output="invariant"))
    x = torch.cat([_cloud(1, 5, 3), _square(), _cloud(1, 5, 3, seed=1)])
    y = fa(x)
    for i in range(3):
        torch.testing.assert_close(y[i : i + 1], fa(x[i : i + 1]), rtol=1e-12, atol=1e-14)


# -------------------------------------------------------------------- bad input
def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="group: expected one of O3, SO3, E3"):
        FrameAveraging(MLP(), group="O4")
    with pytest.raises(ValueError, match="output: expected one of invariant, equivariant"):
        FrameAveraging(MLP(), output="vectors")
    with pytest.raises(ValueError, match="frames: expected one of pca, stochastic, weighted"):
        FrameAveraging(MLP(), frames="random")
    with pytest.raises(ValueError, match="vectors: expected one of vector, pseudovector"):
        FrameAveraging(MLP(), vectors=("axial",))
    with pytest.raises(ValueError, match="num_samples: expected a positive int, got 0"):
        FrameAveraging(MLP(), frames="stochastic", num_samples=0)
    fa = FrameAveraging(MLP(extra=1), group="E3", vectors=("vector",)).double()
    x = _cloud(2, N, 3)
    with pytest.raises(ValueError, match=r"positions: expected shape \[batch, points, 3\] .* got \[2, 6, 2\]"):
        fa(x[..., :2], x)
    with pytest.raises(ValueError, match="vectors: expected 1 extra vector inputs"):
        fa(x)
    with pytest.raises(ValueError, match=r"vectors\[0\]: expected shape \[2, ..., 3\], got \[3, 6, 3\]"):
        fa(x, _cloud(3, N, 3))
    with pytest.raises(ValueError, match=r"mask: expected a bool tensor of shape \[2, 6\], got torch.bool of shape \[2, 5\]"):
        fa(x, x, mask=torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(TypeError, match="positions: expected a real floating-point tensor"):
        fa(x.long(), x)
    with pytest.raises(ValueError, match="h: expected a tensor with batch dimension 2 first"):
        fa(x, x, h=torch.ones(3, 4))
    bad = FrameAveraging(MLP(out=2), output="equivariant").double()
    with pytest.raises(ValueError, match="backbone: output 0 is 'equivariant' and needs a last axis of size 3"):
        bad(x)


def test_sign_patterns():
    s = sign_patterns(3, proper=False)
    assert s.shape == (8, 3) and len({tuple(r) for r in s.tolist()}) == 8
    sp = sign_patterns(3, proper=True)
    assert sp.shape == (4, 3) and bool((sp.prod(-1) == 1).all())
    assert math.isclose(float(sign_patterns(2, proper=False).abs().sum()), 8.0)


def test_runs_under_torch_compile():
    fa = _seeded(lambda: FrameAveraging(MLP(), group="E3", output="positions", degenerate="ignore"))
    x = _cloud(2, N, 3)
    compiled = torch.compile(fa, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(x), fa(x))
    default = _seeded(lambda: FrameAveraging(MLP(), group="E3", output="positions"))
    # the degeneracy check is a host sync, hence a graph break; it compiles around it
    torch.testing.assert_close(torch.compile(default, backend="eager")(x), fa(x))


def test_skewness_weights_interpolate_between_canonicalization_and_average():
    from geonorm.o3.frame_sets import skewness_weights

    x = _cloud(2, N, 3, seed=30) ** 3  # skewed along every axis
    _, t, _, axes = pca_frames(x)
    signs = sign_patterns(3, proper=False)
    cold, hot = (skewness_weights(x, t, axes, signs, None, tau) for tau in (1e-3, 1e3))
    torch.testing.assert_close(cold.sum(-1), torch.ones(2, dtype=F64), rtol=1e-12, atol=0.0)
    assert bool((cold.amax(-1) > 1 - 1e-6).all())  # one frame: a canonicalization
    torch.testing.assert_close(hot, torch.full_like(hot, 1 / 8), rtol=1e-2, atol=0.0)  # the average
