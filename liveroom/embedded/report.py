"""``report.html``: what a replay produced, read at a glance.

Built from the output folder alone (so ``liveroom report DIR`` redraws any
replay): one self-contained page with inline SVG plots, and the clips as inline
players beside it. What it is built to answer, in order:

* **How did it go?** Headline figures first, money in the campaign's currency:
  GMV, spend, ROI (GMV over spend), orders per entry, peak audience.
* **Which room?** With several rooms, an overview table sorted by GMV, each row
  a link to its room's section.
* **When?** One clock for everything: UTC wall-clock time with its date, for the
  plots, the moments, the bid decisions and the clips (a clip's video seconds are
  put on the clock with the manifest's ``t0``, the epoch second of the video's
  first frame).
* **Why did it bid so?** A table of bid decisions, or one sentence where a room
  had no campaign (it bid nothing, and the report says so instead of drawing
  three flat zero plots).

Deterministic: the SVG ids are salted with a constant and the generation date is
left out, so the page is byte-identical for identical outputs.
"""

from __future__ import annotations

import html
import io
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

import msgspec

from bidding.run_of_show import windows
from streams.models import Campaign, Moment, RoomMetrics
from liveroom.embedded.replay import METRICS_FILE, MOMENTS_FILE, ROOMS_FILE, SUMMARY_FILE, read_jsonl

from liveroom.embedded.output_folder import safe_name

