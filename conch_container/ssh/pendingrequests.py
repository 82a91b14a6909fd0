"""The channel requests of one connection that are not answered yet.

Two jobs, both on behalf of :class:`~conch_container.ssh.connection.ServerConnection`:

- **Replies in order.** A client matches replies to its requests by their
  order on the channel (OpenSSH and Conch both keep a queue per channel), so a
  request answered quickly must not overtake a slower one sent before it. Each
  channel's replies are therefore sent in the order of the requests.
- **A bound per connection.** Every request counts from its arrival until its
  handler is done and, if the client wants a reply, until that reply is sent;
  :attr:`PendingRequests.full` tells the connection when a client has more
  than ``ssh.maxPendingRequests`` of them (:data:`MAX_PENDING_REQUESTS` by default).

Global requests are not tracked here: the gateway answers each one as it
arrives (see :meth:`~conch_container.ssh.avatar.ContainerAvatar.gotGlobalRequest`),
so they are never pending.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import attrs
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

#: How many channel requests a connection may have unanswered at once: the
#: default of ``ssh.maxPendingRequests``. An
#: OpenSSH client has at most one or two per session channel (the ``shell``
#: or ``exec`` being started, a ``window-change``), and sshd lets it open 10
#: sessions per connection by default: it never comes near this. Each channel
#: already runs at most one resize and one signal at a time
#: (:mod:`~conch_container.ssh.channellimits`); this bounds the backend calls
#: one connection can have waiting at once, however many channels it opens.
MAX_PENDING_REQUESTS = 32


@attrs.define(eq=False)
class _Request:
    channel_id: int
    want_reply: bool
    answered: bool = False
    ok: bool = False


@attrs.define
class _ChannelRequests:
    #: Requests that want a reply, oldest first; each leaves once its reply is sent.
    replies: deque[_Request] = attrs.field(factory=deque)
    #: Requests without a reply whose handler has not finished.
    unanswered: set[_Request] = attrs.field(factory=set)


class PendingRequests:
    """Counts a connection's unanswered channel requests and sends their replies in order.

    :param limit: when :attr:`full` becomes true.
    :param send_reply: sends the reply (success or failure) for a channel, by
        its local id; called in request order for each channel.
    """

    def __init__(self, limit: int, send_reply: Callable[[int, bool], None]) -> None:
        self.limit = limit
        self._send_reply = send_reply
        self._channels: dict[int, _ChannelRequests] = {}
        self._count = 0

    @property
    def count(self) -> int:
        """How many requests are unanswered now."""
        return self._count

    @property
    def full(self) -> bool:
        """Whether the connection has as many unanswered requests as it may."""
        return self._count >= self.limit

    def track(self, channel_id: int, answer: Deferred[bool], want_reply: bool) -> None:
        """Count a request until ``answer`` fires (and its reply, if wanted, is sent).

        ``answer`` fires with True for success; False or a failure is a failure reply.
        """
        request = _Request(channel_id, want_reply)
        requests = self._channels.setdefault(channel_id, _ChannelRequests())
        if want_reply:
            requests.replies.append(request)
        else:
            requests.unanswered.add(request)
        self._count += 1
        answer.addBoth(self._answered, request)

    def channel_closed(self, channel_id: int) -> None:
        """The channel is gone: its requests stop counting and will get no reply."""
        requests = self._channels.pop(channel_id, None)
        if requests is not None:
            self._count -= len(requests.replies) + len(requests.unanswered)

    def _answered(self, outcome: bool | Failure, request: _Request) -> None:
        requests = self._channels.get(request.channel_id)
        if requests is None:
            return  # the channel closed meanwhile
        request.answered = True
        request.ok = not isinstance(outcome, Failure) and bool(outcome)
        if not request.want_reply:
            if request in requests.unanswered:
                requests.unanswered.remove(request)
                self._count -= 1
        else:
            self._send_ready(request.channel_id, requests)
        if not requests.replies and not requests.unanswered:
            self._channels.pop(request.channel_id, None)

    def _send_ready(self, channel_id: int, requests: _ChannelRequests) -> None:
        replies = requests.replies
        while replies and replies[0].answered:
            request = replies.popleft()
            self._count -= 1
            self._send_reply(channel_id, request.ok)
