#!/usr/bin/env python3
"""TEST-ONLY TCG Opal SSC responder for the opal_test_dev kernel module.

The kernel's block/sed-opal.c builds every TCG packet; this program answers
them as an Opal 2 drive would (a deliberately small subset: what sed-opal on
Linux 6.1 sends, with the core spec's session and authority rules):

  * Level 0 discovery (TPer, Locking, Geometry, Opal SSC V2 features);
  * session manager: Properties, StartSession with a password authority
    (HostChallenge + HostSigningAuthority), EndSession; one session at a time;
  * Admin SP: Get C_PIN_MSID, Set C_PIN_SID, Get Locking SP LifeCycle,
    Activate (Locking SP), Revert (SID or PSID: factory state, new media key);
  * Locking SP: Set Authority Enabled, Set C_PIN, Get/Set Locking ranges,
    Set ACE BooleanExpr, Set MBRControl, MBR table writes, GenKey, Erase,
    RevertSP;
  * method status codes: NOT_AUTHORIZED for a wrong password, a disabled
    authority, a method the session's authority may not call;
    INVALID_PARAMETER, NO_SESSIONS_AVAILABLE, SP_DISABLED (inactive SP) ...
  * power cycle: the state lives in a JSON file; starting the responder is a
    power-on: ranges whose LockOnReset includes PowerCycle lock again (for
    each lock-enabled direction) and MBR Done resets.

Why Python: this is test-only code that must parse and build TCG token
streams and keep a little state; Python's bytes/struct handling keeps it short
and readable, it needs no build step inside the VM, and its unit tests
(test_opal_responder.py) run in the unit tier. The product never uses it.

Usage: opal_responder.py --ctl /dev/opaltest0-ctl --state FILE --trace FILE
       opal_responder.py --state FILE --factory [--psid PSID]   (new drive)
"""
import argparse
import json
import os
import secrets
import signal
import struct
import sys

# ---------------------------------------------------------------- tokens
STARTLIST, ENDLIST, STARTNAME, ENDNAME = 0xF0, 0xF1, 0xF2, 0xF3
CALL, ENDOFDATA, ENDOFSESSION, EMPTYATOM = 0xF8, 0xF9, 0xFA, 0xFF

# method status codes (TCG Core 5.1.5)
SUCCESS, NOT_AUTHORIZED, SP_BUSY, SP_FAILED, SP_DISABLED = 0x00, 0x01, 0x03, 0x04, 0x05
NO_SESSIONS_AVAILABLE, INVALID_PARAMETER, INVALID_FUNCTION = 0x07, 0x0C, 0x0B
TPER_MALFUNCTION, FAIL = 0x0F, 0x3F


class Tok:
    """A control token (STARTLIST, CALL, ...) in a parsed stream."""
    def __init__(self, b):
        self.b = b

    def __eq__(self, other):
        return isinstance(other, Tok) and other.b == self.b

    def __repr__(self):
        return "Tok(%#x)" % self.b


class Named:
    def __init__(self, name, value):
        self.name, self.value = name, value

    def __repr__(self):
        return "Named(%r, %r)" % (self.name, self.value)


class ProtocolError(Exception):
    pass


def tokenize(data):
    """Bytes -> flat list of int | bytes | Tok (empty atoms dropped)."""
    out, i, n = [], 0, len(data)
    while i < n:
        b = data[i]
        if b <= 0x7F:  # tiny atom
            v = b & 0x3F
            out.append(v - 64 if (b & 0x40) and (v & 0x20) else v)
            i += 1
            continue
        if b <= 0xBF:
            bs, ln, hdr = b & 0x20, b & 0x0F, 1
        elif b <= 0xDF:
            if i + 1 >= n:
                raise ProtocolError("truncated medium atom")
            bs, ln, hdr = b & 0x10, ((b & 0x07) << 8) | data[i + 1], 2
        elif b <= 0xE3:
            if i + 3 >= n:
                raise ProtocolError("truncated long atom")
            bs, ln, hdr = b & 0x02, (data[i + 1] << 16) | (data[i + 2] << 8) | data[i + 3], 4
        else:
            if b != EMPTYATOM:
                out.append(Tok(b))
            i += 1
            continue
        body = data[i + hdr:i + hdr + ln]
        if len(body) != ln:
            raise ProtocolError("atom runs past the end")
        out.append(bytes(body) if bs else int.from_bytes(body, "big"))
        i += hdr + ln
    return out


