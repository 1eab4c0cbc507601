"""SQL Server data types on the TDS wire for the SQL Server double (test code, never shipped).

SqlType describes a result column or output parameter the way SQL Server declares it (int, nvarchar(50),
decimal(10,2), varbinary(max), ...) and writes its TYPE_INFO and values (MS-TDS 2.2.5.4-2.2.5.6);
read_type_info/read_value decode the TYPE_INFO and value of an RPC parameter sent by a client."""

from __future__ import annotations

import datetime as dt
import decimal
import re
import struct
import uuid

# TDS type tokens
INT1, BIT, INT2, INT4, DATETIM4, FLT4, MONEY, DATETIME, FLT8, MONEY4, INT8 = (
    0x30, 0x32, 0x34, 0x38, 0x3A, 0x3B, 0x3C, 0x3D, 0x3E, 0x7A, 0x7F)
GUID, INTN, DECIMAL, NUMERIC, BITN, DECIMALN, NUMERICN, FLTN, MONEYN, DATETIMN = (
    0x24, 0x26, 0x37, 0x3F, 0x68, 0x6A, 0x6C, 0x6D, 0x6E, 0x6F)
DATEN, TIMEN, DATETIME2N, DATETIMEOFFSETN = 0x28, 0x29, 0x2A, 0x2B
CHAR, VARCHAR, BINARY, VARBINARY = 0x2F, 0x27, 0x2D, 0x25
BIGVARBIN, BIGVARCHR, BIGBINARY, BIGCHAR, NVARCHAR, NCHAR = 0xA5, 0xA7, 0xAD, 0xAF, 0xE7, 0xEF
TEXT, NTEXT, IMAGE, XML, SSVARIANT, UDT, NULLTYPE = 0x23, 0x63, 0x22, 0xF1, 0x62, 0xF0, 0x1F

# SQL_Latin1_General_CP1_CI_AS: LCID 0x0409, IgnoreCase|IgnoreKana|IgnoreWidth, SortId 52
COLLATION = bytes([0x09, 0x04, 0xD0, 0x00, 0x34])
CODEPAGE = "cp1252"
PLP_NULL = 0xFFFFFFFFFFFFFFFF
PLP_UNKNOWN = 0xFFFFFFFFFFFFFFFE
DATE_BASE = dt.date(1, 1, 1)
DATETIME_BASE = dt.datetime(1900, 1, 1)


class TypeError_(ValueError):
    """A value or TYPE_INFO the double cannot handle."""


# --- small wire helpers -----------------------------------------------------------------------------------

def _time_len(scale: int) -> int:
    return 3 if scale <= 2 else 4 if scale <= 4 else 5


def _dec_len(precision: int) -> int:
    return 5 if precision <= 9 else 9 if precision <= 19 else 13 if precision <= 28 else 17


def _time_bytes(t: dt.time | dt.datetime, scale: int) -> bytes:
    ticks = (t.hour * 3600 + t.minute * 60 + t.second) * 10 ** 7 + t.microsecond * 10
    ticks //= 10 ** (7 - scale)
    return ticks.to_bytes(_time_len(scale), "little")


def _date_bytes(d: dt.date) -> bytes:
    return (d - DATE_BASE).days.to_bytes(3, "little")


def plp(data: bytes | None) -> bytes:
    if data is None:
        return struct.pack("<Q", PLP_NULL)
    out = bytearray(struct.pack("<Q", len(data)))
    for i in range(0, len(data), 65536):
        chunk = data[i:i + 65536]
        out += struct.pack("<I", len(chunk)) + chunk
    out += b"\0\0\0\0"
    return bytes(out)


_TYPE_RE = re.compile(r"^\s*([a-z0-9_]+)\s*(?:\(\s*(max|\d+)\s*(?:,\s*(\d+)\s*)?\))?\s*$", re.I)


