"""``GET /metrics``: off unless turned on, and when on, its numbers follow the
traffic (scraped while the traffic runs)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from conftest import Clients, RunningServer, StartServer
from quartchat.config import Settings
from quartchat.errors import POLICY_VIOLATION
from rawhttp import request


class Scrape:
    """One scrape of ``/metrics``, parsed."""

    def __init__(self, text: str) -> None:
        self._values = {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def __call__(self, name: str, **labels: str) -> float:
        """A sample's value; 0 for a labelled counter that never counted."""
        return self._values.get((name, frozenset(labels.items())), 0.0)


async def scrape(server: RunningServer) -> Scrape:
    status, headers, body = await request(server, "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=")  # the text format
    return Scrape(body.decode())


async def scrape_when(server: RunningServer, ready: Callable[[Scrape], bool]) -> Scrape:
    """Scrape until ``ready``: what the server counts after a socket write or
    close may trail what the client has already seen."""
    with trio.fail_after(5):
        # Polling: the server's side has no event a test can wait on.
        while not ready(found := await scrape(server)):  # noqa: ASYNC110
            await trio.sleep(0.01)
    return found


async def test_metrics_are_off_unless_turned_on(server: RunningServer) -> None:
    assert (await request(server, "/metrics"))[0] == 404
    assert Settings.from_env({}).metrics is False
    assert Settings.from_env({"QUARTCHAT_METRICS": "1"}).metrics is True


@pytest.mark.embedded_only  # metrics are per process; on Redis the clients are split over two
async def test_the_numbers_follow_the_traffic(start_server: StartServer, clients: Clients) -> None:
    server = await start_server(metrics=True, strikes=2, send_burst=100)
    before = await scrape(server)
    assert before("quartchat_messages_committed_total") == 0
    assert before("quartchat_connections_open") == 0

    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    carol, _ = await clients.join(server, nick="carol")
    texts = [f"m{i}" for i in range(30)]
    committed_seen: list[float] = []

    async def scrape_meanwhile(done: trio.Event) -> None:
        while not done.is_set():
            committed_seen.append((await scrape(server))("quartchat_messages_committed_total"))

    done = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(scrape_meanwhile, done)
        acks = await alice.say_many(texts)
        for receiver in (bob, carol):
            assert [(await receiver.expect("message"))["text"] for _ in texts] == texts
        done.set()
    assert committed_seen == sorted(committed_seen)  # a counter never goes back

    await alice.send(type="nonsense")
    assert (await alice.expect("error"))["code"] == "bad_request"
    await alice.say("m0", "m0")  # a retry: acked again, not stored again

    after = await scrape(server)
    assert after("quartchat_messages_committed_total") == len(acks) == len(texts)
    assert after("quartchat_connections_open") == 3
    assert after("quartchat_users_online") == 3
    assert after("quartchat_errors_total", code="bad_request") == 1
    batches = after("quartchat_commit_batch_size_count")
    assert after("quartchat_commit_batch_size_sum") == len(texts) + 1  # the retry went through
    assert after("quartchat_commit_seconds_count") == batches >= 1
    # Three first visits, each replayed the (then empty) backlog.
    assert after("quartchat_replay_messages_count") == 3
    assert after("quartchat_replay_messages_sum") == 0

    # Each message reached bob and carol, never its sender.
    after = await scrape_when(server, lambda s: s("quartchat_deliveries_total") >= 2 * len(texts))
    assert after("quartchat_deliveries_total") == 2 * len(texts)
    # Every frame carried at least one object, and every delivery is one.
    frames = after("quartchat_frames_sent_total")
    assert 1 <= frames <= after("quartchat_objects_sent_total")
    assert after("quartchat_objects_sent_total") >= after("quartchat_deliveries_total")

    dave, replay = await clients.join(server, nick="dave")
    for _ in range(3):  # strikes=2: the third bad frame closes with 1008
        await dave.send(type="nonsense")
    assert await dave.close_code() == POLICY_VIOLATION
    await bob.aclose()
    final = await scrape_when(server, lambda s: s("quartchat_connections_open") == 2)
    assert final("quartchat_replay_messages_sum") == len(replay) == len(texts)
    assert final("quartchat_errors_total", code="bad_request") == 1 + 2
    assert final("quartchat_connections_closed_total", code=str(POLICY_VIOLATION)) == 1
    assert final("quartchat_users_online") == 2


async def test_servers_in_one_process_count_apart(
    start_server: StartServer, clients: Clients
) -> None:
    first = await start_server(metrics=True)
    second = await start_server(metrics=True)
    alice, _ = await clients.join(first, nick="alice")
    await alice.say("a", "only on the first server")
    assert (await scrape(first))("quartchat_messages_committed_total") == 1
    assert (await scrape(second))("quartchat_messages_committed_total") == 0
