"""Groups sample what they claim; actions are representations and agree with each other."""

from __future__ import annotations

import pytest
import torch
from e3nn import o3

from geonorm.testing import (
    ComposedAction,
    CongruenceAction,
    EuclideanGroup,
    GroupElement,
    IrrepsAction,
    JointAction,
    PermutationAction,
    PointCloudAction,
    ProductGroup,
    SymmetricGroup,
    TrivialAction,
    TrivialGroup,
    group_from_name,
    join_groups,
)
from geonorm.testing._wigner import irreps_D_from_matrix

F64 = torch.float64
EYE3 = torch.eye(3, dtype=F64)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- groups


@pytest.mark.parametrize("name", ["o3", "so3", "e3", "se3"])
def test_euclidean_samples_are_orthogonal_with_claimed_determinants(name):
    group = group_from_name(name)
    els = group.sample(6, _gen())
    dets = [g.det for g in els]
    for g in els:
        torch.testing.assert_close(g.rotation @ g.rotation.T, EYE3, rtol=0, atol=1e-14)
        assert (g.translation is not None) == name.startswith(("e", "se"))
    if name.startswith("s"):
        assert dets == [1.0] * 6
    else:  # half improper, the first one included
        assert dets == [-1.0, 1.0] * 3
    # distinct elements, reproducible from the seed
    assert not torch.allclose(els[1].rotation, els[3].rotation)
    again = group.sample(6, _gen())
    assert all(torch.equal(a.rotation, b.rotation) for a, b in zip(els, again, strict=True))


def test_sample_dtype_and_n_dimensional_groups():
    (g,) = EuclideanGroup(5, proper=True).sample(1, _gen(), dtype=torch.float32)
    assert g.rotation.dtype == torch.float32 and g.rotation.shape == (5, 5)
    assert g.det == 1.0
    (p,) = SymmetricGroup(7).sample(1, _gen())
    assert sorted(p.permutation.tolist()) == list(range(7))


def test_join_rules():
    o3g, se3 = group_from_name("o3"), group_from_name("se3")
    assert join_groups(o3g, se3) == group_from_name("e3")
    assert join_groups(se3, group_from_name("so3")) == se3
    assert join_groups(TrivialGroup(), o3g, TrivialGroup()) == o3g
    assert isinstance(join_groups(), TrivialGroup)
    prod = join_groups(SymmetricGroup(4), o3g, se3)
    assert isinstance(prod, ProductGroup) and str(prod) == "S(4) × E(3)"
    (g,) = prod.sample(1, _gen())
    assert g.components == {"permutation", "rotation", "translation"}
    with pytest.raises(ValueError, match="cannot share one element"):
        join_groups(EuclideanGroup(2), EuclideanGroup(3))
    with pytest.raises(ValueError, match="cannot share one element"):
        join_groups(SymmetricGroup(3), SymmetricGroup(4))


def test_group_argument_errors():
    with pytest.raises(ValueError, match="group: expected one of"):
        group_from_name("o4")
    with pytest.raises(ValueError, match="dim: group 'on' needs"):
        group_from_name("on")
    with pytest.raises(ValueError, match="n: expected a positive int"):
        EuclideanGroup(3).sample(0)
    with pytest.raises(ValueError, match="dim: expected a positive int"):
        EuclideanGroup(0)


# --------------------------------------------------------------------------- elements


def test_group_element_validation_and_merge():
    with pytest.raises(ValueError, match="rotation: expected a square matrix"):
        GroupElement(rotation=torch.zeros(3))
    with pytest.raises(ValueError, match="permutation: expected a 1-D torch.long"):
        GroupElement(permutation=torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="translation: expected length 3"):
        GroupElement(rotation=EYE3, translation=torch.zeros(2, dtype=F64))
    with pytest.raises(TypeError, match="rotation: expected a torch.Tensor"):
        GroupElement(rotation=[[1.0]])
    a = GroupElement(rotation=EYE3)
    with pytest.raises(ValueError, match="overlapping \\['rotation'\\]"):
        a.merge(GroupElement(rotation=EYE3))
    with pytest.raises(ValueError, match="needs a group element with a 'translation'"):
        a.require("translation", "test")
    extra = GroupElement(extra={"mobius": torch.zeros(3)})
    assert a.merge(extra).components == {"rotation", "mobius"}


# --------------------------------------------------------------------------- actions


def test_irreps_action_is_a_representation_with_parity():
    a = IrrepsAction("2x0e+1x0o+1x1o+1x1e+1x2e+1x3o")
    g1, g2 = a.sample(2, _gen(3))
    x = torch.randn(5, a.irreps.dim, generator=_gen(4), dtype=F64)
    prod = GroupElement(rotation=g1.rotation @ g2.rotation)
    torch.testing.assert_close(a.act(g1, a.act(g2, x)), a.act(prod, x), rtol=0, atol=1e-13)
    parity = a.act(GroupElement(rotation=-EYE3), x)
    sign = torch.tensor([1, 1, -1, -1, -1, -1, 1, 1, 1] + [1] * 5 + [-1] * 7, dtype=F64)
    torch.testing.assert_close(parity, x * sign)


