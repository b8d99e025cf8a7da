"""CliffordAlgebra: identities (hypothesis), agreement with the `clifford` package, versors, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from geonorm.clifford import CliffordAlgebra
from geonorm.testing import random_versor
from geonorm.testing.strategies import deterministic_settings, multivectors

F64 = torch.float64
EPS = torch.finfo(F64).eps
SIGNATURES = [(1, 1, 1), (0, 1, 1, 1), (1, -1, -1, -1), (1, 1, 1, 1, -1), (-1, 0, 1)]
ALGEBRAS = {s: CliffordAlgebra(s) for s in SIGNATURES}


def l1(x):
    return float(x.abs().sum())


def bound(alg, *xs):
    """Rounding bound of a chain of products: every coefficient of a product is a sum of
    2^n terms each at most the product of the factors' l1 norms (|e_A e_B| <= 1)."""
    return 4 * len(xs) * alg.dim * EPS * math.prod(l1(x) for x in xs) + 1e-300


algebras = st.sampled_from(SIGNATURES).map(ALGEBRAS.__getitem__)


@st.composite
def triples(draw):
    alg = draw(algebras)
    return (alg, *(draw(multivectors(alg)) for _ in range(3)))


@deterministic_settings(max_examples=25)
@given(triples())
def test_product_identities(case):
    alg, x, y, z = case
    gp, rev = alg.geometric_product, alg.reverse
    # associativity and distributivity
    assert (gp(gp(x, y), z) - gp(x, gp(y, z))).abs().max() <= 2 * bound(alg, x, y, z)
    assert (gp(x, y + z) - gp(x, y) - gp(x, z)).abs().max() <= bound(alg, x, y) + bound(alg, x, z)
    # reverse, Clifford conjugate and grade involution of products
    assert (rev(gp(x, y)) - gp(rev(y), rev(x))).abs().max() <= 2 * bound(alg, x, y)
    conj = alg.clifford_conjugate
    assert (conj(gp(x, y)) - gp(conj(y), conj(x))).abs().max() <= 2 * bound(alg, x, y)
    inv = alg.grade_involution
    assert (inv(gp(x, y)) - gp(inv(x), inv(y))).abs().max() <= 2 * bound(alg, x, y)
    # the outer product is associative too
    op = alg.outer_product
    assert (op(op(x, y), z) - op(x, op(y, z))).abs().max() <= 2 * bound(alg, x, y, z)


@deterministic_settings(max_examples=15)
@given(algebras.flatmap(lambda a: st.tuples(st.just(a), multivectors(a, (3,)))))
def test_grade_projections_partition(case):
    alg, x = case
    parts = [alg.grade_projection(x, k) for k in alg.grades]
    assert torch.equal(sum(parts), x)
    for k, p in enumerate(parts):
        assert torch.equal(alg.grade_projection(p, k), p)
        assert torch.equal(alg.grade_projection(p, [j for j in alg.grades if j != k]), torch.zeros_like(p))


@deterministic_settings(max_examples=15)
@given(algebras, st.integers(1, 4), st.integers(1, 4), st.integers(0, 2**32))
def test_norm_is_multiplicative_for_versors(alg, k1, k2, seed):
    gen = torch.Generator().manual_seed(seed)
    v, w = random_versor(alg, k1, generator=gen), random_versor(alg, k2, generator=gen)
    q = alg.quadratic_form
    # unit vectors: |q(v)| = 1, and q(vw) = q(v) q(w)
    assert abs(abs(float(q(v))) - 1) <= bound(alg, v, v)
    assert abs(float(q(alg.geometric_product(v, w))) - float(q(v) * q(w))) <= 4 * bound(alg, v, w, v, w)
    # v v^{-1} = 1 and v^~ v is a scalar
    one = torch.zeros(alg.dim, dtype=F64)
    one[0] = 1
    assert (alg.geometric_product(v, alg.versor_inverse(v)) - one).abs().max() <= 4 * bound(alg, v, v)


