"""Corpora larger than memory: the inputs, read as one stream of decoded text.

::

    files, directories, globs ─┐
    tables' text column ───────┼─> one byte stream ─> train part | validation part
    HF datasets (--dataset) ───┘   (split by bytes)

The inputs are read in chunks of a few MB and never held whole. Their concatenation is
one stream of bytes (a newline goes between files that lack one); the validation part is
its last ``val_fraction`` of the bytes (at most ``val_max_bytes``), cut at a character
boundary. :mod:`textrnn.data.cache` turns the parts into token files.
"""

from __future__ import annotations

import codecs
import functools
import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

from ..errors import TextRNNError

CHUNK_BYTES = 8 << 20  # read size: small enough for memory, large enough for numpy to be fast
GLOB_CHARS = set("*?[")  # a path with these is a glob pattern

Report = Optional[Callable[[str, int, int], None]]  # (stage, bytes done, bytes total)


# -- inputs -------------------------------------------------------------------------------
def expand_inputs(specs: Sequence[str | os.PathLike]) -> list[Path]:
    """Files named by ``specs``: files as given, directories' files (recursively, hidden
    ones skipped, in sorted order), and glob patterns (``corpus/*.txt``, ``**/*.md``)."""
    files: list[Path] = []
    for spec in specs:
        p = Path(spec)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file()
                           and not any(part.startswith(".") for part in f.relative_to(p).parts))
            if not found:
                raise TextRNNError(f"{p}: the directory has no files; give a folder of text files")
            files += found
        elif p.exists():
            files.append(p)
        elif GLOB_CHARS & set(str(spec)):
            found = sorted(Path(f) for f in glob.glob(str(spec), recursive=True) if Path(f).is_file())
            if not found:
                raise TextRNNError(f"{spec}: no file matches this pattern; check the pattern and quote it")
            files += found
        else:
            raise TextRNNError(f"{p}: no such file; check the path")
    if not files:
        raise TextRNNError("no corpus given; pass a text file")
    return files


# -- decoding -----------------------------------------------------------------------------
def lookup_codec(encoding: str) -> str:
    """The canonical name of ``encoding`` (``utf8`` -> ``utf-8``); unknown ones are a user error."""
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise TextRNNError(f"--encoding: unknown encoding {encoding!r}; try utf-8, cp1252 or latin-1") from None


def stream_codec(encoding: str) -> str:
    """The codec to read a corpus in: an ASCII-compatible one, as the stream is cut by bytes."""
    name = lookup_codec(encoding)
    if "16" in name or "32" in name:
        raise TextRNNError(f"--encoding {encoding}: corpora are read as a byte stream and must use an "
                           f"ASCII-compatible encoding; convert the files to UTF-8 (iconv -f {name} -t utf-8)")
    return name


def binary_error(name: str) -> TextRNNError:
    return TextRNNError(f"{name}: looks like a binary file (NUL bytes); give a text file")


def decode_error(name: str, codec: str, offset: int, line: int) -> TextRNNError:
    return TextRNNError(f"{name}: not valid {codec} at byte {offset} (line {line}); "
                        f"pass --encoding (e.g. --encoding cp1252 or --encoding latin-1)")


def decoded_blocks(path: Path, codec: str, start: int = 0, end: Optional[int] = None) -> Iterator[tuple[str, int]]:
    """The text of bytes ``[start, end)`` (default: to the end) of ``path``, decoded block by
    block, with the bytes each block read. A character cut by a block's end is held back
    for the next; invalid bytes and NUL characters are user errors naming the place."""
    decoder = codecs.getincrementaldecoder(codec)()
    try:
        f = open(path, "rb")
    except OSError as e:
        raise TextRNNError(f"{path}: cannot read ({e.strerror})") from None
    with f:
        end = os.fstat(f.fileno()).st_size if end is None else end
        f.seek(start)
        pos = start
        while pos < end and (block := f.read(min(CHUNK_BYTES, end - pos))):
            held = len(decoder.getstate()[0])  # bytes of a character begun in the block before
            try:
                text = decoder.decode(block, final=pos + len(block) >= end)
            except UnicodeDecodeError as e:  # (e.start counts from the held bytes)
                offset = pos - held + e.start
                raise decode_error(str(path), codec, offset, _line_at(path, offset)) from None
            if "\x00" in text:
                raise binary_error(str(path))
            pos += len(block)
            yield text, len(block)


def _line_at(path: Path, offset: int) -> int:
    """The 1-based line of byte ``offset`` of ``path`` (read only on the error path)."""
    line = 1
    with open(path, "rb") as f:
        left = offset
        while left > 0 and (block := f.read(min(CHUNK_BYTES, left))):
            line += block.count(b"\n")
            left -= len(block)
    return line


# -- the byte stream ----------------------------------------------------------------------
@dataclass
class Segment:
    """Bytes ``[start, end)`` of ``path`` (or the literal ``data``) in the corpus stream."""

    path: Optional[Path]
    start: int
    end: int
    codec: str = "utf-8"
    data: bytes = b""

    @property
    def size(self) -> int:
        return self.end - self.start


