r"""Group actions: the protocol, the trivial action, and combinators.

A :class:`GroupAction` says how one
:class:`~geonorm.testing.elements.GroupElement` acts on one kind of tensor.
It holds the :class:`~geonorm.testing.groups.Group` it claims equivariance
for, samples from it, and acts with one element on a batch (the same element
on every leading index):

.. code-block:: python

    class MyAction(GroupAction):
        requires = ("rotation",)          # components act() reads
        def __init__(self, *, group): self.group = group
        def act(self, g, x):
            r = self.element(g).rotation.to(x)
            return x @ r.T

Several inputs or outputs that move with one shared element form a
:class:`JointAction` (a plain tuple of actions is converted to one by
:func:`as_action`); one tensor moved by several commuting actions (points
permuted *and* rotated) is a :class:`ComposedAction`. Both sample from the
join of their components' groups (:func:`~geonorm.testing.groups.join_groups`).

Adding an action for a later group (Poincaré-ball isometries, Clifford
versors) means: a :class:`~geonorm.testing.groups.Group` subclass that fills
the new component (``extra["mobius"]`` or ``extra["versor"]``, see
:mod:`geonorm.testing.elements`) and a :class:`GroupAction` subclass whose
``requires`` names it; nothing else in the kit changes.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from .elements import GroupElement
from .groups import Group, SymmetricGroup, TrivialGroup, join_groups

Tensor = torch.Tensor

__all__ = [
    "GroupAction",
    "TrivialAction",
    "JointAction",
    "ComposedAction",
    "PermutationAction",
    "as_action",
]


class GroupAction:
    """Base class of group actions.

    Subclasses set :attr:`group` (usually in ``__init__``), list the element
    components they read in :attr:`requires`, and implement :meth:`act`.
    :attr:`primary` names the component a bare tensor passed as ``g`` stands
    for (a rotation matrix, a permutation index tensor).
    """

    #: The group the action claims equivariance for; elements are sampled from it.
    group: Group = TrivialGroup()
    #: Element components :meth:`act` reads.
    requires: tuple[str, ...] = ()
    #: Component a bare ``Tensor`` given as ``g`` is taken to be.
    primary: str | None = None

    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> list[GroupElement]:
        """``n`` random elements of :attr:`group` (see :meth:`Group.sample`)."""
        return self.group.sample(n, generator, dtype)

    def act(self, g: GroupElement | Tensor, x: Any) -> Any:
        """Act with one element ``g`` on ``x`` (batched over leading dims)."""
        raise NotImplementedError(f"{type(self).__name__}.act is not implemented")

    def __call__(self, g: GroupElement | Tensor, x: Any) -> Any:
        return self.act(g, x)

    def rounding_scale(self, x: Tensor) -> Tensor:
        """Per-entry magnitude that rounding errors of ``f(x)`` scale with.

        The checks' default absolute floor is a few epsilons of this (root mean
        square over the inputs): the rounding level of an output that cancels
        to zero. The default is ``|x|`` entry by entry; an action whose inputs
        feed norm-wise stable algorithms (eigendecompositions of matrices)
        overrides it with the norm those algorithms' errors are bounded by.
        """
        return x.abs()

    def blocks(self) -> tuple[tuple[str, slice], ...] | None:
        """Named slices of the last axis that transform separately, or ``None``.

        Optional: the checks report (and judge) each block on its own, e.g.
        one per irrep of :class:`~geonorm.testing.IrrepsAction`. The default
        ``None`` means one block, the whole tensor.
        """
        return None

    def element(self, g: GroupElement | Tensor) -> GroupElement:
        """``g`` as a :class:`GroupElement` holding every component in :attr:`requires`."""
        if isinstance(g, Tensor) and self.primary is not None:
            g = GroupElement(**{self.primary: g})
        if not isinstance(g, GroupElement):
            raise TypeError(
                "g: expected a GroupElement"
                + (f" or a {self.primary} tensor" if self.primary else "")
                + f", got {type(g).__name__}"
            )
        for name in self.requires:
            g.require(name, type(self).__name__)
        return g

    def _describe(self) -> str:
        return f"group={self.group}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._describe()})"


class TrivialAction(GroupAction):
    """Every element acts as the identity: the action on invariant outputs.

    >>> TrivialAction().act(GroupElement(), torch.ones(2))
    tensor([1., 1.])
    """

    def act(self, g, x):
        return x

    def _describe(self) -> str:
        return ""


def _check_actions(actions: Sequence[object], name: str) -> tuple[GroupAction, ...]:
    out = tuple(as_action(a) for a in actions)
    if not out:
        raise ValueError(f"{name}: expected at least one action, got none")
    return out


def _check_group(group: object) -> Group | None:
    if group is not None and not isinstance(group, Group):
        raise TypeError(f"group: expected a Group or None, got {type(group).__name__}")
    return group


class JointAction(GroupAction):
    """Act on a tuple ``(x_1, ..., x_k)`` with one element, componentwise.

    Parameters
    ----------
    *actions : GroupAction
        One action per tuple entry.
    group : Group, optional
        The group to sample from; default the join of the actions' groups.

    Examples
    --------
    >>> from geonorm.testing import IrrepsAction, PointCloudAction
    >>> a = JointAction(PointCloudAction(group="se3"), IrrepsAction("0e+1o"))
    >>> a.group
    E(3)
    >>> g = a.sample(1, torch.Generator().manual_seed(0))[0]
    >>> pos, feat = a.act(g, (torch.zeros(5, 3), torch.zeros(5, 4)))
    >>> bool(torch.allclose(pos, g.translation.float().expand(5, 3))), bool(feat.eq(0).all())
    (True, True)
    """

    def __init__(self, *actions: GroupAction, group: Group | None = None) -> None:
        self.actions = _check_actions(actions, "actions")
        self.group = _check_group(group) or join_groups(*(a.group for a in self.actions))
        self.requires = tuple(dict.fromkeys(r for a in self.actions for r in a.requires))

    def act(self, g, x):
        if not isinstance(x, (tuple, list)) or len(x) != len(self.actions):
            got = f"a {type(x).__name__} of length {len(x)}" if isinstance(
                x, (tuple, list)) else type(x).__name__
            raise ValueError(
                f"x: expected a tuple of {len(self.actions)} entries (one per action), got {got}"
            )
        return tuple(a.act(g, xi) for a, xi in zip(self.actions, x, strict=True))

    def __len__(self) -> int:
        return len(self.actions)

    def _describe(self) -> str:
        return ", ".join(map(repr, self.actions)) + f"; group={self.group}"


class ComposedAction(GroupAction):
    """Act on one tensor with several actions in turn (last one first).

    The actions should commute (they read different components), e.g. a
    permutation of the points and a rotation of their coordinates.

    >>> from geonorm.testing import PointCloudAction
    >>> a = ComposedAction(PermutationAction(4, dim=-2), PointCloudAction(group="so3"))
    >>> a.group
    S(4) × SO(3)
    """

    def __init__(self, *actions: GroupAction, group: Group | None = None) -> None:
        self.actions = _check_actions(actions, "actions")
        self.group = _check_group(group) or join_groups(*(a.group for a in self.actions))
        self.requires = tuple(dict.fromkeys(r for a in self.actions for r in a.requires))

    def act(self, g, x):
        for a in reversed(self.actions):
            x = a.act(g, x)
        return x

    def blocks(self):
        for a in self.actions:
            if a.blocks() is not None:
                return a.blocks()
        return None

    def _describe(self) -> str:
        return " ∘ ".join(map(repr, self.actions))


class PermutationAction(GroupAction):
    r"""Permute a set axis: :math:`(\pi \cdot x)_i = x_{\pi(i)}` along ``dim``.

    Parameters
    ----------
    set_size : int
        Length of the set axis.
    dim : int
        The set axis of the tensors acted on (negative counts from the end).
    group : Group, optional
        The permutations to sample; default all of :math:`S_n`. A
        :class:`~geonorm.testing.BlockPermutationGroup` permutes each
        molecule of a ragged batch among itself.

    Examples
    --------
    >>> a = PermutationAction(3, dim=0)
    >>> a.act(torch.tensor([2, 0, 1]), torch.tensor([10., 20., 30.]))
    tensor([30., 10., 20.])
    """

    requires = ("permutation",)
    primary = "permutation"

    def __init__(self, set_size: int, *, dim: int = -2, group: Group | None = None) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int):
            raise TypeError(f"dim: expected an int, got {type(dim).__name__}")
        self.group = _check_group(group) or SymmetricGroup(set_size)
        self.set_size = set_size
        self.dim = dim

    def act(self, g, x):
        perm = self.element(g).permutation
        assert perm is not None
        if not isinstance(x, Tensor):
            raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
        if not -x.ndim <= self.dim < x.ndim or x.shape[self.dim] != perm.shape[0]:
            raise ValueError(
                f"x: expected a set axis dim={self.dim} of length {perm.shape[0]}, "
                f"got shape {list(x.shape)}"
            )
        return x.index_select(self.dim, perm.to(x.device))

    def _describe(self) -> str:
        return f"set_size={self.set_size}, dim={self.dim}"


def as_action(action: object) -> GroupAction:
    """Return ``action`` as a :class:`GroupAction`; a tuple/list becomes a :class:`JointAction`.

    >>> as_action((TrivialAction(), TrivialAction()))
    JointAction(TrivialAction(), TrivialAction(); group=trivial)
    """
    if isinstance(action, GroupAction):
        return action
    if isinstance(action, (tuple, list)):
        return JointAction(*action)
    raise TypeError(
        f"action: expected a GroupAction or a tuple of them, got {type(action).__name__}"
    )