class SqlType:
    """A SQL Server type: name plus length (chars/bytes, -1 = max) or precision/scale."""

    def __init__(self, name: str, length: int = 0, precision: int = 0, scale: int = 0):
        self.name, self.length, self.precision, self.scale = name, length, precision, scale

    @classmethod
    def parse(cls, text: str) -> "SqlType":
        """'nvarchar(50)', 'decimal(10,2)', 'varbinary(max)', 'datetime2(3)', 'int' ..."""
        m = _TYPE_RE.match(text or "")
        if not m:
            raise TypeError_(f"unknown type {text!r}")
        name, a, b = m.group(1).lower(), m.group(2), m.group(3)
        name = {"integer": "int", "numeric": "decimal", "dec": "decimal", "double": "float",
                "sysname": "nvarchar", "rowversion": "binary", "timestamp": "binary"}.get(name, name)
        if name in ("varchar", "nvarchar", "varbinary", "char", "nchar", "binary"):
            length = -1 if (a or "").lower() == "max" else int(a) if a else (128 if text.lower().startswith("sysname") else 8 if text.lower() in ("rowversion", "timestamp") else 1)
            return cls(name, length=length)
        if name == "decimal":
            return cls(name, precision=int(a) if a else 18, scale=int(b) if b else 0)
        if name in ("datetime2", "datetimeoffset", "time"):
            return cls(name, scale=int(a) if a else 7)
        if name == "float":
            return cls("real" if a and int(a) <= 24 else "float")
        if name in ("text", "ntext"):
            return cls("varchar" if name == "text" else "nvarchar", length=-1)
        if name == "image":
            return cls("varbinary", length=-1)
        if name in ("money", "smallmoney"):
            return cls("decimal", precision=19 if name == "money" else 10, scale=4)
        if name in ("tinyint", "smallint", "int", "bigint", "bit", "real", "date", "datetime", "smalldatetime",
                    "uniqueidentifier", "xml", "sql_variant"):
            return cls(name)
        raise TypeError_(f"unknown type {text!r}")

    def __repr__(self) -> str:
        return f"SqlType({self.sql()})"

    def sql(self) -> str:
        if self.name in ("varchar", "nvarchar", "varbinary", "char", "nchar", "binary"):
            return f"{self.name}({'max' if self.length < 0 else self.length})"
        if self.name == "decimal":
            return f"decimal({self.precision},{self.scale})"
        if self.name in ("datetime2", "datetimeoffset", "time"):
            return f"{self.name}({self.scale})"
        return self.name

    @property
    def is_max(self) -> bool:
        return self.length < 0

    # --- TYPE_INFO ------------------------------------------------------------------------------------
    def type_info(self) -> bytes:
        n = self.name
        if n in ("tinyint", "smallint", "int", "bigint"):
            return bytes([INTN, {"tinyint": 1, "smallint": 2, "int": 4, "bigint": 8}[n]])
        if n == "bit":
            return bytes([BITN, 1])
        if n in ("float", "real"):
            return bytes([FLTN, 8 if n == "float" else 4])
        if n == "decimal":
            return bytes([DECIMALN, _dec_len(self.precision), self.precision, self.scale])
        if n in ("datetime", "smalldatetime"):
            return bytes([DATETIMN, 8 if n == "datetime" else 4])
        if n == "date":
            return bytes([DATEN])
        if n == "time":
            return bytes([TIMEN, self.scale])
        if n == "datetime2":
            return bytes([DATETIME2N, self.scale])
        if n == "datetimeoffset":
            return bytes([DATETIMEOFFSETN, self.scale])
        if n == "uniqueidentifier":
            return bytes([GUID, 16])
        if n in ("varchar", "char"):
            tok = BIGVARCHR if n == "varchar" else BIGCHAR
            return bytes([tok]) + struct.pack("<H", 0xFFFF if self.is_max else self.length) + COLLATION
        if n in ("nvarchar", "nchar"):
            tok = NVARCHAR if n == "nvarchar" else NCHAR
            return bytes([tok]) + struct.pack("<H", 0xFFFF if self.is_max else 2 * self.length) + COLLATION
        if n in ("varbinary", "binary"):
            tok = BIGVARBIN if n == "varbinary" else BIGBINARY
            return bytes([tok]) + struct.pack("<H", 0xFFFF if self.is_max else self.length)
        raise TypeError_(f"no TYPE_INFO for {self.sql()}")

    # --- values ---------------------------------------------------------------------------------------
    def null(self) -> bytes:
        if self.name in ("varchar", "nvarchar", "varbinary", "char", "nchar", "binary"):
            return plp(None) if self.is_max else b"\xff\xff"
        return b"\x00"

    def encode(self, v) -> bytes:
        """The value as it follows TYPE_INFO in a ROW or RETURNVALUE (with its length prefix)."""
        if v is None:
            return self.null()
        n = self.name
        if n in ("tinyint", "smallint", "int", "bigint"):
            size = {"tinyint": 1, "smallint": 2, "int": 4, "bigint": 8}[n]
            return bytes([size]) + int(v).to_bytes(size, "little", signed=(n != "tinyint"))
        if n == "bit":
            return b"\x01" + (b"\x01" if v else b"\x00")
        if n == "float":
            return b"\x08" + struct.pack("<d", float(v))
        if n == "real":
            return b"\x04" + struct.pack("<f", float(v))
        if n == "decimal":
            with decimal.localcontext(decimal.Context(prec=80)):
                units = int(decimal.Decimal(v).scaleb(self.scale).to_integral_value(rounding=decimal.ROUND_HALF_UP))
            size = _dec_len(self.precision)
            return bytes([size, 0 if units < 0 else 1]) + abs(units).to_bytes(size - 1, "little")
        if n in ("datetime", "smalldatetime"):
            if isinstance(v, dt.date) and not isinstance(v, dt.datetime):
                v = dt.datetime(v.year, v.month, v.day)
            v = v.replace(tzinfo=None)
            days = (v.date() - DATETIME_BASE.date()).days
            if n == "smalldatetime":
                return b"\x04" + struct.pack("<HH", days, v.hour * 60 + v.minute)
            secs = v.hour * 3600 + v.minute * 60 + v.second + v.microsecond / 1e6
            return b"\x08" + struct.pack("<iI", days, round(secs * 300))
        if n == "date":
            if isinstance(v, dt.datetime):
                v = v.date()
            return b"\x03" + _date_bytes(v)
        if n == "time":
            t = _time_bytes(v, self.scale)
            return bytes([len(t)]) + t
        if n == "datetime2":
            if not isinstance(v, dt.datetime):
                v = dt.datetime(v.year, v.month, v.day)
            b = _time_bytes(v, self.scale) + _date_bytes(v.date())
            return bytes([len(b)]) + b
        if n == "datetimeoffset":
            off = v.utcoffset() or dt.timedelta(0)
            utc = (v - off).replace(tzinfo=None)
            b = _time_bytes(utc, self.scale) + _date_bytes(utc.date()) + struct.pack("<h", int(off.total_seconds() // 60))
            return bytes([len(b)]) + b
        if n == "uniqueidentifier":
            u = v if isinstance(v, uuid.UUID) else uuid.UUID(str(v))
            return b"\x10" + u.bytes_le
        if n in ("varchar", "char", "nvarchar", "nchar"):
            s = str(v)
            if n in ("char", "nchar") and not self.is_max:
                s = s.ljust(self.length)
            data = s.encode("utf-16-le") if n[0] == "n" else s.encode(CODEPAGE, "replace")
            return plp(data) if self.is_max else struct.pack("<H", len(data)) + data
        if n in ("varbinary", "binary"):
            data = bytes(v)
            if n == "binary" and not self.is_max:
                data = data.ljust(self.length, b"\0")
            return plp(data) if self.is_max else struct.pack("<H", len(data)) + data
        raise TypeError_(f"cannot encode {self.sql()}")


# --- reading TYPE_INFO and values (RPC parameters) ------------------------------------------------------

class Reader:
    """A cursor over a byte string, little-endian unless told."""

    def __init__(self, data: bytes, pos: int = 0):
        self.data, self.pos = data, pos

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise TypeError_("message truncated")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return struct.unpack("<H", self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def u64(self) -> int:
        return struct.unpack("<Q", self.take(8))[0]

    def b_varchar(self) -> str:
        return self.take(2 * self.u8()).decode("utf-16-le")

    def us_varchar(self) -> str:
        return self.take(2 * self.u16()).decode("utf-16-le")

    def at_end(self) -> bool:
        return self.pos >= len(self.data)


_FIXED = {INT1: ("tinyint", 1), BIT: ("bit", 1), INT2: ("smallint", 2), INT4: ("int", 4), INT8: ("bigint", 8),
          FLT4: ("real", 4), FLT8: ("float", 8), DATETIME: ("datetime", 8), DATETIM4: ("smalldatetime", 4),
          MONEY: ("money", 8), MONEY4: ("smallmoney", 4)}


class WireType:
    """A TYPE_INFO as read from a client: token plus its fields, and the SqlType it stands for."""

    def __init__(self, token, size=0, precision=0, scale=0, sqltype=None):
        self.token, self.size, self.precision, self.scale, self.sqltype = token, size, precision, scale, sqltype


def read_type_info(r: Reader) -> WireType:
    tok = r.u8()
    if tok == NULLTYPE:
        return WireType(tok, 0, sqltype=SqlType("int"))
    if tok in _FIXED:
        name, size = _FIXED[tok]
        st = SqlType.parse(name)
        return WireType(tok, size, sqltype=st)
    if tok == INTN:
        size = r.u8()
        return WireType(tok, size, sqltype=SqlType({1: "tinyint", 2: "smallint", 4: "int", 8: "bigint"}[size]))
    if tok == BITN:
        return WireType(tok, r.u8(), sqltype=SqlType("bit"))
    if tok == FLTN:
        size = r.u8()
        return WireType(tok, size, sqltype=SqlType("float" if size == 8 else "real"))
    if tok == MONEYN:
        size = r.u8()
        return WireType(tok, size, sqltype=SqlType("decimal", precision=19 if size == 8 else 10, scale=4))
    if tok == DATETIMN:
        size = r.u8()
        return WireType(tok, size, sqltype=SqlType("datetime" if size == 8 else "smalldatetime"))
    if tok in (DECIMALN, NUMERICN, DECIMAL, NUMERIC):
        size, p, s = r.u8(), r.u8(), r.u8()
        return WireType(tok, size, p, s, SqlType("decimal", precision=p, scale=s))
    if tok == GUID:
        return WireType(tok, r.u8(), sqltype=SqlType("uniqueidentifier"))
    if tok == DATEN:
        return WireType(tok, sqltype=SqlType("date"))
    if tok in (TIMEN, DATETIME2N, DATETIMEOFFSETN):
        s = r.u8()
        name = {TIMEN: "time", DATETIME2N: "datetime2", DATETIMEOFFSETN: "datetimeoffset"}[tok]
        return WireType(tok, scale=s, sqltype=SqlType(name, scale=s))
    if tok in (BIGVARCHR, BIGCHAR, NVARCHAR, NCHAR):
        size = r.u16()
        r.take(5)
        n = tok in (NVARCHAR, NCHAR)
        name = ("n" if n else "") + ("varchar" if tok in (BIGVARCHR, NVARCHAR) else "char")
        length = -1 if size == 0xFFFF else (size // 2 if n else size)
        return WireType(tok, size, sqltype=SqlType(name, length=length))
    if tok in (BIGVARBIN, BIGBINARY):
        size = r.u16()
        return WireType(tok, size, sqltype=SqlType("varbinary" if tok == BIGVARBIN else "binary",
                                                   length=-1 if size == 0xFFFF else size))
    if tok in (VARCHAR, CHAR, VARBINARY, BINARY):
        size = r.u8()
        name = {VARCHAR: "varchar", CHAR: "char", VARBINARY: "varbinary", BINARY: "binary"}[tok]
        return WireType(tok, size, sqltype=SqlType(name, length=size))
    if tok in (TEXT, NTEXT, IMAGE):
        size = r.u32()
        if tok != IMAGE:
            r.take(5)
        name = {TEXT: "varchar", NTEXT: "nvarchar", IMAGE: "varbinary"}[tok]
        # TDS 7.2+: a table name follows only in COLMETADATA, not in RPC parameters
        return WireType(tok, size, sqltype=SqlType(name, length=-1))
    if tok == XML:
        schema = r.u8()
        if schema:
            r.b_varchar(); r.b_varchar(); r.us_varchar()
        return WireType(tok, sqltype=SqlType("nvarchar", length=-1))
    raise TypeError_(f"parameter type {tok:#04x} is not supported by the double")


def _read_plp(r: Reader) -> bytes | None:
    total = r.u64()
    if total == PLP_NULL:
        return None
    out = bytearray()
    while True:
        n = r.u32()
        if n == 0:
            break
        out += r.take(n)
    return bytes(out)


def _le_int(b: bytes, signed=True) -> int:
    return int.from_bytes(b, "little", signed=signed)


def _read_time(b: bytes, scale: int) -> dt.time:
    ticks = _le_int(b, False) * 10 ** (7 - scale)
    us = ticks // 10
    return (dt.datetime.min + dt.timedelta(microseconds=us)).time()


def _read_date(b: bytes) -> dt.date:
    return DATE_BASE + dt.timedelta(days=_le_int(b, False))


def read_value(r: Reader, w: WireType):
    """The Python value of one parameter value of type w (None for NULL)."""
    tok = w.token
    if tok == NULLTYPE:
        return None
    if tok in _FIXED:
        b = r.take(w.size)
        return _decode_fixed(tok, b)
    if tok in (BIGVARCHR, BIGCHAR, NVARCHAR, NCHAR, BIGVARBIN, BIGBINARY):
        if w.size == 0xFFFF:
            data = _read_plp(r)
        else:
            n = r.u16()
            data = None if n == 0xFFFF else r.take(n)
        if data is None:
            return None
        if tok in (NVARCHAR, NCHAR):
            return data.decode("utf-16-le")
        if tok in (BIGVARCHR, BIGCHAR):
            return data.decode(CODEPAGE, "replace")
        return data
    if tok in (TEXT, NTEXT, IMAGE):
        # RPC parameter form: 4-byte length (0xFFFFFFFF = NULL), no text pointer
        ln = r.u32()
        if ln == 0xFFFFFFFF:
            return None
        data = r.take(ln)
        return data.decode("utf-16-le") if tok == NTEXT else data.decode(CODEPAGE, "replace") if tok == TEXT else data
    if tok == XML:
        data = _read_plp(r)
        return None if data is None else data.decode("utf-16-le")
    if tok in (VARCHAR, CHAR, VARBINARY, BINARY):
        n = r.u8()
        if n == 0xFF:
            return None
        data = r.take(n)
        return data if tok in (VARBINARY, BINARY) else data.decode(CODEPAGE, "replace")
    n = r.u8()
    if n == 0:
        return None
    b = r.take(n)
    if tok == INTN:
        return _le_int(b, signed=(n != 1))
    if tok == BITN:
        return bool(b[0])
    if tok == FLTN:
        return struct.unpack("<d" if n == 8 else "<f", b)[0]
    if tok in (MONEYN, DATETIMN):
        fixed = {(MONEYN, 8): MONEY, (MONEYN, 4): MONEY4, (DATETIMN, 8): DATETIME, (DATETIMN, 4): DATETIM4}[(tok, n)]
        return _decode_fixed(fixed, b)
    if tok in (DECIMALN, NUMERICN, DECIMAL, NUMERIC):
        units = _le_int(b[1:], False)
        with decimal.localcontext(decimal.Context(prec=80)):
            d = decimal.Decimal(units).scaleb(-w.scale)
        return d if b[0] == 1 else -d
    if tok == GUID:
        return uuid.UUID(bytes_le=b)
    if tok == DATEN:
        return _read_date(b)
    if tok == TIMEN:
        return _read_time(b, w.scale)
    if tok == DATETIME2N:
        tl = _time_len(w.scale)
        return dt.datetime.combine(_read_date(b[tl:tl + 3]), _read_time(b[:tl], w.scale))
    if tok == DATETIMEOFFSETN:
        tl = _time_len(w.scale)
        utc = dt.datetime.combine(_read_date(b[tl:tl + 3]), _read_time(b[:tl], w.scale))
        off = dt.timedelta(minutes=struct.unpack("<h", b[tl + 3:tl + 5])[0])
        return (utc + off).replace(tzinfo=dt.timezone(off))
    raise TypeError_(f"cannot read a value of type {tok:#04x}")


def _decode_fixed(tok: int, b: bytes):
    if tok in (INT1,):
        return b[0]
    if tok == BIT:
        return bool(b[0])
    if tok in (INT2, INT4, INT8):
        return _le_int(b)
    if tok == FLT4:
        return struct.unpack("<f", b)[0]
    if tok == FLT8:
        return struct.unpack("<d", b)[0]
    if tok == MONEY:
        hi, lo = struct.unpack("<iI", b)
        return decimal.Decimal((hi << 32) | lo).scaleb(-4)
    if tok == MONEY4:
        return decimal.Decimal(_le_int(b)).scaleb(-4)
    if tok == DATETIME:
        days, ticks = struct.unpack("<iI", b)
        return DATETIME_BASE + dt.timedelta(days=days, milliseconds=round(ticks * 10 / 3))
    if tok == DATETIM4:
        days, mins = struct.unpack("<HH", b)
        return DATETIME_BASE + dt.timedelta(days=days, minutes=mins)
    raise TypeError_(f"fixed type {tok:#04x}")
