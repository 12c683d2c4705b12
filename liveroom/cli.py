"""The ``liveroom`` command. Thin: parse, build config from settings, call a runtime.

Bad input (a missing or malformed session folder) ends in one clear ``Error:``
line and exit status 2, never a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from streams.session import SessionError, open_session

from .settings import Settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Live-commerce room intelligence: room state, traffic bidding, highlight clips."""


@main.command()
@click.argument("session", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("out"), show_default=True,
              help="Folder for the outputs.")
@click.option("--report/--no-report", default=True, show_default=True, help="Write report.html.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal).")
def replay(session: Path, out_dir: Path, report: bool, progress: bool | None) -> None:
    """Replay a recorded SESSION folder embedded (no Kafka) and write its outputs."""
    from streams.replay import replay_session

    settings = Settings()
    try:
        sess = open_session(session)
    except SessionError as exc:
        raise click.UsageError(str(exc)) from None
    result = replay_session(
        sess, out_dir, settings.core_config(), ts_margin_s=settings.session_ts_margin_s,
        progress=sys.stderr.isatty() if progress is None else progress,
    )
    if report:
        from .report import render_report

        render_report(out_dir)
    s = result.summary
    click.echo(
        f"{s['inputs']} inputs: {s['processed']} processed, {s['duplicates']} duplicates, "
        f"{s['dead_letters']} dead letters; {s['outputs']['room-metrics.jsonl']} snapshots, "
        f"{s['outputs']['moments.jsonl']} moments; {result.events_per_s:,.0f} inputs/s"
    )
    click.echo(f"outputs in {out_dir}/")


@main.command()
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--minutes", type=click.FloatRange(min=0.5), default=10.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--rooms", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--lag", "lag_s", type=click.FloatRange(min=0), default=4.0, show_default=True,
              help="Seconds between a moment on screen and the audience's reaction.")
@click.option("--gzip/--no-gzip", "compress", default=True, show_default=True)
def synth(out_dir: Path, minutes: float, seed: int, rooms: int, lag_s: float, compress: bool) -> None:
    """Write a synthetic session with planted moments to OUT_DIR."""
    from streams.synth import synth_session

    folder = synth_session(out_dir, minutes=minutes, seed=seed, rooms=rooms, lag_s=lag_s, compress=compress)
    click.echo(f"session written to {folder}/")


@main.command()
@click.argument("out_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
def report(out_dir: Path) -> None:
    """Redraw report.html of a replay's output folder."""
    from .report import render_report

    try:
        click.echo(render_report(out_dir))
    except FileNotFoundError as exc:
        raise click.UsageError(f"{out_dir} does not hold replay outputs ({exc.filename} missing)") from None


if __name__ == "__main__":
    main()
