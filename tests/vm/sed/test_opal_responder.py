#!/usr/bin/env python3
"""Unit tests of the test-only Opal responder against the TCG rules it claims.

The Host class below builds packets the way block/sed-opal.c (Linux 6.1) does
(same UIDs, tokens and session numbers), so these tests pin the responder's
answers to what the kernel will parse: status at tokens[-4], HSN/TSN at
tokens 4/5 of SyncSession, a Get's value at token 4.
"""
import os
import struct
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import opal_responder as R  # noqa: E402

HSN = 105  # GENERIC_HOST_SESSION_NUM in sed-opal.c


class Host:
    def __init__(self, tper):
        self.t = tper
        self.tsn = 0
        self.hsn = 0

    def xfer(self, payload):
        pkt = R.build_packet(R.BASE_COMID, self.tsn, self.hsn, payload)
        self.t.if_send(1, R.BASE_COMID, pkt + b"\0" * (2048 - len(pkt)))
        status, resp = self.t.if_recv(1, R.BASE_COMID, 2048)
        assert status == 0
        _, tsn, hsn, body = R.parse_packet(resp)
        return R.tokenize(body)

    @staticmethod
    def status(toks):
        if toks and toks[0] == R.Tok(R.ENDOFSESSION):
            return 0
        assert toks[-5] == R.Tok(R.STARTLIST) and toks[-1] == R.Tok(R.ENDLIST), toks
        return toks[-4]

    def call(self, inv, meth, params=b""):
        body = bytes([R.CALL]) + R.encode(inv) + R.encode(meth) + bytes([R.STARTLIST]) + params + \
            bytes([R.ENDLIST, R.ENDOFDATA, R.STARTLIST, 0, 0, 0, R.ENDLIST])
        return self.xfer(body)

    def start(self, sp, auth=None, pin=None):
        params = R.encode(HSN) + R.encode(sp) + R.encode(1)
        if auth is not None:
            params += R.encode(R.Named(0, pin)) + R.encode(R.Named(3, auth))
        toks = self.call(R.SMUID, R.M_STARTSESSION, params)
        st = self.status(toks)
        if st == 0:
            self.hsn, self.tsn = toks[4], toks[5]
        return st

    def end(self):
        pkt = bytes([R.ENDOFSESSION, R.ENDLIST, R.ENDOFDATA, R.STARTLIST, 0, 0, 0, R.ENDLIST])
        st = self.status(self.xfer(pkt))
        self.tsn = self.hsn = 0
        return st

    def get(self, inv, col):
        params = R.encode([R.Named(3, col), R.Named(4, col)])
        toks = self.call(inv, R.M_GET, params)
        st = self.status(toks)
        return st, (toks[4] if st == 0 else None)

    def set(self, inv, values):
        params = R.encode(R.Named(1, [R.Named(c, v) for c, v in values.items()]))
        return self.status(self.call(inv, R.M_SET, params))

    # the kernel's multi-step flows
    def take_ownership(self, key):
        assert self.start(R.ADMIN_SP) == 0
        st, msid = self.get(R.C_PIN_MSID, 3)
        assert st == 0
        self.end()
        st = self.start(R.ADMIN_SP, R.SID, msid)
        if st:
            return st
        st = self.set(R.C_PIN_SID, {3: key})
        self.end()
        return st

    def activate(self, key):
        st = self.start(R.ADMIN_SP, R.SID, key)
        if st:
            return st
        st, lc = self.get(R.LOCKING_SP, 6)
        assert st == 0 and lc == R.MANUFACTURED_INACTIVE
        st = self.status(self.call(R.LOCKING_SP, R.M_ACTIVATE))
        self.end()
        return st

    def admin1(self, key, fn):
        st = self.start(R.LOCKING_SP, R.admin_uid(1), key)
        if st:
            return st
        st = fn()
        self.end()
        return st

    def lock(self, key, rl, wl, auth=None):
        st = self.start(R.LOCKING_SP, auth or R.admin_uid(1), key)
        if st:
            return st
        st = self.set(R.GLOBAL_RANGE, {7: int(rl), 8: int(wl)})
        self.end()
        return st


def provisioned(key=b"A" * 32):
    t = R.Tper(R.factory_state("PSID-LABEL-0001"))
    h = Host(t)
    assert h.take_ownership(key) == 0
    assert h.activate(key) == 0
    assert h.admin1(key, lambda: h.set(R.GLOBAL_RANGE, {5: 1, 6: 1, 7: 0, 8: 0})) == 0
    return t, h