@pytest.mark.parametrize("sig", SIGNATURES)
def test_agrees_with_the_clifford_package(sig):
    """The products against the `clifford` package's own multiplication tables
    (``layout.gmt``, ``omt``, ``lcmt``: (x y)_j = sum_ik x_i T_ijk y_k), built by
    its code; its JIT-compiled operators give the same tables but take ~5 s to
    compile per layout, so they are called for one signature below."""
    clifford = pytest.importorskip("clifford")
    alg = ALGEBRAS[sig]
    layout, _ = clifford.Cl(sig=list(sig))
    assert [b for b in alg.blades] == [tuple(i - 1 for i in blade) for blade in layout.bladeTupList]
    gen = torch.Generator().manual_seed(0)
    tables = {alg.geometric_product: layout.gmt, alg.outer_product: layout.omt, alg.inner_product: layout.lcmt}
    for _ in range(3):
        x, y = (torch.randn(alg.dim, generator=gen, dtype=F64) for _ in range(2))
        tol = bound(alg, x, y)
        for ours, table in tables.items():
            ref = np.einsum("i,ijk,k->j", x.numpy(), table.todense(), y.numpy())
            np.testing.assert_allclose(ours(x, y).numpy(), ref, rtol=0, atol=tol)


def test_agrees_with_the_clifford_package_operators():
    clifford = pytest.importorskip("clifford")
    alg = ALGEBRAS[(1, -1, -1, -1)]
    layout, _ = clifford.Cl(sig=list(alg.metric))
    gen = torch.Generator().manual_seed(0)
    x, y = (torch.randn(alg.dim, generator=gen, dtype=F64) for _ in range(2))
    X, Y = layout.MultiVector(x.numpy()), layout.MultiVector(y.numpy())
    pairs = [(alg.geometric_product(x, y), X * Y), (alg.reverse(x), ~X),
             (alg.grade_involution(x), X.gradeInvol()), (alg.clifford_conjugate(x), X.conjugate())]  # fmt: skip
    for ours, ref in pairs:
        np.testing.assert_allclose(ours.numpy(), ref.value, rtol=0, atol=bound(alg, x, y))
    for k in alg.grades:
        np.testing.assert_array_equal(alg.grade_projection(x, k).numpy(), X(k).value)


# every kind of representation: complex (Cl(3,0), Cl(0,1), Cl(4,1)), real (Cl(2), Cl(3,1), Cl(4,0)),
# two blocks (Cl(0,3) = H + H, Cl(5,0)), degenerate splits (PGA, Cl(0,0,1,1), all-null), mixed orders
KERNEL_SIGNATURES = [(1, 1, 1), (-1,), (1, 1, 1, 1, -1), (1, 1), (1, 1, 1, -1), (1, 1, 1, 1), (-1, -1, -1),
                     (1, 1, 1, 1, 1), (0, 1, 1, 1), (1, 0, 1, 0), (0, 0, 0), (-1, 0, 1), (1, -1, 0, -1, 1)]  # fmt: skip


def _kernels(alg):
    """Every product kernel that applies to ``alg``: the Cayley-table kernels and the plan's layouts."""
    from geonorm.clifford.representation import product_plan

    def table(dense_max_n):
        def run(x, y):
            saved, alg.dense_max_n = alg.dense_max_n, dense_max_n
            try:
                return alg._product(x, y, alg._table("sign", x))
            finally:
                alg.dense_max_n = saved

        return run

    out = {"dense": table(8), "gather": table(0),
           "real": lambda x, y: alg._plan_product(x, y, False, product_plan(alg.metric).size > 4)}  # fmt: skip
    if product_plan(alg.metric, complex_=True) is not None:
        out["complex"] = lambda x, y: alg._plan_product(x, y, True, False)
    return out


@pytest.mark.parametrize("sig", KERNEL_SIGNATURES)
def test_every_product_kernel_is_the_geometric_product(sig):
    alg = CliffordAlgebra(sig)
    basis = torch.eye(alg.dim, dtype=F64)
    partner, sign = alg.tables(basis)
    # the Cayley table itself: e_A e_B for every pair of blades (from the sign rule, not a kernel)
    table = torch.zeros(alg.dim, alg.dim, alg.dim, dtype=F64)
    for a in range(alg.dim):
        table[a, partner[a], torch.arange(alg.dim)] = sign[a]
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(6, 1, alg.dim, generator=gen, dtype=F64)  # broadcast against y [3, 2^n]
    y = torch.randn(3, alg.dim, generator=gen, dtype=F64)
    ref = torch.einsum("...a,abc,...b->...c", x, table, y)
    tol = 4 * alg.dim * EPS * float(x.abs().sum(-1).max() * y.abs().sum(-1).max())  # as bound(), per pair
    for name, kernel in _kernels(alg).items():
        prods = kernel(basis[:, None], basis[None, :])  # [A, B, 2^n]
        assert (prods - table).abs().max() <= 8 * alg.dim * EPS, name
        out = kernel(x, y)
        assert out.shape == (6, 3, alg.dim), name
        assert (out - ref).abs().max() <= tol, name
        assert kernel(x[0, 0], y[0]).shape == (alg.dim,), name
        assert torch.allclose(kernel(x.float(), y.float()).double(), ref, rtol=0, atol=tol * torch.finfo(torch.float32).eps / EPS), name


