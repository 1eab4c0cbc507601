"""TDS packets for the SQL Server double (test code, never shipped): the 8-byte header, messages made of
packets, and the connection transport, which can run plain, with TLS records carried inside PRELOGIN packets
(the handshake, MS-TDS 2.2.6.5 / 3.2.5.2), or as raw TLS once the handshake is done."""

from __future__ import annotations

import ssl
import struct
import threading

# Packet types (MS-TDS 2.2.3.1.1)
SQL_BATCH = 0x01
RPC = 0x03
TABULAR = 0x04
ATTENTION = 0x06
BULK_LOAD = 0x07
TRANSACTION_MANAGER = 0x0E
LOGIN7 = 0x10
SSPI = 0x11
PRELOGIN = 0x12

# Status bits
EOM = 0x01
IGNORE = 0x02
RESET_CONNECTION = 0x08
RESET_CONNECTION_SKIP_TRAN = 0x10

HEADER = struct.Struct(">BBHHBB")
MAX_PACKET_SIZE = 32767


class ConnectionClosed(Exception):
    """The peer closed the connection (or sent something that made us close it)."""


class ProtocolError(Exception):
    """Bytes that do not follow TDS: the double closes the connection, as SQL Server does."""


class Transport:
    """One client connection: reads and writes TDS packets, plain or through TLS.

    TLS runs on an ssl.SSLObject over memory BIOs so the same object serves both shapes the protocol needs:
    handshake records wrapped in PRELOGIN packets, then records written straight to the socket. A lock keeps
    the reader thread (watching for ATTENTION) and the writer from using the SSL object at the same time."""

    def __init__(self, sock):
        self.sock = sock
        self.tls = None            # ssl.SSLObject while TLS is on
        self._in = None
        self._out = None
        self._plain = bytearray()  # decrypted bytes (TLS) or raw bytes (plain) not consumed yet
        self._lock = threading.Lock()
        self._wlock = threading.Lock()
        self.packet_size = 4096
        self.spid = 0

    # --- raw byte level ---------------------------------------------------------------------------------
    def _recv_raw(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionClosed("peer closed")
        return data

    def _fill(self) -> None:
        """Append at least one more byte to self._plain, decrypting when TLS is on."""
        if self.tls is None:
            self._plain += self._recv_raw()
            return
        while True:
            with self._lock:
                try:
                    chunk = self.tls.read(65536)
                    if chunk:
                        self._plain += chunk
                        return
                    raise ConnectionClosed("TLS closed")
                except ssl.SSLWantReadError:
                    pass
            data = self._recv_raw()
            with self._lock:
                self._in.write(data)

    def read_exact(self, n: int) -> bytes:
        while len(self._plain) < n:
            self._fill()
        out = bytes(self._plain[:n])
        del self._plain[:n]
        return out

    def send_raw(self, data: bytes) -> None:
        with self._wlock:
            if self.tls is None:
                self.sock.sendall(data)
                return
            with self._lock:
                self.tls.write(data)
                enc = self._out.read()
            self.sock.sendall(enc)

    # --- packets ----------------------------------------------------------------------------------------
    def read_packet(self):
        """(type, status, payload) of the next packet."""
        hdr = self.read_exact(8)
        ptype, status, length, _spid, _pid, _win = HEADER.unpack(hdr)
        if length < 8 or length > MAX_PACKET_SIZE + 8:
            raise ProtocolError(f"bad packet length {length}")
        return ptype, status, self.read_exact(length - 8)

    def read_message(self):
        """(type, status of the first packet, payload) of the next whole message (packets up to EOM).

        An ATTENTION packet is always a message of its own."""
        ptype, status, payload = self.read_packet()
        first_status = status
        parts = [payload]
        total = len(payload)
        while not status & EOM:
            t2, status, payload = self.read_packet()
            if t2 == ATTENTION:
                return ATTENTION, status, b""
            if t2 != ptype:
                raise ProtocolError(f"packet type changed inside a message ({ptype} -> {t2})")
            parts.append(payload)
            total += len(payload)
            if total > 256 * 1024 * 1024:
                raise ProtocolError("message larger than 256 MiB")
        return ptype, first_status, b"".join(parts)

    def send_message(self, ptype: int, payload: bytes, size: int | None = None) -> None:
        size = size or self.packet_size
        body = size - 8
        chunks = [payload[i:i + body] for i in range(0, len(payload), body)] or [b""]
        out = bytearray()
        for i, chunk in enumerate(chunks):
            status = EOM if i == len(chunks) - 1 else 0
            out += HEADER.pack(ptype, status, len(chunk) + 8, self.spid, (i + 1) & 0xFF, 0) + chunk
        self.send_raw(bytes(out))

    # --- TLS --------------------------------------------------------------------------------------------
    def tls_handshake_in_prelogin(self, ctx: ssl.SSLContext) -> None:
        """Run the server side of the TLS handshake with every record carried in PRELOGIN packets."""
        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = ctx.wrap_bio(self._in, self._out, server_side=True)
        while True:
            try:
                tls.do_handshake()
                done = True
            except ssl.SSLWantReadError:
                done = False
            pending = self._out.read()
            if pending:
                self.send_message(PRELOGIN, pending, 4096)
            if done:
                break
            ptype, _status, payload = self.read_packet()
            if ptype != PRELOGIN:
                raise ProtocolError(f"packet type {ptype:#x} during the TLS handshake")
            self._in.write(payload)
        if self._plain:       # the client's first TLS records arrived with its last handshake packet
            self._in.write(bytes(self._plain))
            self._plain.clear()
        self.tls = tls

    def tls_off(self) -> None:
        """Back to plain TCP (ENCRYPT_OFF: only the LOGIN7 message was encrypted)."""
        self.tls = None
        self._in = self._out = None
