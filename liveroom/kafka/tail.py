"""``liveroom tail``: any contract topic as lines a person can read.

Why its own command: the broker's classpath (scripts/kafka.sh) has no console
consumer, and the contract's values are JSON blobs a newcomer should not have
to decode by eye. Each topic has a formatter (a pure function of the message's
bytes, so it is tested without a broker); a value that does not decode is shown
as such, with its size and first bytes, never a crash: anyone can write a topic.
"""

from __future__ import annotations

import base64
import time
from datetime import datetime, timezone
from typing import Callable, Iterator

import msgspec

from liveroom.kafka.io import unpack
from liveroom.terminal import escape
from liveroom.kafka.topics import (ALL_TOPICS, BID_DECISIONS, CAMPAIGNS, CLIP_EVENTS, CLIP_STATS, CLIPS, DEAD_LETTERS,
                                  EVENTS, MOMENTS, PROMOTIONS, ROOM_METRICS, KafkaConfig)

_json = msgspec.json.Decoder().decode

def _escaped(value):
    """A decoded message with every string in it escaped (keys too)."""
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, dict):
        return {escape(str(k)): _escaped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escaped(v) for v in value]
    return value


def clock(ts: float | None) -> str:
    """Epoch seconds as a UTC clock time with its date: ``2026-05-28 20:33:20Z``."""
    if not isinstance(ts, (int, float)) or not 0 < ts < 1e11:
        return "?"
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def _num(x) -> str:
    return f"{x:,.2f}".rstrip("0").rstrip(".") if isinstance(x, float) else str(x)


def _event(v: dict) -> str:
    rest = " ".join(f"{k}={_num(x)}" for k, x in v.items() if k not in ("type", "room_id", "ts", "event_id"))
    return f"{clock(v.get('ts'))} {v.get('room_id')} {v.get('type')} {rest} (id {v.get('event_id')})"


def _metrics(v: dict) -> str:
    per_min = v.get("interactions_per_min") or {}
    busiest = ", ".join(f"{k} {_num(x)}" for k, x in sorted(per_min.items(), key=lambda kv: -kv[1])[:3] if x)
    return (f"{clock(v.get('ts'))} {v.get('room_id')} online {v.get('online')} (peak {v.get('peak_online')}); "
            f"entries/min organic {_num(v.get('organic_entries_per_min'))} paid {_num(v.get('paid_entries_per_min'))}; "
            f"interactions/min {busiest or 'none'}; orders {v.get('orders_total')}, GMV {_num(v.get('gmv_total'))}, "
            f"spend {_num(v.get('spend_total'))}{'' if v.get('live', True) else '; ended'}")


def _moment(v: dict) -> str:
    return (f"{clock(v.get('start'))} to {clock(v.get('end'))[11:]} {v.get('room_id')} moment: z {v.get('strength')}, "
            f"peak {_num(v.get('peak_per_min'))}/min, {v.get('interactions')} interactions "
            f"({', '.join(v.get('kinds') or []) or 'all kinds'})")


def _decision(v: dict) -> str:
    """One decision as an advertiser reads it, in the report's words: the bid, its
    bid cap per viewer, its spend cap until the next decision, and the budget as
    spent (reported), committed (caps issued, not yet reported: they count as
    spent until a report covers them) and left."""
    per_viewer = "" if v.get("bid_cap") is None else f"; bid cap {_num(v.get('bid_cap'))} per viewer"
    reason = v.get("reason")
    if v.get("budget") is not None:
        money = (f"budget {_num(v.get('budget'))}: {_num(v.get('spent'))} spent, {_num(v.get('committed'))} "
                 f"committed, {_num(v.get('budget_left'))} left")
        if reason == "budget spent" and (v.get("committed") or 0) > 0:
            reason += " (spent or committed: caps count as spent until a report covers them)"
    else:  # a decision of an older version
        money = f"budget left {_num(v.get('budget_left'))}"
    return (f"{clock(v.get('ts'))} {v.get('room_id')} {v.get('strategy')}: bid {_num(v.get('multiplier'))} x value "
            f"{_num(v.get('unit_value'))}{per_viewer}; spend cap {_num(v.get('spend_cap'))} until the next "
            f"decision; {money}. Why: {reason}")


def _campaign(v: dict) -> str:
    currency = v.get("currency") or "(no currency)"
    mcb = v.get("mcb") or {}
    return (f"{v.get('room_id')} campaign: budget {_num(v.get('total_budget'))} {currency}, "
            f"max cost per interaction {_num(mcb.get('max_cost_per_interaction'))}, "
            f"planned {_num(mcb.get('duration_s'))} s" + _show(v.get("run_of_show")))


def _show(show: object) -> str:
    """The run of show in a few words: how many moments, and when the first is."""
    if not isinstance(show, list) or not show:
        return ""
    ats = [m.get("at") for m in show if isinstance(m, dict) and isinstance(m.get("at"), (int, float))]
    first = f", first at {clock(min(ats))}" if ats else ""
    return f", run of show: {len(show)} moment(s){first}"


