"""Probing staged inputs before a provider is paid: what the media really is.

Images are read with Pillow, videos with PyAV, both through `S3RangeReader`: a read-only,
seekable file object over ranged GETs of the staged S3 object, holding at most a couple of
blocks. A video is never downloaded whole: the MP4 demuxer reads the header atoms, seeks
over `mdat` to a `moov` at the end if need be, and reads a few packets of stream info.

Pillow and PyAV are imported only here, and only when a probe runs (cold starts).
The universal limits (size, duration, pixels, aspect ratio) are checked in
`motionrelay.validation`; this module only states facts or says the bytes are unreadable.
An S3 error while reading (botocore ClientError/BotoCoreError, throttling) is not a fact about
the bytes: it propagates as it is (a 500 the client may retry), never as `unsupported_media`.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from motionrelay.domain.errors import InputTooLarge, UnsupportedMedia
from motionrelay.domain.media import MediaFacts

if TYPE_CHECKING:
    from motionrelay.infra.blobs import StoredObject

BLOCK_SIZE = 256 * 1024
MAX_BLOCKS = 2  # the head and one other place (the moov atom at the end) stay cached
# A probe that needs more than this is not a well-formed input; it also bounds the time spent.
FETCH_BUDGET_BYTES = 32 * 1024 * 1024
# Demuxers by sniffed type: forcing one stops FFmpeg from probing other formats
# (playlists and the like could make it open further resources).
_DEMUXERS = {"video/mp4": "mov", "video/quicktime": "mov", "video/x-matroska": "matroska"}
_VIDEO_FORMATS = {"video/mp4": "mp4", "video/quicktime": "mov", "video/x-matroska": "mkv"}
_IMAGE_FORMATS = {"PNG": "png", "JPEG": "jpeg"}


class ProbeBudgetExceeded(Exception):
    """The probe wanted to read more of the object than FETCH_BUDGET_BYTES."""


class S3RangeReader(io.RawIOBase):
    """A seekable, read-only view of one S3 object, fetched in aligned blocks by ranged GET.

    Holds at most `max_blocks` blocks; `bytes_fetched`, `requests` and `max_bytes_held`
    say what it cost (tests assert on them)."""

    def __init__(self, key: str, size: int, *, block_size: int = BLOCK_SIZE, max_blocks: int = MAX_BLOCKS,
                 budget: int | None = None, s3: Any = None) -> None:
        super().__init__()
        self.key = key
        self.size = size
        self.block_size = block_size
        self.max_blocks = max_blocks
        self.budget = budget or FETCH_BUDGET_BYTES
        self._s3 = s3  # None: the shared client (blobs.read_range)
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        self._pos = 0
        self.bytes_fetched = 0
        self.requests = 0
        self.max_bytes_held = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}.get(whence)
        if base is None:
            raise ValueError(f"unsupported whence {whence}")
        position = base + offset
        if position < 0:
            raise ValueError("negative seek position")
        self._pos = position
        return position

    def _block(self, index: int) -> bytes:
        block = self._blocks.get(index)
        if block is not None:
            self._blocks.move_to_end(index)
            return block
        start = index * self.block_size
        end = min(start + self.block_size, self.size) - 1
        if self.bytes_fetched + (end - start + 1) > self.budget:
            raise ProbeBudgetExceeded(self.key)
        from motionrelay.infra.blobs import read_range

        block = read_range(self.key, start, end, s3=self._s3)
        self.requests += 1
        self.bytes_fetched += len(block)
        self._blocks[index] = block
        while len(self._blocks) > self.max_blocks:
            self._blocks.popitem(last=False)
        self.max_bytes_held = max(self.max_bytes_held, sum(len(b) for b in self._blocks.values()))
        return block

    def read(self, size: int | None = -1) -> bytes:
        # Unlike a raw read, this fills the request up to EOF: parsers expect read(n) == n bytes.
        if size is None or size < 0:
            size = self.size - self._pos
        size = max(0, min(size, self.size - self._pos))
        out = bytearray()
        while len(out) < size:
            index, offset = divmod(self._pos, self.block_size)
            block = self._block(index)
            piece = block[offset:offset + size - len(out)]
            if not piece:
                break  # the object is shorter than its HEAD said
            out += piece
            self._pos += len(piece)
        return bytes(out)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


def probe_stored(kind: str, stored: StoredObject, *, block_size: int = BLOCK_SIZE) -> MediaFacts:
    """Probe a staged object; `stored.content_type` is the sniffed type."""
    reader = S3RangeReader(stored.key, stored.size_bytes, block_size=block_size)
    try:
        if kind == "image":
            return probe_image(reader, stored.size_bytes, field=kind)
        return probe_video(reader, stored.size_bytes, stored.content_type, field=kind)
    except ProbeBudgetExceeded as exc:
        raise UnsupportedMedia(f"'{kind}' could not be read within {FETCH_BUDGET_BYTES // (1024 * 1024)} MB; "
                               "re-encode it as a standard MP4/MOV (or PNG/JPEG) file.", field=kind) from exc
    finally:
        reader.close()


def probe_image(fp: Any, size_bytes: int, *, field: str = "image") -> MediaFacts:
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fp, formats=list(_IMAGE_FORMATS)) as image:
                fmt, (width, height) = image.format, image.size
                # Decode-check without a full-size bitmap: PNG chunk CRCs, JPEG at 1/8 scale.
                if fmt == "JPEG":
                    image.draft("RGB", (max(1, width // 8), max(1, height // 8)))
                    image.load()
                else:
                    image.verify()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputTooLarge(f"'{field}' has too many pixels; scale it down (for example to 4096 px "
                            "on the long side).", field=field) from exc
    except ProbeBudgetExceeded:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for bad input
        _reraise_infrastructure(exc)
        raise UnsupportedMedia(f"'{field}' is not a readable PNG or JPEG image (damaged or truncated); "
                               "send a valid PNG or JPEG.", field=field) from exc
    return MediaFacts(kind="image", format=_IMAGE_FORMATS[fmt], width=width, height=height,
                      size_bytes=size_bytes)


def probe_video(fp: Any, size_bytes: int, content_type: str, *, field: str = "video") -> MediaFacts:
    import av

    demuxer = _DEMUXERS.get(content_type)
    if demuxer is None:
        raise UnsupportedMedia(f"'{field}' must be an MP4 or MOV video.", field=field)
    if demuxer == "mov" and not _atoms_complete(fp, size_bytes):
        # With the moov atom first, a cut-off file still demuxes: its atoms give it away.
        raise UnsupportedMedia(f"'{field}' is truncated (its last MP4 atom ends past the end of the file); "
                               "send the complete file.", field=field)
    fp.seek(0)
    try:
        with av.open(fp, mode="r", format=demuxer) as container:
            if not container.streams.video:
                raise UnsupportedMedia(f"'{field}' has no readable video track; send an MP4 or MOV "
                                       "with a video track (not audio only).", field=field)
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            duration = _duration(container, stream)
            has_audio = bool(container.streams.audio)
    except (UnsupportedMedia, ProbeBudgetExceeded):
        raise
    except Exception as exc:  # noqa: BLE001 - FFmpeg errors, and whatever a damaged file causes
        _reraise_infrastructure(exc)
        raise UnsupportedMedia(f"'{field}' is not a readable MP4 or MOV video (damaged or truncated); "
                               "send a valid MP4 or MOV.", field=field) from exc
    if not width or not height or duration is None:
        raise UnsupportedMedia(f"'{field}' does not state its size or duration; re-encode it as a "
                               "standard MP4.", field=field)
    return MediaFacts(kind="video", format=_VIDEO_FORMATS[content_type], width=width, height=height,
                      size_bytes=size_bytes, duration=duration, has_audio=has_audio)


def _reraise_infrastructure(exc: Exception) -> None:
    """Raise `exc` again if it is not about the bytes but about reading them: S3 (botocore)
    errors from the ranged reader, throttling included, are ours to retry (a 500), never a
    verdict on the client's media. Pillow and PyAV pass a reader's exception through as it was
    raised; one they wrap is found by its cause/context chain."""
    from motionrelay.infra.blobs import is_storage_error

    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return
        if is_storage_error(seen):
            raise exc
        seen = seen.__cause__ or seen.__context__


def _atoms_complete(fp: Any, size: int, max_atoms: int = 1000) -> bool:
    """Walk the top-level MP4/MOV atoms (8-16 bytes read per atom): each must fit the file."""
    import struct

    position = 0
    for _ in range(max_atoms):
        if position == size:
            return True
        fp.seek(position)
        header = fp.read(8)
        if len(header) < 8:
            return True  # a few bytes of trailing padding, not an atom
        length = struct.unpack(">I", header[:4])[0]
        if length == 1:  # 64-bit size follows the type
            large = fp.read(8)
            if len(large) < 8:
                return False
            length = struct.unpack(">Q", large)[0]
        elif length == 0:  # the atom runs to the end of the file
            return True
        if length < 8 or position + length > size:
            return False
        position += length
    return True  # very many atoms: leave the rest to the demuxer


def _duration(container: Any, stream: Any) -> float | None:
    """Seconds, from the container header, else from the video stream."""
    if container.duration is not None and container.duration > 0:
        return container.duration / 1_000_000  # AV_TIME_BASE
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return None
