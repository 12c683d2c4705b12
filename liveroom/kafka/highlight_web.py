"""The highlight worker's own pages: ``/healthz`` and ``/metrics``
(``LIVEROOM_HIGHLIGHT_WEB_PORT``, 6067; 0: none).

The highlight worker is a plain kafka-python loop, not a Faust app, so it serves
these from a small threaded HTTP server of the standard library. Health is
"the loop is turning": it polls the events topic at least once a second while it
runs, so no poll for ``STALLED_S`` (a cut that hangs, a dead broker connection
that never returns) is a 503 a container's healthcheck or Prometheus sees.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import generate_latest

STALLED_S = 120.0  # no poll of the events topic for this long: unhealthy (a cut of a long part takes a minute)


@dataclass
class HighlightStats:
    """What the highlight worker did, kept where it happens."""

    started: float = field(default_factory=time.time)
    last_poll: float = field(default_factory=time.time)
    rooms_open: int = 0
    rooms_cut: int = 0
    parts: int = 0
    clips: int = 0
    errors: int = 0
    last_error: str | None = None

    counted: dict[str, int] = field(default_factory=dict)  # room -> clips of its parts counted so far

    def published(self, manifest: dict) -> None:
        """A manifest sent: a part lists its own clips, the final one every clip of
        the room (those of the earlier parts were counted with them)."""
        self.parts += 1
        room = str(manifest.get("room_id"))
        clips = len(manifest.get("clips") or [])
        if manifest.get("error"):
            self.errors += 1
            self.last_error = f"{room}: {manifest['error']}"
        if manifest.get("final"):
            self.rooms_cut += 1
            self.clips += max(clips - self.counted.pop(room, 0), 0)
        elif not manifest.get("error"):
            self.clips += clips
            self.counted[room] = self.counted.get(room, 0) + clips

    def health(self, now: float | None = None) -> tuple[int, str]:
        now = time.time() if now is None else now
        return (503, "stalled") if now - self.last_poll > STALLED_S else (200, "ok")


class _Collector:
    def __init__(self, stats: HighlightStats) -> None:
        self.stats = stats

    def collect(self):
        s = self.stats
        yield CounterMetricFamily("liveroom_highlight_rooms_cut", "Rooms whose final clips were published",
                                  value=s.rooms_cut)
        yield CounterMetricFamily("liveroom_highlight_parts", "Manifests published (parts and finals)", value=s.parts)
        yield CounterMetricFamily("liveroom_highlight_clips_published", "Clips published", value=s.clips)
        yield CounterMetricFamily("liveroom_highlight_errors", "Rooms or parts whose analysis failed", value=s.errors)
        yield GaugeMetricFamily("liveroom_highlight_rooms_open", "Rooms live and not cut yet", value=s.rooms_open)
        yield GaugeMetricFamily("liveroom_highlight_last_poll_age_seconds", "Seconds since the loop last polled",
                                value=round(time.time() - s.last_poll, 3))


def serve(stats: HighlightStats, bind: str, port: int) -> ThreadingHTTPServer:
    """Start the pages in a daemon thread; returns the server (``shutdown()`` stops it)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(stats))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the standard library's name
            if self.path == "/healthz":
                code, word = stats.health()
                body, kind = json.dumps({"status": word, "last_error": stats.last_error}).encode(), "application/json"
            elif self.path == "/metrics":
                code, body, kind = 200, generate_latest(registry), CONTENT_TYPE_LATEST
            else:
                code, body, kind = 404, b'{"error": "not found: /healthz and /metrics are served"}', "application/json"
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args) -> None:  # noqa: A002 - quiet: a scrape every 15 s is no news
            pass

    server = ThreadingHTTPServer((bind, port), Handler)
    threading.Thread(target=server.serve_forever, name="highlight-pages", daemon=True).start()
    return server