class Tokens(unittest.TestCase):
    def test_round_trip(self):
        v = [1, 63, 64, 0x1234, b"x" * 15, b"y" * 16, b"z" * 3000, R.Named(3, [b"uid12345", 0])]
        toks = R.tokenize(R.encode(v))
        out = R.structure(toks)[0]
        self.assertEqual(out[:7], v[:7])
        self.assertEqual(out[7].name, 3)
        self.assertEqual(out[7].value, [b"uid12345", 0])

    def test_truncated_atom_is_a_protocol_error(self):
        with self.assertRaises(R.ProtocolError):
            R.tokenize(bytes([0xA5, 1, 2]))
        with self.assertRaises(R.ProtocolError):
            R.structure(R.tokenize(bytes([R.STARTLIST, 1])))


class Discovery(unittest.TestCase):
    def parse(self, data):
        hlen = struct.unpack_from(">I", data)[0]
        feats, pos = {}, 48
        while pos < hlen + 4:
            code, _, ln = struct.unpack_from(">HBB", data, pos)
            feats[code] = data[pos + 4:pos + 4 + ln]
            pos += 4 + ln
        return feats

    def test_factory_drive(self):
        t = R.Tper(R.factory_state())
        st, d = t.if_recv(1, 1, 2048)
        f = self.parse(d)
        self.assertEqual(st, 0)
        self.assertTrue(f[0x0001][0] & 1, "TPer sync supported")
        self.assertEqual(f[0x0002][0] & 0x07, 0x01, "locking supported, not enabled, not locked")
        self.assertEqual(struct.unpack(">H", f[0x0203][:2])[0], R.BASE_COMID)

    def test_locked_flag_follows_the_global_range(self):
        key = b"K" * 32
        t, h = provisioned(key)
        self.assertEqual(self.parse(t.if_recv(1, 1, 2048)[1])[0x0002][0] & 0x07, 0x03)
        self.assertEqual(h.lock(key, 1, 1), 0)
        self.assertEqual(self.parse(t.if_recv(1, 1, 2048)[1])[0x0002][0] & 0x07, 0x07)

    def test_other_protocols_are_refused(self):
        t = R.Tper(R.factory_state())
        self.assertLess(t.if_recv(2, 1, 2048)[0], 0)
        self.assertLess(t.if_send(1, 0x1234, b"\0" * 64), 0)


class Sessions(unittest.TestCase):
    def test_anybody_session_and_msid(self):
        t = R.Tper(R.factory_state())
        h = Host(t)
        self.assertEqual(h.start(R.ADMIN_SP), 0)
        st, msid = h.get(R.C_PIN_MSID, 3)
        self.assertEqual((st, msid), (0, t.s["msid"].encode()))
        self.assertEqual(h.end(), 0)

    def test_wrong_password_is_not_authorized(self):
        t = R.Tper(R.factory_state())
        h = Host(t)
        self.assertEqual(h.start(R.ADMIN_SP, R.SID, b"not-the-msid"), R.NOT_AUTHORIZED)
        self.assertIsNone(t.session)
        self.assertEqual(h.start(R.ADMIN_SP, R.PSID, b"wrong"), R.NOT_AUTHORIZED)

    def test_one_session_at_a_time(self):
        t = R.Tper(R.factory_state())
        h = Host(t)
        self.assertEqual(h.start(R.ADMIN_SP), 0)
        h2 = Host(t)
        self.assertEqual(h2.start(R.ADMIN_SP), R.NO_SESSIONS_AVAILABLE)
        h.end()
        self.assertEqual(h2.start(R.ADMIN_SP), 0)

    def test_method_outside_a_session_gets_no_answer(self):
        t = R.Tper(R.factory_state())
        pkt = R.build_packet(R.BASE_COMID, 77, HSN, bytes([R.CALL]) + R.encode(R.C_PIN_MSID) +
                             R.encode(R.M_GET) + bytes([R.STARTLIST, R.ENDLIST, R.ENDOFDATA, R.STARTLIST, 0, 0, 0,
                                                        R.ENDLIST]))
        self.assertLess(t.if_send(1, R.BASE_COMID, pkt), 0)
        _, resp = t.if_recv(1, R.BASE_COMID, 2048)
        self.assertEqual(R.parse_packet(resp)[3], b"", "an empty ComPacket, which the kernel rejects")

    def test_inactive_locking_sp_cannot_be_opened(self):
        h = Host(R.Tper(R.factory_state()))
        self.assertEqual(h.start(R.LOCKING_SP, R.admin_uid(1), b"x"), R.SP_DISABLED)


