"""Recorded sessions: a folder with ``session.json``, the events and optional media.

Reading is streaming (constant memory whatever the size of ``events.jsonl`` or
``events.jsonl.gz``), and a damaged file is read as far as it goes: the reader
stops at a corrupt or truncated gzip stream and reports it in ``error`` so the
runtime can dead-letter it instead of crashing.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import msgspec

from streams.events import BlankLines, EpochSeconds, Ident, LongInput
from streams.models import Campaign

SESSION_FILE = "session.json"
_CHUNK = 1 << 20  # bytes of data handed on per step
_BLANK_RUN = re.compile(rb"(\n{3,})")
_IN_CHUNK = 64 << 10  # compressed bytes read per step


class SessionError(Exception):
    """A session folder that cannot be used; the message says what to fix."""


class SessionFiles(msgspec.Struct, kw_only=True, frozen=True):
    events: str = "events.jsonl"
    video: str | None = None
    labels: str | None = None
    clip_events: str | None = None  # what the room's published clips drew (cliploop's contract)


class SessionInfo(msgspec.Struct, kw_only=True, frozen=True):
    """Contents of ``session.json``."""

    room_id: Ident
    start: EpochSeconds
    end: EpochSeconds
    files: SessionFiles = msgspec.field(default_factory=SessionFiles)
    title: str = ""
    campaign: Campaign | None = None
    format: int = 1


@dataclass(frozen=True)
class Session:
    folder: Path
    info: SessionInfo
    events_path: Path
    video_path: Path | None
    labels_path: Path | None
    clip_events_path: Path | None = None

    @property
    def name(self) -> str:
        return self.folder.name

    def campaign(self) -> Campaign | None:
        """The session's campaign as recorded; None when it has none (never a default)."""
        return self.info.campaign


MAX_SESSION_JSON_BYTES = 1 << 20


def _inside(folder: Path, name: str, what: str) -> Path:
    """Resolve a file named in session.json, refusing anything outside the folder."""
    if not name or "\x00" in name or Path(name).is_absolute():
        raise SessionError(f"{what} file {name!r:.80} in {SESSION_FILE} must be a relative path inside the session "
                           "folder")
    try:
        path = (folder / name).resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop, a name too long
        raise SessionError(f"{what} file {name!r:.80} in {SESSION_FILE} cannot be resolved: {exc}") from None
    if not path.is_relative_to(folder):
        raise SessionError(f"{what} file {name!r:.80} in {SESSION_FILE} points outside the session folder {folder}")
    return path


def _is_file(path: Path, what: str) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError) as exc:
        raise SessionError(f"{what} file {path.name!r:.80} cannot be read: {exc}") from None


def open_session(folder: str | Path, *, max_json_bytes: int = MAX_SESSION_JSON_BYTES) -> Session:
    """Validate a session folder; raises :class:`SessionError` with one clear message.
    ``session.json`` is read only up to ``max_json_bytes`` (a larger one is refused)."""
    try:
        folder = Path(folder)
        if not folder.is_dir():
            raise SessionError(f"session folder {folder} does not exist or is not a folder")
        folder = folder.resolve()
        meta = folder / SESSION_FILE
        if not meta.is_file():
            raise SessionError(f"{folder} has no {SESSION_FILE}; is it a recorded session folder?")
        with open(meta, "rb") as f:
            data = f.read(max_json_bytes + 1)
    except (OSError, ValueError, RuntimeError) as exc:
        raise SessionError(f"session folder {str(folder)!r:.200} cannot be read: {exc}") from None
    if len(data) > max_json_bytes:
        raise SessionError(f"{meta} is larger than {max_json_bytes} bytes (LIVEROOM_MAX_SESSION_JSON_BYTES)")
    try:
        info = msgspec.json.decode(data, type=SessionInfo)
    except msgspec.ValidationError as exc:
        raise SessionError(f"{meta}: {exc}") from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise SessionError(f"{meta} is not valid JSON: {exc}") from None
    except RecursionError:
        raise SessionError(f"{meta} is not valid JSON: nested too deeply") from None
    if not info.start <= info.end:
        raise SessionError(f"{meta}: end ({info.end}) is before start ({info.start})")
    events = _inside(folder, info.files.events, "events")
    if not _is_file(events, "events"):
        raise SessionError(f"events file {events.name} named in {SESSION_FILE} is missing from {folder}")
    video = _inside(folder, info.files.video, "video") if info.files.video else None
    if video is not None and not _is_file(video, "video"):
        raise SessionError(f"video file {video.name} named in {SESSION_FILE} is missing from {folder}")
    labels = _inside(folder, info.files.labels, "labels") if info.files.labels else None
    clip_events = _inside(folder, info.files.clip_events, "clip events") if info.files.clip_events else None
    if clip_events is not None and not _is_file(clip_events, "clip events"):
        raise SessionError(f"clip events file {clip_events.name} named in {SESSION_FILE} is missing from {folder}")
    return Session(folder=folder, info=info, events_path=events, video_path=video, labels_path=labels,
                   clip_events_path=clip_events)


