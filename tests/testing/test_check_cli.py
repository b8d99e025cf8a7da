"""``python -m geonorm.testing check``: reports and exit codes (0 pass, 1 fail, 2 usage)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from geonorm.testing.cli import main

M = "tests.testing._models"
ROOT = Path(__file__).resolve().parents[2]  # the directory holding the tests package
IRREPS = ["--irreps-in", "2x0e+2x1o+1x2e", "--irreps-out", "1x0e+1x1o+1x2e"]


@pytest.fixture(autouse=True)
def _in_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # the CLI imports targets relative to the working directory


@pytest.mark.parametrize(
    "argv",
    [
        [f"{M}:linear", "--group", "o3", *IRREPS],
        [f"{M}:gated", "--group", "so3", "--irreps-in", "2x0e+2x1o+1x2e", "--mode", "train"],
        [f"{M}:centre_factory", "--group", "e3", "--points", "5", "--output", "vector"],
        [f"{M}:centre_factory", "--group", "o3", "--points", "5", "--irreps-out", "1o"],
        [f"{M}:logm_factory", "--group", "on", "--n", "4"],
        [f"{M}:deepsets", "--group", "perm", "--set-size", "5", "--features", "4"],
        [f"{M}:sum_pool_factory", "--group", "perm", "--set-size", "5", "--output", "invariant"],
        [f"{M}:cross_product_factory", "--group", "so3", "--irreps-in", "2x1o",
         "--irreps-out", "1o"],
        [f"{M}:train_only_break", "--group", "o3", "--irreps-in", "1o", "--mode", "eval",
         "--batch", "8"],
        [f"{M}:graph_model_factory", "--group", "e3", "--points", "4", "--batch", "3",
         "--input", "positions", "--input", "irreps:2x0e+1o", "--input", "batch",
         "--output", "irreps:0e+1o"],
        [f"{M}:graph_model_factory", "--group", "t3", "--points", "4", "--input", "positions",
         "--input", "irreps:2x0e", "--input", "batch", "--output", "irreps:0e+1o", "--dtype",
         "float32"],
        [f"{M}:linear", "--group", "o3", *IRREPS, "--dtype", "float32"],
    ],
    ids=["linear", "gated", "centre", "centre-irreps", "logm", "deepsets", "sum-pool",
         "cross-so3", "bn-eval", "graph-inputs", "graph-t3-float32", "linear-float32"],
)
def test_passing_models_exit_0(argv, capsys):
    assert main(["check", *argv, "--samples", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Equivariance check passed")


@pytest.mark.parametrize(
    "argv, needle",
    [
        ([f"{M}:vector_bias", "--group", "o3", "--irreps-in", "1x0e+1x1o"], "VectorBias"),
        ([f"{M}:tanh_factory", "--group", "se3", "--points", "4"], "tanh"),
        ([f"{M}:cross_product_factory", "--group", "o3", "--irreps-in", "2x1o",
          "--irreps-out", "1o"], "det -1"),
        ([f"{M}:add_fixed_matrix_factory", "--group", "son", "--n", "3"], "add_fixed_matrix"),
        ([f"{M}:cumsum_factory", "--group", "perm", "--set-size", "4"], "permutation"),
        ([f"{M}:train_only_break", "--group", "o3", "--irreps-in", "1o", "--batch", "8"],
         "in mode train"),
        ([f"{M}:linear", "--group", "o3", *IRREPS, "--output", "invariant"], "Linear"),
        ([f"{M}:uncentred_graph_model_factory", "--group", "e3", "--points", "4", "--input",
          "positions", "--input", "irreps:0e", "--input", "batch", "--output", "irreps:0e+1o"],
         "fails only with translations"),
        ([f"{M}:uncentred_graph_model_factory", "--group", "t3", "--points", "4", "--input",
          "positions", "--input", "irreps:0e", "--input", "batch", "--output", "irreps:0e+1o",
          "--dtype", "float32"], "group T(3)"),
    ],
    ids=["bias", "tanh", "parity", "spd", "cumsum", "train-only", "not-invariant",
         "uncentred", "uncentred-t3"],
)
def test_failing_models_exit_1(argv, needle, capsys):
    assert main(["check", *argv, "--seed", "3"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("Equivariance check FAILED") and needle in out


def test_model_that_raises_exits_1(capsys):
    assert main(["check", f"{M}:raises_factory", "--group", "o3", "--irreps-in", "1o"]) == 1
    assert "raised RuntimeError: boom" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, needle",
    [
        ([f"{M}:linear", "--group", "o4"], "invalid choice: 'o4'"),
        ([f"{M}:linear"], "--group"),
        (["nocolon", "--group", "o3", "--irreps-in", "1o"], "expected 'pkg.module:factory'"),
        (["no_such_module_xyz:f", "--group", "o3", "--irreps-in", "1o"], "cannot import module"),
        ([f"{M}:missing", "--group", "o3", "--irreps-in", "1o"], "has no attribute 'missing'"),
        ([f"{M}:IRREPS_IN", "--group", "o3", "--irreps-in", "1o"], "expected a callable"),
        ([f"{M}:linear", "--group", "e3"], "--points: required for --group e3"),
        ([f"{M}:linear", "--group", "o3"], "--irreps-in or --points"),
        ([f"{M}:linear", "--group", "o3", "--irreps-in", "1o", "--points", "3"], "got both"),
        ([f"{M}:linear", "--group", "o3", "--irreps-in", "1x"], "expected an irreps string"),
        ([f"{M}:linear", "--group", "on"], "--n: required"),
        ([f"{M}:linear", "--group", "perm"], "--set-size: required"),
        ([f"{M}:linear", "--group", "on", "--n", "3", "--output", "vector"], "only for point"),
        ([f"{M}:linear", "--group", "on", "--n", "0"], "expected a positive integer"),
        ([f"{M}:linear", "--group", "perm", "--set-size", "3", "--points", "2"], "not used"),
        ([f"{M}:linear", "--group", "o3", "--irreps-in", "1o", "--dtype", "float16"],
         "invalid choice: 'float16'"),
        ([f"{M}:linear", "--group", "e3", "--input", "positions"], "--points: required"),
        ([f"{M}:linear", "--group", "e3", "--points", "2", "--input", "spinors"],
         "--input: expected one of positions"),
        ([f"{M}:linear", "--group", "e3", "--points", "2", "--input", "positions", "--output",
          "equivariant"], "--output: expected one of invariant"),
        ([f"{M}:linear", "--group", "perm", "--set-size", "2", "--input", "positions"],
         "only for the Euclidean groups"),
        ([f"{M}:linear", "--group", "o3", "--irreps-in", "1o", "--output", "invariant",
          "--output", "vector"], "several outputs need --input"),
    ],
)
def test_usage_errors_exit_2(argv, needle, capsys):
    assert main(["check", *argv]) == 2
    assert needle in capsys.readouterr().err


def test_help_exits_0(capsys):
    assert main(["check", "--help"]) == 0
    assert "--irreps-in" in capsys.readouterr().out


def test_python_dash_m_end_to_end():
    """Both a passing and a failing model through a real ``python -m`` process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    base = [sys.executable, "-m", "geonorm.testing", "check"]
    runs = {
        0: base + [f"{M}:linear", "--group", "o3", *IRREPS],
        1: base + [f"{M}:cross_product_factory", "--group", "o3", "--irreps-in", "2x1o",
                   "--irreps-out", "1o"],
    }
    procs = {
        code: subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        for code, cmd in runs.items()
    }  # both at once: two cores
    for code, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == code, (out, err)
        assert ("passed" if code == 0 else "FAILED") in out.splitlines()[0]