class Authorities(unittest.TestCase):
    def test_take_ownership_then_msid_no_longer_opens_sid(self):
        t = R.Tper(R.factory_state())
        h = Host(t)
        self.assertEqual(h.take_ownership(b"ours"), 0)
        self.assertEqual(h.take_ownership(b"someone-else"), R.NOT_AUTHORIZED)
        self.assertEqual(t.sid_pin(), "ours")

    def test_anybody_cannot_set_the_sid_pin_or_activate(self):
        t = R.Tper(R.factory_state())
        h = Host(t)
        h.start(R.ADMIN_SP)
        self.assertEqual(h.set(R.C_PIN_SID, {3: b"x"}), R.NOT_AUTHORIZED)
        self.assertEqual(h.status(h.call(R.LOCKING_SP, R.M_ACTIVATE)), R.NOT_AUTHORIZED)
        self.assertEqual(h.status(h.call(R.ADMIN_SP, R.M_REVERT)), R.NOT_AUTHORIZED)
        h.end()
        self.assertIsNone(t.s["sid"])
        self.assertEqual(t.s["lsp"], R.MANUFACTURED_INACTIVE)

    def test_activation_gives_admin1_the_sid_pin(self):
        key = b"S" * 32
        t, h = provisioned(key)
        self.assertEqual(h.start(R.LOCKING_SP, R.admin_uid(1), key), 0)
        h.end()
        self.assertEqual(h.start(R.LOCKING_SP, R.admin_uid(1), b"wrong"), R.NOT_AUTHORIZED)
        self.assertEqual(h.start(R.LOCKING_SP, R.admin_uid(2), b""), R.NOT_AUTHORIZED, "Admin2 is disabled")

    def test_disabled_user_cannot_log_in_until_enabled_and_given_a_pin(self):
        key = b"S" * 32
        t, h = provisioned(key)
        self.assertEqual(h.start(R.LOCKING_SP, R.user_uid(1), b""), R.NOT_AUTHORIZED)
        self.assertEqual(h.admin1(key, lambda: h.set(R.user_uid(1), {5: 1})), 0)
        self.assertEqual(h.admin1(key, lambda: h.set(R.cpin_of_auth(R.user_uid(1)), {3: b"upin"})), 0)
        self.assertEqual(h.start(R.LOCKING_SP, R.user_uid(1), b"upin"), 0)
        h.end()

    def test_user_may_not_lock_until_added_to_the_ace_and_then_admin1_may_not(self):
        key = b"S" * 32
        t, h = provisioned(key)
        h.admin1(key, lambda: h.set(R.user_uid(1), {5: 1}))
        h.admin1(key, lambda: h.set(R.cpin_of_auth(R.user_uid(1)), {3: b"upin"}))
        self.assertEqual(h.lock(b"upin", 1, 1, R.user_uid(1)), R.NOT_AUTHORIZED)
        expr = [R.Named(bytes.fromhex("00000c05"), R.user_uid(1)), R.Named(bytes.fromhex("00000c05"), R.user_uid(1)),
                R.Named(bytes.fromhex("0000040e"), 1)]
        self.assertEqual(h.admin1(key, lambda: h.set(R.ace_rd(0), {3: expr})), 0)
        self.assertEqual(h.admin1(key, lambda: h.set(R.ace_wr(0), {3: expr})), 0)
        self.assertEqual(h.lock(b"upin", 1, 1, R.user_uid(1)), 0)
        self.assertEqual(t.lock_flags(), (True, True))
        self.assertEqual(h.lock(key, 0, 0), R.NOT_AUTHORIZED, "Admin1 is no longer in the ACE")
        self.assertEqual(t.lock_flags(), (True, True))

    def test_user_cannot_change_lock_enables(self):
        key = b"S" * 32
        t, h = provisioned(key)
        h.admin1(key, lambda: h.set(R.user_uid(1), {5: 1}))
        st = h.start(R.LOCKING_SP, R.user_uid(1), b"")
        self.assertEqual(st, 0)
        self.assertEqual(h.set(R.GLOBAL_RANGE, {5: 0, 6: 0}), R.NOT_AUTHORIZED)
        h.end()