def segments(files: Sequence[tuple[Path, str]]) -> list[Segment]:
    """The corpus as one byte stream: each file (BOM dropped) in its codec, a newline
    between files that do not end with one."""
    segs: list[Segment] = []
    for path, codec in files:
        start = text_start(path, codec)
        try:
            size = path.stat().st_size
            with open(path, "rb") as f:
                f.seek(max(0, size - 1))
                last = f.read(1)
        except OSError as e:
            raise TextRNNError(f"{path}: cannot read ({e.strerror})") from None
        if size <= start:
            continue
        segs.append(Segment(path, start, size, codec))
        if last != b"\n":
            segs.append(Segment(None, 0, 1, codec, b"\n"))
    return segs


def text_start(path: Path, codec: str) -> int:
    """Where the text of ``path`` starts: past a UTF-8 BOM, if any. A file with NUL bytes near
    its start is a binary file, a user error."""
    try:
        with open(path, "rb") as f:
            head = f.read(8192)
    except OSError as e:
        raise TextRNNError(f"{path}: cannot read ({e.strerror})") from None
    if b"\x00" in head:
        raise binary_error(str(path))
    return len(codecs.BOM_UTF8) if codec == "utf-8" and head.startswith(codecs.BOM_UTF8) else 0


def total_bytes(segs: Sequence[Segment]) -> int:
    return sum(s.size for s in segs)


def split_tail(segs: list[Segment], val_fraction: float,
               val_max_bytes: Optional[int] = None) -> tuple[list[Segment], list[Segment]]:
    """The stream cut into its training part and its validation part: the last
    ``val_fraction`` of its bytes (at most ``val_max_bytes``), cut at a character boundary."""
    total = total_bytes(segs)
    held = int(round(total * val_fraction))
    if val_max_bytes:
        held = min(held, val_max_bytes)
    return _cut(segs, total - held)


def _cut(segs: list[Segment], at: int) -> tuple[list[Segment], list[Segment]]:
    """Split the stream at byte ``at``, moved forward to a character boundary: past UTF-8
    continuation bytes, or in other codecs (where a byte inside a multi-byte character
    can look like anything but a newline) to just after the next newline."""
    before, after, pos = [], [], 0
    for s in segs:
        if pos + s.size <= at:
            before.append(s)
        elif pos >= at:
            after.append(s)
        else:
            k = s.start + (at - pos)
            if s.path is not None:
                k = _boundary(s, k)
            if k > s.start:
                before.append(Segment(s.path, s.start, k, s.codec, s.data[: k - s.start]))
            if k < s.end:
                after.append(Segment(s.path, k, s.end, s.codec, s.data[k - s.start:]))
        pos += s.size
    return before, after


def _boundary(seg: Segment, k: int) -> int:
    """The first character boundary of ``seg``'s file at or after byte ``k``."""
    with open(seg.path, "rb") as f:
        f.seek(k)
        if seg.codec.startswith("utf-8"):  # (utf-8-sig too)
            ahead = f.read(4)
            return k + next((i for i, b in enumerate(ahead) if b & 0xC0 != 0x80), len(ahead))
        if _single_byte(seg.codec):
            return k
        while k < seg.end and (block := f.read(min(1 << 16, seg.end - k))):
            nl = block.find(b"\n")
            if nl >= 0:
                return k + nl + 1
            k += len(block)
        return seg.end


@functools.lru_cache(maxsize=None)
def _single_byte(codec: str) -> bool:
    """Whether every byte is a character of its own in ``codec`` (cp1252, latin-1, koi8-r...)."""
    return len(bytes(range(256)).decode(codec, "replace")) == 256


def _decoded(seg: Segment) -> Iterator[tuple[str, int]]:
    """Decoded text of one segment, block by block, with the bytes each block read."""
    if seg.path is None:
        yield seg.data.decode(seg.codec), seg.size
    else:
        yield from decoded_blocks(seg.path, seg.codec, seg.start, seg.end)


def read_stream(segs: Sequence[Segment], report: Report = None, stage: str = "read",
                aligned: bool = True) -> Iterator[str]:
    """Decoded text of ``segs`` in chunks of about ``CHUNK_BYTES``. With ``aligned`` they end
    after a newline (but for the last, or a line longer than a chunk), so word and BPE
    pieces never split a word; chars need no alignment (and skip its copies)."""
    total, done, pending = total_bytes(segs), 0, ""
    for seg in segs:
        for text, used in _decoded(seg):
            done += used
            if not aligned:
                if report:
                    report(stage, done, total)
                yield text
                continue
            chunk = pending + text
            nl = chunk.rfind("\n") + 1
            if nl == 0 and len(chunk) < CHUNK_BYTES:
                pending = chunk
                continue
            chunk, pending = (chunk[:nl], chunk[nl:]) if nl else (chunk, "")
            if report:
                report(stage, done, total)
            yield chunk
    if pending:
        yield pending
    if report:
        report(stage, done, total)


def nonblank(seg: Segment) -> bool:
    """Whether ``seg`` has any non-whitespace byte (read lazily, stops at the first)."""
    if seg.path is None:
        return bool(seg.data.strip())
    with open(seg.path, "rb") as f:
        f.seek(seg.start)
        pos = seg.start
        while pos < seg.end and (block := f.read(min(1 << 16, seg.end - pos))):
            if block.strip():
                return True
            pos += len(block)
    return False
