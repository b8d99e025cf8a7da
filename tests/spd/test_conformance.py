"""Every SPD geometry meets the geometry protocol (geonorm.testing.check_geometry)."""

import pytest
import torch

from geonorm.riemannian import get_geometry
from geonorm.testing.geometry import check_geometry

from .._spd import random_spd

GEOMETRIES = {
    "aim": {},
    "aim(theta=0.5,beta=0.1)": {"theta": 0.5, "beta": 0.1},
    "aim(sqrt)": {"translation": "sqrt"},
    "lem(alpha=2,beta=-0.1)": {"alpha": 2.0, "beta": -0.1},
    "lcm": {},
    "lcm(theta=0.5)": {"theta": 0.5},
    "bw": {},
    "bw(theta=0.5)": {"theta": 0.5},
    "gbw": {"n": 4},
}


@pytest.mark.parametrize("label", sorted(GEOMETRIES))
def test_spd_geometry_meets_the_protocol(label):
    name = label.split("(")[0]
    g = get_geometry(name, **GEOMETRIES[label])
    if name == "gbw":
        with torch.no_grad():
            g.metric.copy_(random_spd(4, torch.Generator().manual_seed(5), cond=3.0))
    # BW centring maps through Exp_I(V) = (I + V/2)^2, which inverts Log_I only
    # while I + V/2 stays positive definite: the batch must be moderately
    # spread for its centred mean to be I (cond 20 leaves that domain; see
    # docs/spd_geometries.md). The other metrics are tested on cond 20.
    cond = 3.0 if name in ("bw", "gbw") else 20.0
    x = random_spd(4, torch.Generator().manual_seed(0), batch=(8,), cond=cond)
    check_geometry(g, x, dim=4)


def test_conformance_suite_catches_a_broken_spd_geometry():
    class WrongScale(type(get_geometry("lem"))):
        def scale(self, z, factor):  # forgets to scale
            return z

    with pytest.raises(AssertionError, match="scale sets the dispersion"):
        check_geometry(WrongScale(), random_spd(4, torch.Generator().manual_seed(0), batch=(8,)), dim=4)


def test_conformance_suite_catches_a_scope_that_shares_stale_work():
    """A forward_scope that keeps M's roots across a change of M fails the protocol."""
    import contextlib

    gbw = type(get_geometry("gbw", n=4))

    class StaleRoots(gbw):
        def forward_scope(self):  # shares roots computed for another metric
            @contextlib.contextmanager
            def scope():
                from geonorm.linalg import sym_sqrtm_invsqrtm

                with torch.no_grad():
                    stale = sym_sqrtm_invsqrtm(2.0 * self.metric)
                original = self._roots
                self._roots = lambda like: stale
                try:
                    yield
                finally:
                    self._roots = original

            return scope()

    g = StaleRoots(4, dtype=torch.float64)
    with torch.no_grad():
        g.metric.copy_(random_spd(4, torch.Generator().manual_seed(5), cond=3.0))
    x = random_spd(4, torch.Generator().manual_seed(0), batch=(8,), cond=3.0)
    with pytest.raises(AssertionError, match="inside forward_scope"):
        check_geometry(g, x, dim=4)


def test_conformance_suite_catches_a_fused_decode_that_differs():
    """A normalize_and_decode that forgets M^(1/2) (GBW's fused decoding) fails the protocol."""
    gbw = type(get_geometry("gbw", n=4))

    class ForgetsTheMetric(gbw):
        def normalize_and_decode(self, z, mean, point, **kwargs):
            out, var = self.normalize(z, mean, point, **kwargs)
            return out, var  # the chart's output, not decoded

    g = ForgetsTheMetric(4, dtype=torch.float64)
    with torch.no_grad():
        g.metric.copy_(random_spd(4, torch.Generator().manual_seed(5), cond=3.0))
    x = random_spd(4, torch.Generator().manual_seed(0), batch=(8,), cond=3.0)
    with pytest.raises(AssertionError, match="normalize_and_decode = decode"):
        check_geometry(g, x, dim=4)


def test_conformance_suite_catches_a_stacked_encoding_that_mixes_up_the_points():
    """An encode_many that returns the stacked points in the wrong order fails the protocol."""
    lem = type(get_geometry("lem"))

    class Reversed(lem):
        def encode_many(self, x, name, *points, check=True):
            z, *rest = super().encode_many(x, name, *points, check=check)
            return (z, *reversed(rest))

    x = random_spd(4, torch.Generator().manual_seed(0), batch=(8,), cond=3.0)
    with pytest.raises(AssertionError, match="encode_many"):
        check_geometry(Reversed(), x, dim=4)