class Locking(unittest.TestCase):
    def test_lock_unlock_and_wrong_key_changes_nothing(self):
        key = b"K" * 32
        t, h = provisioned(key)
        self.assertEqual(h.lock(key, 1, 1), 0)
        self.assertEqual(t.lock_flags(), (True, True))
        self.assertEqual(h.lock(b"W" * 32, 0, 0), R.NOT_AUTHORIZED)
        self.assertEqual(t.lock_flags(), (True, True))
        self.assertEqual(h.lock(key, 0, 0), 0)
        self.assertEqual(t.lock_flags(), (False, False))

    def test_lock_has_no_effect_while_locking_is_disabled(self):
        key = b"K" * 32
        t, h = provisioned(key)
        self.assertEqual(h.admin1(key, lambda: h.set(R.GLOBAL_RANGE, {5: 0, 6: 0, 7: 0, 8: 0})), 0)
        self.assertEqual(h.lock(key, 1, 1), 0)
        self.assertEqual(t.lock_flags(), (False, False), "RL/WL only act with RLE/WLE")

    def test_power_cycle_relocks_a_lock_enabled_range(self):
        key = b"K" * 32
        t, h = provisioned(key)
        self.assertEqual(t.lock_flags(), (False, False))
        t2 = R.Tper(t.s)
        t2.power_on()
        self.assertEqual(t2.lock_flags(), (True, True))

    def test_power_cycle_keeps_a_disabled_range_open(self):
        key = b"K" * 32
        t, h = provisioned(key)
        h.admin1(key, lambda: h.set(R.GLOBAL_RANGE, {5: 0, 6: 0}))
        t.power_on()
        self.assertEqual(t.lock_flags(), (False, False))

    def test_set_admin1_password(self):
        key, new = b"K" * 32, b"N" * 32
        t, h = provisioned(key)
        self.assertEqual(h.admin1(key, lambda: h.set(R.cpin_of_auth(R.admin_uid(1)), {3: new})), 0)
        self.assertEqual(h.lock(key, 1, 1), R.NOT_AUTHORIZED)
        self.assertEqual(h.lock(new, 1, 1), 0)

    def test_genkey_changes_the_media_key(self):
        key = b"K" * 32
        t, h = provisioned(key)
        before = t.media_key()
        st = h.admin1(key, lambda: h.get(R.GLOBAL_RANGE, 10)[0])
        self.assertEqual(st, 0)
        h.start(R.LOCKING_SP, R.admin_uid(1), key)
        st, active = h.get(R.GLOBAL_RANGE, 10)
        self.assertEqual(active, R.GLOBAL_KEY)
        self.assertEqual(h.status(h.call(active, R.M_GENKEY)), 0)
        h.end()
        self.assertNotEqual(t.media_key(), before)

    def test_global_range_has_no_start_or_length(self):
        key = b"K" * 32
        t, h = provisioned(key)
        self.assertEqual(h.admin1(key, lambda: h.set(R.GLOBAL_RANGE, {3: 0, 4: 100})), R.INVALID_PARAMETER)

    def test_mbr_control(self):
        key = b"K" * 32
        t, h = provisioned(key)
        self.assertEqual(h.admin1(key, lambda: h.set(R.MBRCONTROL, {1: 1})), 0)
        self.assertTrue(t.s["lsp_state"]["mbr_enable"])
        self.assertEqual(h.admin1(key, lambda: h.set(R.MBRCONTROL, {2: 1})), 0)
        t.power_on()
        self.assertFalse(t.s["lsp_state"]["mbr_done"], "MBR Done resets on power cycle")


class Revert(unittest.TestCase):
    def test_revert_with_sid_resets_everything_and_ends_the_session(self):
        key = b"K" * 32
        t, h = provisioned(key)
        h.lock(key, 1, 1)
        before = t.media_key()
        self.assertEqual(h.start(R.ADMIN_SP, R.SID, key), 0)
        self.assertEqual(h.status(h.call(R.ADMIN_SP, R.M_REVERT)), 0)
        self.assertIsNone(t.session, "the TPer ends the session after Revert")
        self.assertEqual(t.s["lsp"], R.MANUFACTURED_INACTIVE)
        self.assertEqual(t.sid_pin(), t.s["msid"])
        self.assertEqual(t.lock_flags(), (False, False))
        self.assertNotEqual(t.media_key(), before)

    def test_psid_revert_works_without_the_sid(self):
        t = R.Tper(R.factory_state("LABEL"))
        h = Host(t)
        h.take_ownership(b"someone else's")
        self.assertEqual(h.start(R.ADMIN_SP, R.PSID, b"LABEL"), 0)
        self.assertEqual(h.status(h.call(R.ADMIN_SP, R.M_REVERT)), 0)
        self.assertIsNone(t.s["sid"])

    def test_revertsp_by_admin1(self):
        key = b"K" * 32
        t, h = provisioned(key)
        self.assertEqual(h.start(R.LOCKING_SP, R.admin_uid(1), key), 0)
        self.assertEqual(h.status(h.call(R.THISSP, R.M_REVERTSP)), 0)
        self.assertEqual(t.s["lsp"], R.MANUFACTURED_INACTIVE)
        self.assertEqual(t.sid_pin(), "K" * 32, "RevertSP keeps the Admin SP's SID")


if __name__ == "__main__":
    unittest.main()
