"""The ``liveroom`` command. Thin: parse, build config from settings, call a runtime.

Every user error (a bad session folder, an unusable ``--out``, a bad video, an
unreachable broker, a bad setting) ends in one ``Error:`` line and exit status 2,
never a traceback: :class:`UserError` is raised for them, and the group turns
the library errors that mean "your input" into it.
"""

from __future__ import annotations

import math
import sys
from contextlib import contextmanager
from pathlib import Path

import click

from sessions.folder import SessionError, open_session

from liveroom.embedded.output_folder import OutputFolderError
from .settings import Settings, setting_error


class UserError(click.ClickException):
    """One ``Error: ...`` line, exit status 2."""

    exit_code = 2


class Finite(click.FloatRange):
    """A float option in a range, and finite: NaN passes every comparison of a plain
    range (``--speed nan`` was taken)."""

    def convert(self, value, param, ctx):
        value = super().convert(value, param, ctx)
        if not math.isfinite(value):
            self.fail(f"{value} is not a finite number", param, ctx)
        return value


def bootstrap_servers(ctx, param, value: str | None) -> str | None:  # noqa: ARG001 - click's callback signature
    """``--kafka``: HOST:PORT[,HOST:PORT...], each port 1-65535 (a malformed one was a
    bare ``int()`` error from the Kafka client that did not name the option)."""
    if value is None:
        return None
    for server in value.split(","):
        host, sep, port = server.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise click.BadParameter(f"{server.strip()!r} is not HOST:PORT (a port from 1 to 65535)")
    return value


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        with user_errors():
            return super().invoke(ctx)


@contextmanager
def user_errors(bootstrap: str | None = None):
    """Turn the errors that are about the user's input or environment into :class:`UserError`."""
    from highlight.media import MediaError
    from kafka.errors import KafkaError
    from pydantic import ValidationError

    try:
        yield
    except (SessionError, OutputFolderError, MediaError) as exc:
        raise UserError(str(exc)) from None
    except KafkaError as exc:
        where = f" at {bootstrap}" if bootstrap else ""
        raise UserError(f"cannot reach Kafka{where}: {exc}") from None
    except ValidationError as exc:
        raise UserError(setting_error(exc)) from None
    except PermissionError as exc:
        raise UserError(f"permission denied: {exc.filename or exc}") from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="liveroom", prog_name="liveroom")
def main() -> None:
    """Live-commerce room intelligence: room state, traffic bidding, highlight clips."""


def _open(session: Path):
    return open_session(session, max_json_bytes=Settings().max_session_json_bytes)


@main.command()
@click.argument("session", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("out"), show_default=True,
              help="Folder for the outputs (embedded).")
@click.option("--kafka", "bootstrap", metavar="HOST:PORT", default=None, callback=bootstrap_servers,
              help="Produce the events to Kafka instead of replaying embedded.")
@click.option("--speed", type=Finite(min=0, max=1e6), default=None,
              help="With --kafka: times real time; 0 = as fast as possible (default: LIVEROOM_REPLAY_SPEED, 0).")
