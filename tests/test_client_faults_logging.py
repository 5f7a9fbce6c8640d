"""What a client's faults cost the log: one short line per kind, at most one
a second, never a traceback (issue 19, point 4: each hypercorn#225 packet,
159 bytes, wrote a 3.5 KB traceback at ERROR), and what running out of file
descriptors costs it (trio's accept loop wrote EMFILE with a traceback ten
times a second)."""

from __future__ import annotations

import errno
import logging
import resource
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
import trio.testing
from test_hypercorn_faults import KILLING_PACKETS, http_status, port_of, send_and_wait_for_close

from quartchat.cli import configure_logging
from quartchat.log_limits import OncePer
from quartchat.open_files import ACCEPT_LOGGER, quiet_accept_errors
from served import QUARTCHAT, Served, Servers

#: Packets sent of each kind in :data:`KILLING_PACKETS`: 50 in all.
EACH = 10
#: More lines than this for 50 packets would mean a line per packet or so.
A_HANDFUL = 5
#: A log line longer than this is not "one short line".
SHORT = 200


async def test_fifty_killing_packets_log_a_handful_of_short_lines(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    served = await Servers(nursery, tmp_path).start(QUARTCHAT)
    try:
        port = port_of(served)
        before = len(served.output)
        for make_packet in KILLING_PACKETS.values():
            for _ in range(EACH):
                await send_and_wait_for_close(port, make_packet(port))
        assert await http_status(port, "/healthz") == b"HTTP/1.1 200 "
        written = served.output[before:]
        assert len(written) <= A_HANDFUL, "\n".join(written)
        assert all(len(line) <= SHORT for line in written), "\n".join(written)
        assert not any("Traceback" in line or "ERROR" in line for line in written)
    finally:
        served.kill()
        await served.process.wait()


# ----- out of file descriptors ----------------------------------------------------------


class OutOfDescriptors(trio.abc.Listener[trio.SocketStream]):
    """A listener whose every accept fails as a process out of descriptors does."""

    def __init__(self, tries: int, done: trio.CancelScope) -> None:
        self.tries = tries
        self.done = done

    async def accept(self) -> trio.SocketStream:
        await trio.lowlevel.checkpoint()
        self.tries -= 1
        if self.tries <= 0:
            self.done.cancel()
        raise OSError(errno.EMFILE, "Too many open files")

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


class Collected(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def accept_log() -> Iterator[Collected]:
    """What trio's accept loop logs; its filters as they were afterwards."""
    logger = logging.getLogger(ACCEPT_LOGGER)
    filters = list(logger.filters)
    collected = Collected()
    logger.addHandler(collected)
    try:
        yield collected
    finally:
        logger.removeHandler(collected)
        logger.filters[:] = filters


async def serve_out_of_descriptors(tries: int) -> None:
    """trio's own ``serve_listeners`` on a listener that fails ``tries`` times
    with EMFILE (it waits 0.1 s between tries: the test's clock jumps them)."""

    async def never_called(stream: trio.SocketStream) -> None:
        raise AssertionError("nothing was accepted")

    with trio.CancelScope() as done:
        await trio.serve_listeners(never_called, [OutOfDescriptors(tries, done)])


def test_emfile_is_logged_once_a_second_without_a_traceback(accept_log: Collected) -> None:
    now = [0.0]
    quiet_accept_errors(clock=lambda: now[0])
    clock = trio.testing.MockClock(autojump_threshold=0)
    trio.run(serve_out_of_descriptors, 50, clock=clock)  # 5 s of trio's retries
    assert len(accept_log.records) == 1
    first = accept_log.records[0]
    assert "EMFILE" in first.getMessage()
    assert first.exc_info is None and first.exc_text is None
    now[0] += 1.0  # a second later, the next one says how many were held back
    trio.run(serve_out_of_descriptors, 1, clock=clock)
    assert len(accept_log.records) == 2
    assert accept_log.records[1].getMessage().endswith("(49 more since)")


# ----- the open-file limit --------------------------------------------------------------


#: Whether this system shows a process's limits in /proc (Linux does).
PROC_LIMITS = Path("/proc/self/limits").exists()


def open_file_limits(pid: int) -> tuple[int, int]:
    """The soft and hard limit on open files of process ``pid``, from /proc."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError(f"no open-file limit for {pid}")


async def test_the_server_raises_its_open_file_limit_to_the_hard_one(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = 256
    if hard == resource.RLIM_INFINITY or hard <= low:
        pytest.skip(f"the hard limit ({hard}) leaves nothing to raise")
    if not PROC_LIMITS:
        pytest.skip("no /proc to read a process's limits from")

    def start_low() -> None:  # in the child, before it runs the server
        resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))

    served: Served = await Servers(nursery, tmp_path).start(QUARTCHAT, preexec_fn=start_low)
    try:
        assert open_file_limits(served.process.pid) == (hard, hard)
        assert f"open files: limit raised from {low} to {hard} (the hard limit)" in served.text
    finally:
        served.kill()
        await served.process.wait()


def test_the_command_quiets_accept_errors(accept_log: Collected) -> None:
    configure_logging()  # what `quartchat` and each of its workers run first
    assert any(isinstance(f, OncePer) for f in logging.getLogger(ACCEPT_LOGGER).filters)
