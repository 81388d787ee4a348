"""What the proxy bridge and the emulator both speak on the wire: the boards' UDP ports, an
SCP version request, and the v2 websocket proxy's binary frames (V2_PROTOCOL.md §1.9, §7).

Pure constants and packing, no sockets. The client (:mod:`spalloc.service`) and the emulator
(:mod:`spalloc.emulator`) both import it; it imports nothing of either.

Proxy frames are little-endian 32-bit words, then an optional raw payload; the websocket
frame gives the length. Client to server: OPEN ``[0, corr, chipX, chipY, port]``, CLOSE
``[1, corr, channel]``, MESSAGE ``[2, channel] + payload``, OPEN_UNCONNECTED ``[3, corr]``,
MESSAGE_TO ``[4, channel, chipX, chipY, port] + payload``. Server to client: OPEN
``[0, corr, channel]``, CLOSE ``[1, corr, channel or 0]``, MESSAGE as above (from the board),
OPEN_UNCONNECTED ``[3, corr, channel] + IPv4 (4 bytes) + [port]``, ERROR
``[5, corr] + UTF-8 text``.
"""

from __future__ import annotations

import struct

__all__ = [
    "BAD_DATA",
    "BOOT_PORT",
    "CLOSE",
    "CMD_VER",
    "ERROR",
    "MAX_ERROR_TEXT",
    "MESSAGE",
    "MESSAGE_TO",
    "OPEN",
    "OPEN_UNCONNECTED",
    "RC_CMD",
    "RC_OK",
    "SCP",
    "SCP_PORT",
    "SDP",
    "SERVER_ERROR",
    "W1",
    "W2",
    "W3",
    "W5",
    "version_request",
]

#: A board's SCP port (SC&MP answers here) and its boot port.
SCP_PORT = 17893
BOOT_PORT = 54321

# --- SCP (V2_PROTOCOL.md §7) ----------------------------------------------------------------

#: The 2 pad bytes and the SDP header: flags, tag, destination port/CPU, source port/CPU,
#: destination y, x, source y, x.
SDP = struct.Struct("<2x8B")
#: ``cmd_rc`` and ``seq``, after the SDP header.
SCP = struct.Struct("<HH")
CMD_VER = 0
RC_OK = 0x80
RC_CMD = 0x83


def version_request(seq: int, x: int = 0, y: int = 0) -> bytes:
    """An SCP ``CMD_VER`` datagram to chip (x, y), CPU 0, as SpiNNMan frames it."""
    sdp = SDP.pack(0x87, 0xFF, 0, (7 << 5) | 31, y, x, 0, 0)
    return sdp + SCP.pack(CMD_VER, seq & 0xFFFF) + struct.pack("<3I", 0, 0, 0)


# --- the v2 websocket proxy (V2_PROTOCOL.md §1.9) --------------------------------------------

OPEN, CLOSE, MESSAGE, OPEN_UNCONNECTED, MESSAGE_TO, ERROR = range(6)
#: Frames of one, two, three and five words.
W1 = struct.Struct("<I")
W2 = struct.Struct("<2I")
W3 = struct.Struct("<3I")
W5 = struct.Struct("<5I")
#: Longest ERROR text; a longer message is sent empty.
MAX_ERROR_TEXT = 1000
#: Websocket close codes of the Java server: broken framing, and an I/O error.
BAD_DATA = 1007
SERVER_ERROR = 1011