@click.option("--report/--no-report", default=True, show_default=True, help="Write report.html (embedded).")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal).")
def replay(session: Path, out_dir: Path, bootstrap: str | None, speed: float | None, report: bool,
           progress: bool | None) -> None:
    """Replay a recorded SESSION folder: embedded (no Kafka), or onto Kafka with --kafka."""
    settings = Settings()
    sess = _open(session)
    show = sys.stderr.isatty() if progress is None else progress
    ctx = click.get_current_context()
    if bootstrap and ctx.get_parameter_source("out_dir") is click.core.ParameterSource.COMMANDLINE:
        raise UserError("--out is for the embedded replay; with --kafka the outputs are the workers' topics "
                        "(liveroom tail TOPIC reads them)")
    if bootstrap:
        from liveroom.kafka.io import produce_session
        from liveroom.kafka.topics import create_topics

        config = settings.kafka_config(bootstrap)
        create_topics(config)
        counts = produce_session(sess, config, speed=settings.replay_speed if speed is None else speed,
                                 progress=show, limits=settings.read_limits())
        click.echo(f"produced {counts['sent']} events to liveroom.events ({counts['unkeyed']} without a room key) "
                   f"in {counts['seconds']} s")
        if counts["file_error"]:
            click.echo(f"warning: {counts['file_error'][1]}", err=True)
        if sess.clip_events_path is not None:
            from liveroom.kafka.io import produce_lines
            from liveroom.kafka.topics import CLIP_EVENTS

            clip = produce_lines(sess.clip_events_path, CLIP_EVENTS, config, limits=settings.read_limits(),
                                 room=sess.info.room_id)
            click.echo(f"produced {clip['sent']} clip events to {CLIP_EVENTS} in {clip['seconds']} s")
            if clip["file_error"]:
                click.echo(f"warning: {clip['file_error'][1]}", err=True)
        return
    from liveroom.embedded.run import run_embedded

    result = run_embedded(sess, out_dir, settings, progress=show, report=report)
    s, t = result.summary, result.phases_s
    clips = "" if result.clips is None else f", {result.clips} highlight clip(s)"
    phases = ", ".join(f"{name} {sec:.2f} s" for name, sec in t.items())
    click.echo(
        f"{s['inputs']:,} inputs: {s['processed']:,} processed, {s['duplicates']:,} duplicates, "
        f"{s['dead_letters']:,} dead letters; {s['outputs']['room-metrics.jsonl']:,} snapshots, "
        f"{s['outputs']['moments.jsonl']:,} moments, {result.decisions:,} bid decisions{clips}"
    )
    click.echo(f"{result.total_s:.1f} s in all ({phases}; events at {result.inputs_per_s:,.0f} inputs/s)")
    if result.clip_loop is not None:
        c = result.clip_loop
        click.echo(f"clip loop: {c['inputs']:,} clip events ({c['dead_letters']:,} dead letters), {c['clips']} clips, "
                   f"{c['promotions']:,} promotion decisions")
    if sess.campaign() is None:
        click.echo(f"no campaign in {session / 'session.json'}: every room bid with a zero budget")
    click.echo(f"outputs in {out_dir}/ (open {out_dir / 'report.html'})" if report else f"outputs in {out_dir}/")


@main.command()
@click.option("--kafka", "bootstrap", metavar="HOST:PORT", default=None, callback=bootstrap_servers,
              help="Overrides LIVEROOM_KAFKA_BOOTSTRAP_SERVERS.")
@click.option("--loglevel", type=click.Choice(["debug", "info", "warning", "error"]), default="warning",
              show_default=True, help="The libraries' (Faust, aiokafka) level; liveroom's own lines are INFO or lower.")
def worker(bootstrap: str | None, loglevel: str) -> None:
    """Run the Faust worker: room state, metrics, moments, bid decisions, and its web pages
    (creates the topics first)."""
    from liveroom.kafka.worker import PortInUse, run_worker

    try:
        run_worker(bootstrap, loglevel)
    except PortInUse as exc:
        raise UserError(str(exc)) from None


@main.command()
@click.option("--kafka", "bootstrap", metavar="HOST:PORT", default=None, callback=bootstrap_servers,
              help="Overrides LIVEROOM_KAFKA_BOOTSTRAP_SERVERS.")
def topics(bootstrap: str | None) -> None:
    """Create the data contract's topics with the configured partition count."""
    from liveroom.kafka.topics import create_topics

    created = create_topics(Settings().kafka_config(bootstrap))
    click.echo(f"created: {', '.join(created) or 'nothing (all exist)'}")


@main.command()
@click.argument("topic")
@click.option("--kafka", "bootstrap", metavar="HOST:PORT", default=None, callback=bootstrap_servers,
              help="Overrides LIVEROOM_KAFKA_BOOTSTRAP_SERVERS.")
