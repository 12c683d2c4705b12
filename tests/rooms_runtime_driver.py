"""Drive the Kafka runtime's :class:`RoomsRuntime` in-process, batch by batch.

Not a stand-in for Kafka in the integration tests (those run on the real
broker): this feeds the runtime's own batch code fetched batches of any size,
so a property about fetch boundaries can be checked over many splits in
seconds, and a restart can be modelled by rebuilding the runtime from the
records it wrote (what Faust's recovery hands a new owner).
"""

from __future__ import annotations

import asyncio
from typing import NamedTuple

import msgspec

from liveroom.kafka.app import PARTS_TABLE, STATE_TABLE, RoomsRuntime
from liveroom.kafka.topics import DEAD_LETTERS, EVENTS, MOMENTS, ROOM_METRICS, KafkaConfig
from sessions.envelopes import ENVELOPE_LINGER_S, Envelopes, routing
from streams.config import CoreConfig
from streams.models import DeadLetter, Moment, RoomMetrics
from streams.partitions import partition_for


class TP(NamedTuple):
    topic: str
    partition: int


class Message(NamedTuple):
    tp: TP
    key: bytes | None
    value: bytes | None
    partition: int
    offset: int


class Store(dict):
    """Faust's memory store as the runtime uses it: a dict with each recovered key's partition."""

    def __init__(self) -> None:
        super().__init__()
        self._key_partition: dict = {}


class _Changelog:
    def __init__(self, name: str) -> None:
        self.name = name

    def get_topic_name(self) -> str:
        return self.name


class Table:
    def __init__(self, name: str) -> None:
        self.data = Store()
        self.changelog_topic = _Changelog(f"app-{name}-changelog")


class _Done:
    def __await__(self):
        return iter(())


class Producer:
    def __init__(self) -> None:
        self.records: list[tuple[str, bytes | None, bytes | None, int | None]] = []

    async def send(self, topic, key, value, partition, timestamp, headers):
        self.records.append((topic, key, value, partition))
        return _Done()

    async def flush(self) -> None:
        return None


class Consumer:
    def __init__(self, partitions: int) -> None:
        self.assigned = {TP(EVENTS, p) for p in range(partitions)}
        self._committed_offset: dict = {}

    def assignment(self):
        return self.assigned


def refuse(producer, refused) -> None:
    """Make ``producer`` refuse the records ``refused(topic, key)`` picks: their
    send returns a failed future, as aiokafka's does for a record over the size
    limit (a model of any write that does not land)."""
    import asyncio

    send = producer.send

    async def refusing(topic, key, value, partition, timestamp, headers):
        if refused(topic, key):
            future = asyncio.get_running_loop().create_future()
            future.set_exception(RuntimeError("refused"))
            return future
        return await send(topic, key, value, partition, timestamp, headers)

    producer.send = refusing


def refuse_heads(producer, changelog: str, mode: str, rnd) -> None:
    """Refuse, in the ``changelog`` topic (a heads table's), every processed-offset
    record (``mode`` "offsets") or 30% of the head records at random ("heads")."""
    def refused(topic, key) -> bool:
        if not topic.endswith(changelog):
            return False
        offset = key.startswith(b"\xffoffset/")
        return offset if mode == "offsets" else not offset and rnd.random() < 0.3

    refuse(producer, refused)


def random_bounds(rnd, n: int, most: int) -> list[int]:
    """Cut points of ``n`` messages into fetched batches of 1 to ``most``."""
    bounds = [0]
    while bounds[-1] < n:
        bounds.append(min(n, bounds[-1] + rnd.randint(1, most)))
    return bounds


class App:
    def __init__(self, partitions: int) -> None:
        self.consumer = Consumer(partitions)
        self.producer = Producer()


def session_messages(events_path, *, partitions: int, envelope_events: int,
                     linger_s: float = ENVELOPE_LINGER_S) -> list[Message]:
    """The messages ``liveroom replay --kafka`` sends for an events file, with the
    partition and offset the broker would give them."""
    import gzip

    opener = gzip.open if str(events_path).endswith(".gz") else open
    sent: list[tuple[bytes | None, bytes]] = []
    envelopes = Envelopes(lambda key, value, _: sent.append((key, value)), envelope_events, linger_s=linger_s)
    with opener(events_path, "rb") as f:
        for line in f:
            raw = line.rstrip(b"\n")
            if raw.strip():
                key, ts = routing(raw)
                envelopes.add(key, raw, ts)
    envelopes.flush()
    offsets = [0] * partitions
    out = []
    for key, value in sent:
        p = partition_for(key, partitions) if key is not None else 0
        out.append(Message(TP(EVENTS, p), key, value, p, offsets[p]))
        offsets[p] += 1
    return out


