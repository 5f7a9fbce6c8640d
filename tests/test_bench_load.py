"""A short load on the real ``quartchat`` command, run by ``scripts/bench.py``.

CI runs this: 200 receivers and 10 senders at 100 messages/s for 5 s must
lose, duplicate, echo or reorder nothing, and every send must be acked; so
must a smaller run with its receivers spread over three processes.
Nothing here asserts how fast: the bench waits (bounded, generously) until
everything arrived, and only the counts are checked. The other cases
(``--ingest``, ``--storm``, ``--idle``) get a small run each, so that they
keep working.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from served import QUARTCHAT, ROOT, Served, Servers

#: Only the server's speed may limit these runs: the closed loop of --ingest
#: sends as fast as acks come, and beyond the limits its sends would be
#: refused (or, past the frame limit, closed as abuse); 210 new users come
#: from one address.
LIMITS = {
    "QUARTCHAT_SEND_RATE": "10000",
    "QUARTCHAT_SEND_BURST": "10000",
    "QUARTCHAT_FRAME_RATE": "10000",
    "QUARTCHAT_FRAME_BURST": "10000",
    "QUARTCHAT_NEW_IDENTITY_BURST": "1000",
}
#: Seconds a bench run may take on a busy machine before the test gives up.
RUN_LIMIT = 600


@pytest.fixture
async def chat(tmp_path: Path) -> AsyncIterator[Served]:
    """``quartchat`` on a free port with a temp database and raised limits."""
    async with trio.open_nursery() as nursery:
        servers = Servers(nursery, tmp_path)
        try:
            yield await servers.start(QUARTCHAT, env=LIMITS)
        finally:
            await servers.kill_all()
            nursery.cancel_scope.cancel()


async def bench(chat: Served, tmp_path: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    """Run scripts/bench.py against ``chat``; its exit status, JSON and output."""
    results = tmp_path / "bench.json"
    (worker,) = chat.serving_pids()
    command = [
        sys.executable,
        str(ROOT / "scripts" / "bench.py"),
        "--url",
        chat.ws_url,
        "--server-pid",
        str(worker),
        "--json",
        str(results),
        *args,
    ]
    with trio.fail_after(RUN_LIMIT):
        done = await trio.run_process(
            command, capture_stdout=True, stderr=subprocess.STDOUT, check=False
        )
    output = done.stdout.decode()
    return done.returncode, json.loads(results.read_text()), output


def assert_every_delivery_exact(res: dict[str, Any], output: str) -> None:
    """Every sent message acked, and delivered once, in order, to everyone else."""
    sending, deliveries = res["sending"], res["deliveries"]
    assert sending["sent"] > 0, output
    assert (sending["acked"], sending["refused"], sending["unanswered"]) == (
        sending["sent"],
        0,
        0,
    ), output
    problems = ("lost", "duplicated", "echoes", "out_of_order", "unacked_deliveries")
    assert {name: deliveries[name] for name in problems} == dict.fromkeys(problems, 0), output
    assert deliveries["received"] == deliveries["expected"] > 0, output
    # Each frame that carried a message counted once, by whichever process read it.
    assert 0 < deliveries["message_frames"] <= deliveries["received"], output


async def test_a_short_load_loses_duplicates_echoes_and_reorders_nothing(
    chat: Served, tmp_path: Path
) -> None:
    _, res, output = await bench(
        chat,
        tmp_path,
        *("--receivers", "200", "--senders", "10", "--rate", "100", "--duration", "5"),
        *("--drain", "300"),
    )
    assert res["clients"]["receivers_connected"] == 200, output
    assert res["clients"]["senders_connected"] == 10, output
    assert res["clients"]["unexpected_closes"] == 0, output
    assert_every_delivery_exact(res, output)


@pytest.mark.parametrize("check_after", [False, True], ids=["live", "check-after"])
async def test_receivers_spread_over_processes_are_checked_as_exactly(
    chat: Served, tmp_path: Path, check_after: bool
) -> None:
    """Also with --check-after, where the receivers of every process check
    their frames only once the run is over."""
    status, res, output = await bench(
        chat,
        tmp_path,
        *("--receivers", "60", "--senders", "4", "--rate", "20", "--duration", "2"),
        *("--procs", "3", "--drain", "300"),
        *(["--check-after"] if check_after else []),
    )
    assert status == 0, output
    assert (res["config"]["procs"], res["config"]["check_after"]) == (3, check_after), output
    assert res["clients"]["receivers_connected"] == 60, output
    assert_every_delivery_exact(res, output)
    assert res["latency_ms"]["delivery"]["count"] == res["deliveries"]["received"], output
    assert "generator (3 processes, added up)" in output


async def test_a_run_in_rooms_reaches_each_rooms_members_only(chat: Served, tmp_path: Path) -> None:
    """--rooms: 24 receivers in 4 rooms, 2 senders; every message reaches
    exactly the 6 receivers of its room (and the other sender when it is in
    it), and none reaches a client outside its room."""
    status, res, output = await bench(
        chat,
        tmp_path,
        *("--rooms", "4", "--receivers", "24", "--senders", "2", "--rate", "20"),
        *("--duration", "2", "--drain", "300"),
    )
    assert status == 0, output
    assert res["config"]["rooms"] == 4, output
    assert res["clients"]["receivers_connected"] == 24, output
    assert_every_delivery_exact(res, output)
    assert res["deliveries"]["leaked"] == 0, output
    # Message i goes to room i mod 4 from sender i mod 2: each room has one sender.
    assert res["deliveries"]["expected_receivers"] == res["sending"]["acked"] * 6, output
    assert res["deliveries"]["expected_senders"] == 0, output


async def test_ingest_acks_every_send_of_a_closed_loop(chat: Served, tmp_path: Path) -> None:
    _, res, output = await bench(chat, tmp_path, "--ingest", "--duration", "1", "--drain", "300")
    assert res["config"]["receivers"] == 10, output
    assert res["sending"]["acked_per_second"] > 0, output
    assert_every_delivery_exact(res, output)


@pytest.mark.parametrize("deflate", [[], ["--deflate"]], ids=["plain", "deflate"])
async def test_a_storm_welcomes_everyone_and_counts_their_presence(
    chat: Served, tmp_path: Path, deflate: list[str]
) -> None:
    status, res, output = await bench(
        chat, tmp_path, "--storm", "30", "--storm-concurrency", "10", *deflate
    )
    assert status == 0, output
    assert res["clients"]["welcomed"] == 30, output
    assert res["config"]["deflate_offered"] == bool(deflate)
    # Everyone ends up knowing of all 30: its welcome's list, then joins.
    assert res["clients"]["knowing_everyone"] == 30, output
    assert res["received_per_client"]["presence_objects"]["total"] > 0, output


async def test_idle_connections_report_server_memory_per_connection(
    chat: Served, tmp_path: Path
) -> None:
    status, res, output = await bench(chat, tmp_path, "--idle", "30", "--deflate", "--hold", "1")
    assert status == 0, output
    assert res["clients"]["welcomed"] == 30, output
    assert res["server"]["kb_per_connection"] is not None, output
    # What holding them idle cost the server, over the second they were held.
    assert res["server"]["cpu_pct_hold"] is not None, output
    assert "CPU % holding them idle" in output
