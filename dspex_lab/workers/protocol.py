"""The wire protocol between the kernel and its workers: framing and codec choice live here.

    >>> from dspex_lab.workers import protocol
    >>> data = protocol.pack({"id": 7, "op": "run", "df": df})   # df travels as Arrow IPC
    >>> protocol.unpack(data)["id"]
    7
    >>> protocol.send(conn, {"id": 8, "fn": my_notebook_function})  # fn travels cloudpickled
    >>> reply = protocol.recv(conn)

A message is a dict (the header). Its values may hold pandas DataFrames/Series and pyarrow
Tables/RecordBatches (Arrow IPC attachments, read back zero-copy) and any other Python object:
functions, DSPy modules, instances (cloudpickled attachments, numpy buffers out-of-band); see
``dspex_lab.exchange.objects``. Formats (``fmt``):

* ``None`` (auto): msgpack header; attachments inline, or in shared memory when they add up to
  ``SHM_THRESHOLD`` bytes or more (only a segment name travels; ``send`` never uses shared
  memory on a non-Unix socket, whose peer may be on another machine).
* ``"arrow"``: as auto, attachments always inline. ``"shm"``: attachments always in shared
  memory. A shared-memory frame can be unpacked once (the receiver unlinks the segment); call
  ``discard(data)`` for a packed frame you will not deliver.
* ``"msgpack"`` / ``"json"``: header only; a value that would need an attachment is refused
  with a ``TypeError`` naming its key. JSON turns tuples into lists.
* ``"pickle"``: the whole message cloudpickled. Like every frame, only from trusted peers.

Frame layout, integers big-endian::

    0   2 bytes  magic b"DX"            garbage is recognised on the first bytes
    2   1 byte   version (1)
    3   1 byte   type: J json, M msgpack + inline attachments, S msgpack + shm, P pickle
    4   4 bytes  header length H
    8   8 bytes  body length B (everything after these 16 bytes)
    16  H bytes  header; then zero padding: attachments start 64-byte aligned in the frame

An M/S header is two msgpack objects: ``[shm name or None, region size, descriptors]`` then
the message, where an attachment is ext type 1 (its index) and a tuple ext type 2. The
message ``"id"`` is readable without touching attachments (``frame_info``); a P header holds
only the id.
"""

from __future__ import annotations

import json
import pickle
import pickletools
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import msgpack

from dspex_lab.errors import ProtocolError
from dspex_lab.exchange import exceptions, objects, pickling, shm
from dspex_lab.exchange.exceptions import RemoteTraceback
from dspex_lab.redaction import redact, redact_exception

__all__ = [
    "FORMATS", "MAX_FRAME_SIZE", "SHM_THRESHOLD", "FrameInfo", "FrameReader",
    "RemoteTraceback", "check_pickle", "discard", "error_message", "frame_info", "is_error",
    "pack", "raise_remote", "recv", "remote_exception", "send", "unpack",
]

FORMATS = ("json", "msgpack", "arrow", "pickle", "shm")
SHM_THRESHOLD = 8 * 1024 * 1024      # attachments of this many bytes or more go through shm
MAX_FRAME_SIZE = 1 << 32             # a longer frame is refused as a lie about its size

MAGIC, VERSION = b"DX", 1
PREFIX = struct.Struct(">2sBBIQ")
JSON, MSGPACK, SHM, PICKLE = b"J", b"M", b"S", b"P"
_TYPES = {JSON[0]: "json", MSGPACK[0]: "msgpack", SHM[0]: "shm", PICKLE[0]: "pickle"}
EXT_ATTACHMENT, EXT_TUPLE = 1, 2
_ALIGN = 64


