"""The worker's web pages, on Faust's web server (``LIVEROOM_KAFKA_WEB_PORT``).

* ``/healthz``: 200 ``ok`` while the worker runs and no write failed; 503 while
  it recovers its tables or rebalances, or after a failed write (it is stopping).
  docker-compose's healthchecks call it.
* ``/metrics``: Prometheus text. Inputs by outcome, dead letters by reason,
  events per second, consumer lag per partition, batch latency, state and
  changelog bytes, rooms, bid decisions by strategy, spend and budget left.
* ``/status``: the same figures as JSON, for the dashboard.
* ``/rooms`` and ``/rooms/<id>``: the rooms this worker owns (newest snapshot,
  moments, bid decision), as JSON. A room owned by another worker is a 404 that
  says so: each worker serves what it holds.
* ``/dashboard``: one page that reads ``/status`` and ``/rooms`` every two
  seconds and shows them; no build step, no external script.

Everything read here comes from :class:`liveroom.kafka.stats.WorkerStats` and the
core's own accounting, so the pages and the progress line never disagree.
"""

from __future__ import annotations

import time
from pathlib import Path

import faust
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import generate_latest

from liveroom.kafka.app import RoomsRuntime

DASHBOARD = Path(__file__).with_name("dashboard.html")
# The dead-letter reasons of the rooms agent (docs/contracts.md; tests/test_contract_reasons.py checks them).
ROOM_REASONS = ("oversized", "invalid_utf8", "too_deep", "malformed_json", "malformed_envelope", "unknown_type",
                "invalid_event", "late", "ts_jump", "room_finished", "key_mismatch", "wrong_partition",
                "spend_unissued", "spend_total_down")


def status(runtime: RoomsRuntime) -> dict:
    """The worker's figures (``/status``; ``/metrics`` exposes the same)."""
    stats, core = runtime.stats, runtime.core
    online = sum(len(p.state.online) for p in core.processors.values())
    decisions = list(stats.decisions.values())
    return {
        "health": health(runtime)[1],
        "uptime_s": round(time.time() - stats.started, 1),
        "last_batch_age_s": None if stats.last_batch_wall is None else round(time.time() - stats.last_batch_wall, 1),
        "accounting": core.accounting(),
        "events_per_s": round(stats.events_per_s, 1),
        "lag": [{"topic": t, "partition": p, "messages": n} for (t, p), n in sorted(stats.lag.items())],
        "rooms": len(core.processors),
        "online_viewers": online,
        "batches": stats.batches.n,
        "batch_seconds_mean": round(stats.batches.total / stats.batches.n, 4) if stats.batches.n else None,
        "state_bytes": stats.state_bytes(online),
        "changelog_bytes": dict(stats.changelog_bytes),
        "bid_decisions": dict(sorted(stats.decisions_by_strategy.items())),
        # money is summed per currency (a room's campaign's; "" when it names none): CNY and USD never add up
        "budget_left": _per_currency(stats, ((d.room_id, d.budget_left) for d in decisions)),
        "spend_reported": _per_currency(stats, ((m.room_id, m.spend_total) for m in stats.latest.values())),
        "write_failures": stats.write_failures,
        "live_rooms_silent": stats.live_rooms_silent(),
        "live_rooms_out_of_budget": stats.live_rooms_out_of_budget(),
        "highlight": stats.highlight_status(),
    }


def _per_currency(stats, amounts) -> dict[str, float]:
    out: dict[str, float] = {}
    for room, amount in amounts:
        currency = stats.currency.get(room, "")
        out[currency] = out.get(currency, 0.0) + amount
    return {c: round(v, 2) for c, v in sorted(out.items())}


def health(runtime: RoomsRuntime) -> tuple[int, str]:
    """``(HTTP status, word)`` of the worker's health."""
    app = runtime.app
    if runtime.stats.failed:
        return 503, "failed"
    if app.rebalancing:
        return 503, "rebalancing"
    recovery = app.tables.recovery
    if recovery.in_recovery or not recovery.completed.is_set():
        return 503, "recovering"
    return 200, "ok"


