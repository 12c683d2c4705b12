"""The ``liveroom.clip-events`` contract: what happens to a published clip.

Keyed by room (a clip belongs to the room it was cut from), so a room's clips,
their stats and its promotion decisions live on one partition, next to its live
state. The same events are a file (``clip-events.jsonl[.gz]``) in a recorded
session. Decoded and validated in one pass like room events (msgspec), with the
same verdicts: anything off the contract is a dead letter with its bytes.

``clip_publish`` opens a clip's life and carries what the highlight module knew
about it (its score and signals, the interaction kinds that rose, face time,
length and place in the broadcast): the promotion's prior and the features the
pull model learns from. ``enter`` is a room entry drawn by a clip (``source``
``clip``, with the clip id), as the room's own events carry it.
"""

from __future__ import annotations

from typing import Annotated, Union

import msgspec

from streams.events import EpochSeconds, EventDecoder, Ident, Money

Ratio = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
Count = Annotated[int, msgspec.Meta(ge=1, le=10_000_000)]
Score = Annotated[float, msgspec.Meta(ge=-1e3, le=1e3)]
Length = Annotated[float, msgspec.Meta(gt=0.0, le=86_400.0)]


class ClipEvent(msgspec.Struct, kw_only=True, frozen=True, tag_field="type"):
    event_id: Ident
    room_id: Ident
    clip_id: Ident
    ts: EpochSeconds


class ClipPublish(ClipEvent, tag="clip_publish"):
    score: Score  # the highlight module's fused score
    length_s: Length
    position: Ratio  # where the clip starts in its broadcast, 0 (start) to 1 (end)
    # bounded: a publication is kept in its clip's counts (twice, with the value it replaces), and
    # no state record may grow past a few KB whatever a producer sends
    signals: Annotated[dict[Annotated[str, msgspec.Meta(max_length=32)], Score], msgspec.Meta(max_length=32)] = \
        msgspec.field(default_factory=dict)
    kinds: Annotated[list[Annotated[str, msgspec.Meta(max_length=32)]], msgspec.Meta(max_length=16)] = \
        msgspec.field(default_factory=list)  # interaction kinds that rose during the clip
    face_share: Ratio = 0.0


class ClipImpression(ClipEvent, tag="clip_impression"):
    count: Count = 1  # impressions may come aggregated
    promoted: bool = False


class ClipPlay(ClipEvent, tag="clip_play"):
    user_id: Ident


class ClipComplete(ClipEvent, tag="clip_complete"):
    user_id: Ident
    watch_ratio: Ratio


class ClipLike(ClipEvent, tag="clip_like"):
    user_id: Ident


class ClipShare(ClipEvent, tag="clip_share"):
    user_id: Ident


class ClipClick(ClipEvent, tag="clip_click"):
    user_id: Ident
    target: Annotated[str, msgspec.Meta(pattern="^(room|product)$")] = "room"


class ClipOrder(ClipEvent, tag="clip_order"):
    user_id: Ident
    amount: Money


class ClipEntry(ClipEvent, tag="enter"):
    """A room entry a clip drew (into a broadcast of the room, now or later)."""

    user_id: Ident
    source: Annotated[str, msgspec.Meta(pattern="^clip$")] = "clip"


AnyClipEvent = Union[ClipPublish, ClipImpression, ClipPlay, ClipComplete, ClipLike, ClipShare, ClipClick, ClipOrder,
                     ClipEntry]
CLIP_EVENT_TYPES: tuple[str, ...] = tuple(c.__struct_config__.tag for c in AnyClipEvent.__args__)  # type: ignore


def clip_event_decoder(*, max_bytes: int = 65536) -> EventDecoder:
    """Raw bytes to one typed clip event, or :class:`~streams.events.Rejected`
    with the room events' reasons."""
    return EventDecoder(max_bytes=max_bytes, contract=AnyClipEvent)
