"""Sends, from a connection's frames to acks: drafts (the room checked, the
mentions resolved), the group commit, the send limits, and the wait for the
tail so that an ack follows the messages below it."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from .announcer import Announcer
from .backends.base import Bucket, ConnId, EditRefused, Identities, MessageLog, RateLimited
from .committer import Committer
from .config import Settings
from .direct_markers import DirectMarkers
from .errors import FrameError, StoreError
from .mention_lookup import MentionLookup
from .models import GENERAL, Draft, Posted, User
from .online_records import OnlineRecords
from .protocol import Send
from .protocol_moderation import muted_error
from .room_desk import RoomDesk
from .sanctions import SanctionsView
from .tail_relay import TailRelay
from .typing_relay import TypingRelay


class Posting:
    def __init__(
        self,
        settings: Settings,
        committer: Committer,
        online: OnlineRecords,
        identities: Identities,
        typing: TypingRelay,
        announcer: Announcer,
        relay: TailRelay,
        desk: RoomDesk,
        mentions: MentionLookup,
        log: MessageLog,
        sanctions: SanctionsView,
    ) -> None:
        self._settings = settings
        self._committer = committer
        self._online = online
        self._identities = identities
        self._typing = typing
        self._announcer = announcer
        self._relay = relay
        self._desk = desk
        self._mentions = mentions
        self._markers = DirectMarkers(desk.directory)
        self._log = log
        self._sanctions = sanctions

    async def post_many(
        self,
        conn_id: ConnId,
        user_id: str,
        sends: Sequence[Send],
        rooms: Collection[str] = (),
    ) -> list[Posted | FrameError | StoreError]:
        """Store consecutive sends of one connection; return, in their order,
        what to ack or why not, once every stored one may be acked.
        ``rooms`` are those the connection gets the events of (besides
        ``general``): a send to another is checked with the directory.

        They are queued together, so they share commits instead of waiting
        for one each. Each fails alone: a :class:`FrameError` (``rate_limited``,
        ``unknown_user``: nothing stored) or a
        :class:`~quartchat.errors.StoreError` (nothing acked: the client
        retries). The send limit is spent by the log in the same step as the
        append (one round trip on Redis), in the sends' order.
        """
        sender = await self._online.get(user_id)
        assert sender is not None, "a session posts only while attached"
        settings = self._settings
        bucket = Bucket(f"send:{user_id}", settings.send_rate, settings.send_burst)
        drafts: list[Draft | FrameError] = []
        for send in sends:
            try:
                drafts.append(await self._draft(conn_id, sender, send, rooms))
            except FrameError as exc:
                drafts.append(exc)
        queued = [(draft, bucket) for draft in drafts if isinstance(draft, Draft)]
        results = iter(await self._committer.post_many(queued))
        outcomes = [
            draft if isinstance(draft, FrameError) else _refused_if_limited(next(results), draft)
            for draft in drafts
        ]
        stored = [o.message for o in outcomes if isinstance(o, Posted)]
        for message in stored:
            if message.recipient is not None:
                await self._markers.opened(message)
        if stored:
            await self._relay.relayed_past(max(m.id for m in stored))
        return outcomes

    async def post_as(self, user: User, send: Send) -> Posted | FrameError | StoreError:
        """Store one send of ``user`` that came through no connection (the
        server API): what :meth:`post_many` does for a connection's send,
        with the same checks (the room's membership is read from the
        directory), the same send limit and the same dedup on
        ``client_offset``; every connection that may see it gets it, as no
        connection sent it. The user need not be online; when they are,
        the message carries their nick of now."""
        sender = await self._online.get(user.id) or user
        settings = self._settings
        bucket = Bucket(f"send:{user.id}", settings.send_rate, settings.send_burst)
        try:
            draft = await self._draft("", sender, send, ())
        except FrameError as exc:
            return exc
        [result] = await self._committer.post_many([(draft, bucket)])
        outcome = _refused_if_limited(result, draft)
        if isinstance(outcome, Posted):
            if outcome.message.recipient is not None:
                await self._markers.opened(outcome.message)
            await self._relay.relayed_past(outcome.message.id)
        return outcome

    async def _draft(
        self, conn_id: ConnId, sender: User, send: Send, rooms: Collection[str]
    ) -> Draft:
        """What to store for ``send``; raises ``unknown_user`` for a private
        message to nobody, ``not_member`` or ``unknown_room`` for a room the
        sender is not in, ``muted`` for a room (or a chat) they are muted in;
        an edit (``send.target``) also ``unknown_message`` and ``forbidden``."""
        if send.target:
            return await self._edit_draft(conn_id, sender, send, rooms)
        recipient = None
        if send.to is not None:
            recipient = await self._online.get(send.to) or await self._identities.get_user(send.to)
            if recipient is None:
                raise FrameError("unknown_user", "no user with that id", send.client_offset)
        elif send.room != GENERAL and send.room not in rooms:
            assert send.room is not None
            await self._member_of(send.room, sender.id, send.client_offset)
        self._check_muted(sender.id, send.room, send.client_offset)
        mentions = await self._mentions.find(send.room, send.text)
        self._typing.stop((sender.id, send.to, send.room))
        self._announcer.before_frames_of(sender.id)  # their join before their message
        return Draft(
            sender,
            send.client_offset,
            send.text,
            recipient,
            origin=conn_id,
            room=send.room,
            mentions=mentions,
        )

    async def _edit_draft(
        self, conn_id: ConnId, sender: User, send: Send, rooms: Collection[str]
    ) -> Draft:
        """An edit of the sender's own message, in its room (or its private
        conversation), which the sender must still be in. The log checks
        the target again as it stores the edit (a delete may come between)."""
        target = await self._log.get(send.target)
        if target is None or target.deleted:
            raise _unknown_message(send.client_offset)
        if target.room is None:
            assert target.recipient is not None
            if sender.id not in (target.sender.id, target.recipient.id):
                raise _unknown_message(send.client_offset)
        elif target.room != GENERAL and target.room not in rooms:
            await self._member_of(target.room, sender.id, send.client_offset)
        if target.sender.id != sender.id:
            raise FrameError("forbidden", "only its author edits a message", send.client_offset)
        self._check_muted(sender.id, target.room, send.client_offset)
        mentions = () if target.room is None else await self._mentions.find(target.room, send.text)
        return Draft(
            sender,
            send.client_offset,
            send.text,
            target.recipient,
            origin=conn_id,
            room=target.room,
            mentions=mentions,
            target=target.id,
        )

    async def _member_of(self, room: str, user_id: str, client_offset: str) -> None:
        try:  # the connection may not have seen its join relayed yet
            await self._desk.member_of(room, user_id)
        except FrameError as exc:
            exc.client_offset = client_offset
            raise

    def _check_muted(self, user_id: str, room: str | None, client_offset: str) -> None:
        mute = self._sanctions.muted(user_id, room)
        if mute is not None:
            raise muted_error(mute.room, mute.until, client_offset)


def _unknown_message(client_offset: str) -> FrameError:
    return FrameError("unknown_message", "no such message", client_offset)


def _refused_if_limited(
    result: Posted | RateLimited | EditRefused | StoreError, draft: Draft
) -> Posted | FrameError | StoreError:
    """The answer to a stored draft's send: a spent send limit is the client's ``rate_limited``."""
    if isinstance(result, RateLimited):
        return FrameError("rate_limited", "sending too fast; retry shortly", draft.client_offset)
    if isinstance(result, EditRefused):
        return _unknown_message(draft.client_offset)
    return result