def test_irreps_1o_and_point_cloud_vectors_share_a_basis():
    g = IrrepsAction("1o").sample(1, _gen(5))[0]
    v = torch.randn(4, 3, generator=_gen(6), dtype=F64)
    as_irreps = IrrepsAction("1o").act(g, v)
    as_vector = PointCloudAction(kind="vector").act(g, v)
    torch.testing.assert_close(as_irreps, as_vector, rtol=0, atol=1e-14)


def test_wigner_matches_e3nn(float64_default):
    irreps = o3.Irreps("0e+1o+1e+2e+2o+3o+4e")
    for g in EuclideanGroup(3).sample(4, _gen(7)):
        ours = irreps_D_from_matrix(irreps, g.rotation)
        theirs = irreps.D_from_matrix(g.rotation)  # float64 generators under this fixture
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)


def test_wigner_matches_e3nn_float32_default_to_its_precision():
    irreps = o3.Irreps("1o+2e")
    (g,) = EuclideanGroup(3).sample(1, _gen(8))
    theirs = irreps.D_from_matrix(g.rotation)
    torch.testing.assert_close(irreps_D_from_matrix(irreps, g.rotation), theirs, rtol=0, atol=1e-5)


def test_point_cloud_kinds():
    g = PointCloudAction(group="e3").sample(1, _gen(9))[0]  # improper, with translation
    assert g.det == -1.0
    a, b = torch.randn(2, 5, 3, generator=_gen(10), dtype=F64)
    pos = PointCloudAction(group="e3")
    vec = PointCloudAction(group="e3", kind="vector")
    pseudo = PointCloudAction(group="e3", kind="pseudovector")
    torch.testing.assert_close(pos.act(g, a), a @ g.rotation.T + g.translation)
    torch.testing.assert_close(vec.act(g, a), a @ g.rotation.T)
    # the cross product of two vectors is a pseudovector
    torch.testing.assert_close(
        torch.cross(vec.act(g, a), vec.act(g, b), dim=-1),
        pseudo.act(g, torch.cross(a, b, dim=-1)),
    )
    # positions without translation (O(3) element)
    assert torch.equal(pos.act(g.rotation, a), a @ g.rotation.T)


def test_congruence_preserves_spectrum_and_accepts_any_batch():
    a = CongruenceAction(4)
    x = torch.randn(2, 3, 4, 4, generator=_gen(11), dtype=F64)
    x = x @ x.mT + torch.eye(4, dtype=F64)
    g = a.sample(1, _gen(12))[0]
    y = a.act(g, x)
    torch.testing.assert_close(torch.linalg.eigvalsh(y), torch.linalg.eigvalsh(x))
    assert y.shape == x.shape
    with pytest.raises(ValueError, match="group: expected a group without translations"):
        CongruenceAction(3, group=EuclideanGroup(3, translations=True))
    with pytest.raises(ValueError, match="group: expected one of on, son"):
        CongruenceAction(3, group="e3")


def test_permutation_action_any_axis():
    a = PermutationAction(4, dim=1)
    x = torch.arange(24.0).reshape(2, 4, 3)
    perm = torch.tensor([3, 1, 0, 2])
    assert torch.equal(a.act(perm, x), x[:, perm])
    with pytest.raises(ValueError, match="x: expected a set axis dim=1 of length 4"):
        a.act(perm, torch.zeros(2, 5, 3))


def test_joint_and_composed_actions_share_one_element():
    joint = JointAction(PointCloudAction(group="se3"), IrrepsAction("1o"), TrivialAction())
    assert joint.group == group_from_name("e3")
    g = joint.sample(1, _gen(13))[0]
    pos = torch.randn(6, 3, generator=_gen(14), dtype=F64)
    out = joint.act(g, (pos, pos, "label"))
    torch.testing.assert_close(out[0], out[1] + g.translation)  # irreps ignore translation
    assert out[2] == "label"
    with pytest.raises(ValueError, match="x: expected a tuple of 3 entries"):
        joint.act(g, (pos, pos))

    comp = ComposedAction(PermutationAction(6, dim=-2), PointCloudAction(group="so3"))
    g = comp.sample(1, _gen(15))[0]
    torch.testing.assert_close(comp.act(g, pos), (pos @ g.rotation.T)[g.permutation])
    explicit = JointAction(IrrepsAction("1o"), group=group_from_name("so3"))
    assert explicit.group == group_from_name("so3")


def test_action_argument_errors():
    with pytest.raises(ValueError, match="irreps: expected an e3nn irreps string"):
        IrrepsAction("not irreps")
    with pytest.raises(ValueError, match="group: expected one of"):
        IrrepsAction("1o", group="on")
    with pytest.raises(ValueError, match="kind: expected one of position, vector"):
        PointCloudAction(kind="spinor")
    with pytest.raises(ValueError, match=r"x: expected shape \[..., 4\]"):
        IrrepsAction("0e+1o").act(EYE3, torch.zeros(2, 3))
    with pytest.raises(TypeError, match="g: expected a GroupElement or a rotation tensor"):
        IrrepsAction("1o").act("R", torch.zeros(3))
    with pytest.raises(ValueError, match="IrrepsAction needs a group element with a 'rotation'"):
        IrrepsAction("1o").act(GroupElement(permutation=torch.tensor([0])), torch.zeros(3))
    with pytest.raises(ValueError, match=r"g: expected a \[3, 3\] rotation"):
        PointCloudAction().act(torch.eye(2), torch.zeros(3))
    with pytest.raises(ValueError, match="n: expected a positive int"):
        CongruenceAction(0)