def structure(toks):
    """Flat tokens -> nested Python values: lists for F0..F1, Named for F2..F3."""
    pos = 0

    def value():
        nonlocal pos
        if pos >= len(toks):
            raise ProtocolError("unexpected end of tokens")
        t = toks[pos]
        pos += 1
        if isinstance(t, Tok):
            if t.b == STARTLIST:
                items = []
                while pos < len(toks) and toks[pos] != Tok(ENDLIST):
                    items.append(value())
                if pos >= len(toks):
                    raise ProtocolError("list not closed")
                pos += 1
                return items
            if t.b == STARTNAME:
                name = value()
                v = value()
                if pos >= len(toks) or toks[pos] != Tok(ENDNAME):
                    raise ProtocolError("name not closed")
                pos += 1
                return Named(name, v)
            return t
        return t

    out = []
    while pos < len(toks):
        out.append(value())
    return out


def encode(v):
    if isinstance(v, Tok):
        return bytes([v.b])
    if isinstance(v, bool):
        v = int(v)
    if isinstance(v, int):
        if 0 <= v < 64:
            return bytes([v])
        body = v.to_bytes(max(1, (v.bit_length() + 7) // 8), "big")
        return bytes([0x80 | len(body)]) + body
    if isinstance(v, (bytes, bytearray)):
        if len(v) < 16:
            return bytes([0xA0 | len(v)]) + bytes(v)
        if len(v) < 2048:
            return bytes([0xD0 | (len(v) >> 8), len(v) & 0xFF]) + bytes(v)
        return bytes([0xE2, (len(v) >> 16) & 0xFF, (len(v) >> 8) & 0xFF, len(v) & 0xFF]) + bytes(v)
    if isinstance(v, list):
        return bytes([STARTLIST]) + b"".join(encode(x) for x in v) + bytes([ENDLIST])
    if isinstance(v, Named):
        return bytes([STARTNAME]) + encode(v.name) + encode(v.value) + bytes([ENDNAME])
    raise TypeError(v)


# ---------------------------------------------------------------- packets
HDR = struct.Struct(">I4sIII" + "IIIHHII" + "6sHI")  # ComPacket, Packet, SubPacket = 56 bytes


def parse_packet(buf):
    f = HDR.unpack_from(buf)
    comid = int.from_bytes(f[1][:2], "big")
    tsn, hsn, slen = f[5], f[6], f[14]
    if slen > len(buf) - HDR.size:
        raise ProtocolError("subpacket longer than the buffer")
    return comid, tsn, hsn, bytes(buf[HDR.size:HDR.size + slen])


def build_packet(comid, tsn, hsn, payload):
    pad = (-len(payload)) % 4
    body = payload + b"\0" * pad
    slen, plen = len(payload), 12 + len(body)
    clen = 24 + plen
    return HDR.pack(0, comid.to_bytes(2, "big") + b"\0\0", 0, 0, clen,
                    tsn, hsn, 0, 0, 0, 0, plen, b"\0" * 6, 0, slen) + body


# ---------------------------------------------------------------- UIDs
def uid(x):
    return x.to_bytes(8, "big")


SMUID, THISSP = uid(0xFF), uid(0x01)
ADMIN_SP, LOCKING_SP = uid(0x0000020500000001), uid(0x0000020500000002)
ANYBODY, SID, PSID = uid(0x0000000900000001), uid(0x0000000900000006), uid(0x000000090001FF01)
C_PIN_MSID, C_PIN_SID = uid(0x0000000B00008402), uid(0x0000000B00000001)
GLOBAL_RANGE, MBRCONTROL, MBR_TABLE = uid(0x0000080200000001), uid(0x0000080300000001), uid(0x0000080400000000)
GLOBAL_KEY = uid(0x0000080600000001)

M_PROPERTIES, M_STARTSESSION, M_SYNCSESSION = uid(0xFF01), uid(0xFF02), uid(0xFF03)
M_REVERT, M_ACTIVATE = uid(0x0000000600000202), uid(0x0000000600000203)
M_GENKEY, M_REVERTSP = uid(0x0000000600000010), uid(0x0000000600000011)
M_GET, M_SET, M_AUTHENTICATE = uid(0x0000000600000016), uid(0x0000000600000017), uid(0x000000060000001C)
M_ERASE = uid(0x0000000600000803)
METHOD_NAMES = {M_PROPERTIES: "Properties", M_STARTSESSION: "StartSession", M_REVERT: "Revert",
                M_ACTIVATE: "Activate", M_GENKEY: "GenKey", M_REVERTSP: "RevertSP", M_GET: "Get",
                M_SET: "Set", M_AUTHENTICATE: "Authenticate", M_ERASE: "Erase"}

NUM_ADMINS, NUM_USERS, NUM_RANGES = 4, 8, 8
BASE_COMID = 0x07FE
MANUFACTURED_INACTIVE, MANUFACTURED = 0x08, 0x09
MBR_SIZE = 128 * 1024
IOCTL_NAMES = {220: "SAVE", 221: "LOCK_UNLOCK", 222: "TAKE_OWNERSHIP", 223: "ACTIVATE_LSP", 224: "SET_PW",
               225: "ACTIVATE_USR", 226: "REVERT_TPR", 227: "LR_SETUP", 228: "ADD_USR_TO_LR",
               229: "ENABLE_DISABLE_MBR", 230: "ERASE_LR", 231: "SECURE_ERASE_LR", 232: "PSID_REVERT_TPR",
               233: "MBR_DONE", 234: "WRITE_SHADOW_MBR", 235: "GENERIC_TABLE_RW", 236: "GET_STATUS"}


def admin_uid(n):
    return uid(0x0000000900010000 + n)


def user_uid(n):
    return uid(0x0000000900030000 + n)


def range_uid(n):  # 0 = global
    return GLOBAL_RANGE if n == 0 else uid(0x0000080200030000 + n)


def range_of(u):
    for n in range(NUM_RANGES + 1):
        if range_uid(n) == u:
            return n
    return None


def ace_rd(n):
    return uid(0x000000080003E000 + n)


def ace_wr(n):
    return uid(0x000000080003E800 + n)


def cpin_of_auth(u):
    """C_PIN row of a Locking SP authority (Admin N -> 0x0B0001000N, User N -> 0x0B0003000N)."""
    return uid(0x0000000B00000000 | int.from_bytes(u[4:], "big"))


# ---------------------------------------------------------------- state
def factory_state(psid=None):
    return {
        "msid": secrets.token_hex(16),
        "psid": psid or secrets.token_hex(16).upper(),
        "sid": None,  # None: SID PIN == MSID
        "lsp": MANUFACTURED_INACTIVE,
        "lsp_state": None,
        "media_keys": {str(n): secrets.randbits(63) for n in range(NUM_RANGES + 1)},
    }


def fresh_locking_sp(sid_pin):
    """The Locking SP right after Activate: Admin1 gets the SID PIN (Opal SSC 5.1.1.2)."""
    auth = {admin_uid(n).hex(): {"enabled": n == 1, "pin": sid_pin if n == 1 else ""}
            for n in range(1, NUM_ADMINS + 1)}
    auth.update({user_uid(n).hex(): {"enabled": False, "pin": ""} for n in range(1, NUM_USERS + 1)})
    ranges = {str(n): {"start": 0, "length": 0, "rle": False, "wle": False, "rl": False, "wl": False,
                       "lock_on_reset": [0]} for n in range(NUM_RANGES + 1)}
    aces = {}
    for n in range(NUM_RANGES + 1):
        aces[ace_rd(n).hex()] = ["admins"]
        aces[ace_wr(n).hex()] = ["admins"]
    return {"auth": auth, "ranges": ranges, "aces": aces, "mbr_enable": False, "mbr_done": False}


class Tper:
    """One Opal drive's security subsystem. Persistent state in self.s (JSON-able)."""

    def __init__(self, state, save=None, trace=None):
        self.s = state
        self._save = save or (lambda s: None)
        self._trace = trace or (lambda line: None)
        self.session = None  # dict(sp, auth, tsn, hsn)
        self.next_tsn = 0x1000
        self.pending = None  # response bytes waiting for the next IF-RECV
        self.mbr = bytearray(MBR_SIZE)  # the shadow MBR (not persisted)

    # -------- power / lock state
    def power_on(self):
        """Power cycle semantics: LockOnReset ranges lock, MBR Done resets, sessions end."""
        self.session = None
        self.pending = None
        lsp = self.s.get("lsp_state")
        if self.s["lsp"] == MANUFACTURED and lsp:
            for r in lsp["ranges"].values():
                if 0 in r["lock_on_reset"]:
                    if r["rle"]:
                        r["rl"] = True
                    if r["wle"]:
                        r["wl"] = True
            lsp["mbr_done"] = False
            self._save(self.s)
        self._trace("POWER_ON")

    def lock_flags(self):
        """(read_locked, write_locked) of the global range as the data path enforces it."""
        lsp = self.s.get("lsp_state")
        if self.s["lsp"] != MANUFACTURED or not lsp:
            return False, False
        g = lsp["ranges"]["0"]
        return bool(g["rle"] and g["rl"]), bool(g["wle"] and g["wl"])

    def media_key(self):
        return int(self.s["media_keys"]["0"])

    def sid_pin(self):
        return self.s["sid"] if self.s["sid"] is not None else self.s["msid"]

    # -------- Level 0 discovery
    def discovery(self):
        lsp = self.s.get("lsp_state")
        active = self.s["lsp"] == MANUFACTURED
        locked = any(r["rle"] and r["rl"] or r["wle"] and r["wl"] for r in lsp["ranges"].values()) \
            if active and lsp else False
        lock_byte = 0x01 | (0x02 if active else 0) | (0x04 if locked else 0) | 0x08
        if active and lsp:
            lock_byte |= (0x10 if lsp["mbr_enable"] else 0) | (0x20 if lsp["mbr_done"] else 0)
        feats = b""
        feats += struct.pack(">HBB", 0x0001, 0x10, 12) + bytes([0x11]) + b"\0" * 11
        feats += struct.pack(">HBB", 0x0002, 0x10, 12) + bytes([lock_byte]) + b"\0" * 11
        feats += struct.pack(">HBB", 0x0003, 0x10, 28) + bytes([1]) + b"\0" * 7 + struct.pack(">IQQ", 512, 8, 0)
        feats += struct.pack(">HBB", 0x0203, 0x10, 16) + struct.pack(">HHBHHBB", BASE_COMID, 1, 0, NUM_ADMINS,
                                                                      NUM_USERS, 0, 0) + b"\0" * 5
        header = struct.pack(">III", 44 + len(feats), 0x00000001, 0) + b"\0" * 36
        return header + feats

    # -------- transport entry points
    def if_send(self, secp, comid, data):
        if secp != 1 or comid != BASE_COMID:
            self._trace("IF-SEND refused protocol %d comid %#x" % (secp, comid))
            return -22
        try:
            self.pending = self.handle_packet(data)
        except ProtocolError as e:
            self._trace("PROTOCOL ERROR %s" % e)
            self.pending = None
            return -71
        return 0

    def if_recv(self, secp, comid, length):
        if secp == 1 and comid == 0x0001:
            return 0, self.discovery()[:length]
        if secp != 1 or comid != BASE_COMID:
            return -22, b""
        resp = self.pending or build_packet(comid, 0, 0, b"")
        self.pending = None
        return 0, resp[:length]

    # -------- packets, sessions
    def handle_packet(self, data):
        comid, tsn, hsn, payload = parse_packet(data)
        toks = tokenize(payload)
        if toks and toks[0] == Tok(ENDOFSESSION):
            if self.session is None or (tsn, hsn) != (self.session["tsn"], self.session["hsn"]):
                # sed-opal ends the session after any failed step, also when
                # StartSession itself failed: nothing to close.
                self._trace("END_SESSION (no session)")
                return build_packet(comid, tsn, hsn, bytes([ENDOFSESSION]))
            self._trace("END_SESSION")
            self.session = None
            return build_packet(comid, tsn, hsn, bytes([ENDOFSESSION]))
        vals = structure(toks)
        if len(vals) < 5 or vals[0] != Tok(CALL) or vals[4] != Tok(ENDOFDATA):
            raise ProtocolError("not a method call")
        inv, meth, params = vals[1], vals[2], vals[3]
        if not isinstance(params, list) or not isinstance(inv, bytes) or not isinstance(meth, bytes):
            raise ProtocolError("malformed method call")
        if inv == SMUID:
            if tsn != 0 or hsn != 0:
                raise ProtocolError("session manager call inside a session")
            return build_packet(comid, 0, 0, self.session_manager(meth, params))
        if self.session is None or (tsn, hsn) != (self.session["tsn"], self.session["hsn"]):
            self._trace("METHOD %s outside a session" % METHOD_NAMES.get(meth, meth.hex()))
            raise ProtocolError("method call outside a session")
        status, results = self.method(inv, meth, params)
        self._trace("METHOD %s %s -> %d" % (METHOD_NAMES.get(meth, meth.hex()), inv.hex(), status))
        payload = encode(results) + bytes([ENDOFDATA]) + encode([status, 0, 0])
        out = build_packet(comid, tsn, hsn, payload)
        if self.session is not None and self.session.get("closed"):
            self.session = None  # Revert: the TPer ends the session itself
        return out

    def session_manager(self, meth, params):
        def reply(status, results):
            return encode(Tok(CALL)) + encode(SMUID) + encode(M_SYNCSESSION) + encode(results) + \
                bytes([ENDOFDATA]) + encode([status, 0, 0])

        if meth == M_PROPERTIES:
            props = [Named(b"MaxComPacketSize", 2048), Named(b"MaxPacketSize", 2028),
                     Named(b"MaxIndTokenSize", 1992), Named(b"MaxPackets", 1), Named(b"MaxSubpackets", 1),
                     Named(b"MaxMethods", 1), Named(b"MaxSessions", 1), Named(b"MaxAuthentications", 1)]
            return encode(Tok(CALL)) + encode(SMUID) + encode(M_PROPERTIES) + encode([props]) + \
                bytes([ENDOFDATA]) + encode([SUCCESS, 0, 0])
        if meth != M_STARTSESSION:
            return reply(INVALID_FUNCTION, [])
        if len(params) < 3 or not isinstance(params[0], int) or not isinstance(params[1], bytes):
            return reply(INVALID_PARAMETER, [])
        hsn, sp, write = params[0], params[1], params[2]
        named = {p.name: p.value for p in params[3:] if isinstance(p, Named)}
        challenge, auth = named.get(0), named.get(3, ANYBODY)
        status = self.start_session(sp, auth, challenge, bool(write))
        auth_name = self.auth_name(auth)
        sp_name = "AdminSP" if sp == ADMIN_SP else "LockingSP" if sp == LOCKING_SP else sp.hex()
        self._trace("START_SESSION %s %s -> %d" % (sp_name, auth_name, status))
        if status != SUCCESS:
            return reply(status, [])
        tsn = self.next_tsn
        self.next_tsn += 1
        self.session = {"sp": sp, "auth": auth, "tsn": tsn, "hsn": hsn}
        return reply(SUCCESS, [hsn, tsn])

    def auth_name(self, a):
        names = {ANYBODY: "Anybody", SID: "SID", PSID: "PSID"}
        for n in range(1, NUM_ADMINS + 1):
            names[admin_uid(n)] = "Admin%d" % n
        for n in range(1, NUM_USERS + 1):
            names[user_uid(n)] = "User%d" % n
        return names.get(a, a.hex() if isinstance(a, bytes) else repr(a))

    def start_session(self, sp, auth, challenge, write):
        if self.session is not None:
            return NO_SESSIONS_AVAILABLE
        if not isinstance(auth, bytes) or (challenge is not None and not isinstance(challenge, bytes)):
            return INVALID_PARAMETER
        pin = challenge.decode("latin-1") if challenge is not None else None
        if sp == ADMIN_SP:
            if auth == ANYBODY:
                return SUCCESS if pin is None else NOT_AUTHORIZED
            if auth == SID:
                return SUCCESS if pin is not None and pin == self.sid_pin() else NOT_AUTHORIZED
            if auth == PSID:
                return SUCCESS if pin is not None and pin == self.s["psid"] else NOT_AUTHORIZED
            return NOT_AUTHORIZED
        if sp == LOCKING_SP:
            if self.s["lsp"] != MANUFACTURED:
                return SP_DISABLED
            if auth == ANYBODY:
                return SUCCESS if pin is None else NOT_AUTHORIZED
            a = self.s["lsp_state"]["auth"].get(auth.hex())
            if a is None or not a["enabled"] or pin is None or pin != a["pin"]:
                return NOT_AUTHORIZED
            return SUCCESS
        return INVALID_PARAMETER

    # -------- methods
    def method(self, inv, meth, params):
        sp, auth = self.session["sp"], self.session["auth"]
        if sp == ADMIN_SP:
            return self.admin_method(inv, meth, params, auth)
        return self.locking_method(inv, meth, params, auth)

    @staticmethod
    def cellblock(params):
        cols = {}
        if params and isinstance(params[0], list):
            for p in params[0]:
                if isinstance(p, Named):
                    cols[p.name] = p.value
        return cols.get(3), cols.get(4)

    @staticmethod
    def values(params):
        for p in params:
            if isinstance(p, Named) and p.name == 1 and isinstance(p.value, list):
                out = {}
                for v in p.value:
                    if not isinstance(v, Named):
                        raise ProtocolError("Values entry is not a name/value pair")
                    out[v.name] = v.value
                return out
        return None

    @staticmethod
    def get_result(cols, start, end):
        if start is None or end is None or start > end:
            return INVALID_PARAMETER, []
        return SUCCESS, [[Named(c, v) for c, v in sorted(cols.items()) if start <= c <= end]]

    def admin_method(self, inv, meth, params, auth):
        if meth == M_GET:
            start, end = self.cellblock(params)
            if inv == C_PIN_MSID:
                return self.get_result({3: self.s["msid"].encode()}, start, end)
            if inv == LOCKING_SP:
                return self.get_result({6: self.s["lsp"]}, start, end)
            if inv == ADMIN_SP:
                return self.get_result({6: MANUFACTURED}, start, end)
            if inv == C_PIN_SID:
                return NOT_AUTHORIZED, []  # PIN columns are never readable
            return INVALID_PARAMETER, []
        if meth == M_SET:
            vals = self.values(params)
            if inv == C_PIN_SID:
                if auth != SID:
                    return NOT_AUTHORIZED, []
                if not vals or set(vals) != {3} or not isinstance(vals[3], bytes):
                    return INVALID_PARAMETER, []
                self.s["sid"] = vals[3].decode("latin-1")
                self._save(self.s)
                return SUCCESS, []
            return NOT_AUTHORIZED if inv in (C_PIN_MSID, LOCKING_SP, ADMIN_SP) else INVALID_PARAMETER, []
        if meth == M_ACTIVATE and inv == LOCKING_SP:
            if auth != SID:
                return NOT_AUTHORIZED, []
            if self.s["lsp"] == MANUFACTURED:
                return SUCCESS, []  # no effect on an active SP (Opal SSC 5.1.1.1)
            self.s["lsp"] = MANUFACTURED
            self.s["lsp_state"] = fresh_locking_sp(self.sid_pin())
            self._save(self.s)
            return SUCCESS, []
        if meth == M_REVERT and inv == ADMIN_SP:
            if auth not in (SID, PSID):
                return NOT_AUTHORIZED, []
            self.factory_reset()
            self.session["closed"] = True
            return SUCCESS, []
        if meth == M_AUTHENTICATE:
            return NOT_AUTHORIZED, []
        return INVALID_FUNCTION, []

    def factory_reset(self):
        self.s["sid"] = None
        self.s["lsp"] = MANUFACTURED_INACTIVE
        self.s["lsp_state"] = None
        self.s["media_keys"] = {str(n): secrets.randbits(63) for n in range(NUM_RANGES + 1)}
        self.mbr = bytearray(MBR_SIZE)
        self._save(self.s)

    def is_admin(self, auth):
        return any(auth == admin_uid(n) for n in range(1, NUM_ADMINS + 1))

    def ace_allows(self, ace, auth):
        for entry in self.s["lsp_state"]["aces"][ace.hex()]:
            if entry == "admins" and self.is_admin(auth):
                return True
            if entry == auth.hex():
                return True
        return False

    def locking_method(self, inv, meth, params, auth):
        lsp = self.s["lsp_state"]
        rng = range_of(inv)
        if meth == M_GET:
            start, end = self.cellblock(params)
            if rng is not None:
                if not self.is_admin(auth):
                    return NOT_AUTHORIZED, []
                r = lsp["ranges"][str(rng)]
                key = GLOBAL_KEY if rng == 0 else uid(0x0000080600030000 + rng)
                cols = {3: r["start"], 4: r["length"], 5: int(r["rle"]), 6: int(r["wle"]), 7: int(r["rl"]),
                        8: int(r["wl"]), 9: r["lock_on_reset"], 10: key}
                return self.get_result(cols, start, end)
            if inv == MBRCONTROL:
                return self.get_result({1: int(lsp["mbr_enable"]), 2: int(lsp["mbr_done"])}, start, end)
            if inv == uid(0x0000000100000804):  # Table table row of the MBR table
                return self.get_result({7: MBR_SIZE}, start, end)
            return INVALID_PARAMETER, []
        if meth == M_SET:
            return self.locking_set(inv, params, auth, lsp, rng)
        if meth == M_GENKEY:
            for n in range(NUM_RANGES + 1):
                k = GLOBAL_KEY if n == 0 else uid(0x0000080600030000 + n)
                if inv == k:
                    if not self.is_admin(auth):
                        return NOT_AUTHORIZED, []
                    self.s["media_keys"][str(n)] = secrets.randbits(63)
                    self._save(self.s)
                    return SUCCESS, []
            return INVALID_PARAMETER, []
        if meth == M_ERASE and rng is not None:
            # Erase (Single User Mode): the range's user, or an Admin here. New key, range unlocked.
            if not (self.is_admin(auth) or auth == user_uid(rng + 1)):
                return NOT_AUTHORIZED, []
            self.s["media_keys"][str(rng)] = secrets.randbits(63)
            r = lsp["ranges"][str(rng)]
            r["rl"] = r["wl"] = False
            self._save(self.s)
            return SUCCESS, []
        if meth == M_REVERTSP and inv == THISSP:
            if not self.is_admin(auth):
                return NOT_AUTHORIZED, []
            self.s["lsp"] = MANUFACTURED_INACTIVE
            self.s["lsp_state"] = None
            self.s["media_keys"] = {str(n): secrets.randbits(63) for n in range(NUM_RANGES + 1)}
            self.session["closed"] = True
            self._save(self.s)
            return SUCCESS, []
        return INVALID_FUNCTION, []

    def locking_set(self, inv, params, auth, lsp, rng):
        if inv == MBR_TABLE:
            where, data = None, None
            for p in params:
                if isinstance(p, Named) and p.name == 0:
                    where = p.value
                if isinstance(p, Named) and p.name == 1:
                    data = p.value
            if not self.is_admin(auth):
                return NOT_AUTHORIZED, []
            if not isinstance(where, int) or not isinstance(data, bytes) or where + len(data) > MBR_SIZE:
                return INVALID_PARAMETER, []
            self.mbr[where:where + len(data)] = data
            return SUCCESS, []
        vals = self.values(params)
        if vals is None:
            return INVALID_PARAMETER, []
        if rng is not None:
            r = lsp["ranges"][str(rng)]
            names = {3: "start", 4: "length", 5: "rle", 6: "wle", 7: "rl", 8: "wl", 9: "lock_on_reset"}
            if any(c not in names for c in vals):
                return INVALID_PARAMETER, []
            for c in vals:
                if c == 7 and not self.ace_allows(ace_rd(rng), auth):
                    return NOT_AUTHORIZED, []
                if c == 8 and not self.ace_allows(ace_wr(rng), auth):
                    return NOT_AUTHORIZED, []
                if c not in (7, 8) and not self.is_admin(auth):
                    return NOT_AUTHORIZED, []
            if rng == 0 and (3 in vals or 4 in vals):
                return INVALID_PARAMETER, []  # the global range has no start/length
            for c, v in vals.items():
                if c == 9:
                    if not isinstance(v, list):
                        return INVALID_PARAMETER, []
                    r[names[c]] = [int(x) for x in v]
                elif c in (5, 6, 7, 8):
                    r[names[c]] = bool(v)
                else:
                    r[names[c]] = int(v)
            self._trace("RANGE %d rle=%d wle=%d rl=%d wl=%d" % (rng, r["rle"], r["wle"], r["rl"], r["wl"]))
            self._save(self.s)
            return SUCCESS, []
        if inv.hex() in lsp["auth"]:  # Authority table: Enabled (column 5)
            if not self.is_admin(auth):
                return NOT_AUTHORIZED, []
            if set(vals) != {5}:
                return INVALID_PARAMETER, []
            lsp["auth"][inv.hex()]["enabled"] = bool(vals[5])
            self._save(self.s)
            return SUCCESS, []
        for a in lsp["auth"]:
            if inv == cpin_of_auth(bytes.fromhex(a)):  # C_PIN: PIN (column 3)
                if not (self.is_admin(auth) or auth.hex() == a):
                    return NOT_AUTHORIZED, []
                if set(vals) != {3} or not isinstance(vals[3], bytes):
                    return INVALID_PARAMETER, []
                lsp["auth"][a]["pin"] = vals[3].decode("latin-1")
                self._save(self.s)
                return SUCCESS, []
        if inv.hex() in lsp["aces"]:  # ACE: BooleanExpr (column 3)
            if not self.is_admin(auth):
                return NOT_AUTHORIZED, []
            expr = vals.get(3)
            if set(vals) != {3} or not isinstance(expr, list):
                return INVALID_PARAMETER, []
            members = [v.value.hex() for v in expr if isinstance(v, Named) and isinstance(v.value, bytes)]
            if not members:
                return INVALID_PARAMETER, []
            lsp["aces"][inv.hex()] = members
            self._save(self.s)
            return SUCCESS, []
        if inv == MBRCONTROL:
            if not self.is_admin(auth):
                return NOT_AUTHORIZED, []
            if any(c not in (1, 2) for c in vals):
                return INVALID_PARAMETER, []
            if 1 in vals:
                lsp["mbr_enable"] = bool(vals[1])
            if 2 in vals:
                lsp["mbr_done"] = bool(vals[2])
            self._save(self.s)
            return SUCCESS, []
        return INVALID_PARAMETER, []


# ---------------------------------------------------------------- device loop
REQ = struct.Struct("=IIBBHI")
RESP = struct.Struct("=IIiIIIQ")
REQ_MAGIC, NOTE_MAGIC, RESP_MAGIC = 0x5144544F, 0x4E44544F, 0x5244544F


def load_state(path):
    with open(path) as f:
        return json.load(f)


def save_state(path, s):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(s, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def state_message(tper, seq=0, status=0, data=b""):
    rl, wl = tper.lock_flags()
    flags = 1 | (2 if rl else 0) | (4 if wl else 0)
    return RESP.pack(RESP_MAGIC, seq, status, len(data), flags, 0, tper.media_key()) + data


def serve(ctl, state_path, trace_path, ready=None):
    tf = open(trace_path, "a", buffering=1)

    def trace(line):
        tf.write(line + "\n")

    tper = Tper(load_state(state_path), save=lambda s: save_state(state_path, s), trace=trace)
    tper.power_on()
    fd = os.open(ctl, os.O_RDWR)
    os.write(fd, state_message(tper))  # claims the drive and reports its state
    if ready:
        with open(ready, "w") as f:
            f.write("%d\n" % os.getpid())
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        msg = os.read(fd, REQ.size + 4096)
        magic, seq, send, secp, spsp, length = REQ.unpack_from(msg)
        if magic == NOTE_MAGIC:
            trace("IOCTL %s" % IOCTL_NAMES.get(seq, str(seq)))
            continue
        if magic != REQ_MAGIC:
            raise SystemExit("opal_responder: bad message from the module")
        if send:
            status = tper.if_send(secp, spsp, msg[REQ.size:REQ.size + length])
            os.write(fd, state_message(tper, seq, status))
        else:
            status, data = tper.if_recv(secp, spsp, length)
            os.write(fd, state_message(tper, seq, status, data))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--state", required=True, help="the drive's persistent state (JSON)")
    ap.add_argument("--factory", action="store_true", help="write a factory-new drive state and exit")
    ap.add_argument("--psid", help="PSID printed on the drive's label (with --factory)")
    ap.add_argument("--ctl", help="the module's control device, e.g. /dev/opaltest0-ctl")
    ap.add_argument("--trace", help="append the methods received to this file")
    ap.add_argument("--ready", help="write the pid here once the drive is claimed")
    a = ap.parse_args()
    if a.factory:
        save_state(a.state, factory_state(a.psid))
        return 0
    if not a.ctl or not a.trace:
        ap.error("--ctl and --trace are required to serve")
    serve(a.ctl, a.state, a.trace, a.ready)
    return 0


if __name__ == "__main__":
    sys.exit(main())