def _clips(v: dict) -> str:
    clips = v.get("clips") or []
    part = f"part {v.get('part')}" if v.get("part") is not None else "no part"
    head = (f"{v.get('room_id')} clips, {part}{' (final)' if v.get('final') else ''}: "
            f"{len(clips)} clip(s)" + (f"; error: {v['error']}" if v.get("error") else ""))
    folder = v.get("folder")
    where = f"{str(folder).rstrip('/')}/" if folder else ""  # the clips folder the worker wrote them to
    lines = [head] + [f"  {where}{c.get('file')}  {_num(c.get('start'))}-{_num(c.get('end'))} s of video  "
                      f"score {c.get('score')}  {'; '.join(c.get('reasons') or [])}" for c in clips]
    return "\n".join(lines)


def _dead(v: dict) -> str:
    try:
        raw = base64.b64decode(v.get("raw") or "")
    except (ValueError, TypeError):
        raw = b""
    size = v.get("raw_bytes") or len(raw)
    return (f"{v.get('room_id') or '-'} dead letter {v.get('reason')} from {v.get('source')}: {v.get('detail')} "
            f"[{size} bytes: {raw[:60]!r}]")


def _clip_event(v: dict) -> str:
    rest = " ".join(f"{k}={_num(x)}" for k, x in v.items()
                    if k not in ("type", "room_id", "ts", "event_id", "clip_id", "signals", "kinds"))
    return f"{clock(v.get('ts'))} {v.get('room_id')} {v.get('clip_id')} {v.get('type')} {rest}"


def _clip_stats(v: dict) -> str:
    pull = "-" if v.get("pull") is None else _num(v.get("pull"))
    return (f"{clock(v.get('ts'))} {v.get('room_id')} {v.get('clip_id')} hour {v.get('hour')}: "
            f"{v.get('impressions')} impressions ({v.get('promoted_impressions')} promoted), {v.get('entries')} entries "
            f"(pull {pull}/1000), {v.get('orders')} orders; total {v.get('total_entries')} entries")


def _promotion(v: dict) -> str:
    shares = ", ".join(f"{a.get('clip_id')} {a.get('impressions')}" for a in v.get("allocations") or []) or "nothing"
    return f"{clock(v.get('ts'))} {v.get('room_id')} promote: {shares} (of {v.get('budget')}; explored {v.get('explored')})"


FORMATTERS: dict[str, Callable[[dict], str]] = {
    EVENTS: _event, ROOM_METRICS: _metrics, MOMENTS: _moment, BID_DECISIONS: _decision,
    CAMPAIGNS: _campaign, CLIPS: _clips, DEAD_LETTERS: _dead, CLIP_EVENTS: _clip_event, CLIP_STATS: _clip_stats,
    PROMOTIONS: _promotion,
}


def topic_name(name: str) -> str:
    """``room-metrics`` or ``liveroom.room-metrics``: the full contract topic name."""
    full = name if name.startswith("liveroom.") else f"liveroom.{name}"
    if full not in ALL_TOPICS:
        raise ValueError(f"unknown topic {name!r}; one of: {', '.join(t.removeprefix('liveroom.') for t in ALL_TOPICS)}")
    return full


def format_message(topic: str, value: bytes | None, key: bytes | None = None) -> list[str]:
    """The lines of one message (an envelope of events gives one line per event).
    Every text that came in the message is escaped (see :func:`escape`)."""
    if value is None:
        room = escape((key or b"").decode("utf-8", "replace")) or "?"
        if topic == CAMPAIGNS:
            return [f"{room} campaign deleted (tombstone): budget 0 from its next decision"]
        return [f"{room} (tombstone)"]
    values = unpack(value) if topic == EVENTS else [value]
    if not values:
        return ["(an envelope with no events)"]
    fmt = FORMATTERS.get(topic)
    out = []
    for raw in values:
        try:
            decoded = _json(raw)
            if not isinstance(decoded, dict) or fmt is None:
                raise ValueError("not a JSON object")
            out.append(fmt(_escaped(decoded)))
        except Exception:  # noqa: BLE001 - anyone can write a topic: show the bytes, go on
            out.append(f"(not a {topic.removeprefix('liveroom.')} message: {len(raw)} bytes {raw[:60]!r})")
    return out


def tail(config: KafkaConfig, topic: str, *, room: str | None = None, from_beginning: bool = False,
         idle_timeout_s: float | None = None, max_messages: int | None = None) -> Iterator[str]:
    """Lines of ``topic`` as they arrive (every partition; no consumer group, so
    nothing is committed and the workers are not disturbed). Stops after
    ``idle_timeout_s`` without a message or ``max_messages`` messages, if given."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(group_id=None, enable_auto_commit=False, **config.kafka_python_options())
    key = room.encode() if room is not None else None
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise ValueError(f"topic {topic} does not exist (run `liveroom topics`)")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        (consumer.seek_to_beginning if from_beginning else consumer.seek_to_end)(*tps)
        seen, last = 0, time.monotonic()
        while True:
            batch = consumer.poll(timeout_ms=500)
            now = time.monotonic()
            records = sorted((r for rs in batch.values() for r in rs), key=lambda r: (r.timestamp, r.partition, r.offset))
            for rec in records:
                last = now
                if key is not None and rec.key != key:
                    continue
                yield from format_message(topic, rec.value, rec.key)
                seen += 1
                if max_messages is not None and seen >= max_messages:
                    return
            if idle_timeout_s is not None and now - last > idle_timeout_s:
                return
    finally:
        consumer.close()