REPORT_FILE = "report.html"
BID_DECISIONS = "bid-decisions.jsonl"
CAMPAIGN_FILE = "campaign.json"
MAX_ROOMS_PLOTTED = 8
MAX_OVERVIEW_ROOMS = 500
MAX_DECISION_ROWS = 400
MAX_CLIP_ROWS = 200

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:1.5em auto;color:#222;padding:0 1em}
h1{margin-bottom:.1em}.sub{color:#555;margin-top:0}
table{border-collapse:collapse;margin:.6em 0}
th,td{border-bottom:1px solid #e3e3e3;padding:3px 9px;text-align:right;vertical-align:top}
th{background:#f6f6f6}th:first-child,td:first-child,td.text{text-align:left}
.cards{display:flex;flex-wrap:wrap;gap:.7em;margin:.8em 0}
.card{border:1px solid #ddd;border-radius:6px;padding:.45em .85em;min-width:8.5em}
.card b{display:block;font-size:1.35em}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:.5em .8em}
.clips{display:flex;flex-wrap:wrap;gap:1.2em}.clip{width:320px}.clip video{width:320px;background:#000}
details{margin:.6em 0}summary{cursor:pointer;color:#0b5cad}
.moments td:last-child,.decisions td:last-child{text-align:left}
"""


def clock(ts: float, *, date: bool = True) -> str:
    """Epoch seconds on the report's one clock: UTC, ``2026-05-28 20:33:20Z``."""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ" if date else "%H:%M:%S")


def _money(x: float | None, currency: str) -> str:
    return "-" if x is None else f"{x:,.2f} {currency}".rstrip()


def _ratio(a: float, b: float, fmt: str = "{:.2f}") -> str:
    return fmt.format(a / b) if b else "-"


def _e(x: object) -> str:
    return html.escape(str(x))


def _anchor(room_id: str) -> str:
    return f"room-{safe_name(room_id)}"


def _table(header: list[str], rows: list[list[object]], *, text_cols: int = 1, attrs: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(
        f"<td class='text'>{c}</td>" if i < text_cols else f"<td>{c}</td>" for i, c in enumerate(r)) + "</tr>"
        for r in rows)
    return f"<table {attrs}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cards(items: list[tuple[str, str]], *, attrs: str = "") -> str:
    return (f"<div class='cards' {attrs}>" + "".join(
        f"<div class='card' data-figure='{_e(k)}'>{_e(k)}<b>{_e(v)}</b></div>" for k, v in items) + "</div>")


def _figure_svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _time_axis(ax, first: float, last: float) -> None:
    """UTC clock ticks, and the date in the label (both dates if the room spans midnight)."""
    from matplotlib.dates import DateFormatter

    ax.xaxis.set_major_formatter(DateFormatter("%H:%M", tz=timezone.utc))
    d0, d1 = clock(first)[:10], clock(last)[:10]
    ax.set_xlabel(f"time (UTC) on {d0}" if d0 == d1 else f"time (UTC), {d0} to {d1}")


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


def _room_figure(room_id: str, rows: list[RoomMetrics], moments: list[Moment], clips: list[tuple[float, float]],
                 planned: tuple[tuple[float, float], ...] = ()) -> str:
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "liveroom-report"
    import matplotlib.pyplot as plt

    x = [_dt(r.ts) for r in rows]
    fig, axes = plt.subplots(3, 1, figsize=(10, 7.5), sharex=True)
    axes[0].plot(x, [r.online for r in rows], color="#1f77b4")
    axes[0].set_ylabel("online viewers")
    axes[1].plot(x, [r.organic_entries_per_min for r in rows], label="organic")
    axes[1].plot(x, [r.paid_entries_per_min for r in rows], label="paid")
    axes[1].set_ylabel("entries / min")
    axes[1].legend(loc="upper right", fontsize=8)
    kinds = list(rows[0].interactions_per_min)
    axes[2].stackplot(x, [[r.interactions_per_min[k] for r in rows] for k in kinds], labels=kinds)
    axes[2].set_ylabel("interactions / min")
    axes[2].legend(loc="upper left", fontsize=7, ncol=4)
    for ax in axes:
        for m in moments:
            ax.axvspan(_dt(m.start), _dt(m.end), color="orange", alpha=0.25, lw=0)
        for a, b in clips:
            ax.axvspan(_dt(a), _dt(b), ymin=0.0, ymax=0.04, color="#2ca02c", alpha=0.9, lw=0)
        _planned_bands(ax, planned)
        ax.grid(alpha=0.3)
    _time_axis(axes[2], rows[0].ts, rows[-1].ts)
    axes[0].set_title(f"{room_id} (orange: detected moments; green ticks: clips"
                      + ("; purple bars: the run of show's planned moments)" if planned else ")"))
    svg = _figure_svg(fig)
    plt.close(fig)
    return svg


def _planned_bands(ax, planned: tuple[tuple[float, float], ...]) -> None:
    """The run of show's planned moments: a bar along the top of the plot."""
    for a, b in planned:
        ax.axvspan(_dt(a), _dt(b), ymin=0.96, ymax=1.0, color="#9467bd", alpha=0.9, lw=0)


def _run_of_show(campaign: Campaign, moments: list[Moment]) -> str:
    """One line per planned moment, with the detected moment that overlaps it (if any)."""
    rows = []
    for m in sorted(campaign.run_of_show, key=lambda m: m.at):
        seen = [d for d in moments if d.start < m.at + m.duration_s + 60 and d.end > m.at - 60]
        shown = (f"{clock(seen[0].start, date=False)}Z ({seen[0].start - m.at:+.0f} s)" if seen
                 else "no moment detected")
        rows.append([clock(m.at), f"{m.duration_s:.0f} s", _e(m.kind or "-"), shown])
    return "<h3>Run of show</h3>" + _table(["planned (UTC)", "length", "kind", "detected"], rows,
                                           attrs="class='run-of-show'")


def _bid(d) -> float:
    b = d.multiplier * d.unit_value if d.multiplier > 0 else (d.bid_cap or 0.0)
    return min(b, d.bid_cap) if d.bid_cap else b


def _bidding_figure(room_id: str, decisions: list, currency: str, planned: tuple[tuple[float, float], ...] = ()
                    ) -> str:
    import matplotlib.pyplot as plt

    x = [_dt(d.ts) for d in decisions]
    fig, axes = plt.subplots(3, 1, figsize=(10, 6), sharex=True)
    unit = f" ({currency})" if currency else ""
    if all(d.spent is not None and d.committed is not None for d in decisions):
        axes[0].stackplot(x, [d.spent for d in decisions], [d.committed for d in decisions],
                          [d.budget_left for d in decisions], colors=["#1f77b4", "#ff7f0e", "#2ca02c"], alpha=0.6,
                          labels=["spent (reported)", "committed (caps not yet reported)", "left"])
        axes[0].legend(loc="upper right", fontsize=7)
        axes[0].set_ylabel(f"budget{unit}")
    else:  # decisions of an older version
        axes[0].plot(x, [d.budget_left for d in decisions], color="#2ca02c")
        axes[0].set_ylabel(f"budget left{unit}")
    axes[1].step(x, [d.spend_cap for d in decisions], where="post", color="#d62728")
    axes[1].set_ylabel(f"spend cap / tick{unit}")
    axes[2].step(x, [_bid(d) for d in decisions], where="post", color="#9467bd")
    axes[2].set_ylabel(f"bid, average viewer{unit}")
    colors = {"fast_ramp": "#1f77b4", "interaction_mcb": "#ff7f0e", "paused": "#7f7f7f"}
    ends = x[1:] + [_dt(decisions[-1].ts + 5)]
    for ax in axes:
        for d, left, right in zip(decisions, x, ends):
            ax.axvspan(left, right, color=colors.get(d.strategy, "#bcbd22"), alpha=0.12, lw=0)
        _planned_bands(ax, planned)
        ax.grid(alpha=0.3)
    _time_axis(axes[2], decisions[0].ts, decisions[-1].ts)
    axes[0].set_title(f"{room_id} bidding (shading: blue fast ramp, orange interaction MCB, grey paused"
                      + ("; purple bars: planned moments)" if planned else ")"))
    svg = _figure_svg(fig)
    plt.close(fig)
    return svg


def _headline(totals: dict, n_moments: int, n_clips: int | None, currency: str,
              budget: float | None = None) -> list[tuple[str, str]]:
    entries = totals["organic_entries"] + totals["paid_entries"]
    spend, gmv = totals["spend"], totals["gmv"]
    items = [("budget", _money(budget, currency))] if budget is not None else []
    items += [
        ("GMV", _money(gmv, currency)), ("spend (reported)", _money(spend, currency)),
        ("ROI (GMV / spend)", _ratio(gmv, spend, "{:.1f}x")), ("orders", f"{totals['orders']:,}"),
        ("orders per entry", _ratio(totals["orders"], entries, "{:.1%}")),
        ("cost per paid entry", _money(spend / totals["paid_entries"], currency) if totals["paid_entries"] else "-"),
        ("peak online", f"{totals['peak_online']:,}"),
        ("entries organic / paid", f"{totals['organic_entries']:,} / {totals['paid_entries']:,}"),
        ("moments", f"{n_moments}"),
    ]
    if n_clips is not None:
        items.append(("clips", f"{n_clips}"))
    return items


def _sum_totals(rooms: list[dict]) -> dict:
    keys = ("organic_entries", "paid_entries", "orders", "gmv", "spend")
    out = {k: sum(r[k] for r in rooms) for k in keys}
    out["peak_online"] = max((r["peak_online"] for r in rooms), default=0)
    return out


MONEY_NOTE = ("<p class='note money'>Money as the guard counts it: <b>spent</b> is what the ad server has reported; "
              "<b>committed</b> is caps issued and not yet covered by a report, which count as spent until one is "
              "(so \"budget spent\" can show while reports catch up); <b>left</b> = budget - spent - committed, what "
              "new caps may take. A <b>bid cap</b> bounds the price of one viewer; a <b>spend cap</b> bounds what may "
              "be spent until the next decision.</p>")


def _decisions_table(decisions: list) -> str:
    shown = decisions[:MAX_DECISION_ROWS]
    def money(x: float | None) -> str:
        return "-" if x is None else f"{x:.2f}"

    rows = [[clock(d.ts), _e(d.strategy), f"{_bid(d):.3f}", "-" if d.bid_cap is None else f"{d.bid_cap:.3f}",
             f"{d.spend_cap:.2f}", money(d.spent), money(d.committed), f"{d.budget_left:.2f}", _e(d.reason)]
            for d in shown]
    more = (f"<p>First {MAX_DECISION_ROWS} of {len(decisions)} decisions; all are in {BID_DECISIONS}.</p>"
            if len(decisions) > len(shown) else "")
    table = _table(["time (UTC)", "strategy", "bid (avg viewer)", "bid cap per viewer", "spend cap until the next decision",
                    "spent", "committed", "left", "reason"], rows, text_cols=2, attrs="class='decisions'")
    table = (MONEY_NOTE + table)
    return f"<details><summary>Bid decisions ({len(decisions)})</summary>{table}{more}</details>"


def _clips_section(manifest: dict, rooms_start: float | None) -> str:
    t0 = manifest.get("t0")
    if t0 is None:
        t0 = rooms_start  # older outputs: the session's start is the video's first frame
    parts = [f"<h2 id='clips'>Highlight clips ({len(manifest['clips'])})</h2>"]
    lag = manifest.get("reaction_lag_s")
    weights = manifest.get("weights") or {}
    parts.append("<p>Audience reaction lag (estimated): "
                 f"{'not measured (no events)' if lag is None else f'{lag} s'}. Fusion weights: "
                 + ", ".join(f"{_e(k)} {v:g}" for k, v in weights.items()) + ".</p><div class='clips'>")
    for c in manifest["clips"]:
        when = (f"{clock(t0 + c['start'])} to {clock(t0 + c['end'], date=False)}Z" if t0 is not None
                else f"{c['start']:.1f} s to {c['end']:.1f} s of the video")
        poster = f" poster='clips/{_e(c['cover'])}'" if c.get("cover") else ""
        media = (f"<video controls preload='metadata' src='clips/{_e(c['file'])}'{poster}></video>"
                 if c["file"].endswith(".mp4") else f"<audio controls preload='metadata' src='clips/{_e(c['file'])}'>"
                 "</audio>")
        parts.append(f"<div class='clip' data-clip='{_e(c['file'])}'>{media}<div><b>{_e(when)}</b> "
                     f"({c['end'] - c['start']:.1f} s, score {c['score']})<br>{_e('; '.join(c['reasons']))}</div></div>")
    parts.append("</div>")
    return "".join(parts)


def _pull_figure(rows_by_clip: dict[str, list], top: list[str]) -> str:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    for clip_id in top:
        rows = rows_by_clip[clip_id]
        days = [(r.hour + 1) / 24.0 for r in rows]
        impressions = [r.impressions for r in rows]
        entries = [r.entries for r in rows]
        window = 6  # hours: the pull of one hour is a handful of entries
        pull = [1000 * sum(entries[max(0, i - window + 1):i + 1]) / max(1, sum(impressions[max(0, i - window + 1):i + 1]))
                for i in range(len(rows))]
        axes[0].plot(days, pull, label=clip_id, lw=1.2)
        axes[1].plot(days, [r.total_entries for r in rows], lw=1.2)
    axes[0].set_ylabel("entries / 1000 impressions (6 h)")
    axes[0].legend(loc="upper right", fontsize=7, ncol=2)
    axes[1].set_ylabel("room entries drawn (total)")
    axes[1].set_xlabel("days since publication")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].set_title("Pull of each clip after publication (the clips that drew the most)")
    svg = _figure_svg(fig)
    plt.close(fig)
    return svg


def _clip_loop_section(out: Path, currency: str) -> str:
    from cliploop.models import ClipStats, Promotion
    from liveroom.embedded.clip_replay import CLIP_STATS_FILE, PROMOTIONS_FILE, PULL_MODEL_FILE

    stats = read_jsonl(out / CLIP_STATS_FILE, ClipStats)
    promotions = read_jsonl(out / PROMOTIONS_FILE, Promotion)
    by_clip: dict[str, list] = defaultdict(list)
    for r in stats:
        by_clip[r.clip_id].append(r)
    parts = ["<h2 id='clip-loop'>Clips after the broadcast</h2>"]
    if not by_clip:
        return parts[0] + "<p>No clip activity in the session's clip events.</p>"
    order = sorted(by_clip, key=lambda c: (-by_clip[c][-1].total_entries, c))
    promoted = {c: sum(r.promoted_impressions for r in by_clip[c]) for c in by_clip}
    rows = []
    for c in order[:MAX_CLIP_ROWS]:
        rs, last = by_clip[c], by_clip[c][-1]
        clicks = sum(r.clicks_room + r.clicks_product for r in rs)
        rows.append([_e(c), clock(last.published) if last.published is not None else "-", f"{last.total_impressions:,}",
                     _ratio(promoted[c], last.total_impressions, "{:.0%}"), _ratio(clicks, last.total_impressions,
                                                                                   "{:.2%}"),
                     f"{last.total_entries:,}", _ratio(1000 * last.total_entries, last.total_impressions),
                     f"{last.total_orders:,}", _money(last.total_gmv, currency),
                     "-" if last.decay is None else f"{last.decay:.2f}"])
    parts.append(f"<p>{len(by_clip)} clip(s); {len(promotions)} promotion decisions. Pull is room entries per 1000 "
                 "impressions; decay is the pull of the clip's latest day over its first.</p>")
    parts.append(_pull_figure(by_clip, order[:8]))
    parts.append(_table(["clip", "published (UTC)", "impressions", "promoted", "CTR", "entries drawn", "pull",
                         "orders", "GMV", "decay"], rows, attrs="id='clip-table'"))
    if promotions:
        last = promotions[-1]
        alloc = ", ".join(f"{a.clip_id} {a.share:.0%}" for a in last.allocations) or "nothing"
        parts.append(f"<p>Last decision, for {clock(last.ts)}: {_e(alloc)} of {last.budget:,} impressions "
                     f"({last.explored:.0%} explored). Mean explored share over all decisions: "
                     f"{sum(p.explored for p in promotions) / len(promotions):.0%}.</p>")
    if (out / PULL_MODEL_FILE).is_file():
        from cliploop.learn import PullModel

        model = PullModel.from_json((out / PULL_MODEL_FILE).read_bytes())
        parts.append(f"<h3>What pulls (fitted on {model.clips} clips)</h3>")
        parts.append(_table(["feature", "weight (per standard deviation, log-odds of pull)"],
                            [[_e(n), f"{w:+.2f}"] for n, w in model.explain()], attrs="id='pull-model'"))
    return "".join(parts)


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
    totals = {}
    if (out / ROOMS_FILE).is_file():
        with open(out / ROOMS_FILE, "rb") as f:
            for line in f:
                if line.strip():
                    r = msgspec.json.decode(line)
                    totals[r["room_id"]] = r
    totals.update({k: {"room_id": k, **v} for k, v in summary["rooms"].items() if k not in totals})
    decisions: dict[str, list] = defaultdict(list)
    if (out / BID_DECISIONS).is_file():
        from bidding.models import BidDecision

        for d in read_jsonl(out / BID_DECISIONS, BidDecision):
            decisions[d.room_id].append(d)
    campaign = None
    known = (out / CAMPAIGN_FILE).is_file()  # outputs of older versions do not say
    if known:
        campaign = msgspec.json.decode((out / CAMPAIGN_FILE).read_bytes(), type=Campaign | None)
    currency = (campaign.currency or "") if campaign is not None else ""
    manifest = None
    if (out / "clips" / "manifest.json").is_file():
        manifest = msgspec.json.decode((out / "clips" / "manifest.json").read_bytes())
    # Busiest first: GMV, then interactions, then the id (a stable order whatever the input order).
    rooms = sorted(totals, key=lambda r: (-totals[r]["gmv"], -sum(totals[r]["interactions"].values()), r))
    # The rooms' own start and end (room_start, room_end) where they have them: a snapshot
    # is stamped with the end of its tick, a tick after the room began.
    starts = [totals[room].get("started_at") or min((r.ts for r in by_room[room]), default=None) for room in rooms]
    ends = [totals[room].get("ended_at") or max((r.ts for r in by_room[room]), default=None) for room in rooms]
    first = min((s for s in starts if s is not None), default=None)
    last = max((e for e in ends if e is not None), default=None)

    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>liveroom replay: {_e(summary['session'])}</title><style>{STYLE}</style></head><body>",
        f"<h1>Replay of {_e(summary['session'])}</h1>",
    ]
    if first is not None and last is not None:
        parts.append(f"<p class='sub'>{len(rooms)} room(s), {clock(first)} to {clock(last)} "
                     f"({(last - first) / 60:.0f} min). All times are UTC.</p>")
    n_clips = len(manifest["clips"]) if manifest else None
    if not known:
        no_money = f"these outputs have no {CAMPAIGN_FILE} (an older version wrote them): money carries no currency"
    elif campaign is None:
        no_money = "no campaign: money figures carry no currency, and no room bid"
    elif not currency:
        no_money = "the campaign names no currency"
    else:
        no_money = ""
    parts.append("<h2 id='headline'>Headline</h2>")
    parts.append(_cards(_headline(_sum_totals([totals[r] for r in rooms]), sum(len(v) for v in moments.values()),
                                  n_clips, currency, campaign.total_budget if campaign is not None else None),
                        attrs="id='headline-figures'"))
    if no_money:
        parts.append(f"<p class='note'>Note: {_e(no_money)}.</p>")

    if len(rooms) > 1:
        rows = []
        for room in rooms[:MAX_OVERVIEW_ROOMS]:
            t = totals[room]
            link = (f"<a href='#{_anchor(room)}'>{_e(room)}</a>" if room in rooms[:MAX_ROOMS_PLOTTED] else _e(room))
            has = campaign.room_id == room if campaign is not None else (not known and bool(decisions[room]))
            rows.append([link, clock(t["started_at"]) if t.get("started_at") else "-", f"{t['peak_online']:,}",
                         f"{t['organic_entries'] + t['paid_entries']:,}", f"{t['orders']:,}",
                         _money(t["gmv"], currency), _money(t["spend"], currency), _ratio(t["gmv"], t["spend"], "{:.1f}x"),
                         f"{len(moments[room])}", "yes" if has else "none"])
        parts.append("<h2 id='overview'>Rooms, by GMV</h2>")
        parts.append(_table(["room", "started (UTC)", "peak online", "entries", "orders", "GMV", "spend", "ROI",
                             "moments", "campaign"], rows, attrs="id='overview-table'"))
        if len(rooms) > MAX_OVERVIEW_ROOMS:
            parts.append(f"<p>{len(rooms) - MAX_OVERVIEW_ROOMS} more rooms; all are in {ROOMS_FILE}.</p>")

    clip_spans: list[tuple[float, float]] = []
    if manifest and manifest.get("t0") is not None:
        clip_spans = [(manifest["t0"] + c["start"], manifest["t0"] + c["end"]) for c in manifest["clips"]]
    for room in rooms[:MAX_ROOMS_PLOTTED]:
        t = totals[room]
        has = campaign.room_id == room if campaign is not None else (not known and bool(decisions[room]))
        parts.append(f"<section id='{_anchor(room)}' data-room='{_e(room)}'><h2>Room {_e(room)}</h2>")
        if len(rooms) > 1:
            parts.append(_cards(_headline(t, len(moments[room]), None, currency)))
        planned = windows(campaign.run_of_show) if has and campaign is not None else ()
        if by_room[room]:
            parts.append(_room_figure(room, by_room[room], moments[room],
                                      clip_spans if room == summary.get("room_id") else [], planned))
        if not has:
            parts.append(f"<p class='note' data-no-campaign>Room {_e(room)} has no campaign, so it bid nothing: "
                         "a room without a campaign gets a zero budget.</p>")
        elif decisions[room]:
            parts.append(_bidding_figure(room, decisions[room], currency, planned))
            parts.append(_decisions_table(decisions[room]))
        if planned:
            parts.append(_run_of_show(campaign, moments[room]))
        rows = [[clock(m.start), clock(m.end, date=False) + "Z", f"{m.end - m.start:.0f} s", f"{m.strength:.1f}",
                 f"{m.interactions:,}", _e(", ".join(m.kinds))] for m in moments[room]]
        parts.append("<h3>Moments</h3>" + (_table(["from (UTC)", "to", "length", "z", "interactions", "kinds"], rows,
                                                  attrs="class='moments'") if rows else "<p>none detected</p>"))
        parts.append("</section>")
    if len(rooms) > MAX_ROOMS_PLOTTED:
        parts.append(f"<p>{len(rooms) - MAX_ROOMS_PLOTTED} more rooms not plotted; see {METRICS_FILE}.</p>")
    if manifest:
        parts.append(_clips_section(manifest, summary["rooms"].get(summary.get("room_id"), {}).get("started_at")))

    if (out / "clip-stats.jsonl").is_file():
        parts.append(_clip_loop_section(out, currency))

    parts.append("<h2 id='inputs'>Inputs</h2>")
    parts.append(_table(["", "count"], [
        ["input lines", f"{summary['inputs']:,}"], ["processed", f"{summary['processed']:,}"],
        ["duplicates dropped", f"{summary['duplicates']:,}"], ["dead letters", f"{summary['dead_letters']:,}"],
        *([f"dead letters: {_e(k)}", f"{v:,}"] for k, v in summary["dead_letter_reasons"].items()),
        ["every input accounted for", "yes" if summary["all_accounted_for"] else "NO"],
    ], attrs="id='inputs-table'"))
    parts.append("</body></html>\n")
    path = out / REPORT_FILE
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
