"""A wheel installed as a user would, with nothing built, serves the page from any folder.

The test builds quartchat's wheel from a copy of what a source distribution
holds, makes a fresh virtualenv and installs the wheel into it with ``pip
install --only-binary :all:``: every dependency must come as a wheel, so a
machine with no compiler and no system headers installs it too. (The
dependencies are fetched from the package index, or pip's cache.)
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from served import ROOT, Servers


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh virtualenv holding quartchat installed from its wheel; its folder."""
    # Built from a copy of what a source distribution holds, so that nothing
    # left in the checkout (a stale build/ folder) can end up in the wheel.
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source)
    for name in ("quartchat", "static"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path_factory.mktemp("wheels")
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", wheels, source], check=True)
    (wheel,) = wheels.glob("quartchat-*.whl")

    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    subprocess.run(
        [
            venv / "bin" / "python",
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "--only-binary",
            ":all:",
            wheel,
        ],
        check=True,
    )
    yield venv


def fetch(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read()


def test_the_wheel_ships_every_file_of_the_page(installed: Path) -> None:
    shipped = next(installed.glob("lib/python*/site-packages/quartchat/static"))
    page = ROOT / "static"
    files = {p.relative_to(page) for p in page.rglob("*") if p.is_file()}
    assert {p.relative_to(shipped) for p in shipped.rglob("*") if p.is_file()} == files


@pytest.mark.parametrize(
    "command",
    [
        ["bin/python", "-m", "hypercorn", "--worker-class", "trio", "quartchat:app"],
        ["bin/quartchat"],
    ],
)
async def test_an_installed_server_serves_the_page_from_another_folder(
    installed: Path, servers: Servers, command: list[str]
) -> None:
    server = await servers.start(
        [str(installed / command[0]), *command[1:], "--bind", "127.0.0.1:0"]
    )

    status, page = await trio.to_thread.run_sync(fetch, server.base_url + "/")
    assert status == 200 and b'src="/static/app.js"' in page
    status, script = await trio.to_thread.run_sync(fetch, server.base_url + "/static/app.js")
    assert status == 200 and script == (ROOT / "static" / "app.js").read_bytes()