class Driven:
    """A runtime over an in-process app; :meth:`restart` rebuilds it from its changelogs."""

    def __init__(self, core_config: CoreConfig, partitions: int, *, persist_s: float = 0.0) -> None:
        self.core_config = core_config
        self.partitions = partitions
        self.persist_s = persist_s  # 0: state written every batch; inf: only when :meth:`persist` is called
        self.committed: dict[int, int] = {}  # partition -> highest offset acked (what a successor starts after)
        self.commits: list[dict[int, int]] = [{}]  # committed, as of each persist (Faust commits acks later)
        self.changelog: list[tuple[str, bytes | None, bytes | None, int | None]] = []
        self.outputs: list[tuple[str, bytes | None, bytes | None]] = []
        self.cores: list = []  # every runtime's core, the current one last (counters across restarts)
        self._build()

    def _build(self) -> None:
        self.app = App(self.partitions)
        self.heads, self.parts = Table(STATE_TABLE), Table(PARTS_TABLE)
        for topic, key, value, partition in self.changelog:  # Faust's recovery: the latest record per key
            table = self.heads if topic == self.heads.changelog_topic.name else self.parts
            if value is None:
                table.data.pop(key, None)
                table.data._key_partition.pop(key, None)
            else:
                table.data[key] = value
                table.data._key_partition[key] = partition
        self.runtime = RoomsRuntime(self.app, self.heads, self.parts, self.core_config,
                                    KafkaConfig(partitions=self.partitions, persist_s=self.persist_s))
        self.cores.append(self.runtime.core)

    def restart(self) -> None:
        self._build()

    def feed(self, messages: list[Message]) -> None:
        self._acked(asyncio.run(self.runtime._process(messages)))
        self._collect()

    def persist(self) -> None:
        """What the timer does once ``persist_s`` has passed."""
        self._acked(asyncio.run(self.runtime._persist()))
        self._collect()

    def redeliver(self, messages: list[Message], *, commit_lag: int = 0) -> None:
        """After :meth:`restart`: the group hands the successor everything after
        its committed offsets (of ``messages``, the ones sent so far); with
        ``commit_lag``, the commit is that many persists behind the acks (Faust
        commits acked offsets every few seconds: a crash falls in between)."""
        committed = self.commits[max(0, len(self.commits) - 1 - commit_lag)]
        self.feed([m for m in messages if m.offset > committed.get(m.partition, -1)])

    def _acked(self, acks) -> None:
        for m in acks:
            if m.offset > self.committed.get(m.partition, -1):
                self.committed[m.partition] = m.offset
        if acks:
            self.commits.append(dict(self.committed))

    def _collect(self) -> None:
        for topic, key, value, partition in self.app.producer.records:
            if topic.endswith("-changelog"):
                self.changelog.append((topic, key, value, partition))
            else:
                self.outputs.append((topic, key, value))
        self.app.producer.records.clear()

    def flush_idle(self) -> None:
        """What the idle timer does once every partition has been quiet long enough."""
        runtime = self.runtime
        runtime.load_assigned()
        for tp in list(runtime.last_input):
            for room in runtime.clocks.flush_partition(tp.partition):
                runtime.store.persist(runtime.core.processors[room], tp.partition)
        asyncio.run(runtime._publish())
        self.persist()

    def metrics(self) -> list[RoomMetrics]:
        dec = msgspec.json.Decoder(RoomMetrics)
        return [dec.decode(v) for t, _, v in self.outputs if t == ROOM_METRICS and v is not None]

    def moments(self) -> list[Moment]:
        dec = msgspec.json.Decoder(Moment)
        return [dec.decode(v) for t, _, v in self.outputs if t == MOMENTS]

    def dead_letters(self) -> list[DeadLetter]:
        dec = msgspec.json.Decoder(DeadLetter)
        return [dec.decode(v) for t, _, v in self.outputs if t == DEAD_LETTERS]

    def finished(self) -> list[str]:
        return [k.decode() for t, k, v in self.outputs if t == ROOM_METRICS and v is None]
