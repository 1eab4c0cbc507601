"""A tiny recording TCP tee for MongoDB wire traffic: client -> tee -> server, every message kept.

    with MongoTee(server.host, server.port) as tee:
        MongoClient(tee.host, tee.port, directConnection=True) ...
        tee.frames  # [(direction 'c2s'|'s2c', conn no, bytes of one whole message)]

Messages are split by their int32 messageLength (the MsgHeader); the bytes pass through unchanged. Used to
record real frames for unit tests and fuzz seeds (fuzz/make_mongo_seeds.py) and to see which opcodes a
driver's handshake uses. Drivers must connect with directConnection=True: FerretDB's hello names its own
address, which a replica-set-aware driver would then use instead of the tee."""

from __future__ import annotations

import socket
import struct
import threading


class MongoTee:
    host = "127.0.0.1"

    def __init__(self, backend_host: str, backend_port: int):
        self.backend = (backend_host, backend_port)
        self.frames: list = []
        self._lock = threading.Lock()
        self._lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._lsock.bind((self.host, 0))
        self._lsock.listen(16)
        self.port = self._lsock.getsockname()[1]
        self._socks: list = []
        self._threads: list = []
        self._closed = False
        self._conns = 0
        self._accept_thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> "MongoTee":
        self._accept_thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._closed = True
        for s in [self._lsock] + self._socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        for t in self._threads:
            t.join(timeout=5)
        self._accept_thread.join(timeout=5)

    def _accept(self) -> None:
        while not self._closed:
            try:
                c, _ = self._lsock.accept()
            except OSError:
                return
            try:
                b = socket.create_connection(self.backend, timeout=5)
            except OSError:
                c.close()
                continue
            b.settimeout(None)
            with self._lock:
                self._conns += 1
                n = self._conns
                self._socks += [c, b]
            for src, dst, d in ((c, b, "c2s"), (b, c, "s2c")):
                t = threading.Thread(target=self._pump, args=(src, dst, d, n), daemon=True)
                self._threads.append(t)
                t.start()

    def _pump(self, src: socket.socket, dst: socket.socket, direction: str, conn: int) -> None:
        buf = b""
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            buf += data
            while len(buf) >= 4:
                n = struct.unpack_from("<i", buf)[0]
                if n < 16 or len(buf) < n:
                    break
                with self._lock:
                    self.frames.append((direction, conn, bytes(buf[:n])))
                buf = buf[n:]
            try:
                dst.sendall(data)
            except OSError:
                return

    def opcodes(self, direction: str) -> list:
        with self._lock:
            return [struct.unpack_from("<i", f, 12)[0] for d, _, f in self.frames if d == direction]
