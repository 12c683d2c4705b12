"""The embedded runtime as the CLI runs it: streams replay, live bidding on its
snapshots, highlight clips when the session has a video, and the report, in one process."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bidding.live import LiveBidding
from streams.models import Campaign, no_campaign
from streams.replay import JsonLinesWriter, ReplayResult, replay_session
from streams.session import Session

from .output_folder import atomic_folder
from .settings import Settings

BID_DECISIONS_FILE = "bid-decisions.jsonl"
CLIPS_DIR = "clips"


def run_embedded(session: Session, out_dir: Path, settings: Settings, *, progress: bool = False,
                 report: bool = True) -> ReplayResult:
    """Everything is written into a folder beside ``out_dir`` that replaces it at
    the end (see :mod:`liveroom.output_folder`): a killed run leaves the previous
    outputs whole, and ``out_dir`` may not be or hold the session's own files."""
    inputs = [session.folder / "session.json", session.events_path, session.video_path, session.labels_path]
    with atomic_folder(out_dir, protect=[p for p in inputs if p is not None]) as tmp:
        result = _run(session, tmp, settings, progress=progress, report=report)
    return dataclasses.replace(result, out_dir=Path(out_dir))


def _run(session: Session, out_dir: Path, settings: Settings, *, progress: bool, report: bool) -> ReplayResult:
    campaign = session.campaign()

    def campaign_for(room_id: str) -> Campaign:
        # No campaign, no spend: a session without one, and rooms other than the
        # session's, get a zero budget (as on Kafka).
        return campaign if campaign is not None and room_id == campaign.room_id else no_campaign(room_id)

    bidding = LiveBidding(campaign_for, strategy=settings.bidding_strategy, tick_s=settings.tick_s)
    decisions = JsonLinesWriter(out_dir / BID_DECISIONS_FILE)
    try:
        result = replay_session(
            session, out_dir, settings.core_config(), ts_margin_s=settings.session_ts_margin_s, progress=progress,
            observers=[lambda metrics: decisions.write(bidding.on_metrics(metrics))], limits=settings.read_limits(),
            max_rooms=settings.max_rooms_in_memory,
        )
    finally:
        decisions.close()
    if session.video_path is not None:
        from highlight.pipeline import cut_clips, find_highlights

        analysis = find_highlights(session.video_path, events=session.events_path, room_id=session.info.room_id,
                                   t0=session.info.start)
        cut_clips(session.video_path, analysis, out_dir / CLIPS_DIR)
    if report:
        from .report import render_report

        render_report(out_dir)
    return result
