"""Tools to prove equivariance: group actions, assertions, strategies, a CLI.

* Group elements and groups: :class:`GroupElement`, :class:`EuclideanGroup`
  (O(n), SO(n), E(n), SE(n)), :class:`TranslationGroup` (T(n)),
  :class:`SymmetricGroup`, :class:`BlockPermutationGroup` (ragged batches),
  :class:`ProductGroup`.
* Actions: :class:`IrrepsAction` (e3nn irreps), :class:`PointCloudAction`
  (positions, vectors, pseudovectors), :class:`CongruenceAction` (SPD
  matrices), :class:`MobiusAction` (Poincaré ball), :class:`CliffordAction`
  (versors on multivectors, twisted sandwich), :class:`PermutationAction`,
  :class:`TrivialAction`, and the combinators :class:`JointAction` (several tensors, one element) and
  :class:`ComposedAction` (one tensor, several actions).
* Checks: :func:`equivariance_error`, :func:`assert_equivariant`,
  :func:`assert_invariant` (tensors, tuples or dicts in and out; one verdict
  per output and per irreps block); :func:`check_potential` and
  :func:`atomistic_batch` for interatomic potentials (energy and forces).
* :func:`spd_gradcheck`: gradient checks of functions of SPD matrices
  through relative, positive-definite perturbations.
* :mod:`geonorm.testing.strategies` (hypothesis, imported on demand),
  :mod:`geonorm.testing.pytest_plugin` (fixtures, loaded by pytest through
  its entry point) and the CLI ``python -m geonorm.testing check``.

Importing this package is cheap: every name is imported from its submodule
on first access (module ``__getattr__``), so the pytest plugin loads without
torch or e3nn. A new export is one entry of ``_EXPORTS`` below.

>>> import torch
>>> from geonorm.testing import IrrepsAction, assert_equivariant
>>> _ = assert_equivariant(lambda x: 3 * x, IrrepsAction("2x0e+1o"), torch.randn(4, 5))
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> submodule of geonorm.testing that defines it (imported on first access)
_EXPORTS = {
    "as_action": "actions",
    "ComposedAction": "actions",
    "GroupAction": "actions",
    "JointAction": "actions",
    "PermutationAction": "actions",
    "TrivialAction": "actions",
    "assert_equivariant": "assertions",
    "assert_invariant": "assertions",
    "equivariance_error": "assertions",
    "atomistic_batch": "atomistic",
    "check_potential": "atomistic",
    "radius_graph": "atomistic",
    "CliffordAction": "clifford",
    "CliffordGroup": "clifford",
    "random_versor": "clifford",
    "GroupElement": "elements",
    "CongruenceAction": "euclidean",
    "check_geometry": "geometry",
    "MobiusAction": "hyperbolic",
    "MobiusGroup": "hyperbolic",
    "IrrepsAction": "euclidean",
    "PointCloudAction": "euclidean",
    "BlockPermutationGroup": "groups",
    "EuclideanGroup": "groups",
    "Group": "groups",
    "ProductGroup": "groups",
    "SymmetricGroup": "groups",
    "TranslationGroup": "groups",
    "TrivialGroup": "groups",
    "group_from_name": "groups",
    "join_groups": "groups",
    "random_orthogonal": "groups",
    "spd_gradcheck": "gradcheck",
    "BlockError": "result",
    "EquivarianceResult": "result",
    "OutputError": "result",
    "SampleError": "result",
}

__all__ = sorted(_EXPORTS, key=str.lower)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'geonorm.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
