"""The highlight worker's /healthz and /metrics (no broker needed: the pages read
its stats)."""

from __future__ import annotations

import json
import time

from prometheus_client.parser import text_string_to_metric_families

from liveroom.kafka.highlight_web import STALLED_S, HighlightStats, serve

from .kafka.harness import free_port, http_get as _get


def test_the_highlight_worker_says_how_it_is_and_what_it_did():
    stats = HighlightStats()
    port = free_port()
    server = serve(stats, "127.0.0.1", port)
    try:
        base = f"http://127.0.0.1:{port}"
        assert _get(f"{base}/healthz") == (200, b'{"status": "ok", "last_error": null}')
        # as the worker writes them (the files' folders are part-01, part-02: a tester found "1/" counted nothing)
        stats.published({"room_id": "a", "final": False, "part": 1, "clips": [{"file": "part-01/clip-01.mp4"}]})
        stats.published({"room_id": "a", "final": True, "part": 2,
                         "clips": [{"file": "part-01/clip-01.mp4"}, {"file": "part-02/clip-01.mp4"}]})
        stats.published({"room_id": "b", "final": True, "part": 1, "error": "analysis failed: MediaError", "clips": []})
        m = {s.name: s.value for f in text_string_to_metric_families(_get(f"{base}/metrics")[1].decode())
             for s in f.samples}
        assert m["liveroom_highlight_rooms_cut_total"] == 2 and m["liveroom_highlight_clips_published_total"] == 2
        assert m["liveroom_highlight_errors_total"] == 1 and m["liveroom_highlight_last_poll_age_seconds"] < 60
        stats.last_poll = time.time() - STALLED_S - 1  # the loop stopped turning
        code, body = _get(f"{base}/healthz")
        assert code == 503 and json.loads(body) == {"status": "stalled", "last_error": "b: analysis failed: MediaError"}
        assert _get(f"{base}/nothing")[0] == 404
    finally:
        server.shutdown()
