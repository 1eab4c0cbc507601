"""PRELOGIN and LOGIN7 for the SQL Server double (test code, never shipped): parsing the client's PRELOGIN and
LOGIN7 (MS-TDS 2.2.6.4, 2.2.6.5), the server's PRELOGIN answer and the encryption decision, and SQL
authentication's password obfuscation."""

from __future__ import annotations

import struct

from tds_types import Reader

# PRELOGIN option tokens
VERSION, ENCRYPTION, INSTOPT, THREADID, MARS, TRACEID, FEDAUTHREQUIRED, NONCEOPT, TERMINATOR = (
    0, 1, 2, 3, 4, 5, 6, 7, 0xFF)
ENCRYPT_OFF, ENCRYPT_ON, ENCRYPT_NOT_SUP, ENCRYPT_REQ = 0, 1, 2, 3


class LoginError(Exception):
    pass


def parse_prelogin(payload: bytes) -> dict[int, bytes]:
    opts: dict[int, bytes] = {}
    pos = 0
    while pos < len(payload) and payload[pos] != TERMINATOR:
        if pos + 5 > len(payload):
            raise LoginError("PRELOGIN option table truncated")
        tok, off, ln = struct.unpack(">BHH", payload[pos:pos + 5])
        if off + ln > len(payload):
            raise LoginError("PRELOGIN option outside the packet")
        opts[tok] = payload[off:off + ln]
        pos += 5
    return opts


def build_prelogin(options: list[tuple[int, bytes]]) -> bytes:
    head = bytearray()
    body = bytearray()
    base = 5 * len(options) + 1
    for tok, data in options:
        head += struct.pack(">BHH", tok, base + len(body), len(data))
        body += data
    return bytes(head) + b"\xff" + bytes(body)


def choose_encryption(client: int, server_has_tls: bool, force: bool) -> int:
    """The ENCRYPTION value the server answers (MS-TDS 2.2.6.5 table): the session's mode follows from it."""
    if not server_has_tls:
        return ENCRYPT_NOT_SUP
    if client == ENCRYPT_NOT_SUP:
        return ENCRYPT_REQ if force else ENCRYPT_NOT_SUP   # REQ to a client without TLS: it gives up
    if force or client in (ENCRYPT_ON, ENCRYPT_REQ):
        return ENCRYPT_ON
    return ENCRYPT_OFF


def deobfuscate(data: bytes) -> str:
    """LOGIN7 password: each byte was nibble-swapped then XORed with 0xA5."""
    out = bytearray()
    for b in data:
        b ^= 0xA5
        out.append(((b & 0x0F) << 4) | (b >> 4))
    return out.decode("utf-16-le")


def obfuscate(password: str) -> bytes:
    out = bytearray()
    for b in password.encode("utf-16-le"):
        out.append((((b & 0x0F) << 4) | (b >> 4)) ^ 0xA5)
    return bytes(out)


class Login7:
    """The fields of a LOGIN7 message the double uses."""

    def __init__(self, payload: bytes):
        r = Reader(payload)
        (self.length, self.tds_version, self.packet_size, self.client_prog_ver, self.client_pid,
         self.connection_id) = struct.unpack("<IIIIII", r.take(24))
        self.flags1, self.flags2, self.type_flags, self.flags3 = r.take(4)
        self.timezone, self.lcid = struct.unpack("<iI", r.take(8))

        def field():
            off, ln = struct.unpack("<HH", r.take(4))
            return off, ln

        fields = [field() for _ in range(6)]   # host, user, password, app, server, extension/unused
        clt_int, language, database = field(), field(), field()
        self.client_id = r.take(6)
        sspi = field()
        field(), field()                           # AtchDBFile, ChangePassword: unused

        def text(f, raw=False):
            off, ln = f
            data = payload[off:off + 2 * ln]
            if len(data) != 2 * ln:
                raise LoginError("LOGIN7 field outside the message")
            return data if raw else data.decode("utf-16-le")

        self.hostname = text(fields[0])
        self.username = text(fields[1])
        self.password = deobfuscate(text(fields[2], raw=True))
        self.appname = text(fields[3])
        self.servername = text(fields[4])
        self.library = text(clt_int)
        self.language = text(language)
        self.database = text(database)
        self.integrated = bool(self.flags2 & 0x80) or sspi[1] > 0
        self.features: dict[int, bytes] = {}
        if self.flags3 & 0x10:                      # fExtension: the "extension" field points at FeatureExt
            off, ln = fields[5]
            if ln >= 4 and off + 4 <= len(payload):
                fe = struct.unpack("<I", payload[off:off + 4])[0]
                pos = fe
                while pos < len(payload) and payload[pos] != 0xFF:
                    fid = payload[pos]
                    flen = struct.unpack("<I", payload[pos + 1:pos + 5])[0]
                    self.features[fid] = payload[pos + 5:pos + 5 + flen]
                    pos += 5 + flen