def _aligned(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


# ----------------------------------------------------------------------------- encoding

class _Unencodable(Exception):
    def __init__(self, value: Any, reason: str) -> None:
        self.value, self.reason = value, reason


class _Encoder:
    """Packs one message with msgpack, collecting attachments (unless ``attach`` is False)."""

    def __init__(self, attach: bool) -> None:
        self.attach = attach
        self.writers: list[Callable[[memoryview], None]] = []
        self.descriptors: list[list] = []    # [kind, offset, size, meta]
        self.region = 0
        self._seen: dict[int, tuple[int, Any]] = {}   # id(obj) -> (index, obj kept alive)

    def packb(self, obj: Any) -> bytes:
        return msgpack.packb(obj, default=self.default, strict_types=True, use_bin_type=True,
                             datetime=False)

    def default(self, obj: Any) -> Any:
        if type(obj) is tuple:
            return msgpack.ExtType(EXT_TUPLE, self.packb(list(obj)))
        if not self.attach:
            raise _Unencodable(obj, f"a {type(obj).__name__} needs an attachment")
        if id(obj) not in self._seen:
            self._seen[id(obj)] = (self._attach(obj), obj)
        return msgpack.ExtType(EXT_ATTACHMENT, self._seen[id(obj)][0].to_bytes(4, "big"))

    def _attach(self, obj: Any) -> int:
        try:
            payload, buffers = objects.encode(obj)
        except TypeError as exc:
            raise _Unencodable(obj, str(exc)) from exc
        indices = [self._add("buffer", b.nbytes, objects.copier(b), None) for b in buffers]
        meta = indices if payload.kind == "pickle" else payload.meta
        return self._add(payload.kind, payload.size, payload.write, meta)

    def _add(self, kind: str, size: int, write: Callable, meta: Any) -> int:
        self.region = _aligned(self.region)
        self.descriptors.append([kind, self.region, size, meta])
        self.writers.append(write)
        self.region += size
        return len(self.descriptors) - 1

    def write(self, region: memoryview) -> None:
        """Write the attachments into ``region`` (a memoryview of ``self.region`` bytes)."""
        end = 0
        for (_, offset, size, _), write in zip(self.descriptors, self.writers, strict=True):
            region[end:offset] = bytes(offset - end)   # zero padding, never stale memory
            write(region[offset:offset + size])
            end = offset + size

    def write_file(self, file: Any) -> None:
        """Write the attachments into a new, zero-filled file (a shared-memory segment)."""
        for (_, offset, _, _), write in zip(self.descriptors, self.writers, strict=True):
            file.seek(offset)
            write(file)


def _encode(message: Any, fmt: str | None) -> tuple[Any, str | None]:
    """Return (frame as bytes or a pa.Buffer, shm segment name or None)."""
    if fmt not in (None, *FORMATS):
        raise ValueError(f"Unknown wire format {fmt!r}; use one of {', '.join(FORMATS)} "
                         "or None for automatic.")
    if fmt == "pickle":
        try:
            body = pickling.dumps(message, protocol=5)
        except Exception as exc:
            raise TypeError(f"This message cannot be pickled ({type(exc).__name__}: {exc}); "
                            "remove the offending value or send it with fmt=None.") from exc
        return _frame(PICKLE, _id_header(message), body), None
    if fmt == "json":
        return _frame(JSON, _json_header(message), b""), None
    encoder = _Encoder(attach=fmt != "msgpack")
    try:
        body = encoder.packb(message)
    except _Unencodable as exc:
        raise TypeError(_refusal(_path_of(message, exc.value, "message"), exc.value,
                                 exc.reason, fmt)) from None
    except (OverflowError, ValueError) as exc:   # e.g. nesting deeper than msgpack allows
        raise TypeError(f"This message cannot be packed with msgpack ({exc}); send it with "
                        "fmt='pickle'.") from exc
    big = fmt is None and encoder.region >= SHM_THRESHOLD
    name = shm.new_segment_name() if encoder.writers and (fmt == "shm" or big) else None
    header = msgpack.packb([name, encoder.region, encoder.descriptors]) + body
    if not encoder.writers:
        return _frame(MSGPACK, header, b""), None
    if name is not None:
        with shm.create_segment(name, encoder.region) as file:
            encoder.write_file(file)
        return _frame(SHM, header, b""), name
    return _inline_frame(header, encoder), None


def _id_header(message: Any) -> bytes:
    """The message id, msgpacked, so that pickle frames too show it without unpickling."""
    try:
        return msgpack.packb(message.get("id") if isinstance(message, dict) else None)
    except (TypeError, ValueError, OverflowError):
        return msgpack.packb(None)


def _frame(kind: bytes, header: bytes, body: bytes) -> bytes:
    prefix = PREFIX.pack(MAGIC, VERSION, kind[0], len(header), len(header) + len(body))
    return prefix + header + body


def _inline_frame(header: bytes, encoder: _Encoder) -> Any:
    start = _aligned(PREFIX.size + len(header))
    frame = _alloc(start + encoder.region)
    view = memoryview(frame).cast("B")
    view[:PREFIX.size] = PREFIX.pack(MAGIC, VERSION, MSGPACK[0], len(header),
                                     start + encoder.region - PREFIX.size)
    view[PREFIX.size:PREFIX.size + len(header)] = header
    view[PREFIX.size + len(header):start] = bytes(start - PREFIX.size - len(header))
    encoder.write(view[start:])
    return frame


def _alloc(size: int) -> Any:
    """A writable buffer; Arrow's allocator for big ones (no zero-filling, 64-byte aligned)."""
    if size < (1 << 20):
        return bytearray(size)
    import pyarrow as pa

    return pa.allocate_buffer(size)


def _json_header(message: Any) -> bytes:
    try:
        problem = _json_problem(message, "message")
    except RecursionError:
        problem = "This message is nested too deeply or refers to itself; JSON cannot hold it."
    if problem:
        raise TypeError(problem)
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()


def _json_problem(value: Any, path: str) -> str | None:
    kind = type(value)
    if value is None or kind in (str, int, float, bool):
        return None
    if kind in (list, tuple):
        return next((p for i, v in enumerate(value) if (p := _json_problem(v, f"{path}[{i}]"))),
                    None)
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                return (f"{path} has the key {key!r} ({type(key).__name__}); JSON keys must be "
                        "strings. Use fmt=None (msgpack) or convert the key with str().")
            if problem := _json_problem(item, f"{path}[{key!r}]"):
                return problem
        return None
    return _refusal(path, value, "it is not JSON-serializable", "json")


def _refusal(path: str | None, value: Any, reason: str, fmt: str | None) -> str:
    hint = ("send it with fmt=None so it travels as an Arrow or cloudpickle attachment"
            if fmt in ("json", "msgpack") else "remove it or make it picklable")
    return (f"Cannot send {path or 'a value of the message'} = {type(value).__name__} with "
            f"fmt={fmt!r}: {reason}; {hint}.")


def _path_of(container: Any, target: Any, path: str, seen: set | None = None) -> str | None:
    """Where ``target`` sits inside ``container``, e.g. "message['args'][2]"."""
    if container is target:
        return path
    seen = set() if seen is None else seen
    if id(container) in seen:
        return None
    seen.add(id(container))
    if type(container) in (list, tuple):
        items: Any = enumerate(container)
    elif isinstance(container, dict):
        items = container.items()
    else:
        return None
    return next((p for key, item in items
                 if (p := _path_of(item, target, f"{path}[{key!r}]", seen))), None)


# ----------------------------------------------------------------------------- decoding

@dataclass(frozen=True)
class FrameInfo:
    """What a frame's prefix and header say, read without decoding attachments."""

    kind: str
    size: int
    id: Any = None
    shm: str | None = None


def _parse_prefix(prefix: Any) -> tuple[int, int, int]:
    """Validate a 16-byte prefix; return (type byte, header length, body length)."""
    magic, version, kind, header_len, body_len = PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise ProtocolError(f"Not a dspex frame: it starts with {bytes(prefix[:2])!r}, not "
                            f"{MAGIC!r}. The peer does not speak this protocol or the stream "
                            "is out of step; reconnect.")
    if version != VERSION:
        raise ProtocolError(f"Frame version {version} is not supported (this side speaks "
                            f"{VERSION}); run the same dspex_lab version on both sides.")
    if kind not in _TYPES:
        raise ProtocolError(f"Unknown frame type byte 0x{kind:02x}; expected one of "
                            f"{', '.join(repr(chr(t)) for t in _TYPES)}.")
    if header_len > body_len or body_len > MAX_FRAME_SIZE:
        raise ProtocolError(f"Frame lengths are inconsistent (header {header_len}, body "
                            f"{body_len} bytes, limit {MAX_FRAME_SIZE}); the frame is corrupt.")
    return kind, header_len, body_len


def _split(data: Any) -> tuple[int, memoryview, memoryview]:
    """Check that ``data`` is exactly one frame; return (type byte, header, attachment region)."""
    view = memoryview(data).cast("B")
    if view.nbytes < PREFIX.size:
        raise ProtocolError(f"Truncated frame: {view.nbytes} bytes, shorter than the "
                            f"{PREFIX.size}-byte prefix.")
    kind, header_len, body_len = _parse_prefix(view[:PREFIX.size])
    if view.nbytes != PREFIX.size + body_len:
        what = "Truncated" if view.nbytes < PREFIX.size + body_len else "Oversized"
        raise ProtocolError(f"{what} frame: the prefix announces {PREFIX.size + body_len} "
                            f"bytes but {view.nbytes} arrived.")
    header_end = PREFIX.size + header_len
    region = view[_aligned(header_end):] if kind == MSGPACK[0] else view[header_end:]
    return kind, view[PREFIX.size:header_end], region


def unpack(data: Any) -> Any:
    """Decode one complete frame (any bytes-like object); the inverse of ``pack``.

    Raises ``ProtocolError`` for anything that is not exactly one valid frame. Tables share
    the frame's memory (zero-copy).
    """
    kind, header, rest = _split(data)
    try:
        if kind == PICKLE[0]:
            check_pickle(rest)
            return pickle.loads(rest)
        if kind == JSON[0]:
            return json.loads(bytes(header))
        return _Decoder(header, rest, kind == SHM[0]).decode()
    except ProtocolError:
        raise
    except Exception as exc:
        raise ProtocolError(f"Cannot decode a {_TYPES[kind]} frame of {memoryview(data).nbytes}"
                            f" bytes: {type(exc).__name__}: {exc}") from exc


def frame_info(data: Any) -> FrameInfo:
    """Type, size, message ``id`` and shm segment of a frame, without decoding attachments."""
    kind, header, _ = _split(data)
    size, name = memoryview(data).nbytes, None
    try:
        if kind == JSON[0]:
            message = json.loads(bytes(header))
        elif kind == PICKLE[0]:
            message = {"id": msgpack.unpackb(header) if header.nbytes else None}
        else:
            unpacker = _unpacker(header, lambda code, raw: None)
            name = unpacker.unpack()[0]
            message = unpacker.unpack()
    except Exception as exc:
        raise ProtocolError(f"Cannot read the header of a {_TYPES[kind]} frame: {exc}") from exc
    msg_id = message.get("id") if isinstance(message, dict) else None
    return FrameInfo(_TYPES[kind], size, msg_id, name if isinstance(name, str) else None)


def discard(data: Any) -> None:
    """Release the shared memory of a packed frame that will never be unpacked."""
    info = frame_info(data)
    if info.shm:
        shm.unlink_segment(info.shm)


def _unpacker(header: memoryview, hook: Callable) -> msgpack.Unpacker:
    unpacker = msgpack.Unpacker(ext_hook=hook, raw=False, strict_map_key=False,
                                max_buffer_size=max(header.nbytes, 1))
    unpacker.feed(header)
    return unpacker


class _Decoder:
    """Decodes an M or S frame's header, resolving attachments as msgpack meets them."""

    def __init__(self, header: memoryview, region: memoryview, in_shm: bool) -> None:
        self.header, self.region, self.in_shm = header, region, in_shm
        self.descriptors: list = []
        self.cache: dict[int, Any] = {}

    def decode(self) -> Any:
        unpacker = _unpacker(self.header, self.hook)
        table = unpacker.unpack()
        if not (isinstance(table, list) and len(table) == 3 and isinstance(table[1], int)
                and isinstance(table[2], list)):
            raise ProtocolError("The frame's attachment table is malformed.")
        name, size, self.descriptors = table
        if self.in_shm:
            self.region = shm.read_segment(name, size)    # unlinks the segment at once
        elif self.descriptors and self.region.nbytes != size:
            raise ProtocolError(f"The frame announces {size} bytes of attachments but holds "
                                f"{self.region.nbytes}.")
        message = unpacker.unpack()
        if unpacker.tell() != self.header.nbytes:
            raise ProtocolError("The frame's header has trailing bytes.")
        return message

    def hook(self, code: int, data: bytes) -> Any:
        if code == EXT_TUPLE:
            return tuple(msgpack.unpackb(data, ext_hook=self.hook, raw=False,
                                         strict_map_key=False))
        if code != EXT_ATTACHMENT or len(data) != 4:
            raise ProtocolError(f"Unknown msgpack extension type {code} in the frame header.")
        index = int.from_bytes(data, "big")
        if index not in self.cache:
            kind, view, meta = self.view(index)
            if kind == "pickle":
                check_pickle(view)
            if kind == "pickle" and isinstance(meta, list):
                buffers = [self.view(i, "buffer")[1] for i in meta]
                self.cache[index] = objects.decode(kind, view, None, buffers)
            else:
                self.cache[index] = objects.decode(kind, view, meta)
        return self.cache[index]

    def view(self, index: Any, expect: str | None = None) -> tuple[str, memoryview, Any]:
        if not (isinstance(index, int) and 0 <= index < len(self.descriptors)):
            raise ProtocolError(f"Attachment {index!r} does not exist in this frame.")
        entry = self.descriptors[index]
        if not (isinstance(entry, list) and len(entry) == 4):
            raise ProtocolError(f"Attachment {index} has a malformed descriptor.")
        kind, offset, size, meta = entry
        if not (isinstance(offset, int) and isinstance(size, int) and offset >= 0
                and size >= 0 and offset + size <= self.region.nbytes):
            raise ProtocolError(f"Attachment {index} lies outside the frame.")
        if expect is not None and kind != expect:
            raise ProtocolError(f"Attachment {index} should be a {expect}, not {kind!r}.")
        return kind, self.region[offset:offset + size], meta


# ----------------------------------------------------------------------------- pickle checks

_UNKNOWN = -99
_PICKLE_ARGS = [_UNKNOWN] * 256          # opcode -> argument size (pickletools' codes if < 0)
for _op in pickletools.opcodes:
    _PICKLE_ARGS[_op.code.encode("latin-1")[0]] = _op.arg.n if _op.arg else 0
_LENGTH_SIZES = {pickletools.TAKEN_FROM_ARGUMENT1: (1, "<B"),
                 pickletools.TAKEN_FROM_ARGUMENT4: (4, "<i"),
                 pickletools.TAKEN_FROM_ARGUMENT4U: (4, "<I"),
                 pickletools.TAKEN_FROM_ARGUMENT8U: (8, "<Q")}
_TWO_LINES = frozenset(b"ci")            # GLOBAL and INST: module and name lines
_PUT, _LONG_BINPUT, _STOP = b"p"[0], b"r"[0], b"."[0]


def check_pickle(data: Any) -> None:
    """Refuse a pickle stream that no ``Pickler`` writes, before ``pickle.loads`` sees it.

    A corrupt stream can make the unpickler allocate far more than the frame holds: a memo
    index of 2**32 grows the memo to 64 GiB (a 585-byte frame once took 40 s and 15 GiB to
    fail), and a length past the end of a ``BYTEARRAY8`` trips a CPython bug. So every opcode
    must be known, every argument must lie inside ``data``, a memo index may not exceed the
    position it is written at (the memo stays under ~16 bytes per byte of stream), and
    ``STOP`` must end the stream. Raises ``ProtocolError``.
    """
    view = memoryview(data).cast("B")
    end, pos = view.nbytes, 0
    args, unpack_from, no_arg = _PICKLE_ARGS, struct.unpack_from, 0
    while pos < end:
        op = view[pos]
        arg = args[op]
        pos += 1
        if arg == no_arg:
            if op == _STOP:
                return
        elif arg > 0:
            if op == _LONG_BINPUT and pos + 4 <= end and unpack_from("<I", view, pos)[0] > pos:
                _corrupt(end, f"a memo index far beyond the stream at byte {pos - 1}")
            pos += arg
        elif arg == _UNKNOWN:
            _corrupt(end, f"unknown opcode 0x{op:02x} at byte {pos - 1}")
        elif arg == pickletools.UP_TO_NEWLINE:
            start, pos = pos - 1, _line_end(view, pos, end)
            if op in _TWO_LINES:
                pos = _line_end(view, pos, end)
            elif op == _PUT and _decimal(view[start + 1:pos - 1]) > start:
                _corrupt(end, f"a memo index far beyond the stream at byte {start}")
        else:
            size, fmt = _LENGTH_SIZES[arg]
            if pos + size > end:
                break
            length = unpack_from(fmt, view, pos)[0]
            if length < 0:
                break
            pos += size + length
    _corrupt(end, "it ends before its STOP opcode (an argument runs past the end)")


def _corrupt(size: int, reason: str) -> NoReturn:
    raise ProtocolError(f"Cannot decode a pickle stream of {size} bytes: {reason}; the frame "
                        "is truncated or corrupt.")


def _line_end(view: memoryview, pos: int, end: int) -> int:
    """The position after the newline ending the text argument that starts at ``pos``."""
    found = bytes(view[pos:]).find(b"\n")
    if found < 0:
        _corrupt(end, f"the text argument at byte {pos} never ends")
    return pos + found + 1


def _decimal(raw: memoryview) -> int:
    try:
        return int(bytes(raw))
    except ValueError:
        return 0      # the unpickler itself refuses it


# ----------------------------------------------------------------------------- public API

def pack(message: Any, fmt: str | None = None) -> bytes:
    """Encode ``message`` as one complete frame, length prefix included.

        >>> unpack(pack({"id": 1, "x": (1, 2)}))
        {'id': 1, 'x': (1, 2)}

    With shared memory (auto for large attachments, or ``fmt="shm"``) the frame owns a segment
    until it is unpacked; ``discard(data)`` releases it otherwise. ``send`` avoids one copy.
    """
    frame, _ = _encode(message, fmt)
    return frame if isinstance(frame, bytes) else bytes(memoryview(frame))


def send(conn: Any, message: Any, fmt: str | None = None) -> None:
    """Write one frame to a ``multiprocessing`` Connection, a socket, or a binary file."""
    if fmt is None and isinstance(conn, socket.socket) and conn.family != socket.AF_UNIX:
        fmt = "arrow"         # the peer may be on another machine: no shared memory
    frame, segment = _encode(message, fmt)
    try:
        if hasattr(conn, "send_bytes"):
            conn.send_bytes(frame)
        elif hasattr(conn, "sendall"):
            conn.sendall(frame)
        else:
            conn.write(frame)
            conn.flush()
    except BaseException:
        if segment:
            shm.unlink_segment(segment)   # nobody will read it
        raise


def recv(conn: Any, timeout: float | None = None) -> Any:
    """Read one frame and decode it.

    Raises ``EOFError`` when the peer closed the connection between frames, ``TimeoutError``
    when nothing arrived within ``timeout`` seconds, ``ProtocolError`` for a malformed frame
    (or one cut off mid-way).
    """
    if hasattr(conn, "recv_bytes"):
        if timeout is not None and not conn.poll(timeout):
            raise TimeoutError(f"No frame arrived within {timeout} s.")
        return unpack(conn.recv_bytes())
    return unpack(_read_frame(conn, timeout))


_PREALLOC = 64 << 20   # a frame up to this size gets its whole buffer before its bytes arrive


def _read_into(conn: Any, view: memoryview) -> int:
    """Fill ``view`` from a socket or binary file; return the bytes read (short at EOF)."""
    got = 0
    read = conn.recv_into if hasattr(conn, "recv_into") else conn.readinto
    while got < view.nbytes:
        n = read(view[got:])
        if not n:
            break
        got += n
    return got


def _read_growing(conn: Any, frame: bytearray, total: int) -> bytearray:
    """Read a huge frame step by step: a lying prefix cannot make us allocate it up front."""
    read = conn.recv if hasattr(conn, "recv") else conn.read
    while len(frame) < total:
        chunk = read(min(total - len(frame), 16 << 20))
        if not chunk:
            break
        frame += chunk
    return frame


def _read_frame(conn: Any, timeout: float | None) -> Any:
    previous = conn.gettimeout() if timeout is not None else None
    if timeout is not None:
        conn.settimeout(timeout)
    prefix, got = bytearray(PREFIX.size), 0
    try:
        got = _read_into(conn, memoryview(prefix))
        if got == 0:
            raise EOFError("The peer closed the connection.")
        if got < PREFIX.size:
            raise ProtocolError(f"Truncated frame: the peer closed after {got} bytes of the "
                                f"{PREFIX.size}-byte prefix.")
        total = PREFIX.size + _parse_prefix(prefix)[2]
        if total > _PREALLOC:
            frame = _read_growing(conn, prefix, total)
            got = len(frame)
        else:
            frame = _alloc(total)
            view = memoryview(frame).cast("B")
            view[:PREFIX.size] = prefix
            got = PREFIX.size + _read_into(conn, view[PREFIX.size:])
        if got < total:
            raise ProtocolError(f"Truncated frame: the peer closed after {got} of {total} "
                                "bytes.")
        return frame
    except TimeoutError:
        if got == 0:
            raise TimeoutError(f"No frame arrived within {timeout} s.") from None
        raise ProtocolError(f"The peer stalled mid-frame for {timeout} s; the stream is out "
                            "of step, reconnect.") from None
    finally:
        if timeout is not None:
            conn.settimeout(previous)


class FrameReader:
    """Incremental decoder for a raw byte stream (socket, pipe, asyncio protocol).

        >>> reader, data = FrameReader(), pack({"id": 1})
        >>> reader.feed(data[:5]), reader.feed(data[5:])
        ([], [{'id': 1}])

    A frame that cannot be decoded raises ``ProtocolError`` once and is skipped; messages of
    other frames in the same chunk come with the next ``feed`` (``feed(b"")`` is fine). A bad
    prefix means the stream is out of step: every later ``feed`` raises until ``reset()``.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget buffered bytes and any earlier stream error."""
        self._prefix = bytearray()
        self._total = 0                       # size of the frame in progress; 0: none yet
        self._owner: Any = None               # its buffer (a bytearray when it grows)
        self._view: memoryview | None = None  # a view of a preallocated buffer
        self._filled = 0
        self._ready: list[Any] = []
        self._error: ProtocolError | None = None
        self._broken: str | None = None

    @property
    def buffered(self) -> int:
        """Bytes received of the frame in progress."""
        return self._filled if self._total else len(self._prefix)

    def feed(self, chunk: bytes) -> list[Any]:
        """Add ``chunk``; return the messages of every frame completed so far."""
        if self._broken:
            raise ProtocolError(f"This stream is out of step ({self._broken}); call reset() "
                                "or reconnect.")
        view = memoryview(chunk).cast("B")
        while view.nbytes:
            view = self._consume(view)
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        ready, self._ready = self._ready, []
        return ready

    def _consume(self, view: memoryview) -> memoryview:
        if not self._total:
            need = PREFIX.size - len(self._prefix)
            self._prefix += view[:need]
            view = view[need:]
            if len(self._prefix) < PREFIX.size:
                return view
            self._start_frame()
        take = min(view.nbytes, self._total - self._filled)
        if self._view is None:
            self._owner += view[:take]
        else:
            self._view[self._filled:self._filled + take] = view[:take]
        self._filled += take
        if self._filled == self._total:
            self._finish_frame()
        return view[take:]

    def _start_frame(self) -> None:
        try:
            self._total = PREFIX.size + _parse_prefix(self._prefix)[2]
        except ProtocolError as exc:
            self._broken = str(exc).split(";")[0]
            self._prefix = bytearray()
            raise
        if self._total > _PREALLOC:
            self._owner, self._view = bytearray(self._prefix), None
        else:
            self._owner = _alloc(self._total)
            self._view = memoryview(self._owner).cast("B")
            self._view[:PREFIX.size] = self._prefix
        self._filled = PREFIX.size

    def _finish_frame(self) -> None:
        owner = self._owner
        if self._view is not None:
            self._view.release()
        self._prefix, self._total, self._owner, self._view, self._filled = (
            bytearray(), 0, None, None, 0)
        try:
            self._ready.append(unpack(owner))
        except ProtocolError as exc:   # the frame is skipped; the stream is still in step
            self._error = self._error or exc


# ----------------------------------------------------------------------------- error frames

def error_message(id: Any, exc: BaseException) -> dict:
    """The reply a worker sends when task ``id`` raised ``exc``.

        >>> try:
        ...     1 / 0
        ... except ZeroDivisionError as exc:
        ...     reply = error_message(7, exc)
        >>> reply["status"], reply["error"]["type"]
        ('error', 'ZeroDivisionError')

    ``reply["error"]`` holds the type, module, message, formatted traceback, worker pid and
    the pickled exception (None when it does not survive pickling). Known secrets are masked
    in all of them (``dspex_lab.redaction``: a provider may echo the API key into an error).
    """
    redact_exception(exc)
    return {"id": id, "status": "error", "error": redact(exceptions.capture(exc))}


def is_error(message: Any) -> bool:
    """True if ``message`` was made by ``error_message``."""
    return (isinstance(message, dict) and message.get("status") == "error"
            and isinstance(message.get("error"), dict))


def remote_exception(message: dict) -> BaseException:
    """The exception ``raise_remote`` raises, without raising it (for ``Future.set_exception``)."""
    if not is_error(message):
        raise ProtocolError(f"Expected an error message made by error_message(), got "
                            f"{type(message).__name__} {str(message)[:80]}.")
    return exceptions.rebuild(message["error"])


def raise_remote(message: dict) -> None:
    """Raise the worker's error in the kernel.

    ``DspexError`` subclasses (``ValidationError``...) are raised as themselves; anything else
    as ``RemoteError(remote_type, remote_traceback)`` whose ``__cause__`` is the original
    exception (rebuilt when unpicklable), itself caused by the worker's ``RemoteTraceback``.
    """
    exc = remote_exception(message)
    raise exc from exc.__cause__
