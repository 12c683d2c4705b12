"""Kafka runtime settings and the topics of the data contract.

Topics are created explicitly, with the configured partition count, before any
worker starts: Faust refuses source topics whose partition count differs from
its own (``PartitionsMismatch``), and auto-created topics would get the broker's
default.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sessions.envelopes import ENVELOPE_LINGER_S

log = logging.getLogger(__name__)

EVENTS = "liveroom.events"
CAMPAIGNS = "liveroom.campaigns"
ROOM_METRICS = "liveroom.room-metrics"
BID_DECISIONS = "liveroom.bid-decisions"
MOMENTS = "liveroom.moments"
CLIPS = "liveroom.clips"
DEAD_LETTERS = "liveroom.dead-letters"
CLIP_EVENTS = "liveroom.clip-events"  # what published clips draw (cliploop)
CLIP_STATS = "liveroom.clip-stats"
PROMOTIONS = "liveroom.promotions"
ALL_TOPICS = (EVENTS, CAMPAIGNS, ROOM_METRICS, BID_DECISIONS, MOMENTS, CLIPS, DEAD_LETTERS, CLIP_EVENTS, CLIP_STATS,
              PROMOTIONS)
COMPACTED = frozenset({CAMPAIGNS})


@dataclass(frozen=True)
class KafkaConfig:
    """How to reach the cluster and run the workers. Built from the environment
    by ``liveroom.settings``; secrets are kept out of ``repr`` so they never reach a log."""

    bootstrap_servers: str = "127.0.0.1:9092"
    app_id: str = "liveroom"
    partitions: int = 4
    replication_factor: int = 1
    processing_guarantee: str = "at_least_once"
    store: str = "memory://"
    data_dir: str = "./.liveroom-data"
    batch_max: int = 2000
    batch_within_s: float = 0.25
    persist_s: float = 1.0  # room state is written (and its messages acked) at most this often
    silence_s: float = 30.0  # a partition with no new events for this long (wall clock) and no backlog: flushed
    envelope_linger_s: float = ENVELOPE_LINGER_S  # event time an event waits, at most, for others of its room
    envelope_events: int = 100  # events per message when replaying a session onto Kafka (1: one per message)
    session_timeout_s: float = 30.0
    web_port: int = 6066  # the worker's pages: /healthz, /metrics, /rooms, /dashboard (0: no web server)
    web_bind: str = "127.0.0.1"  # 0.0.0.0 in a container, so its published port reaches it
    progress_s: float = 10.0  # a progress line (when anything moved) and the lag figures, this often
    connect_timeout_s: float = 10.0  # an unreachable cluster is reported after this long
    security_protocol: str = "PLAINTEXT"  # PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL
    sasl_mechanism: str = "PLAIN"
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None

    def kafka_python_options(self) -> dict:
        """Connection options for kafka-python clients (admin, replay, record)."""
        opts: dict = {"bootstrap_servers": self.bootstrap_servers.split(","), "security_protocol": self.security_protocol,
                      "bootstrap_timeout_ms": int(self.connect_timeout_s * 1000)}
        if self.security_protocol.startswith("SASL"):
            opts.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.sasl_username,
                        sasl_plain_password=self.sasl_password)
        if self.ssl_cafile:
            opts["ssl_cafile"] = self.ssl_cafile
        return opts


def create_topics(config: KafkaConfig, *, timeout_s: float = 30.0) -> list[str]:
    """Create the contract's topics (idempotent); returns the names created now."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(client_id=f"{config.app_id}-topics", request_timeout_ms=int(timeout_s * 1000),
                             **config.kafka_python_options())
    try:
        existing = set(admin.list_topics())
        wanted = [
            NewTopic(name, num_partitions=config.partitions, replication_factor=config.replication_factor,
                     topic_configs={"cleanup.policy": "compact"} if name in COMPACTED else {})
            for name in ALL_TOPICS if name not in existing
        ]
        created = []
        for topic in wanted:
            try:
                admin.create_topics([topic])
                created.append(topic.name)
            except TopicAlreadyExistsError:
                pass
        if created:
            log.info("created topics %s with %d partitions", created, config.partitions)
        return created
    finally:
        admin.close()
