"""Tools to prove equivariance: group actions, assertions, strategies, a CLI.

* Group elements and groups: :class:`GroupElement`, :class:`EuclideanGroup`
  (O(n), SO(n), E(n), SE(n)), :class:`SymmetricGroup`, :class:`ProductGroup`.
* Actions: :class:`IrrepsAction` (e3nn irreps), :class:`PointCloudAction`
  (positions, vectors, pseudovectors), :class:`CongruenceAction` (SPD
  matrices), :class:`PermutationAction`, :class:`TrivialAction`, and the
  combinators :class:`JointAction` (several tensors, one element) and
  :class:`ComposedAction` (one tensor, several actions).
* Checks: :func:`equivariance_error`, :func:`assert_equivariant`,
  :func:`assert_invariant`.
* :func:`spd_gradcheck`: gradient checks of functions of SPD matrices
  through relative, positive-definite perturbations.
* :mod:`geonorm.testing.strategies` (hypothesis, imported on demand),
  :mod:`geonorm.testing.pytest_plugin` (fixtures, loaded by pytest through
  its entry point) and the CLI ``python -m geonorm.testing check``.

>>> from geonorm.testing import IrrepsAction, assert_equivariant
>>> _ = assert_equivariant(lambda x: 3 * x, IrrepsAction("2x0e+1o"), torch.randn(4, 5))
"""

import torch  # noqa: F401  (doctest namespace)

from .actions import (
    ComposedAction,
    GroupAction,
    JointAction,
    PermutationAction,
    TrivialAction,
    as_action,
)
from .assertions import assert_equivariant, assert_invariant, equivariance_error
from .elements import GroupElement
from .euclidean import CongruenceAction, IrrepsAction, PointCloudAction
from .groups import (
    EuclideanGroup,
    Group,
    ProductGroup,
    SymmetricGroup,
    TrivialGroup,
    group_from_name,
    join_groups,
    random_orthogonal,
)
from .gradcheck import spd_gradcheck
from .geometry import check_geometry
from .hyperbolic import MobiusAction, MobiusGroup
from .result import EquivarianceResult, SampleError

__all__ = [
    "as_action",
    "check_geometry",
    "assert_equivariant",
    "assert_invariant",
    "ComposedAction",
    "CongruenceAction",
    "equivariance_error",
    "EquivarianceResult",
    "EuclideanGroup",
    "Group",
    "GroupAction",
    "GroupElement",
    "group_from_name",
    "IrrepsAction",
    "join_groups",
    "JointAction",
    "MobiusAction",
    "MobiusGroup",
    "PermutationAction",
    "PointCloudAction",
    "ProductGroup",
    "random_orthogonal",
    "SampleError",
    "spd_gradcheck",
    "SymmetricGroup",
    "TrivialAction",
    "TrivialGroup",
]
