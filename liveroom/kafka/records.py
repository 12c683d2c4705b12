"""Sending a batch's records: outputs and changelog records, in batches per
topic-partition.

Why: a runtime sends far more records than it reads messages (snapshots,
moments, state parts: 0.6 state records per event with 2,000 rooms of mostly
arrivals). aiokafka's ``send`` costs about 11 us of CPU per record (a future
and the accumulator's bookkeeping each); its batch API about 2.5 (measured on
loopback, 2-core machine, 200,000 records of 100 bytes). Records keep their
order per topic-partition, and a key goes to the partition Kafka's default
partitioner gives it (murmur2, as ``send`` would), so nothing a consumer sees
changes.

:func:`sender` picks :class:`BatchSender` for a Faust app on aiokafka and
:class:`PlainSender` (one ``send`` per record) for anything else, such as the
in-process app that tests drive the runtime with.
"""

from __future__ import annotations

import asyncio
import logging

from streams.partitions import partition_for

log = logging.getLogger(__name__)


def _failed(exc: BaseException) -> asyncio.Future:
    """A send refused at once (a record over the size limit) as a failed future:
    the caller's check treats it as any other failed write."""
    future = asyncio.get_running_loop().create_future()
    future.set_exception(exc)
    return future


class PlainSender:
    """One ``producer.send`` per record (Faust's signature)."""

    def __init__(self, producer) -> None:
        self.producer = producer
        self.futures: list = []

    async def add(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None) -> None:
        try:
            self.futures.append(await self.producer.send(topic, key, value, partition, None, None))
        except Exception as exc:  # noqa: BLE001 - reported by the caller's check
            self.futures.append(_failed(exc))

    async def close(self) -> list:
        """The futures of everything added (sent by now); the caller flushes and awaits them."""
        futures, self.futures = self.futures, []
        return futures


class BatchSender:
    """Records appended to one open batch per topic-partition, each batch handed
    to aiokafka when full and at :meth:`close`."""

    def __init__(self, producer) -> None:
        self.producer = producer  # aiokafka's AIOKafkaProducer
        self.open: dict[tuple[str, int], object] = {}
        self.futures: list = []
        self.partitions: dict[str, int] = {}  # topic -> partition count
        self.keyless = 0

    async def _partition(self, topic: str, key: bytes | None) -> int:
        count = self.partitions.get(topic)
        if count is None:
            count = self.partitions[topic] = len(await self.producer.partitions_for(topic))
        if key is None:  # spread, as the default partitioner does with no key
            self.keyless += 1
            return self.keyless % count
        return partition_for(key, count)

    async def add(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None) -> None:
        if partition is None:
            partition = await self._partition(topic, key)
        where = (topic, partition)
        batch = self.open.get(where)
        if batch is None:
            batch = self.open[where] = self.producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None) is not None:
            return
        if batch.record_count():  # full: send it, start the next
            await self._submit(batch, topic, partition)
            batch = self.open[where] = self.producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is not None:
                return
        try:  # larger than a whole batch: on its own
            self.futures.append(await self.producer.send(topic, value, key=key, partition=partition))
        except Exception as exc:  # noqa: BLE001 - reported by the caller's check
            self.futures.append(_failed(exc))

    async def _submit(self, batch, topic: str, partition: int) -> None:
        try:
            self.futures.append(await self.producer.send_batch(batch, topic, partition=partition))
        except Exception as exc:  # noqa: BLE001 - reported by the caller's check
            self.futures.append(_failed(exc))

    async def close(self) -> list:
        for (topic, partition), batch in self.open.items():
            if batch.record_count():
                await self._submit(batch, topic, partition)
        self.open.clear()
        futures, self.futures = self.futures, []
        return futures


def sender(producer):
    """A sender for a Faust producer: batches on aiokafka, else one send per record."""
    ensure = getattr(producer, "_ensure_producer", None)
    if ensure is not None:
        inner = ensure()
        if hasattr(inner, "create_batch") and hasattr(inner, "send_batch"):
            return BatchSender(inner)
    return PlainSender(producer)


async def confirm(producer, sent: list, what: str, *, stats, who: str) -> None:
    """Flush, then check every future of ``sent``: the first record not written
    marks the worker failed (``/healthz``) and raises, so the batch it belongs to
    is never acked and the worker stops; its successor redoes the batch."""
    if not sent:
        return
    await producer.flush()
    for future in sent:
        try:
            await future
        except Exception as exc:
            if stats is not None:
                stats.record_failure(f"{what} was not written: {exc!r}")
            log.error("%s: %s was not written (%r); stopping before the batch is acknowledged", who, what, exc)
            raise


# A persist's changelog records go in phases, each flushed and checked before the next:
# parts; heads; the partitions' processed offsets; tombstones; finish markers. A head
# never lands unless its parts did, nor an offset unless every head before it did (one
# stream of records could not promise that: the two tables are two topics, and a
# refused part left the head and the offset written, so the next owner skipped events
# whose state was lost). Heads that landed without their partition's offset (a crash
# between the two phases, or inside the heads phase) are safe: each head says which
# offset it holds its room's messages through (see ``RoomsRuntime`` in app.py).
PARTS, HEADS, OFFSETS, TOMBSTONES, LAST = 1, 2, 3, 4, 5


async def write_phases(producer, outbox: list, written, what: str) -> None:
    """Send ``(phase, topic, partition, key, value)`` records phase by phase (in
    their order within a phase); ``written`` flushes and checks each phase's
    futures, raising on the first failure, so no later phase is sent."""
    for phase in sorted({r[0] for r in outbox}):
        out = sender(producer)
        for p, topic, partition, key, value in outbox:
            if p == phase:
                await out.add(topic, key, value, partition)
        await written(await out.close(), what)
