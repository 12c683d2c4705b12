"""The ``liveroom.events`` contract: typed events, decoded and validated in one pass.

Why msgspec: decoding JSON straight into typed structs validates field presence,
types and bounds in C, at the same cost as decoding into plain dicts. The room
state core then never sees a malformed event: everything that does not fit the
contract is turned into a :class:`Rejected` with a short machine-readable reason,
which the runtimes turn into a dead letter carrying the raw bytes.
"""

from __future__ import annotations

import re
from itertools import accumulate
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

# White space as JSON has it (RFC 8259): an input of only these is blank, nothing else is.
JSON_SPACE = b" \t\n\r"

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
        self._tags = contract_tags(contract)

    def decode(self, raw: bytes) -> AnyEvent:
        size = raw.length if isinstance(raw, LongInput) else len(raw)
        if size > self.max_bytes or isinstance(raw, LongInput):
            raise Rejected("oversized", f"{size} bytes > limit {self.max_bytes}")
        try:
            event = self._decode(raw)
        except Exception as exc:  # noqa: BLE001 - any failure on bytes is a verdict, never a crash
            raise _rejection(raw, exc, self._tags) from None
        bounds = self.ts_bounds
        if bounds is not None and not (bounds[0] <= event.ts <= bounds[1]):
            raise Rejected("ts_out_of_range", f"ts {event.ts} outside [{bounds[0]}, {bounds[1]}]")
        return event


MAX_DEPTH = 64
"""Input that is not JSON and nests deeper than this is ``too_deep``."""

# A JSON string, or an unterminated one running to the end: every byte is read
# once (an unterminated string does not make each later quote scan to the end).
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*(?:"|\\?\Z)', re.S)
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")
_OPENERS = frozenset(b"[{")


def nesting_depth(raw: bytes) -> int:
    """The deepest nesting of ``[``/``{`` in ``raw``, outside JSON strings. Read
    off the bytes in linear time, so the verdict does not depend on how a parser
    reports deep input."""
    brackets = _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    return max(accumulate(1 if c in _OPENERS else -1 for c in brackets), default=0)


def _rejection(raw: bytes, exc: Exception, tags: frozenset[str]) -> Rejected:
    """Why ``raw`` could not be decoded, decided from the bytes themselves, never
    from the type or message of the parser's exception (which moved between
    msgspec releases: 0.23 reports invalid UTF-8 as a ``DecodeError`` where 0.22
    raised ``UnicodeDecodeError``). The parser's message is kept as the detail.

    In order: blank (``empty``); not UTF-8 (``invalid_utf8``); not JSON
    (``too_deep`` when nested deeper than :data:`MAX_DEPTH`, else
    ``malformed_json``); an object whose ``type`` is missing or none of the
    contract's (``unknown_type``); else ``invalid_event`` (a JSON value that is no
    object, a missing or wrong-typed field, a value out of its bounds)."""
    detail = f"{type(exc).__name__}: {exc}"[:500]
    if not raw.strip(JSON_SPACE):
        return Rejected("empty", "blank input")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        return Rejected("invalid_utf8", f"invalid UTF-8 at byte {bad.start}")
    try:
        value = _decode_any(raw)
    except Exception:  # noqa: BLE001 - not JSON, whatever the parser says
        if nesting_depth(raw) > MAX_DEPTH:
            return Rejected("too_deep", f"JSON nested deeper than {MAX_DEPTH} levels")
        return Rejected("malformed_json", detail)
    if isinstance(value, dict):
        tag = value.get("type")
        if not isinstance(tag, str) or tag not in tags:
            return Rejected("unknown_type", f"type {str(tag)[:64]!r} is none of the contract's")
    return Rejected("invalid_event", detail)


def contract_tags(contract: object) -> frozenset[str]:
    """The ``type`` tags of a tagged struct or a union of them."""
    members = getattr(contract, "__args__", (contract,))
    return frozenset(m.__struct_config__.tag for m in members)


_decode_any = msgspec.json.Decoder(float_hook=float).decode  # 1e999 is JSON (inf): the contract rejects it


def decode_or_none(decode, raw: bytes):
    """``decode(raw)``, or None on any failure: the fast path of a caller that
    explains failures separately (a hostile input must never raise out of it)."""
    try:
        return decode(raw)
    except Exception:  # noqa: BLE001
        return None


encode_event = msgspec.json.Encoder().encode
