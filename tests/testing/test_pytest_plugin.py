"""The pytest plugin: registered by entry point, fixtures work, no global state leaks."""

from __future__ import annotations

import importlib.metadata
import textwrap

import pytest
import torch

from geonorm._numerics import default_tolerances
from geonorm.testing import pytest_plugin


def test_entry_points_point_at_the_plugin_and_cli():
    plugins = {e.name: e.value for e in importlib.metadata.entry_points(group="pytest11")}
    assert plugins.get("geonorm") == "geonorm.testing.pytest_plugin"
    scripts = {e.name: e for e in importlib.metadata.entry_points(group="console_scripts")}
    from geonorm.testing.cli import main

    assert scripts["geonorm-check"].load() is main


def test_plugin_is_active(request):
    assert request.config.pluginmanager.has_plugin("geonorm")


def test_float_dtype_and_tolerances(request, float_dtype, tolerances):
    assert float_dtype in (torch.float32, torch.float64)
    assert request.node.callspec.id == str(float_dtype).replace("torch.", "")
    assert tolerances == default_tolerances(float_dtype)


def test_torch_generator_is_seeded_and_fresh(torch_generator, geonorm_seed):
    assert geonorm_seed == 0  # the default of --geonorm-seed
    expected = torch.randn(3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(torch.randn(3, generator=torch_generator), expected)


def test_float64_default_fixture(float64_default):
    assert float64_default is torch.float64
    assert torch.get_default_dtype() is torch.float64


def test_default_dtype_was_restored():
    assert torch.get_default_dtype() is torch.float32


def test_fixtures_in_a_separate_session(tmp_path):
    """Run a small test file through pytest itself (seed option, ids, restoring)."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_inner.py").write_text(
        textwrap.dedent(
            """
            import torch

            def test_ids(request, float_dtype, tolerances):
                assert request.node.name in ("test_ids[float32]", "test_ids[float64]")
                assert tolerances["rtol"] in (1e-4, 1e-9)

            def test_seed(geonorm_seed, torch_generator):
                assert geonorm_seed == 7
                ref = torch.Generator().manual_seed(7)
                ours = torch.rand(2, generator=torch_generator)
                assert torch.equal(ours, torch.rand(2, generator=ref))

            def test_sets_default(float64_default):
                assert torch.zeros(1).dtype == torch.float64

            def test_after_restored():
                assert torch.zeros(1).dtype == torch.float32
            """
        )
    )

    class Outcomes:
        def __init__(self) -> None:
            self.passed: list[str] = []
            self.failed: list[str] = []

        def pytest_runtest_logreport(self, report):
            if report.when == "call":
                (self.passed if report.passed else self.failed).append(report.nodeid)

    seen = Outcomes()
    code = pytest.main(
        [str(tmp_path), "-q", "-p", "no:cacheprovider", "--geonorm-seed=7",
         "-c", str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path)],
        plugins=[seen],
    )
    assert code == 0, seen.failed
    assert len(seen.passed) == 5 and not seen.failed
    assert torch.get_default_dtype() is torch.float32


def test_module_exports():
    assert set(pytest_plugin.__all__) >= {"float_dtype", "tolerances", "torch_generator"}
    assert pytest_plugin.FLOAT_DTYPES == (torch.float32, torch.float64)
