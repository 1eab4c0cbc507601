#!/usr/bin/env python3
"""Writes the seed corpora for the MySQL fuzz targets into fuzz/corpus/<target>/.

Payloads are bytes a MariaDB 10.11.19 server sent (or accepted from a PyMySQL-like client) on
loopback, plus a few synthetic edge cases. Input layouts match the targets:
  fuzz_mysql_frame:     [command][flags][framed packets...]  flags: 1 DEPRECATE_EOF, 2 SESSION_TRACK,
                                                             4 PROGRESS, 8 CACHE_METADATA
  fuzz_mysql_handshake: [selector 0 greeting|1 hsresp|2 auth switch|3 change user][caps u64 LE][payload]
  fuzz_mysql_reply:     [selector % 7: 0 ok|1 tracks|2 err|3 eof+lenenc|4 stmt_exec|5 kill|6 auth]
                        [caps u64 LE][payload]
Run from anywhere: python3 fuzz/make_seeds.py (deterministic; rewrites the files it owns).
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

PROTOCOL_41, TRANSACTIONS, SECURE, PLUGIN_AUTH, LENENC = 1 << 9, 1 << 13, 1 << 15, 1 << 19, 1 << 21
CONNECT_ATTRS, SESSION_TRACK, DEPRECATE_EOF = 1 << 20, 1 << 23, 1 << 24
CAPS_CLASSIC = PROTOCOL_41 | TRANSACTIONS | SECURE | PLUGIN_AUTH
CAPS_TRACK = CAPS_CLASSIC | SESSION_TRACK | DEPRECATE_EOF

GREETING = ("0a352e352e352d31302e31312e31392d4d6172696144422d302b646562313275312d6c6f6700100000005453255b7a75"
            "5d5300fef7080200ff81150000000000001d000000662a397e3323515123587153006d7973716c5f6e61746976655f70"
            "617373776f726400")
HSRESP = ("8da2bf01000000012d0000000000000000000000000000000000000000000000617070001424c55f7790bbe0bae8d8bb"
          "833aef4e568df6b4f874006d7973716c5f6e61746976655f70617373776f7264004a0c5f636c69656e745f6e616d6507"
          "70796d7973716c045f70696404343234320f5f636c69656e745f76657273696f6e05312e312e310c70726f6772616d5f"
          "6e616d650773792d74657374")
HSRESP_MARIADB = ("8ca2bf01000000012d000000000000000000000000000000"
                  "00000000110000006170700014ec27a53dd758fe93ca5143"
                  "59264094a04044663974006d7973716c5f6e61746976655f"
                  "70617373776f7264004a0c5f636c69656e745f6e616d6507"
                  "70796d7973716c045f70696404343234320f5f636c69656e"
                  "745f76657273696f6e05312e312e310c70726f6772616d5f"
                  "6e616d650773792d74657374")
AUTH_SWITCH = "fe6d7973716c5f6e61746976655f70617373776f72640052584632693d317d4479592e78333651782a623300"
CHANGE_USER = ("116170700014941e9662eef83840bde11cf073356b91bb95"
               "46be74002d006d7973716c5f6e61746976655f7061737377"
               "6f726400")
OK_SCHEMA = "00000002400000000401020174"
OK_GTID = "0001080240000000130011096c6173745f6774696406302d312d3138"
OK_INFILE = ("000200020000002f5265636f7264733a2032202044656c65"
             "7465643a20302020536b69707065643a203020205761726e"
             "696e67733a2030")
ERR_TABLE = "ff7a042334325330325461626c652027742e6e6f70652720646f65736e2774206578697374"
PROGRESS = "ffffff0102020000000f456e642062756c6b20696e73657274"
EXECUTE = "170500000001010000000001030000000000"
COLDEF_ID = "036465660174017801780269640269640c3f000b000000030342000000"
COLDEF_S = "03646566017401780178017301730c2d0050000000fd0000000000"

CLASSIC_SELECT = ["02", COLDEF_ID, COLDEF_S, "fe00002200", "01310161", "01320162", "0133fb", "fe00002200"]
DEPRECATE_SELECT = ["02", COLDEF_ID, COLDEF_S, "01310161", "01320162", "0133fb", "fe000022000000"]
CLASSIC_MULTI = ["01", "036465660000000131000c3f0001000000038100000000", "fe00000a00", "0131", "fe00000a00",
                 "01", "036465660000000132000c3f0001000000038100000000", "fe00000200", "0132", "fe00000200"]
CLASSIC_PREPARE = ["000500000002000100000000", "03646566000000013f000c3f0000000000068000000000", "fe00000200",
                   COLDEF_ID, COLDEF_S, "fe00000200"]
DEPRECATE_PREPARE = ["000600000002000100000000", "03646566000000013f000c3f0000000000068000000000",
                     COLDEF_ID, COLDEF_S]
CURSOR = ["02", COLDEF_ID.replace("0342", "0100"), COLDEF_S, "fe00004200"]
FETCH = ["0000010000000161", "0000020000000162", "fe00004200"]
EXEC_ROWS = ["0201", COLDEF_ID, COLDEF_S, "0000020000000162", "000803000000", "fe000002000000"]
INFILE = ["fb2f746d702f73792e637376", PROGRESS, OK_INFILE]


def framed(packets, lengths=None):
    out = b""
    for i, h in enumerate(packets):
        body = bytes.fromhex(h)
        n = len(body) if lengths is None or lengths[i] is None else lengths[i]
        out += struct.pack("<I", n)[:3] + bytes([i & 0xFF]) + body
    return out


def prefixed(selector, caps, payload_hex):
    return bytes([selector]) + struct.pack("<Q", caps) + bytes.fromhex(payload_hex)


def seeds():
    frame = {
        "query_classic_select": bytes([0x03, 0]) + framed(CLASSIC_SELECT),
        "query_deprecate_select": bytes([0x03, 3]) + framed(DEPRECATE_SELECT),
        "query_classic_multi": bytes([0x03, 0]) + framed(CLASSIC_MULTI),
        "query_infile_progress": bytes([0x03, 7]) + framed(INFILE),
        "query_ok_gtid": bytes([0x03, 3]) + framed([OK_GTID]),
        "query_err": bytes([0x03, 0]) + framed([ERR_TABLE]),
        "prepare_classic": bytes([0x16, 0]) + framed(CLASSIC_PREPARE),
        "prepare_deprecate": bytes([0x16, 1]) + framed(DEPRECATE_PREPARE),
        "execute_cursor": bytes([0x17, 0]) + framed(CURSOR),
        "execute_cache_metadata": bytes([0x17, 15]) + framed(EXEC_ROWS),
        "fetch": bytes([0x1C, 0]) + framed(FETCH),
        "field_list": bytes([0x04, 0]) + framed([COLDEF_ID, COLDEF_S, "fe00000200"]),
        "statistics": bytes([0x09, 0]) + framed(["557074696d653a203533"]),
        "set_option_deprecate": bytes([0x1B, 1]) + framed(["fe000002000000"]),
        "change_user_switch": bytes([0x11, 0]) + framed([AUTH_SWITCH, "00000002000000"]),
        # a row continued over a 16 MiB claim: the header says 0xFFFFFF, 8 bytes follow (the target takes
        # the rest as streamed), then an EOF-shaped continuation piece, then the real EOF
        "continued_row": bytes([0x03, 0]) + framed(["01", COLDEF_S, "fe00000200", "fc00000000000000",
                                                    "fe00000200", "fe00000200"],
                                                   [None, None, None, 0xFFFFFF, None, None]),
    }
    handshake = {
        "greeting": prefixed(0, 0, GREETING),
        "hsresp_pymysql": prefixed(1, 0, HSRESP),
        "hsresp_mariadb": prefixed(1, 0, HSRESP_MARIADB),
        "ssl_request": prefixed(1, 0, HSRESP[:64].replace("8da2", "8daa", 1)),
        "auth_switch": prefixed(2, 0, AUTH_SWITCH),
        "change_user": prefixed(3, CAPS_CLASSIC | LENENC | CONNECT_ATTRS, CHANGE_USER + "04016b0176"),
    }
    reply = {
        "ok_schema": prefixed(0, CAPS_TRACK, OK_SCHEMA),
        "ok_gtid": prefixed(0, CAPS_TRACK, OK_GTID),
        "ok_infile_classic": prefixed(0, CAPS_CLASSIC, OK_INFILE),
        "tracks": prefixed(1, 0, "0011096c6173745f6774696406302d312d3138" "01020174" "05020154"),
        "err": prefixed(2, 0, ERR_TABLE),
        "err_no_state": prefixed(2, 0, "ff6904486f737420626c6f636b6564"),
        "eof_lenenc": prefixed(3, 0, "fe00004200fcffff" "fd000001" "fe0102030405060708" "fb"),
        "stmt_exec": prefixed(4, 1, EXECUTE),
        "kill": prefixed(5, 0, b"  KILL HARD QUERY 12 ; ".hex()),
        "kill_conn": prefixed(5, 0, b"kill connection 7".hex()),
        "auth_accounts": prefixed(6, 0, b"10.0.0.0/255.255.255.0\x0010.0.0.5\x00app\x00\x00localhost"
                                        b"\x00app\x00%\x00app\x00db_.example.com".hex()),
        "auth_hash": prefixed(6, 0, b"*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19".hex()),
    }
    return {"fuzz_mysql_frame": frame, "fuzz_mysql_handshake": handshake, "fuzz_mysql_reply": reply}


def main():
    for target, files in seeds().items():
        d = os.path.join(HERE, "corpus", target)
        os.makedirs(d, exist_ok=True)
        for name, data in files.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        print(f"{target}: {len(files)} seeds")


if __name__ == "__main__":
    main()
