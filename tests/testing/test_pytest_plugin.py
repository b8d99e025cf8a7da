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


_PROBE = '''
import json, sys

def pytest_configure(config):
    names = {{getattr(p, "__name__", "") for p in config.pluginmanager.get_plugins()}}
    heavy = sorted(m for m in ("torch", "e3nn", "geoopt", "geonorm.o3", "geonorm.spd")
                   if m in sys.modules)
    with open({out!r}, "w") as fh:
        json.dump({{"plugin": "geonorm.testing.pytest_plugin" in names, "heavy": heavy}}, fh)
'''


def test_plugin_loads_nothing_heavy_and_no_warning_under_w_error(tmp_path):
    """An empty project, -W error, plugin enabled: exit 5 (no tests), no torch/e3nn/geoopt."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    project = tmp_path / "empty"
    project.mkdir()
    (project / "pytest.ini").write_text("[pytest]\nfilterwarnings =\n    error\n")
    out = tmp_path / "probe.json"
    (project / "conftest.py").write_text(_PROBE.format(out=str(out)))
    root = str(Path(__file__).resolve().parents[2])  # this checkout's geonorm first
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    installed = any(e.name == "geonorm" for e in importlib.metadata.entry_points(group="pytest11"))
    enable = [] if installed else ["-p", "geonorm.testing.pytest_plugin"]
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-m", "pytest", "-W", "error", "-p", "no:cacheprovider",
         *enable, str(project)],
        cwd=project, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 5, proc.stdout[-2000:] + proc.stderr[-2000:]
    probe = json.loads(out.read_text())
    assert probe == {"plugin": True, "heavy": []}, probe


def test_import_geonorm_is_lazy_but_attributes_work():
    import subprocess
    import sys

    code = (
        "import sys, geonorm, geonorm.testing\n"
        "assert not {'torch', 'e3nn', 'geoopt'} & set(sys.modules), sorted(sys.modules)\n"
        "assert geonorm.o3.GauntTensorProduct and geonorm.linalg and geonorm.nn\n"
        "assert geonorm.get_geometry is geonorm.spd.get_geometry\n"
        "assert geonorm.models.SPDNet is not None\n"
        "from geonorm.testing import IrrepsAction, assert_equivariant, TrivialGroup\n"
        "import geonorm.testing as t\n"
        "assert set(t.__all__) <= set(dir(t))\n"
        "for name in t.__all__: getattr(t, name)\n"
    )
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_equivariance_case_fixture_in_a_separate_session(tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_case.py").write_text(textwrap.dedent(
        """
        import torch
        from e3nn import o3

        def test_linear(request, equivariance_case):
            torch.manual_seed(0)
            r = equivariance_case.check(o3.Linear("2x0e+1o", "1x0e+2x1o"))
            assert r.dtype == equivariance_case.dtype
            assert {s.mode for s in r.samples} == {equivariance_case.mode}
        """
    ))
    seen: list[str] = []

    class Ids:
        def pytest_runtest_logreport(self, report):
            if report.when == "call" and report.passed:
                seen.append(report.nodeid.split("[")[1].rstrip("]"))

    code = pytest.main([str(tmp_path), "-q", "-p", "no:cacheprovider", "-c",
                        str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path)], plugins=[Ids()])
    assert code == 0
    assert seen == ["float32-train", "float32-eval", "float64-train", "float64-eval"]