def _split_with_runs(data: bytes) -> tuple[list[bytes], bytes]:
    """Lines of ``data`` and its unfinished tail, each run of blank lines as one
    :class:`~streams.events.BlankLines` item (a file of newlines is read at C speed)."""
    parts = _BLANK_RUN.split(data)  # text, run, text, run, ..., text
    lines: list[bytes] = []
    for i in range(0, len(parts) - 1, 2):
        lines.extend(parts[i].split(b"\n"))  # complete lines: the run's first newline ends the last one
        lines.append(BlankLines(len(parts[i + 1]) - 1))
    last = parts[-1].split(b"\n")
    tail = last.pop()
    lines.extend(last)
    return lines, tail


@dataclass(frozen=True)
class ReadLimits:
    """Bounds on reading an events file; each is a setting (``liveroom.settings``).

    - ``max_line_bytes``: a longer line is never held: it is read on in constant
      memory and handed on as a :class:`~streams.events.LongInput` (its first
      ``keep_bytes``, its length and sha256), which becomes an ``oversized`` dead letter.
    - ``max_decompressed_bytes`` and ``max_ratio``: a gzip file that inflates past
      either (the ratio is checked once ``ratio_after_bytes`` are out) stops there
      with the error ``decompression_limit``: a gzip bomb costs seconds, not memory.
    """

    max_line_bytes: int = 65536
    keep_bytes: int = 65536
    max_decompressed_bytes: int = 64 << 30
    max_ratio: float = 200.0
    ratio_after_bytes: int = 64 << 20