@pytest.mark.parametrize("sig", [(1, 1, 1), (1, 1, 1, 1, -1), (0, 1, 1, 1)])
def test_plan_kernels_gradcheck(sig):
    alg = CliffordAlgebra(sig)
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(2, 1, alg.dim, generator=gen, dtype=F64, requires_grad=True)
    y = torch.randn(3, alg.dim, generator=gen, dtype=F64, requires_grad=True)
    for kernel in _kernels(alg).values():
        assert torch.autograd.gradcheck(kernel, (x, y))
        assert torch.autograd.gradgradcheck(kernel, (x, y))  # the block product's backward is differentiable


def test_weighted_product_kernels_agree(monkeypatch):
    alg = CliffordAlgebra((1, 1, 1, 1, -1))
    gen = torch.Generator().manual_seed(1)
    x, y = (torch.randn(6, 3, alg.dim, generator=gen, dtype=F64) for _ in range(2))
    w = torch.randn(3, alg.n + 1, alg.n + 1, alg.n + 1, generator=gen, dtype=F64)
    dense = alg.weighted_product(x, y, w)
    monkeypatch.setattr(alg, "dense_max_n", 0)
    assert (alg.weighted_product(x, y, w) - dense).abs().max() <= bound(alg, x[0, 0], y[0, 0]) * 10


@pytest.mark.parametrize("sig", KERNEL_SIGNATURES)
def test_multiplication_matrices_are_the_product(sig):
    """t L_x = x t and t R_x = t x; R is a homomorphism and L an anti-homomorphism (R_xy = R_x R_y, L_xy = L_y L_x)."""
    alg = CliffordAlgebra(sig)
    gen = torch.Generator().manual_seed(8)
    x, y, t = (torch.randn(4, alg.dim, generator=gen, dtype=F64) for _ in range(3))
    tol = lambda u, v: bound(alg, u, v) * 4  # noqa: E731 - two roundings per entry at most
    ref_left, ref_right = alg.geometric_product(x, t), alg.geometric_product(t, x)
    assert (torch.einsum("...a,...ac->...c", t, alg.left_multiplication(x)) - ref_left).abs().max() <= tol(x, t)
    assert (torch.einsum("...a,...ac->...c", t, alg.right_multiplication(x)) - ref_right).abs().max() <= tol(t, x)
    xy = alg.geometric_product(x, y)
    scale = float(x.abs().sum(-1).max() * y.abs().sum(-1).max())
    assert (alg.right_multiplication(xy) - alg.right_multiplication(x) @ alg.right_multiplication(y)).abs().max() \
        <= 8 * alg.dim * EPS * scale
    assert (alg.left_multiplication(xy) - alg.left_multiplication(y) @ alg.left_multiplication(x)).abs().max() \
        <= 8 * alg.dim * EPS * scale


@pytest.mark.parametrize("dense_max_n", [5, 0])  # the matrix-multiply kernel and the gather loop
@pytest.mark.parametrize("function_min_pairs", [0, 10**9])  # the hand-written backward, autograd's
def test_signed_sums_backward_is_differentiable(monkeypatch, dense_max_n, function_min_pairs):
    """The hand-written backward (bilinear.py) against finite differences, for the sign tables and learned weights."""
    import geonorm.clifford.bilinear as bilinear

    monkeypatch.setattr(bilinear, "FUNCTION_MIN_PAIRS", function_min_pairs)
    alg = CliffordAlgebra((0, 1, -1))  # degenerate and mixed: zero and negative signs in the tables
    monkeypatch.setattr(alg, "dense_max_n", dense_max_n)
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(2, 1, 3, alg.dim, generator=gen, dtype=F64, requires_grad=True)  # broadcast against y
    y = torch.randn(4, 3, alg.dim, generator=gen, dtype=F64, requires_grad=True)
    w = torch.randn(3, alg.n + 1, alg.n + 1, alg.n + 1, generator=gen, dtype=F64, requires_grad=True)
    for f, args in [(alg.weighted_product, (x, y, w)), (alg.outer_product, (x, y)), (alg.inner_product, (x, y)),
                    (alg._signed_sum, (x[0, 0], y[0], alg._table("sign", x)))]:  # fmt: skip
        assert torch.autograd.gradcheck(f, args)
        assert torch.autograd.gradgradcheck(f, args)


