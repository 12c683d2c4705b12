"""``report.html``: what a replay produced, as plots a person would rather look at.

Built from the output files alone (so ``liveroom report DIR`` can redraw any
replay), one self-contained page with inline SVG. Deterministic: the SVG ids are
salted with a constant and the date is left out, so the page is byte-identical
for identical outputs.
"""

from __future__ import annotations

import html
import io
from collections import defaultdict
from pathlib import Path

import msgspec

from streams.models import Moment, RoomMetrics
from streams.replay import METRICS_FILE, MOMENTS_FILE, SUMMARY_FILE, read_jsonl

REPORT_FILE = "report.html"
BID_DECISIONS = "bid-decisions.jsonl"
MAX_ROOMS_PLOTTED = 8


def _figure_svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _room_figure(room_id: str, rows: list[RoomMetrics], moments: list[Moment]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "liveroom-report"
    import matplotlib.pyplot as plt

    t0 = rows[0].ts
    x = [(r.ts - t0) / 60.0 for r in rows]
    fig, axes = plt.subplots(3, 1, figsize=(10, 7.5), sharex=True)
    axes[0].plot(x, [r.online for r in rows], color="#1f77b4")
    axes[0].set_ylabel("online viewers")
    axes[1].plot(x, [r.organic_entries_per_min for r in rows], label="organic")
    axes[1].plot(x, [r.paid_entries_per_min for r in rows], label="paid")
    axes[1].set_ylabel("entries / min")
    axes[1].legend(loc="upper right", fontsize=8)
    kinds = list(rows[0].interactions_per_min)
    stacks = [[r.interactions_per_min[k] for r in rows] for k in kinds]
    axes[2].stackplot(x, stacks, labels=kinds)
    axes[2].set_ylabel("interactions / min")
    axes[2].set_xlabel(f"minutes since first snapshot ({t0:.0f})")
    axes[2].legend(loc="upper left", fontsize=7, ncol=4)
    for ax in axes:
        for m in moments:
            ax.axvspan((m.start - t0) / 60.0, (m.end - t0) / 60.0, color="orange", alpha=0.25, lw=0)
        ax.grid(alpha=0.3)
    axes[0].set_title(f"{room_id} (shaded: detected moments)")
    svg = _figure_svg(fig)
    plt.close(fig)
    return svg


def _bidding_figure(room_id: str, decisions: list, t0: float) -> str:
    import matplotlib.pyplot as plt

    x = [(d.ts - t0) / 60.0 for d in decisions]
    fig, axes = plt.subplots(3, 1, figsize=(10, 6), sharex=True)
    axes[0].plot(x, [d.budget_left for d in decisions], color="#2ca02c")
    axes[0].set_ylabel("budget left")
    axes[1].step(x, [d.spend_cap for d in decisions], where="post", color="#d62728")
    axes[1].set_ylabel("spend cap / tick")
    bids = [(d.multiplier * d.unit_value if d.multiplier > 0 else (d.bid_cap or 0.0)) for d in decisions]
    bids = [min(b, d.bid_cap) if d.bid_cap else b for b, d in zip(bids, decisions)]
    axes[2].step(x, bids, where="post", color="#9467bd")
    axes[2].set_ylabel("bid, average viewer")
    axes[2].set_xlabel(f"minutes since first snapshot ({t0:.0f})")
    colors = {"fast_ramp": "#1f77b4", "interaction_mcb": "#ff7f0e", "paused": "#7f7f7f"}
    for ax in axes:
        for d, left, right in zip(decisions, x, x[1:] + [x[-1] + 5 / 60]):
            ax.axvspan(left, right, color=colors.get(d.strategy, "#bcbd22"), alpha=0.12, lw=0)
        ax.grid(alpha=0.3)
    axes[0].set_title(f"{room_id} bidding (shading: blue fast ramp, orange interaction MCB, grey paused)")
    svg = _figure_svg(fig)
    plt.close(fig)
    return svg


def _table(rows: list[tuple[str, object]]) -> str:
    cells = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return f"<table>{cells}</table>"


def render_report(out_dir: str | Path) -> Path:
    """Write ``report.html`` into a replay's output folder and return its path."""
    out = Path(out_dir)
    summary = msgspec.json.decode((out / SUMMARY_FILE).read_bytes())
    by_room: dict[str, list[RoomMetrics]] = defaultdict(list)
    for row in read_jsonl(out / METRICS_FILE, RoomMetrics):
        by_room[row.room_id].append(row)
    moments: dict[str, list[Moment]] = defaultdict(list)
    for m in read_jsonl(out / MOMENTS_FILE, Moment):
        moments[m.room_id].append(m)
    rooms = sorted(by_room, key=lambda r: (-sum(by_room[r][-1].interactions_total.values()), r))
    decisions: dict[str, list] = defaultdict(list)
    if (out / BID_DECISIONS).is_file():
        from bidding.models import BidDecision

        for d in read_jsonl(out / BID_DECISIONS, BidDecision):
            decisions[d.room_id].append(d)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>liveroom replay: {html.escape(summary['session'])}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse;"
        "margin:1em 0}th,td{border:1px solid #ccc;padding:2px 8px;text-align:left}</style></head><body>",
        f"<h1>Replay of {html.escape(summary['session'])}</h1>",
        "<h2>Inputs</h2>",
        _table([
            ("input lines", summary["inputs"]), ("processed", summary["processed"]),
            ("duplicates dropped", summary["duplicates"]), ("dead letters", summary["dead_letters"]),
            *((f"dead letters: {k}", v) for k, v in summary["dead_letter_reasons"].items()),
            ("every input accounted for", summary["all_accounted_for"]),
        ]),
    ]
    for room in rooms[:MAX_ROOMS_PLOTTED]:
        totals = summary["rooms"].get(room, {})
        parts.append(f"<h2>Room {html.escape(room)}</h2>")
        parts.append(_room_figure(room, by_room[room], moments[room]))
        if decisions[room]:
            parts.append(_bidding_figure(room, decisions[room], by_room[room][0].ts))
        parts.append(_table([
            ("peak online", totals.get("peak_online")), ("entries organic / paid",
             f"{totals.get('organic_entries')} / {totals.get('paid_entries')}"),
            ("orders", totals.get("orders")), ("GMV", totals.get("gmv")), ("spend", totals.get("spend")),
            ("moments", "; ".join(f"{m.start - by_room[room][0].ts:.0f}s to {m.end - by_room[room][0].ts:.0f}s "
                                  f"(z {m.strength}, {', '.join(m.kinds)})" for m in moments[room]) or "none"),
        ]))
    manifest_path = out / "clips" / "manifest.json"
    if manifest_path.is_file():
        manifest = msgspec.json.decode(manifest_path.read_bytes())
        parts.append(f"<h2>Highlight clips ({len(manifest['clips'])})</h2>")
        parts.append(f"<p>Audience reaction lag (estimated): {manifest['reaction_lag_s']} s; "
                     f"weights {html.escape(str(manifest['weights']))}</p><table><tr><th>clip</th><th>cover</th>"
                     "<th>start</th><th>end</th><th>score</th><th>why</th></tr>")
        for c in manifest["clips"]:
            cover = f"<img src='clips/{c['cover']}' width='160'>" if c.get("cover") else ""
            parts.append(f"<tr><td><a href='clips/{c['file']}'>{c['file']}</a></td><td>{cover}</td>"
                         f"<td>{c['start']:.1f}s</td><td>{c['end']:.1f}s</td><td>{c['score']}</td>"
                         f"<td>{html.escape('; '.join(c['reasons']))}</td></tr>")
        parts.append("</table>")
    if len(rooms) > MAX_ROOMS_PLOTTED:
        parts.append(f"<p>{len(rooms) - MAX_ROOMS_PLOTTED} more rooms not plotted; see {METRICS_FILE}.</p>")
    parts.append("</body></html>\n")
    path = out / REPORT_FILE
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
