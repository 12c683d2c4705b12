"""The ``liveroom.events`` contract: typed events, decoded and validated in one pass.

Why msgspec: decoding JSON straight into typed structs validates field presence,
types and bounds in C, at the same cost as decoding into plain dicts. The room
state core then never sees a malformed event: everything that does not fit the
contract is turned into a :class:`Rejected` with a short machine-readable reason,
which the runtimes turn into a dead letter carrying the raw bytes.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Union

import msgspec

# Bounds are part of the contract: they keep absurd values (negative money,
# infinite timestamps, megabyte ids) out of the core.
Ident = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
EpochSeconds = Annotated[float, msgspec.Meta(gt=0, lt=1e11)]
Money = Annotated[float, msgspec.Meta(ge=0, lt=1e12)]
LikeCount = Annotated[int, msgspec.Meta(ge=1, le=100_000)]
Text = Annotated[str, msgspec.Meta(max_length=4096)]
Source = Annotated[str, msgspec.Meta(pattern="^(organic|paid)$")]

# Interaction kinds, in the order used by every per-kind vector and output.
INTERACTION_KINDS: tuple[str, ...] = ("comment", "like", "share", "follow", "gift", "cart_add", "order")
N_KINDS = len(INTERACTION_KINDS)


class Event(msgspec.Struct, kw_only=True, frozen=True, gc=False, tag_field="type"):
    """Fields every event carries. ``ts`` is event time in epoch seconds."""

    event_id: Ident
    room_id: Ident
    ts: EpochSeconds
    # Index into INTERACTION_KINDS for interactions, -1 otherwise.
    kind_index: ClassVar[int] = -1


class Enter(Event, tag="enter"):
    user_id: Ident
    source: Source = "organic"


class Leave(Event, tag="leave"):
    user_id: Ident


class Comment(Event, tag="comment"):
    user_id: Ident
    text: Text = ""
    kind_index: ClassVar[int] = 0


class Like(Event, tag="like"):
    user_id: Ident
    count: LikeCount = 1
    kind_index: ClassVar[int] = 1


class Share(Event, tag="share"):
    user_id: Ident
    kind_index: ClassVar[int] = 2


class Follow(Event, tag="follow"):
    user_id: Ident
    kind_index: ClassVar[int] = 3


class Gift(Event, tag="gift"):
    user_id: Ident
    value: Money
    kind_index: ClassVar[int] = 4


class CartAdd(Event, tag="cart_add"):
    user_id: Ident
    sku: Ident
    kind_index: ClassVar[int] = 5


class Order(Event, tag="order"):
    user_id: Ident
    sku: Ident
    amount: Money
    kind_index: ClassVar[int] = 6


class RoomStart(Event, tag="room_start"):
    user_id: Ident | None = None


class RoomEnd(Event, tag="room_end"):
    user_id: Ident | None = None


class Spend(Event, tag="spend"):
    """Cost of bought traffic, reported by the ad server."""

    amount: Money
    user_id: Ident | None = None


AnyEvent = Union[Enter, Leave, Comment, Like, Share, Follow, Gift, CartAdd, Order, RoomStart, RoomEnd, Spend]
EVENT_TYPES: tuple[str, ...] = tuple(c.__struct_config__.tag for c in AnyEvent.__args__)  # type: ignore[attr-defined]


class Rejected(Exception):
    """An input that cannot be used. ``reason`` is a stable short code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class EventDecoder:
    """Turns raw bytes into one typed event, or raises :class:`Rejected`.

    Reasons: ``empty``, ``oversized``, ``malformed_json``, ``unknown_type``,
    ``invalid_event`` (missing or wrong-typed field, out-of-bound value) and
    ``ts_out_of_range`` (outside ``ts_bounds`` when the caller knows them, as a
    recorded session does).
    """

    def __init__(self, *, max_bytes: int = 65536, ts_bounds: tuple[float, float] | None = None) -> None:
        self.max_bytes = max_bytes
        self.ts_bounds = ts_bounds
        self._decode = msgspec.json.Decoder(AnyEvent).decode

    def decode(self, raw: bytes) -> AnyEvent:
        if len(raw) > self.max_bytes:
            raise Rejected("oversized", f"{len(raw)} bytes > limit {self.max_bytes}")
        try:
            event = self._decode(raw)
        except msgspec.ValidationError as exc:
            msg = str(exc)
            if msg.endswith("at `$.type`") or "missing required field `type`" in msg:
                raise Rejected("unknown_type", msg) from None
            raise Rejected("invalid_event", msg) from None
        except msgspec.DecodeError as exc:
            if not raw.strip():
                raise Rejected("empty", "blank input") from None
            raise Rejected("malformed_json", str(exc)) from None
        bounds = self.ts_bounds
        if bounds is not None and not (bounds[0] <= event.ts <= bounds[1]):
            raise Rejected("ts_out_of_range", f"ts {event.ts} outside [{bounds[0]}, {bounds[1]}]")
        return event


encode_event = msgspec.json.Encoder().encode
