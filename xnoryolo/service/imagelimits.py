"""Image dimensions read from the first bytes of an encoded image, so that a picture too large
to decode is refused before a single pixel is allocated (a few-MB PNG of zeros can decode to
gigabytes).

`image_size` knows the formats OpenCV decodes for the service (JPEG, PNG, GIF, BMP, WebP, TIFF,
PNM); `check_image` answers the size or raises `ImageRefused` with a one-line reason, also for
a format it does not know (an unknown header cannot be bounded, so it is not decoded)."""

from __future__ import annotations

import struct

# OpenCV's own per-side limit (CV_IO_MAX_IMAGE_WIDTH/HEIGHT): beyond it imdecode fails.
MAX_SIDE = 1 << 20

FORMATS = "JPEG, PNG, GIF, BMP, WebP, TIFF or PNM"


class ImageRefused(ValueError):
    """An image not to decode; `too_large` tells a size refusal (413) from a bad one (400)."""

    def __init__(self, message: str, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


def _png(data: bytes) -> tuple[int, int] | None:
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    w, h = struct.unpack(">II", data[16:24])
    return int(w), int(h)


# SOF markers carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg(data: bytes) -> tuple[int, int] | None:
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # no length
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image or scan before any frame header
            return None
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _SOF:
            if i + 9 > n:
                return None
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return int(w), int(h)
        if length < 2:
            return None
        i += 2 + length
    return None


def _gif(data: bytes) -> tuple[int, int] | None:
    if len(data) < 10:
        return None
    w, h = struct.unpack("<HH", data[6:10])
    return int(w), int(h)


def _bmp(data: bytes) -> tuple[int, int] | None:
    if len(data) < 26:
        return None
    (header,) = struct.unpack("<I", data[14:18])
    if header == 12:  # BITMAPCOREHEADER
        w, h = struct.unpack("<HH", data[18:22])
        return int(w), int(h)
    w, h = struct.unpack("<ii", data[18:26])
    return abs(int(w)), abs(int(h))  # a negative height means top-down rows


def _webp(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return w, h
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        w, h = struct.unpack("<HH", data[26:30])
        return int(w) & 0x3FFF, int(h) & 0x3FFF
    return None


def _tiff(data: bytes) -> tuple[int, int] | None:
    end = "<" if data[:2] == b"II" else ">"
    if len(data) < 8:
        return None
    (ifd,) = struct.unpack(end + "I", data[4:8])
    if ifd + 2 > len(data):
        return None
    (count,) = struct.unpack(end + "H", data[ifd : ifd + 2])
    size: dict[int, int] = {}
    for k in range(count):
        at = ifd + 2 + 12 * k
        if at + 12 > len(data):
            break
        tag, kind = struct.unpack(end + "HH", data[at : at + 4])
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT or LONG
            if kind == 3:
                (value,) = struct.unpack(end + "H", data[at + 8 : at + 10])
            else:
                (value,) = struct.unpack(end + "I", data[at + 8 : at + 12])
            size[tag] = int(value)
    if 256 in size and 257 in size:
        return size[256], size[257]
    return None


def _pnm(data: bytes) -> tuple[int, int] | None:
    # "P6 <ws> width <ws> height ...", with #-comments anywhere between the tokens.
    tokens: list[bytes] = []
    i, n = 2, min(len(data), 4096)
    while len(tokens) < 2 and i < n:
        c = data[i : i + 1]
        if c.isspace():
            i += 1
        elif c == b"#":
            while i < n and data[i : i + 1] not in (b"\n", b"\r"):
                i += 1
        else:
            j = i
            while j < n and not data[j : j + 1].isspace() and data[j : j + 1] != b"#":
                j += 1
            tokens.append(data[i:j])
            i = j
    if len(tokens) < 2 or not all(t.isdigit() and len(t) < 12 for t in tokens):
        return None
    return int(tokens[0]), int(tokens[1])


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header of an encoded image, or None where the format is not
    one of `FORMATS` or its header is cut short or malformed."""
    # JPEG's frame header may follow long EXIF and ICC segments, and a TIFF's first IFD may
    # sit at the end of the file: both are found by offsets, without copying the data.
    head = bytes(data[:4096])
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return _png(head)
    if head.startswith(b"\xff\xd8"):
        return _jpeg(data)
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return _gif(head)
    if head.startswith(b"BM"):
        return _bmp(head)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _webp(head)
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return _tiff(data)
    if len(head) > 2 and head[0:1] == b"P" and head[1:2] in b"123456":
        return _pnm(head)
    return None


def check_size(width: int, height: int, max_pixels: int, what: str = "the image") -> None:
    """ImageRefused (too large) when a `width` x `height` picture is beyond the limits."""
    if width < 1 or height < 1:
        raise ImageRefused(f"{what} declares a size of {width}x{height}")
    if width > MAX_SIDE or height > MAX_SIDE:
        raise ImageRefused(
            f"{what} is {width}x{height}: a side over {MAX_SIDE} pixels cannot be decoded",
            too_large=True,
        )
    if width * height > max_pixels:
        raise ImageRefused(
            f"{what} is {width}x{height} ({width * height} pixels), over the limit of "
            f"{max_pixels} (limits.max_pixels)",
            too_large=True,
        )


def check_image(data: bytes, max_pixels: int) -> tuple[int, int]:
    """The (width, height) of an encoded image small enough to decode; ImageRefused if its
    header cannot be read or its size is beyond the limits."""
    size = image_size(data)
    if size is None:
        raise ImageRefused(f"not a readable image header (send {FORMATS})")
    check_size(*size, max_pixels)
    return size
