"""The embedded runtime as the CLI runs it: streams replay, live bidding on its
snapshots, highlight clips when the session has a video, and the report, in one process."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec

from bidding.live import LiveBidding
from streams.models import Campaign, no_campaign
from liveroom.embedded.replay import RUN_FILE, JsonLinesWriter, replay_session
from sessions.folder import Session

from liveroom.embedded.output_folder import atomic_folder
from liveroom.settings import Settings

BID_DECISIONS_FILE = "bid-decisions.jsonl"
CAMPAIGN_FILE = "campaign.json"  # the session's campaign as replayed, or null
CLIP_SUMMARY_FILE = "clip-summary.json"  # the clip loop's accounting, when the session has clip events
CLIPS_DIR = "clips"


@dataclass(frozen=True)
class EmbeddedResult:
    """What one run produced, and how long each phase took (``run.json`` has the same)."""

    out_dir: Path
    summary: dict
    decisions: int
    clips: int | None  # None: the session has no video
    phases_s: dict[str, float]  # events, clip loop, highlights, report (those that ran)
    inputs_per_s: float  # over the events phase
    clip_loop: dict | None = None  # the clip loop's accounting, when the session has clip events

    @property
    def total_s(self) -> float:
        return sum(self.phases_s.values())


def run_embedded(session: Session, out_dir: Path, settings: Settings, *, progress: bool = False,
                 report: bool = True) -> EmbeddedResult:
    """Everything is written into a folder beside ``out_dir`` that replaces it at
    the end (see :mod:`liveroom.embedded.output_folder`): a killed run leaves the previous
    outputs whole, and ``out_dir`` may not be or hold the session's own files."""
    inputs = [session.folder / "session.json", session.events_path, session.video_path, session.labels_path]
    with atomic_folder(out_dir, protect=[p for p in inputs if p is not None]) as tmp:
        result = _run(session, tmp, settings, progress=progress, report=report)
    return dataclasses.replace(result, out_dir=Path(out_dir))


def _run(session: Session, out_dir: Path, settings: Settings, *, progress: bool, report: bool) -> EmbeddedResult:
    campaign = session.campaign()

    finished: set[str] = set()

    def campaign_for(room_id: str) -> Campaign:
        # No campaign, no spend: a session without one, rooms other than the
        # session's, and a room whose id comes back after it finished (a campaign is
        # for one broadcast) get a zero budget (as on Kafka).
        if campaign is not None and room_id == campaign.room_id and room_id not in finished:
            return campaign
        return no_campaign(room_id)

    bidding = LiveBidding(campaign_for, strategy=settings.bidding_strategy, tick_s=settings.tick_s)

    def room_finished(room_id: str) -> None:
        bidding.finish(room_id)
        finished.add(room_id)
    decisions = JsonLinesWriter(out_dir / BID_DECISIONS_FILE)
    try:
        result = replay_session(
            session, out_dir, settings.core_config(), ts_margin_s=settings.session_ts_margin_s, progress=progress,
            observers=[lambda metrics: decisions.write(bidding.on_metrics(metrics))], limits=settings.read_limits(),
            max_rooms=settings.max_rooms_in_memory, partitions=settings.kafka_partitions,
            envelope_events=settings.kafka_envelope_events, envelope_linger_s=settings.kafka_envelope_linger_s,
            on_finish=[room_finished],
        )
    finally:
        decisions.close()
    phases = {"events": result.wall_s}
    loop = None
    if session.clip_events_path is not None:
        began = time.perf_counter()
        from liveroom.embedded.clip_replay import replay_clip_events

        loop = replay_clip_events(session.clip_events_path, out_dir, settings.clip_loop_config(),
                                  limits=settings.read_limits(), room=session.info.room_id,
                                  max_envelope_events=settings.max_envelope_events,
                                  max_envelope_bytes=settings.max_envelope_bytes)
        (out_dir / CLIP_SUMMARY_FILE).write_bytes(msgspec.json.format(msgspec.json.encode(loop), indent=2) + b"\n")
        phases["clip loop"] = time.perf_counter() - began
    clips = None
    if session.video_path is not None:
        began = time.perf_counter()
        clips = _highlights(session, out_dir / CLIPS_DIR, progress=progress)
        phases["highlights"] = time.perf_counter() - began
    # The report's currency and its "no campaign" sentences come from here.
    (out_dir / CAMPAIGN_FILE).write_bytes(msgspec.json.encode(campaign) + b"\n")
    if report:
        began = time.perf_counter()
        from liveroom.embedded.report import render_report

        render_report(out_dir)
        phases["report"] = time.perf_counter() - began
    run = msgspec.json.decode((out_dir / RUN_FILE).read_bytes())
    run["phases_s"] = {k: round(v, 3) for k, v in phases.items()}
    run["total_s"] = round(sum(phases.values()), 3)
    (out_dir / RUN_FILE).write_bytes(msgspec.json.format(msgspec.json.encode(run), indent=2) + b"\n")
    return EmbeddedResult(out_dir, result.summary, decisions.count, clips, phases, result.events_per_s, loop)


def _highlights(session: Session, clips_dir: Path, *, progress: bool) -> int:
    """Find and cut the session's clips, with a progress bar over the video's
    stages (the longest part of a run with a video)."""
    from tqdm import tqdm

    from highlight.pipeline import cut_clips, find_highlights

    with tqdm(total=None, desc="highlights", disable=not progress, bar_format="{desc} [{elapsed}]") as bar:
        def stage(text: str) -> None:
            bar.set_description_str(f"highlights: {text}")
            bar.update(1)

        analysis = find_highlights(session.video_path, events=session.events_path, room_id=session.info.room_id,
                                   t0=session.info.start, progress=stage)
        cut_clips(session.video_path, analysis, clips_dir, t0=session.info.start, progress=stage)
        stage(f"{len(analysis.clips)} clip(s) cut")
    return len(analysis.clips)
