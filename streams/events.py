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
Source = Annotated[str, msgspec.Meta(pattern="^(organic|paid|clip)$")]  # clip: drawn by a published clip

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
    """A viewer enters. ``clip`` entries (with ``clip_id``) count as organic in the
    room's state; the clip loop attributes them to their clip."""

    user_id: Ident
    source: Source = "organic"
    clip_id: Ident | None = None


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
    """Cost of bought traffic, reported by the ad server.

    ``amount`` is what was spent since the previous report. A report that
    answers our bid decisions also says which of them it covers: ``covers`` is a
    decision ``seq`` such that every spend under decisions with ``seq <= covers``
    is included in ``total``, the room's cumulative spend under them. The budget
    guard counts a decision's cap as spent until such a report covers it (see
    ``bidding.budget``)."""

    amount: Money
    user_id: Ident | None = None
    covers: Annotated[int, msgspec.Meta(ge=0, lt=1 << 53)] | None = None
    total: Money | None = None


AnyEvent = Union[Enter, Leave, Comment, Like, Share, Follow, Gift, CartAdd, Order, RoomStart, RoomEnd, Spend]
EVENT_TYPES: tuple[str, ...] = tuple(c.__struct_config__.tag for c in AnyEvent.__args__)  # type: ignore[attr-defined]


class LongInput(bytes):
    """The first bytes of an input too long to hold (a line longer than the limit,
    read in constant memory): its value is the prefix, ``length`` the full size
    and ``sha256`` the hex digest of all of it. Never decoded: always ``oversized``."""

    length: int
    sha256: str

    def __new__(cls, prefix: bytes, *, length: int, sha256: str) -> "LongInput":
        obj = super().__new__(cls, prefix)
        obj.length = length
        obj.sha256 = sha256
        return obj


class BlankLines(bytes):
    """A run of ``lines`` blank lines, read as one item (its value is empty).
    A file of newlines then costs one item per run, not one per line, and line
    numbers after it stay right: the core counts ``lines`` inputs, all blank."""

    lines: int

    def __new__(cls, lines: int) -> "BlankLines":
        obj = super().__new__(cls, b"")
        obj.lines = lines
        return obj


class Rejected(Exception):
    """An input that cannot be used. ``reason`` is a stable short code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class EventDecoder:
    """Turns raw bytes into one typed event, or raises :class:`Rejected`.

    Reasons: ``empty``, ``oversized``, ``malformed_json``, ``invalid_utf8``,
    ``too_deep``, ``unknown_type``, ``invalid_event`` (missing or wrong-typed
    field, out-of-bound value) and
    ``ts_out_of_range`` (outside ``ts_bounds`` when the caller knows them, as a
    recorded session does). ``contract`` is the union of event types (the room
    events by default; the clip loop passes its own).
    """

    def __init__(self, *, max_bytes: int = 65536, ts_bounds: tuple[float, float] | None = None,
                 contract: object = AnyEvent) -> None:
        self.max_bytes = max_bytes
        self.ts_bounds = ts_bounds
        self._decode = msgspec.json.Decoder(contract).decode

    def decode(self, raw: bytes) -> AnyEvent:
        size = raw.length if isinstance(raw, LongInput) else len(raw)
        if size > self.max_bytes or isinstance(raw, LongInput):
            raise Rejected("oversized", f"{size} bytes > limit {self.max_bytes}")
        try:
            event = self._decode(raw)
        except Exception as exc:  # noqa: BLE001 - any failure on bytes is a verdict, never a crash
            raise _rejection(raw, exc) from None
        bounds = self.ts_bounds
        if bounds is not None and not (bounds[0] <= event.ts <= bounds[1]):
            raise Rejected("ts_out_of_range", f"ts {event.ts} outside [{bounds[0]}, {bounds[1]}]")
        return event


def _rejection(raw: bytes, exc: Exception) -> Rejected:
    """Why ``raw`` could not be decoded. msgspec raises more than its own errors on
    hostile bytes: ``UnicodeDecodeError`` for invalid UTF-8 inside a string and
    ``RecursionError`` for JSON nested thousands of levels deep (well under any
    size limit); anything else it may raise is still a verdict on the input."""
    msg = str(exc)
    if isinstance(exc, msgspec.ValidationError):
        if msg.endswith("at `$.type`") or "missing required field `type`" in msg:
            return Rejected("unknown_type", msg)
        return Rejected("invalid_event", msg)
    if isinstance(exc, UnicodeDecodeError):
        return Rejected("invalid_utf8", msg)
    if isinstance(exc, RecursionError):
        return Rejected("too_deep", "JSON nested too deeply")
    if isinstance(exc, msgspec.DecodeError):
        if not raw.strip():
            return Rejected("empty", "blank input")
        return Rejected("malformed_json", msg)
    return Rejected("malformed_json", f"{type(exc).__name__}: {msg}")


def decode_or_none(decode, raw: bytes):
    """``decode(raw)``, or None on any failure: the fast path of a caller that
    explains failures separately (a hostile input must never raise out of it)."""
    try:
        return decode(raw)
    except Exception:  # noqa: BLE001
        return None


encode_event = msgspec.json.Encoder().encode