@click.option("--room", default=None, help="Only this room's messages (the message key).")
@click.option("--from-beginning", is_flag=True, help="From the topic's first message (default: new messages only).")
@click.option("--idle-timeout", type=Finite(min=0), default=None,
              help="Stop after this many seconds without a message (default: follow until Ctrl-C).")
@click.option("--max", "max_messages", type=click.IntRange(min=1), default=None, help="Stop after this many messages.")
def tail(topic: str, bootstrap: str | None, room: str | None, from_beginning: bool, idle_timeout: float | None,
         max_messages: int | None) -> None:
    """Print TOPIC's messages as readable lines (events, campaigns, room-metrics, moments, bid-decisions, clips,
    dead-letters, clip-events, clip-stats, promotions; the liveroom. prefix is optional)."""
    from liveroom.kafka.tail import tail as follow, topic_name

    try:
        name = topic_name(topic)
        for line in follow(Settings().kafka_config(bootstrap), name, room=room, from_beginning=from_beginning,
                           idle_timeout_s=idle_timeout, max_messages=max_messages):
            click.echo(line)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    except KeyboardInterrupt:
        pass


@main.command()
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--kafka", "bootstrap", metavar="HOST:PORT", default=None, callback=bootstrap_servers,
              help="Overrides LIVEROOM_KAFKA_BOOTSTRAP_SERVERS.")
@click.option("--room", required=True, help="Room id (the message key) to capture.")
@click.option("--idle-timeout", type=Finite(min=0), default=10.0, show_default=True,
              help="Stop after this many seconds without a message.")
@click.option("--latest", is_flag=True, help="Only events produced from now on (default: from the beginning).")
def record(out_dir: Path, bootstrap: str | None, room: str, idle_timeout: float, latest: bool) -> None:
    """Capture a live room's events from Kafka into a session folder OUT_DIR."""
    import signal

    from liveroom.kafka.io import record_room

    stopping: list[int] = []

    def stop(signum, frame):  # noqa: ARG001
        """SIGTERM ends a recording as Ctrl-C does; a second signal while it finishes
        is ignored, so the last session.json (with the newest campaign) is written."""
        if not stopping:
            stopping.append(signum)
            raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        rec = record_room(Settings().kafka_config(bootstrap), room, out_dir, from_beginning=not latest,
                          idle_timeout_s=idle_timeout)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if rec.campaign is not None:
        currency = f" {rec.campaign.currency}" if rec.campaign.currency else ""
        click.echo(f"campaign: budget {rec.campaign.total_budget:g}{currency}, from liveroom.campaigns")
    else:
        click.echo(f"campaign: none ({rec.campaign_note}); a replay of this folder bids with a zero budget")
    clips = f" and {rec.clip_events} clip events" if rec.clip_events else ""
    click.echo(f"{rec.events} events{clips} of room {room} recorded to {rec.folder}/")


@main.command()
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--minutes", type=click.FloatRange(min=0.5), default=10.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--rooms", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--lag", "lag_s", type=click.FloatRange(min=0), default=4.0, show_default=True,
              help="Seconds between a moment on screen and the audience's reaction.")
@click.option("--shape", type=click.Choice(["default", "quiet", "one_peak", "steady"]), default="default",
              show_default=True, help="quiet: small audience; one_peak: one strong moment; steady: no moments.")
@click.option("--gzip/--no-gzip", "compress", default=True, show_default=True)
@click.option("--video", is_flag=True, help="Also render video.mp4 (picture and sound) showing the moments.")
@click.option("--size", default="320x180", show_default=True, help="Video size WxH (with --video).")
@click.option("--fps", type=click.IntRange(min=1), default=10, show_default=True, help="Video frame rate (with --video).")
@click.option("--clip-days", type=click.IntRange(min=0, max=60), default=0, show_default=True,
              help="Also write this many days of the first room's clip events (the simulated audience).")
