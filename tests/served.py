"""The real server commands as subprocesses: a temp database, a free port.

For what only a real process shows: signals, exit codes, what it prints,
what is left on disk after it stops. Each server binds ``127.0.0.1:0`` and
is reached at the port its own "Running on" line names.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
#: The documented commands, each bound to a free port.
HYPERCORN = [
    str(BIN / "hypercorn"),
    "--config",
    str(ROOT / "hypercorn.toml"),
    "--bind",
    "127.0.0.1:0",
    "quartchat:app",
]
QUARTCHAT = [sys.executable, "-m", "quartchat", "--bind", "127.0.0.1:0"]
#: Seconds a command may take to start or to stop before the test fails;
#: generous, because the machine is shared (this bounds, it measures nothing).
PATIENCE = 60

_RUNNING = re.compile(r"\[(\d+)\] \[INFO\] Running on (http://\S+)")


@dataclass
class Served:
    """One server process, and everything it printed so far."""

    process: trio.Process
    output: list[str] = field(default_factory=list)
    base_url: str = ""
    _running: trio.Event = field(default_factory=trio.Event)
    _ended: trio.Event = field(default_factory=trio.Event)

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://") + "/ws"

    @property
    def text(self) -> str:
        return "\n".join(self.output)

    async def _read(self, stream: trio.abc.ReceiveStream) -> None:
        buffer = b""
        async for chunk in stream:
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                self._line(line.decode("utf-8", "replace"))
        if buffer:
            self._line(buffer.decode("utf-8", "replace"))
        self._ended.set()

    def _line(self, line: str) -> None:
        self.output.append(line)
        found = _RUNNING.search(line)
        if found and not self._running.is_set():
            self.base_url = found.group(2)
            self._running.set()

    def serving_pids(self) -> list[int]:
        """The process id of each worker that said it runs."""
        return [int(found.group(1)) for line in self.output if (found := _RUNNING.search(line))]

    async def wait_running(self) -> None:
        """Return once the server says where it runs; fail if it exits first."""
        with trio.fail_after(PATIENCE):
            async with trio.open_nursery() as nursery:

                async def until_exit() -> None:
                    await self._ended.wait()
                    nursery.cancel_scope.cancel()

                nursery.start_soon(until_exit)
                await self._running.wait()
                nursery.cancel_scope.cancel()
        assert self._running.is_set(), f"exited with {self.process.returncode}:\n{self.text}"

    async def wait_exit(self) -> int:
        """The exit status, once the process ended and all its output is read."""
        with trio.move_on_after(PATIENCE):
            status = await self.process.wait()
            await self._ended.wait()
            return status
        raise AssertionError(f"still running after {PATIENCE} s:\n{self.text}")

    async def stop(self, sig: int = signal.SIGTERM, pid: int | None = None) -> int:
        """Send ``sig`` (to ``pid``, by default the process itself); return its status."""
        os.kill(self.process.pid if pid is None else pid, sig)
        return await self.wait_exit()

    def kill(self) -> None:
        """SIGKILL the process and its workers (its own process group)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)


class Servers:
    """Starts server commands in a test and kills whatever is left at its end."""

    def __init__(self, nursery: trio.Nursery, folder: Path) -> None:
        self.nursery = nursery
        self.folder = folder
        self.db_path = folder / "chat.db"
        self.started: list[Served] = []

    async def launch(
        self, command: list[str], *, env: dict[str, str] | None = None, **popen: Any
    ) -> Served:
        """Start ``command`` in a folder of its own with a temp database; do not wait."""
        environ = {**os.environ, "QUARTCHAT_DB": str(self.db_path), **(env or {})}
        process = await trio.lowlevel.open_process(
            command,
            cwd=self.folder,
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its workers share its group: kill() reaches them
            **popen,
        )
        served = Served(process)
        assert process.stdout is not None
        self.nursery.start_soon(served._read, process.stdout)
        self.started.append(served)
        return served

    async def start(self, command: list[str], **kwargs: Any) -> Served:
        """Start ``command`` and return once it runs."""
        served = await self.launch(command, **kwargs)
        await served.wait_running()
        return served

    async def kill_all(self) -> None:
        for served in self.started:
            served.kill()
            with trio.move_on_after(PATIENCE):
                await served.process.wait()
