"""The README's two Quickstart commands: CI runs the test command verbatim."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _quickstart_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_quickstart_has_exactly_two_commands_and_ci_runs_the_test_one():
    commands = _quickstart_commands()
    assert len(commands) == 2, commands
    main_job, tests = commands
    assert "pytest" in tests and "pytest" not in main_job
    assert tests in (ROOT / ".ci" / "run").read_text()
    script = main_job.rsplit("python ", 1)[1].split()[0]
    assert (ROOT / script).is_file(), script


def test_oldest_supported_e3nn_is_the_one_ci_tests():
    """pyproject's e3nn floor is the version .ci/run installs in its oldest-e3nn step."""
    floor = re.search(r'"e3nn>=([0-9.]+)"', (ROOT / "pyproject.toml").read_text())
    assert floor, "pyproject.toml: no e3nn>= requirement"
    ci = (ROOT / ".ci" / "run").read_text()
    assert f'"e3nn=={floor.group(1)}"' in ci
    assert f"e3nn>={floor.group(1)}" in (ROOT / "README.md").read_text()