class LineReader:
    """Iterates the raw lines (without newline) of a ``.jsonl`` or ``.jsonl.gz`` file.

    Memory is bounded whatever the file holds: chunks of 1 MiB, lines longer than
    ``limits.max_line_bytes`` skipped in constant memory (see :class:`ReadLimits`).
    ``position`` is the byte offset reached in the file on disk (for progress),
    ``size`` its size. If the compressed stream is damaged or cut short, every
    line decompressed before the damage is yielded, then iteration ends and
    ``error`` holds ``(reason, detail)``; so it does past a decompression limit.
    """

    def __init__(self, path: str | Path, limits: ReadLimits = ReadLimits()) -> None:
        self.path = Path(path)
        self.limits = limits
        self.size = self.path.stat().st_size
        self.position = 0
        self.error: tuple[str, str] | None = None

    def __iter__(self) -> Iterator[bytes]:
        for lines in self.chunks():
            yield from lines

    def chunks(self) -> Iterator[list[bytes]]:
        """The same lines, a list per chunk read (cheaper per line than ``__iter__``)."""
        limit, keep = self.limits.max_line_bytes, self.limits.keep_bytes
        tail = b""
        long: tuple[bytes, int, object] | None = None  # (prefix, length so far, sha256) of a line being skipped
        for chunk in self._data():
            if long is not None:
                cut = chunk.find(b"\n")
                prefix, length, digest = long
                digest.update(chunk if cut < 0 else chunk[:cut])
                length += len(chunk) if cut < 0 else cut
                if cut < 0:
                    long = (prefix, length, digest)
                    continue
                long = None
                chunk = chunk[cut + 1:]
                first = [LongInput(prefix, length=length, sha256=digest.hexdigest())]
            else:
                first = []
            data = tail + chunk if tail else chunk
            if b"\n\n\n" in data:
                lines, tail = _split_with_runs(data)
            else:
                lines = data.split(b"\n")
                tail = lines.pop()
            if len(tail) > limit:  # a line longer than the limit: read on without holding it
                long = (tail[:keep], len(tail), hashlib.sha256(tail))
                tail = b""
            if first:
                lines[:0] = first
            if lines:
                yield lines
        if long is not None:
            prefix, length, digest = long
            yield [LongInput(prefix, length=length, sha256=digest.hexdigest())]
        elif tail:
            yield [tail]

    def _data(self) -> Iterator[bytes]:
        with open(self.path, "rb") as disk:
            compressed = disk.read(2) == b"\x1f\x8b"
            disk.seek(0)
            if not compressed:
                while chunk := disk.read(_CHUNK):
                    self.position = disk.tell()
                    yield chunk
                return
            yield from self._inflate(disk)

    def _inflate(self, disk) -> Iterator[bytes]:
        """Decompress gzip member after member (concatenated gzip is valid), at most
        1 MiB out per step. On a zlib error the step is redone from a copy of the
        decompressor, 256 bytes of input at a time, so the lines that came out
        before the damage are not lost with the step."""
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        member_done = False
        out_total = 0
        pending = b""
        while True:
            if not pending:
                pending = disk.read(_IN_CHUNK)
                self.position = disk.tell()
                if not pending:
                    if not member_done:
                        self.error = ("truncated_input", f"{self.path.name} ends inside its gzip stream "
                                      f"(cut short at {self.size} bytes)")
                    return
            if member_done:
                if pending[:2] == b"\x1f\x8b" or pending == b"\x1f":
                    d, member_done = zlib.decompressobj(16 + zlib.MAX_WBITS), False
                elif not pending.strip(b"\x00"):
                    pending = b""  # zero padding after the stream
                    continue
                else:
                    self.error = ("truncated_input", f"{self.path.name} has data after its gzip stream that is "
                                  f"not gzip (near byte {self.position - len(pending)})")
                    return
            saved = d.copy()
            try:
                out = d.decompress(pending, _CHUNK)
            except zlib.error as exc:
                at = yield from self._salvage(saved, pending)
                self.error = ("truncated_input", f"{self.path.name} is damaged near byte "
                              f"{self.position - len(pending) + at}: {exc}")
                return
            pending = d.unconsumed_tail
            if d.eof:
                pending, member_done = d.unused_data + pending, True
            if out:
                out_total += len(out)
                yield out
                reason = self._over_limit(out_total)
                if reason:
                    self.error = ("decompression_limit", reason)
                    return

    @staticmethod
    def _salvage(d, data: bytes):
        """Yield what ``d`` gives for ``data`` up to the damage (256 bytes of input a
        step, the failing step again a byte at a time); returns where the damage is."""
        for i in range(0, len(data), 256):
            saved = d.copy()
            try:
                out = d.decompress(data[i:i + 256])
            except zlib.error:
                for j in range(i, min(i + 256, len(data))):
                    try:
                        out = saved.decompress(data[j:j + 1])
                    except zlib.error:
                        return j
                    if out:
                        yield out
                return i
            if out:
                yield out
        return len(data)

    def _over_limit(self, out_total: int) -> str | None:
        lim = self.limits
        if out_total > lim.max_decompressed_bytes:
            return (f"{self.path.name} inflates past {lim.max_decompressed_bytes} bytes "
                    f"(LIVEROOM_MAX_DECOMPRESSED_BYTES); the rest is not read")
        consumed = max(self.position, 1)
        if out_total > lim.ratio_after_bytes and out_total / consumed > lim.max_ratio:
            return (f"{self.path.name} inflates {out_total / consumed:.0f}x (limit {lim.max_ratio:g}x, "
                    f"LIVEROOM_MAX_DECOMPRESSION_RATIO): likely a gzip bomb; the rest is not read")
        return None