def test_weighted_product_with_unit_weights_is_the_geometric_product():
    alg = ALGEBRAS[(1, -1, -1, -1)]
    gen = torch.Generator().manual_seed(2)
    x, y = (torch.randn(5, 2, alg.dim, generator=gen, dtype=F64) for _ in range(2))
    w = torch.ones(2, alg.n + 1, alg.n + 1, alg.n + 1, dtype=F64)
    assert torch.allclose(alg.weighted_product(x, y, w), alg.geometric_product(x, y), rtol=0, atol=1e-13)
    # zeroing one grade path removes exactly that part: vector x vector -> scalar
    w[:, 1, 1, 0] = 0
    v = alg.grade_projection(x, 1)
    assert torch.allclose(alg.weighted_product(v, v, w), alg.grade_projection(alg.geometric_product(v, v), 2),
                          rtol=0, atol=1e-13)  # fmt: skip


def test_sandwich_reflects_and_handles_mixed_parity_batches():
    alg = ALGEBRAS[(1, 1, 1)]
    gen = torch.Generator().manual_seed(3)
    versors = torch.stack([random_versor(alg, k, generator=gen) for k in (1, 2, 3, 2)])  # odd, even, odd, even
    assert alg.parity(versors).tolist() == [True, False, True, False]
    x = torch.randn(4, alg.dim, generator=gen, dtype=F64)
    out = alg.sandwich(versors, x)
    for i in range(4):  # per element equal to the single-versor action
        assert torch.allclose(out[i], alg.sandwich(versors[i], x[i]), rtol=0, atol=1e-13)
    # a unit vector n reflects vectors in the plane orthogonal to n: v - 2 (v.n) n
    n = alg.grade_projection(versors[0], 1)
    v = alg.grade_projection(x[0], 1)
    refl = v - 2 * (v[1:4] @ n[1:4]) * n
    assert torch.allclose(alg.sandwich(n, v), refl, rtol=0, atol=1e-14)
    # grades are preserved, the quadratic form of each grade too
    for k in alg.grades:
        xk = alg.grade_projection(x, k)
        yk = alg.sandwich(versors, xk)
        assert torch.allclose(alg.grade_projection(yk, k), yk, atol=1e-13)
        assert torch.allclose(alg.quadratic_form(yk), alg.quadratic_form(xk), atol=1e-12)
    with pytest.raises(ValueError, match="v: expected versors of one parity"):
        alg.sandwich(versors[0] + versors[1], x[0])


@pytest.mark.parametrize("sig", [(1, 1, 1), (0, 1, 1, 1), (1, -1, -1, -1)])
def test_exp_of_bivectors_is_a_rotor(sig):
    alg = ALGEBRAS[sig]
    gen = torch.Generator().manual_seed(4)
    b = alg.grade_projection(3 * torch.randn(5, alg.dim, generator=gen, dtype=F64), 2)
    r = alg.exp(b)
    one = torch.zeros(alg.dim, dtype=F64)
    one[0] = 1
    # R R~ = 1 and R is even; exp(b) exp(-b) = 1. A boost's coefficients are large (|R|_1 up to
    # ~260 here) and R R~ = 1 cancels products of that size: the rounding bound of the product.
    tol = torch.tensor([2 * bound(alg, ri, ri) for ri in r], dtype=F64)[:, None]
    assert bool(((alg.geometric_product(r, alg.reverse(r)) - one).abs() <= tol).all())
    assert torch.allclose(alg.grade_projection(r, [k for k in alg.grades if k % 2]), torch.zeros_like(r))
    assert bool(((alg.geometric_product(r, alg.exp(-b)) - one).abs() <= tol).all())


