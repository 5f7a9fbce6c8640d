"""The guards (:mod:`quartchat.patches`) switch on at start, in one place,
and only on the versions they were verified on: an import alone patches
nothing and loads no server, and a forced upgrade refuses to start unless
the operator says to run unguarded."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest

from quartchat.errors import ConfigError
from quartchat.patches import UNGUARDED_SETTING, VERIFIED, check, installed_versions
from served import ROOT

#: A hypercorn the guards were never verified on.
UPGRADED = {**{name: sorted(v)[0] for name, v in VERIFIED.items()}, "hypercorn": "0.99.0"}


def run_python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
        check=False,
    )


def test_the_installed_versions_are_verified() -> None:
    """What pyproject.toml allows is what the guards were verified on."""
    assert check(installed_versions(), unguarded=False)


def test_the_protocol_imports_without_the_server_stack() -> None:
    done = run_python(
        """
        import sys
        import quartchat, quartchat.protocol
        stack = ("hypercorn", "wsproto", "quart", "quart_trio")
        print(",".join(sorted(m for m in stack if m in sys.modules)) or "none")
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "none"


def test_importing_the_package_patches_nothing() -> None:
    done = run_python(
        """
        from hypercorn.trio.tcp_server import TCPServer
        run = TCPServer.run
        import quartchat, quartchat.app
        from quartchat import patches
        assert TCPServer.run is run and not patches.applied()
        patches.apply()
        assert TCPServer.run is not run and patches.applied()
        print("ok")
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_an_unverified_version_is_refused_by_name() -> None:
    with pytest.raises(ConfigError) as refused:
        check(UPGRADED, unguarded=False)
    assert "hypercorn 0.99.0 installed" in str(refused.value)
    assert f"{UNGUARDED_SETTING}=1" in str(refused.value)


def test_unguarded_runs_an_unverified_version_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert not check(UPGRADED, unguarded=True)
    assert "WITHOUT quartchat's guards" in caplog.text
    assert "hypercorn 0.99.0" in caplog.text
    assert "pgjones/hypercorn#225" in caplog.text


RUNNING = re.compile(r"Running on (http://\S+)")
#: Runs the ``quartchat`` command as if hypercorn 0.99.0 were installed.
FORCED_UPGRADE = """
    import importlib.metadata, sys
    real = importlib.metadata.version
    importlib.metadata.version = lambda name: "0.99.0" if name == "hypercorn" else real(name)
    from quartchat.cli import main
    sys.exit(main(["--bind", "127.0.0.1:0"]))
"""


def test_the_command_refuses_to_start_on_an_unverified_hypercorn(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "QUARTCHAT_DB": str(tmp_path / "chat.db")}
    done = run_python(FORCED_UPGRADE, env)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("quartchat: hypercorn 0.99.0 installed")
    assert f"{UNGUARDED_SETTING}=1" in lines[0]


def test_the_command_runs_unguarded_when_told_to(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "QUARTCHAT_DB": str(tmp_path / "chat.db"),
        UNGUARDED_SETTING: "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(FORCED_UPGRADE)],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    try:
        seen = []
        for line in process.stderr:
            seen.append(line)
            if running := RUNNING.search(line):
                break
        assert any("WITHOUT quartchat's guards" in line for line in seen), seen
        assert running is not None, seen
        with urllib.request.urlopen(f"{running.group(1)}/healthz", timeout=30) as answer:
            assert answer.status == 200
    finally:
        process.terminate()
        process.communicate(timeout=30)
    assert process.returncode == 0
