"""Redis failures reach the rest of quartchat as its own errors."""

from __future__ import annotations

import pytest

from quartchat.backends.redis_client import redis_client, redis_errors
from quartchat.errors import StoreError, Unavailable
from redis_server import RedisServer


async def test_a_stopped_redis_is_unavailable_and_a_refusal_is_a_store_error(
    redis_server: RedisServer,
) -> None:
    async with redis_client(redis_server.url) as client:
        await client.set("k", "text")
        with pytest.raises(StoreError) as refused, redis_errors("count"):
            await client.incr("k")  # not an integer: Redis answers with an error
        assert not isinstance(refused.value, Unavailable)
        redis_server.stop()
        with pytest.raises(Unavailable), redis_errors("read"):
            await client.get("k")
        redis_server.start()
        with redis_errors("read"):
            assert await client.get("k") == "text"  # AOF kept it across the restart