def synth(out_dir: Path, minutes: float, seed: int, rooms: int, lag_s: float, shape: str, compress: bool,
          video: bool, size: str, fps: int, clip_days: int) -> None:
    """Write a synthetic session with planted moments (and decoys) to OUT_DIR."""
    from sessions.synth import synth_session

    folder = synth_session(out_dir, minutes=minutes, seed=seed, rooms=rooms, lag_s=lag_s, shape=shape,
                           compress=compress)
    if video:
        from highlight.synth_video import add_video

        width, height = (int(x) for x in size.lower().split("x"))
        add_video(folder, seed=seed, width=width, height=height, fps=fps)
    if clip_days:
        from cliploop.simulate import add_clip_events

        add_clip_events(folder, seed=seed, days=clip_days)
    click.echo(f"session written to {folder}/")


@main.command()
@click.argument("session", type=click.Path(path_type=Path))
@click.option("--strategy", "strategies", multiple=True, type=click.Choice(["ramp+mcb", "mcb", "pid", "fixed"]),
              help="Strategies to score (repeatable; default: all).")
@click.option("--seeds", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def simulate(session: Path, strategies: tuple[str, ...], seeds: int, as_json: bool) -> None:
    """Replay SESSION counterfactually in the market simulator under bidding strategies,
    scored against the hindsight bound."""
    import json

    from bidding.evaluate import format_table, session_metrics, simulate as run, summarize

    sess = _open(session)
    if sess.campaign() is None:
        raise UserError(f"session {session} has no campaign in {sess.folder / 'session.json'}: the simulator needs "
                        "its budget and caps")
    try:
        metrics = session_metrics(sess, Settings().core_config())
    except ValueError as exc:  # no snapshot of the session's room: nothing to replay counterfactually
        raise UserError(str(exc)) from None
    table = summarize(run(metrics, sess.campaign(), list(strategies or ("ramp+mcb", "mcb", "pid", "fixed")),
                          range(seeds)))
    click.echo(json.dumps(table, indent=2) if as_json else format_table(table))


@main.command("simulate-clips")
@click.option("--seeds", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--first-seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def simulate_clips(seeds: int, first_seed: int, as_json: bool) -> None:
    """Score the clip promotion against an oracle, uniform and score-greedy promotion in the seeded
    post-broadcast audience simulator, and the lift from learning what pulls."""
    import json

    from cliploop.simulate import evaluate

    r = evaluate(range(first_seed, first_seed + seeds), config=Settings().clip_loop_config())
    if as_json:
        click.echo(json.dumps(r, indent=2))
        return
    click.echo(f"{r['seeds']} seeds; traffic after the warm-up as a share of the oracle's (mean, worst seed):")
    for k, v in r["share_of_oracle"].items():
        click.echo(f"  {k:15s} {v:.3f}  {r['worst_seed'][k]:.3f}")
    click.echo(f"the loop beats uniform in {r['beats_uniform']}/{r['seeds']} seeds, score-greedy in "
               f"{r['beats_greedy']}/{r['seeds']}; learned ranking raises the pull of published clips by "
               f"{r['pull_lift']:+.1%} (worst seed {r['pull_lift_min']:+.1%})")


def _highlight_input(path: Path, events: Path | None):
    """(video, events, room, t0) from a session folder or a video file."""
    if path.is_dir():
        sess = _open(path)
        if sess.video_path is None:
            raise UserError(f"session {path} has no video (files.video in session.json)")
        return sess.video_path, events or sess.events_path, sess.info.room_id, sess.info.start, sess
    if not path.exists():
        raise UserError(f"{path} does not exist")
    return path, events, None, 0.0, None


@main.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("clips"), show_default=True)
@click.option("--events", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Events file (a session folder brings its own).")
@click.option("--room", default=None, help="Room id in the events (a session folder brings its own).")
@click.option("--t0", type=Finite(min=0, max=1e11), default=None, help="Epoch seconds of the video's first frame (with --events).")
@click.option("--top", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--min", "min_s", type=Finite(min=1, max=3600), default=10.0, show_default=True)
@click.option("--max", "max_s", type=Finite(min=2, max=3600), default=60.0, show_default=True)
@click.option("--vertical", is_flag=True, help="9:16 crop with fades (re-encodes with moviepy).")
@click.option("--pull-model", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="pull-model.json from a replay with clip events: choose clips by the pull it predicts.")
def highlight(input_path: Path, out_dir: Path, events: Path | None, room: str | None, t0: float | None, top: int,
              min_s: float, max_s: float, vertical: bool, pull_model: Path | None) -> None:
    """Find the best moments of INPUT (a session folder or a video file) and cut clips."""
    from highlight.pipeline import cut_clips, find_highlights
    from highlight.select import SelectionConfig

    from liveroom.embedded.output_folder import atomic_folder

    video, events, session_room, session_t0, sess = _highlight_input(input_path, events)
    selection = SelectionConfig(top_k=top, min_s=min_s, max_s=max(max_s, min_s))
    start_epoch = t0 if t0 is not None else (session_t0 if sess is not None else None)
    model = None
    if pull_model is not None:
        from cliploop.learn import PullModel

        try:
            model = PullModel.from_json(pull_model.read_bytes())
        except Exception as exc:  # noqa: BLE001 - a bad file is the user's input
            raise UserError(f"{pull_model} is not a pull model: {exc}") from None
    analysis = find_highlights(video, events=events, room_id=room or session_room, t0=start_epoch or 0.0,
                               selection=selection, pull_model=model)
    with atomic_folder(out_dir, protect=[p for p in (video, events) if p is not None]) as tmp:
        cut_clips(video, analysis, tmp, vertical=vertical, selection=selection, t0=start_epoch)
    manifest = out_dir / "manifest.json"
    for c in analysis.clips:
        click.echo(f"{c.start:8.1f}s - {c.end:8.1f}s  score {c.score:5.2f}  {'; '.join(c.reasons)}")
    click.echo(f"{len(analysis.clips)} clip(s); manifest {manifest}")


@main.command("highlight-worker")
@click.option("--kafka", "bootstrap", metavar="HOST:PORT", default=None, callback=bootstrap_servers,
              help="Overrides LIVEROOM_KAFKA_BOOTSTRAP_SERVERS.")
@click.option("--recordings", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Overrides LIVEROOM_RECORDINGS_DIR.")
@click.option("--clips", "clips_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Overrides LIVEROOM_CLIPS_DIR.")
@click.option("--segment-s", type=Finite(min=0, max=30 * 86400), default=None,
              help="Analyse running broadcasts in parts of this many seconds (0: only when a room ends). "
                   "Overrides LIVEROOM_HIGHLIGHT_SEGMENT_S.")
@click.option("--max-rooms", type=int, default=None, help="Stop after this many rooms (tests).")
def highlight_worker(bootstrap: str | None, recordings: Path | None, clips_dir: Path | None,
                     segment_s: float | None, max_rooms: int | None) -> None:
    """On Kafka: cut a room's clips from its recording while it runs and when it ends; publish manifests on
    liveroom.clips."""
    import logging

    from liveroom.kafka.topics import create_topics

    from liveroom.kafka.highlight_web import HighlightStats, serve
    from liveroom.kafka.highlight_worker import run

    # kafka-python says a dozen INFO lines per connection: libraries at WARNING, ours at INFO.
    logging.basicConfig(level=logging.WARNING, format="[%(asctime)s] %(levelname)s %(message)s")
    for name in ("liveroom", "highlight", "streams"):
        logging.getLogger(name).setLevel(logging.INFO)
    settings = Settings()
    config = settings.kafka_config(bootstrap)
    client_log = logging.getLogger("kafka")
    client_log.setLevel(logging.CRITICAL)  # an unreachable broker is one Error: line, not its retries
    create_topics(config)
    client_log.setLevel(logging.WARNING)
    stats = HighlightStats()
    pages = None
    if settings.highlight_web_port > 0:
        try:
            pages = serve(stats, settings.kafka_web_bind, settings.highlight_web_port)
        except OSError as exc:
            raise UserError(f"cannot serve the highlight worker's pages on {settings.kafka_web_bind}:"
                            f"{settings.highlight_web_port} ({exc.strerror}); set LIVEROOM_HIGHLIGHT_WEB_PORT to a "
                            "free port or to 0 for none") from None
        logging.getLogger("liveroom").info("highlight worker pages: http://%s:%d/healthz and /metrics",
                                           settings.kafka_web_bind, settings.highlight_web_port)
    try:
        run(config, recordings or Path(settings.recordings_dir), clips_dir or Path(settings.clips_dir),
            segment_s=settings.highlight_segment_s if segment_s is None else segment_s,
            settle_s=settings.highlight_settle_s, max_rooms=max_rooms, stats=stats)
    finally:
        if pages is not None:
            pages.shutdown()


@main.command("evaluate-highlights")
@click.argument("path", metavar="SESSION_OR_DIR", type=click.Path(exists=True, file_okay=False, path_type=Path))
def evaluate_highlights(path: Path) -> None:
    """Precision, recall, F1 (IoU >= 0.5) of chosen clips against labels.json, for one
    session folder or every session folder below DIR."""
    import json

    from highlight.media import MediaError
    from highlight.pipeline import find_highlights, score_clips

    folders = [path] if (path / "session.json").is_file() else sorted(p.parent for p in path.glob("*/session.json"))
    if not folders:
        raise UserError(f"no session folder at or below {path}")
    totals = {"hits": 0.0, "clips": 0, "moments": 0}
    for folder in folders:
        sess = _open(folder)
        if sess.video_path is None or sess.labels_path is None:
            raise UserError(f"{folder}: needs a video and labels.json")
        labels = json.loads(sess.labels_path.read_text())
        truth = [(m["start"] - sess.info.start, m["end"] - sess.info.start) for m in labels["moments"]
                 if m["room_id"] == sess.info.room_id]
        try:
            a = find_highlights(sess.video_path, events=sess.events_path, room_id=sess.info.room_id, t0=sess.info.start)
        except MediaError as exc:
            raise UserError(str(exc)) from None
        s = score_clips(a.clips, truth, cuts=a.cut_times, pauses=a.pause_times)
        totals["hits"] += s["precision"] * s["clips"]
        totals["clips"] += s["clips"]
        totals["moments"] += s["moments"]
        err = "-" if s["boundary_error_s"] is None else f"{s['boundary_error_s']:.1f}s"
        edges = "-" if s["edges_on_cut_or_pause"] is None else f"{s['edges_on_cut_or_pause']:.2f}"
        click.echo(f"{folder.name}: P {s['precision']:.2f} R {s['recall']:.2f} F1 {s['f1']:.2f}  boundary error {err}  "
                   f"edges on cut/pause {edges}  lag {a.lag_s}s")
    p = totals["hits"] / totals["clips"] if totals["clips"] else 0.0
    r = totals["hits"] / totals["moments"] if totals["moments"] else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    click.echo(f"all: P {p:.2f} R {r:.2f} F1 {f1:.2f} over {len(folders)} session(s)")


@main.command()
@click.argument("out_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
def report(out_dir: Path) -> None:
    """Redraw report.html of a replay's output folder."""
    from liveroom.embedded.report import render_report

    import msgspec

    try:
        click.echo(render_report(out_dir))
    except FileNotFoundError as exc:
        raise UserError(f"{out_dir} does not hold replay outputs ({exc.filename} missing)") from None
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise UserError(f"{out_dir} holds outputs this version cannot read ({exc}); replay the session again") from None


if __name__ == "__main__":
    main()