class WorkerCollector:
    """Prometheus metrics computed at scrape time from the runtime's figures."""

    def __init__(self, runtime: RoomsRuntime) -> None:
        self.runtime = runtime

    def collect(self):
        s = status(self.runtime)
        a = s["accounting"]
        inputs = CounterMetricFamily("liveroom_inputs", "Inputs (events) taken in, by outcome", labels=["outcome"])
        for outcome, key in (("processed", "processed"), ("duplicate", "duplicates"), ("blank", "blank"),
                             ("dead_letter", "dead_letters")):
            inputs.add_metric([outcome], a[key])
        yield inputs
        dead = CounterMetricFamily("liveroom_dead_letters", "Dead letters, by reason", labels=["reason"])
        # every reason the rooms agent can give, from 0: rate() sees the first burst too
        for reason, n in {**dict.fromkeys(ROOM_REASONS, 0), **a["dead_letter_reasons"]}.items():
            dead.add_metric([reason], n)
        yield dead
        yield GaugeMetricFamily("liveroom_worker_started_seconds", "When this worker process started (epoch "
                                "seconds): restarts show as changes", value=round(self.runtime.stats.started, 3))
        yield GaugeMetricFamily("liveroom_events_per_second", "Inputs per second over the last progress interval",
                                value=s["events_per_s"])
        lag = GaugeMetricFamily("liveroom_consumer_lag", "Messages on the broker not yet processed",
                                labels=["topic", "partition"])
        for row in s["lag"]:
            lag.add_metric([row["topic"], str(row["partition"])], row["messages"])
        yield lag
        h = self.runtime.stats.batches
        yield HistogramMetricFamily("liveroom_batch_seconds", "Time to process, persist and publish one fetched batch",
                                    buckets=h.cumulative(), sum_value=h.total)
        state = GaugeMetricFamily("liveroom_state_bytes", "Live bytes of room state in the changelogs", labels=["table"])
        for table, n in s["state_bytes"].items():
            state.add_metric([table], n)
        yield state
        written = CounterMetricFamily("liveroom_changelog_bytes", "Changelog bytes written", labels=["table"])
        for table, n in s["changelog_bytes"].items():
            written.add_metric([table], n)
        yield written
        yield GaugeMetricFamily("liveroom_rooms", "Rooms this worker holds", value=s["rooms"])
        yield GaugeMetricFamily("liveroom_online_viewers", "Online viewers in the rooms this worker holds",
                                value=s["online_viewers"])
        bids = CounterMetricFamily("liveroom_bid_decisions", "Bid decisions published, by strategy",
                                   labels=["strategy"])
        for strategy, n in s["bid_decisions"].items():
            bids.add_metric([strategy], n)
        yield bids
        left = GaugeMetricFamily("liveroom_budget_left", "Budget left over the rooms this worker bids for, by the "
                                 "campaigns' currency", labels=["currency"])
        spent = GaugeMetricFamily("liveroom_spend_reported", "Spend reported in the rooms' newest snapshots, by the "
                                  "campaigns' currency", labels=["currency"])
        for family, key in ((left, "budget_left"), (spent, "spend_reported")):
            for currency, amount in s[key].items():
                family.add_metric([currency], amount)
            yield family
        # what deploy/prometheus/alerts.yml alerts on, beside lag and dead letters
        yield CounterMetricFamily("liveroom_write_failures", "State or output records the broker did not take "
                                  "(the worker stops on the first)", value=s["write_failures"])
        yield GaugeMetricFamily("liveroom_live_rooms_silent", "Live rooms with no snapshot for 5 minutes (wall clock)",
                                value=s["live_rooms_silent"])
        yield GaugeMetricFamily("liveroom_live_rooms_out_of_budget", "Live rooms whose budget is all spent or "
                                "committed", value=s["live_rooms_out_of_budget"])
        h = s["highlight"]
        yield GaugeMetricFamily("liveroom_highlight_rooms_cut", "Rooms the highlight worker finished, as "
                                "liveroom.clips shows", value=h["rooms_cut"])
        yield GaugeMetricFamily("liveroom_highlight_clips", "Clips the highlight worker published", value=h["clips"])


def add_highlight_watch(app: faust.App, stats) -> None:
    """An agent on ``liveroom.clips`` that tells the pages what the highlight
    worker published (rooms cut, clips, its last error); any bytes are counted,
    none crash it."""
    import msgspec

    from liveroom.kafka.topics import CLIPS

    topic = app.topic(CLIPS, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")

    @app.agent(topic, name="highlight-watch")
    async def watch(stream):
        async for value in stream:
            try:
                manifest = msgspec.json.decode(value or b"")
            except Exception:  # noqa: BLE001 - anyone can write a topic
                continue
            if isinstance(manifest, dict):
                stats.record_clips(manifest)


def add_pages(app: faust.App, runtime: RoomsRuntime) -> None:
    """Register the pages on the app's web server."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WorkerCollector(runtime))

    @app.page("/healthz")
    async def healthz(self, request):  # noqa: ARG001 (Faust's view signature)
        code, word = health(runtime)
        return self.json({"status": word}, status=code)

    @app.page("/metrics")
    async def metrics(self, request):  # noqa: ARG001
        return self.bytes(generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/status")
    async def worker_status(self, request):  # noqa: ARG001
        return self.json(status(runtime))

    @app.page("/rooms")
    async def rooms(self, request):  # noqa: ARG001
        return self.json(runtime.stats.rooms())

    @app.page("/rooms/{room_id}")
    async def room(self, request, room_id):  # noqa: ARG001
        found = runtime.stats.room(room_id)
        if found is None:
            return self.json({"error": f"room {room_id!r} is not held by this worker (another may own its "
                                       "partition, or it has sent nothing yet)"}, status=404)
        return self.json(found)

    @app.page("/dashboard")
    async def dashboard(self, request):  # noqa: ARG001
        return self.html(DASHBOARD.read_text(encoding="utf-8"))
