"""Can this machine reach a board directly? The test behind ``Job(proxy="auto")``.

Two steps, bounded together by *timeout* (0.3 s by default):

1. A route check: ``connect()`` on a UDP socket asks the kernel for a route and sends
   nothing; no route (``ENETUNREACH``, ``EHOSTUNREACH``, a name that does not resolve) means
   unreachable at once.
2. An SCP version request (``CMD_VER``, V2_PROTOCOL.md §7) to the board's port 17893, sent
   again every 0.1 s: any datagram back, or an ICMP "port unreachable" (the host is there),
   means reachable; silence means not.

A board nobody has booted runs no SC&MP and does not answer step 2, so a job of unbooted
boards inside the machine room is bridged under ``auto`` too: slower than needed, but it
works (the bridge relays the boot port, 54321). Pass ``proxy="never"`` there.
"""

from __future__ import annotations

import socket
import time

from spalloc._proxywire import SCP_PORT, version_request

__all__ = ["PROBE_TIMEOUT", "reachable", "version_request"]

#: Longest the probe takes, seconds.
PROBE_TIMEOUT = 0.3
_RESEND = 0.1


def reachable(address: str, timeout: float = PROBE_TIMEOUT) -> bool:
    """True if the board at *address* answers (or its host refuses) within *timeout* s."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect((address, SCP_PORT))
        except OSError:  # no route, or a name that does not resolve
            return False
        for seq in range(1, 1000):  # bounded by the deadline long before
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                sock.send(version_request(seq))
                sock.settimeout(min(left, _RESEND))
                sock.recv(4096)
                return True
            except ConnectionRefusedError:
                return True  # the host itself said the port is closed: it is there
            except TimeoutError:
                continue
            except OSError:  # e.g. a transient "no buffer space": wait as for silence
                time.sleep(min(max(0.0, deadline - time.monotonic()), _RESEND))
    return False
