"""Counts TCP connection attempts (SYNs) to one port on the loopback interface, as the kernel sees them.

Why: while an endpoint refuses connections nothing listens on its port, so no server can count who tried
to reach it; the clients' own log lines would be the code under test reporting on itself. A packet
socket (`AF_PACKET` on `lo`, with a classic BPF filter so the kernel hands over only those SYNs) counts
every attempt whatever happens to it — refused, accepted, or answered later. Needs CAP_NET_RAW (root
in the dev container); `SynCounter.start()` raises `PermissionError` otherwise, and callers fall back.

Linux only. Each packet on `lo` is seen twice (sent and received); only the received copy is counted.
"""

from __future__ import annotations

import ctypes
import socket
import struct
import threading
import time

_ETH_P_ALL = 0x0003
_SO_ATTACH_FILTER = 26
_PACKET_HOST = 0
_ETH_HEADER = 14  # `lo` frames carry a (zeroed) Ethernet header


def _syn_filter(port: int) -> list[tuple[int, int, int, int]]:
    """`ip and tcp dst port PORT and tcp[tcpflags] & (syn|ack) == syn`, unfragmented, as BPF code."""
    return [
        (0x28, 0, 0, 12),  # ldh [12]            ethertype
        (0x15, 0, 10, 0x0800),  # jeq IPv4
        (0x30, 0, 0, 23),  # ldb [23]            IP protocol
        (0x15, 0, 8, 6),  # jeq TCP
        (0x28, 0, 0, 20),  # ldh [20]            flags and fragment offset
        (0x45, 6, 0, 0x1FFF),  # jset: a fragment -> drop
        (0xB1, 0, 0, _ETH_HEADER),  # ldxb 4*([14]&0xf)  IP header length
        (0x48, 0, 0, _ETH_HEADER + 2),  # ldh [x+16]   TCP destination port
        (0x15, 0, 3, port),  # jeq PORT
        (0x50, 0, 0, _ETH_HEADER + 13),  # ldb [x+27]  TCP flags
        (0x54, 0, 0, 0x12),  # and SYN|ACK
        (0x15, 1, 0, 0x02),  # jeq SYN -> accept
        (0x06, 0, 0, 0),  # drop
        (0x06, 0, 0, 0xFFFF),  # accept
    ]


def is_syn_to(frame: bytes, port: int) -> bool:
    """The same test in Python: packets queued before the filter was attached are not filtered."""
    if len(frame) < _ETH_HEADER + 20 or frame[12:14] != b"\x08\x00" or frame[_ETH_HEADER + 9] != 6:
        return False
    tcp = _ETH_HEADER + (frame[_ETH_HEADER] & 0x0F) * 4
    if len(frame) < tcp + 14:
        return False
    destination = struct.unpack_from("!H", frame, tcp + 2)[0]
    return bool(destination == port and frame[tcp + 13] & 0x12 == 0x02)


class SynCounter:
    """A daemon thread that records the time (`time.time()`) of every SYN to `port` on `lo`."""

    def __init__(self, port: int, interface: str = "lo") -> None:
        self.port = port
        self._interface = interface
        self._times: list[float] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._socket: socket.socket | None = None
        self._thread = threading.Thread(target=self._run, name="syn-counter", daemon=True)

    def start(self) -> SynCounter:
        """Raises PermissionError without CAP_NET_RAW (and OSError where packet sockets do not exist)."""
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(_ETH_P_ALL))
        try:
            code = _syn_filter(self.port)
            program = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *op) for op in code))
            sock.setsockopt(
                socket.SOL_SOCKET, _SO_ATTACH_FILTER, struct.pack("HL", len(code), ctypes.addressof(program))
            )
            sock.bind((self._interface, 0))
            sock.settimeout(0.2)
        except BaseException:
            sock.close()
            raise
        self._socket = sock
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def times(self) -> list[float]:
        with self._lock:
            return list(self._times)

    def _run(self) -> None:
        assert self._socket is not None
        while not self._stop.is_set():
            try:
                frame, address = self._socket.recvfrom(256)
            except TimeoutError:
                continue
            except OSError:
                return  # closed under us by stop()
            if address[2] == _PACKET_HOST and is_syn_to(frame, self.port):
                with self._lock:
                    self._times.append(time.time())
