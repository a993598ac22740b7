"""The test command's own scripts: what they do where they cannot install anything."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_setup_without_apt_stops_at_once_and_names_what_to_install(tmp_path: Path) -> None:
    """On a system without apt-get and dpkg, nothing is attempted: one message lists the Debian
    packages and the control-plane build, and the exit code is 2."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for command in ("bash", "env", "dirname", "id", "cat", "python3"):
        found = shutil.which(command)
        assert found is not None, command
        (bin_dir / command).symlink_to(found)
    completed = subprocess.run(
        [str(bin_dir / "bash"), "scripts/setup"],
        cwd=ROOT,
        env={"PATH": str(bin_dir), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert completed.returncode == 2, completed.stderr
    assert "no apt-get" in completed.stderr
    for package in ("chromium", "prometheus", "etcd-server"):
        assert package in completed.stderr
    assert "tests/cluster/build.sh" in completed.stderr
    assert completed.stdout == ""


def test_ci_runs_the_readme_test_command_and_nothing_else() -> None:
    commands = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert commands == ['exec "$(dirname "$0")/../scripts/test"']
    assert "\nscripts/test\n" in (ROOT / "README.md").read_text()
