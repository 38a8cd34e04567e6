"""Stopping a turn's generation on request: the owner's Stop button, the console's abort.

Both end the same way, so it is written once: the engine driver pushes a final chunk
with ``finish_reason: "abort"`` to every open choice of the request and cancels it in the
engine; the reply loop then stores what was generated as ``incomplete`` (``abort`` is one
of its truncating finish reasons) and the stream ends normally, ``[DONE]`` included.

Who may stop what is decided here. The flight recorder's trace of a live request names
the user it was opened for (``ChatService.chat`` sets it from the principal), so an owner
check needs no store read; another user's request id answers exactly like an unknown
one (404), as everywhere else in the API.
"""

from __future__ import annotations

from collections.abc import Sequence

from chorusline.actors import ActorSystem
from chorusline.chat.engine_driver import Abort
from chorusline.chat.principal import Principal
from chorusline.protocols import Conflict, NotFound
from chorusline.store import Message, MessageStatus, Role


async def abort_request(system: ActorSystem, drivers: Sequence[str], request_id: str,
                        by: str) -> bool:
    """End ``request_id``'s generation now, on whichever model's engine runs it (the
    registry names of the models' ``drivers``); False if none is running it (it
    finished, or never reached an engine)."""
    for key in drivers:
        driver = system.registry.lookup(key)
        if driver is not None and bool(await driver.ask(Abort(request_id, by))):
            return True
    return False


async def stop_turn(system: ActorSystem, drivers: Sequence[str], request_id: str, *,
                    principal: Principal | None = None) -> None:
    """Stop a running turn: ``principal``'s own (404 for anyone else's), or any turn
    when None (an admin). ``Conflict`` once its generation has already ended."""
    trace = system.recorder.find(request_id)
    unknown = NotFound(f"no request {request_id!r} in flight", param="request_id")
    if principal is not None and (trace is None
                                  or trace.attrs.get("tenant") != principal.user_id):
        raise unknown
    if await abort_request(system, drivers, request_id,
                           "admin" if principal is None else "owner"):
        return
    if trace is None:  # an admin may stop an untraced request (``ChatService.generate``)
        raise unknown
    raise Conflict(f"request {request_id!r} is {trace.state}: its generation has ended, "
                   "so there is nothing to stop", param="request_id")


def generating(message: Message) -> str:
    """The request id of the reply ``message`` is being written by; ``Conflict`` for a
    message that is not a reply in progress (a user message, a finished reply)."""
    running = (message.role is Role.ASSISTANT and message.finish_reason is None
               and message.status is MessageStatus.INCOMPLETE)
    if not running or message.request_id is None:
        raise Conflict(f"message {message.id!r} is not a reply being generated",
                       param="message_id")
    return message.request_id