def test_exp_closed_form_in_cl3():
    alg = ALGEBRAS[(1, 1, 1)]
    theta = 1.3
    r = alg.exp(alg.blade((0, 1), dtype=F64) * (theta / 2))
    # e^{B theta/2} = cos(theta/2) + sin(theta/2) e01 (e01^2 = -1)
    assert math.isclose(float(r[0]), math.cos(theta / 2), abs_tol=1e-15)
    assert math.isclose(float(r[4]), math.sin(theta / 2), abs_tol=1e-15)


def test_norm_has_a_finite_gradient_at_zero():
    alg = ALGEBRAS[(1, 1, 1)]
    x = torch.zeros(2, alg.dim, dtype=F64, requires_grad=True)
    (alg.norm(x).sum() + alg.grade_norms(x).sum()).backward()
    assert torch.isfinite(x.grad).all() and bool(x.grad.eq(0).all())
    y = torch.randn(3, alg.dim, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: alg.norm(t), (y,))


def test_products_gradcheck():
    alg = ALGEBRAS[(0, 1, 1, 1)]
    gen = torch.Generator().manual_seed(5)
    x, y = (torch.randn(2, alg.dim, generator=gen, dtype=F64, requires_grad=True) for _ in range(2))
    assert torch.autograd.gradcheck(alg.geometric_product, (x, y))
    b = torch.randn(alg.dim, generator=gen, dtype=F64)
    b = (alg.grade_projection(b, 2)).requires_grad_()
    assert torch.autograd.gradcheck(alg.exp, (b,))


def test_broadcast_dtype_and_device_follow_inputs():
    alg = ALGEBRAS[(1, 1, 1)]
    x, y = torch.randn(4, 1, 8), torch.randn(3, 8)
    out = alg.geometric_product(x, y)
    assert out.shape == (4, 3, 8) and out.dtype == torch.float32
    ref = alg.geometric_product(x.double(), y.double())
    assert torch.allclose(out.double(), ref, atol=1e-5)


def test_bad_input_errors():
    with pytest.raises(ValueError, match=r"metric: expected a non-empty sequence of 1, -1 or 0, got \(1, 2\)"):
        CliffordAlgebra((1, 2))
    with pytest.raises(ValueError, match="metric"):
        CliffordAlgebra(())
    with pytest.raises(TypeError, match="metric"):
        CliffordAlgebra("111")
    alg = ALGEBRAS[(1, 1, 1)]
    with pytest.raises(ValueError, match=r"x: expected a multivector tensor of shape \[..., 8\].*got shape \[2, 4\]"):
        alg.geometric_product(torch.zeros(2, 4), torch.zeros(2, 8))
    with pytest.raises(TypeError, match="x: expected a real floating-point tensor"):
        alg.reverse(torch.zeros(8, dtype=torch.long))
    with pytest.raises(ValueError, match="grades: expected grades in 0..3"):
        alg.grade_projection(torch.zeros(8), 4)
    with pytest.raises(ValueError, match="v: expected invertible versors"):
        alg.versor_inverse(torch.zeros(8))
    pga = ALGEBRAS[(0, 1, 1, 1)]
    with pytest.raises(ValueError, match="v: expected invertible versors"):
        pga.versor_inverse(pga.basis_vector(0))  # e0 squares to zero
    with pytest.raises(ValueError, match=r"weight: expected shape \[2, 4, 4, 4\]"):
        alg.weighted_product(torch.zeros(2, 8), torch.zeros(2, 8), torch.zeros(2, 3, 3, 3))


def test_product_first_called_under_compile():
    """The kernel choice and the representation are built outside the traced graph: fresh
    algebras first used inside one compiled function (the same code, recompiled per algebra)
    pick the kernels of eager use and give the same products."""
    gen = torch.Generator().manual_seed(8)
    for sig in [(1, 1, 1), (1, 1, 1, 1, -1), (0, 1, 1, 1)]:
        alg, ref_alg = CliffordAlgebra(sig), CliffordAlgebra(sig)
        x, y = (torch.randn(4096, alg.dim, generator=gen, dtype=F64) for _ in range(2))
        x.requires_grad_()
        out = torch.compile(lambda a, b: alg.geometric_product(a, b))(x, y).detach()  # noqa: B023
        ref = ref_alg.geometric_product(x.detach(), y)
        assert alg._product_kernel(4096) == ref_alg._product_kernel(4096) is not None, sig
        assert (out - ref).abs().max() <= 4 * alg.dim * EPS * float(x.detach().abs().sum(-1).max() * y.abs().sum(-1).max())
