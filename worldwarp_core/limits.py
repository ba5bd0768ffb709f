"""The limits of every input that scales work or memory, and the readers of untrusted text that
enforce them (imported by ``inputs`` and ``cameras``; it imports nothing of the library).

Stated in docs/GUIDE.md ("Files, folders and limits"); the nodes' widget maxima equal them.
"""

from __future__ import annotations

import json
import os

MIN_SIDE = 32
MAX_SIDE = 2048
MAX_PIXELS = 2048 * 1152
MAX_ASPECT = 4  # longer side / shorter side: depth models scale the shorter side to ~518 px
SEED_MAX = 2**31 - 1
MAX_FRAMES = 10_000  # frames of one video (also trajectory.MAX_FRAMES)
MAX_CAMERAS = MAX_FRAMES  # cameras of one camera file
MAX_CAMERA_FILE_BYTES = 16 * 1024 * 1024
MAX_CHUNK_FRAMES = 161  # the chunk_frames widgets' maximum
MAX_HINT_PIXELS = MAX_CHUNK_FRAMES * MAX_PIXELS  # one hint render: the largest chunk at the largest frame
MAX_JSON_INT_DIGITS = 30  # any count or seed fits; a longer integer is refused before it is converted
MAX_JSON_DEPTH = 32


def read_text_file(path: str, what: str, limit: int = MAX_CAMERA_FILE_BYTES, shown: str | None = None) -> str:
    """A UTF-8 text file of at most ``limit`` bytes (refused by its size before it is read); ``shown``
    names it in errors (default: the path)."""
    shown = path if shown is None else shown
    size = os.path.getsize(path)
    if size > limit:
        raise ValueError(f"{shown}: {size:,} bytes; a {what} is at most {limit:,} bytes ({MAX_CAMERAS:,} cameras)")
    with open(path, "rb") as f:
        raw = f.read(limit + 1)
    if len(raw) > limit:  # it grew while read
        raise ValueError(f"{shown}: over {limit:,} bytes; a {what} is at most {limit:,} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{shown}: not a text {what} (byte 0x{raw[e.start]:02x} at offset {e.start} is not UTF-8); "
                         "give a RealEstate10K .txt, a camera JSON or a nerfstudio transforms.json") from None
    del raw
    if "\x00" in text:
        raise ValueError(f"{shown}: not a text {what} (NUL byte at offset {text.index(chr(0))}); "
                         "give a RealEstate10K .txt, a camera JSON or a nerfstudio transforms.json")
    return text


# ----------------------------------------------------------------------------- JSON of untrusted origin
def _json_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_JSON_INT_DIGITS:
        raise ValueError(f"an integer of {digits} digits; numbers have at most {MAX_JSON_INT_DIGITS} digits")
    return int(text)


def _json_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows; send finite numbers")


def _depth(text: str) -> int:
    """The deepest nesting of ``[``/``{`` in JSON text (strings skipped), in one pass."""
    deepest = depth = 0
    in_string = escaped = False
    for c in text:
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth -= 1
    return deepest


def loads_json(text, what: str, bad: str = " is not JSON", allow_nan: bool = False):
    """JSON from an untrusted source (a route body, a widget, a camera file) as Python data, or one
    ``ValueError`` line starting with ``what``: not JSON, NaN/Infinity, an integer longer than
    ``MAX_JSON_INT_DIGITS`` digits, nesting deeper than ``MAX_JSON_DEPTH``. ``bad`` follows ``what``
    when the text is not JSON; ``allow_nan`` reads NaN/Infinity as floats (for a caller that refuses
    them by name)."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"{what}{bad} (byte {e.start} is not UTF-8)") from None
    if _depth(text) > MAX_JSON_DEPTH:
        raise ValueError(f"{what} nests too deeply (more than {MAX_JSON_DEPTH} levels); send flat JSON")
    try:
        if allow_nan:
            return json.loads(text, parse_int=_json_int)
        return json.loads(text, parse_int=_json_int, parse_constant=_json_constant)
    except json.JSONDecodeError as e:
        raise ValueError(f"{what}{bad} (line {e.lineno} column {e.colno}: {e.msg})") from None
    except RecursionError:
        raise ValueError(f"{what} nests too deeply; send flat JSON") from None
    except ValueError as e:  # our integer and NaN refusals
        raise ValueError(f"{what}: {e}") from None


__all__ = [
    "MAX_ASPECT", "MAX_CAMERAS", "MAX_CAMERA_FILE_BYTES", "MAX_CHUNK_FRAMES", "MAX_FRAMES", "MAX_HINT_PIXELS",
    "MAX_JSON_DEPTH", "MAX_JSON_INT_DIGITS", "MAX_PIXELS", "MAX_SIDE", "MIN_SIDE", "SEED_MAX", "loads_json",
    "read_text_file",
]
