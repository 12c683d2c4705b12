"""``liveroom worker``: the Faust app with the rooms runtime, the bidding agents
and the web pages, started with logs an operator can read.

Why the logging is set here: left alone, Faust prints about 130 lines at start
(every service starting, subscription and highwater tables), among them two
ERROR lines that are normal on a fresh cluster and retried by aiokafka (the
group coordinator not ready yet; Faust's own changelog topics not yet in the
metadata). By default the libraries speak at WARNING, ours at INFO: a start-up
prints a ready line with the pages' address, then one progress line per
interval when anything moved. ``--loglevel debug`` (or ``info``) shows everything.
"""

from __future__ import annotations

import logging
import socket

import faust

from liveroom.kafka.app import create_app
from liveroom.kafka.topics import create_topics

from liveroom.kafka.bidding import add_bidding
from liveroom.kafka.clips import add_clip_loop
from liveroom.settings import Settings
from liveroom.kafka.web import add_highlight_watch, add_pages

OURS = ("streams", "liveroom", "bidding", "highlight")
log = logging.getLogger("liveroom.kafka.worker")


class Transient(logging.Filter):
    """aiokafka's ERROR lines for conditions it retries by itself at start-up
    (the group coordinator not ready yet; the app's own changelog and assignor
    topics, ``<app_id>-...``, not yet in the metadata): shown as INFO, so hidden
    at the default level, never as an error."""

    def __init__(self, app_id: str) -> None:
        super().__init__()
        self.prefix = f"{app_id}-"

    def filter(self, record: logging.LogRecord) -> bool:
        message, first = str(record.msg), record.args[0] if record.args else None
        transient = (message.startswith("Group Coordinator Request failed") and getattr(first, "retriable", False)) \
            or (message.startswith("Topic %s not found in cluster metadata") and str(first).startswith(self.prefix))
        if transient and record.levelno > logging.INFO:
            record.levelno, record.levelname = logging.INFO, "INFO"
            return logging.getLogger().isEnabledFor(logging.INFO)
        return True


def quiet_startup_errors(app_id: str) -> None:
    for name in ("aiokafka.consumer.group_coordinator", "aiokafka.cluster"):
        logging.getLogger(name).addFilter(Transient(app_id))


def logging_config(loglevel: str) -> dict:
    """For Faust's worker (merged into its own): the handler passes everything, the
    root logger keeps ``loglevel``, our loggers say INFO (or lower if asked)."""
    ours = min(logging.INFO, logging.getLevelName(loglevel.upper()))
    return {"merge": True, "version": 1,
            "handlers": {"default": {"level": "NOTSET", "class": "colorlog.StreamHandler", "formatter": "colored"}},
            "loggers": {name: {"level": logging.getLevelName(ours)} for name in OURS}}


class _Worker(faust.Worker):
    def __init__(self, app, *, pages: str | None, **kwargs) -> None:
        super().__init__(app, **kwargs)
        self.pages = pages

    async def on_startup_finished(self) -> None:
        await super().on_startup_finished()
        where = f"; pages at {self.pages}dashboard (also /healthz, /metrics, /rooms)" if self.pages else ""
        brokers = ",".join(f"{u.host}:{u.port}" if u.port else str(u.host) for u in self.app.conf.broker or ())
        log.info("worker ready: group %s on %s%s", self.app.conf.id, brokers or "?", where)


class PortInUse(Exception):
    """The web port is taken; the message says which setting to change."""


def check_port(bind: str, port: int) -> None:
    """Fail before anything starts, in one line, rather than in a traceback once
    Faust has joined the group."""
    with socket.socket(socket.AF_INET6 if ":" in bind else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((bind, port))
        except OSError as exc:
            raise PortInUse(f"cannot serve the worker's pages on {bind}:{port} ({exc.strerror}); set "
                            "LIVEROOM_KAFKA_WEB_PORT to a free port (each worker on a host needs its own) "
                            "or to 0 for none") from None


def run_worker(bootstrap: str | None, loglevel: str = "warning") -> None:
    """Create the topics, build the app and run it until stopped."""
    settings = Settings()
    config = settings.kafka_config(bootstrap)
    create_topics(config)  # an unreachable broker is the first thing to say
    if config.web_port > 0:
        check_port(config.web_bind, config.web_port)
    app = create_app(config, settings.core_config())
    runtime = app.rooms_runtime  # type: ignore[attr-defined]
    add_bidding(app, config, strategy=settings.bidding_strategy, tick_s=settings.tick_s,
                dead_letter_max_raw=settings.dead_letter_max_raw, stats=runtime.stats)
    add_clip_loop(app, config, settings.clip_loop_config(), max_event_bytes=settings.max_event_bytes,
                  dead_letter_max_raw=settings.dead_letter_max_raw, max_envelope_events=settings.max_envelope_events,
                  max_envelope_bytes=settings.max_envelope_bytes, idle_s=settings.clip_idle(), stats=runtime.stats)
    pages = None
    if config.web_port > 0:
        add_pages(app, runtime)
        add_highlight_watch(app, runtime.stats)
        host = "127.0.0.1" if config.web_bind in ("0.0.0.0", "::") else config.web_bind
        pages = f"http://{host}:{config.web_port}/"
    quiet_startup_errors(config.app_id)
    runner = _Worker(app, pages=pages, loglevel=loglevel, logging_config=logging_config(loglevel), quiet=True)
    # Faust's terminal spinner sets the root logger to DEBUG below loglevel info, so
    # every library's debug call (aiokafka: one per message sent) builds a record.
    runner.spinner = None
    runner.execute_from_commandline()
