#!/usr/bin/env python3
"""Independent computation of the IKEv2 known answers pasted into crypto_test.cpp.

Uses only Python's hmac/hashlib and the `cryptography` package (48.0.0 when the
values were generated), not storcrypt code. Re-run to check the pasted values:
    python3 tests/unit/ike/gen_vectors.py
"""
import hashlib
import hmac

from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def prf(key, data, h=hashlib.sha384):
    return hmac.new(key, data, h).digest()


def prf_plus(key, seed, n, h=hashlib.sha384):
    out, t, i = b"", b"", 1
    while len(out) < n:
        t = prf(key, t + seed + bytes([i]), h)
        out += t
        i += 1
    return out[:n]


def show(name, b):
    print(f"{name} = {b.hex()}")


# --- RFC 5903 §8.2 (P-384) and §8.1 (P-256): check the published values ---
for name, curve, i_hex, r_hex, girx in [
    ("P-256", ec.SECP256R1(),
     "C88F01F510D9AC3F70A292DAA2316DE544E9AAB8AFE84049C62A9C57862D1433",
     "C6EF9C5D78AE012A011164ACB397CE2088685D8F06BF9BE0B283AB46476BEE53",
     "D6840F6B42F6EDAFD13116E0E12565202FEF8E9ECE7DCE03812464D04B9442DE"),
    ("P-384", ec.SECP384R1(),
     "099F3C7034D4A2C699884D73A375A67F7624EF7C6B3C0F160647B67414DCE655E35B538041E649EE3FAEF896783AB194",
     "41CB0779B4BDB85D47846725FBEC3C9430FAB46CC8DC5060855CC9BDA0AA2942E0308312916B8ED2960E4BD55A7448FC",
     "11187331C279962D93D604243FD592CB9D0A926F422E47187521287E7156C5C4D603135569B9E9D09CF5D4A270F59746"),
]:
    ki = ec.derive_private_key(int(i_hex, 16), curve)
    kr = ec.derive_private_key(int(r_hex, 16), curve)
    size = curve.key_size // 8
    def ke(k):
        n = k.public_key().public_numbers()
        return n.x.to_bytes(size, "big") + n.y.to_bytes(size, "big")
    z = ki.exchange(ec.ECDH(), kr.public_key())
    assert z.hex().upper() == girx, name
    show(f"{name} KEi", ke(ki))
    show(f"{name} KEr", ke(kr))

# --- RFC 7748 §6.1 X25519 ---
a = x25519.X25519PrivateKey.from_private_bytes(bytes.fromhex(
    "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"))
b = x25519.X25519PrivateKey.from_private_bytes(bytes.fromhex(
    "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"))
assert a.exchange(b.public_key()).hex() == "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
assert a.public_key().public_bytes_raw().hex() == "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
assert b.public_key().public_bytes_raw().hex() == "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"

# --- RFC 4231 test cases 1 and 2 ---
assert prf(b"\x0b" * 20, b"Hi There").hex() == (
    "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6")
assert prf(b"\x0b" * 20, b"Hi There", hashlib.sha256).hex() == (
    "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
assert prf(b"Jefe", b"what do ya want for nothing?").hex() == (
    "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649")
assert prf(b"Jefe", b"what do ya want for nothing?", hashlib.sha256).hex() == (
    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")

# --- GCM spec (McGrew/Viega) test case 16, AES-256, as RFC 5282 salt || IV ---
K = bytes.fromhex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")
P = bytes.fromhex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
                  "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39")
A = bytes.fromhex("feedfacedeadbeeffeedfacedeadbeefabaddad2")
N = bytes.fromhex("cafebabefacedbaddecaf888")
CT = AESGCM(K).encrypt(N, P, A)
assert CT.hex() == ("522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
                    "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
                    "76fc6ece0f4e1768cddf8853bb2d551b")

# --- SP 800-38A F.2.5 CBC-AES256.Encrypt ---
K = bytes.fromhex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
IV = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
P = bytes.fromhex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
                  "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710")
e = Cipher(algorithms.AES(K), modes.CBC(IV)).encryptor()
assert (e.update(P) + e.finalize()).hex() == (
    "f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d"
    "39f23369a9d9bacfa530e26304231461b2eb05e2c39be9fcda6c19078c6a9d1b")

# --- IKE key derivation with fixed inputs (no published vector exists) ---
Ni = bytes(range(0x00, 0x20))            # 32-byte nonces
Nr = bytes(range(0x80, 0xa0))
gir = bytes.fromhex("11187331C279962D93D604243FD592CB9D0A926F422E47187521287E7156C5C4D603135569B9E9D09CF5D4A270F59746")
SPIi = bytes.fromhex("0123456789abcdef")
SPIr = bytes.fromhex("fedcba9876543210")
show("prf+(key=00..2f, seed='storcrypt', 200)", prf_plus(bytes(range(48)), b"storcrypt", 200))
SKEYSEED = prf(Ni + Nr, gir)
show("SKEYSEED", SKEYSEED)
# aes256-sha384-prfsha384: SK_d 48, SK_a* 48, SK_e* 32, SK_p* 48
km = prf_plus(SKEYSEED, Ni + Nr + SPIi + SPIr, 48 + 2 * 48 + 2 * 32 + 2 * 48)
o = 0
for n, l in [("SK_d", 48), ("SK_ai", 48), ("SK_ar", 48), ("SK_ei", 32), ("SK_er", 32), ("SK_pi", 48), ("SK_pr", 48)]:
    show("cbc " + n, km[o:o + l]); o += l
# aes256gcm16-prfsha384: SK_e* 36 (32 + 4 salt), no SK_a*
km = prf_plus(SKEYSEED, Ni + Nr + SPIi + SPIr, 48 + 2 * 36 + 2 * 48)
SK_d = km[:48]
show("gcm SK_ei", km[48:84]); show("gcm SK_er", km[84:120]); show("gcm SK_pr", km[168:216])
# ESP aes256gcm16 KEYMAT without PFS: 36 bytes per direction
keymat = prf_plus(SK_d, Ni + Nr, 72)
show("child encr_i", keymat[:36]); show("child encr_r", keymat[36:])
keymat = prf_plus(SK_d, gir + Ni + Nr, 72)
show("child pfs encr_i", keymat[:36])
show("rekey SKEYSEED", prf(SK_d, gir + Ni + Nr))

# --- NAT_DETECTION_SOURCE_IP for 192.0.2.1:500 ---
show("natd", hashlib.sha1(SPIi + SPIr + bytes([192, 0, 2, 1]) + (500).to_bytes(2, "big")).digest())

# --- SK payload, AES-GCM-16-256, IV = 1 (first message), inner = N(INITIAL_CONTACT) ---
hdr = SPIi + SPIr
inner = bytes([0, 0, 0, 8, 0, 0, 0x40, 0x00])  # N, protocol 0, SPI size 0, type 16384
pt = inner + b"\x00"                          # pad length 0 (block size 1)
body_len = 8 + len(pt) + 16
total = 28 + 4 + body_len
header = hdr + bytes([46, 0x20, 35, 0x08]) + (1).to_bytes(4, "big") + total.to_bytes(4, "big")
skh = bytes([41, 0]) + (4 + body_len).to_bytes(2, "big")
key = bytes(range(0x40, 0x64))  # 32 key + 4 salt
iv = (1).to_bytes(8, "big")
ct = AESGCM(key[:32]).encrypt(key[32:] + iv, pt, header + skh)
show("sk gcm message", header + skh + iv + ct)

# --- SK payload, AES-CBC-256 + HMAC-SHA-384-192, fixed IV, inner = N(INITIAL_CONTACT) ---
ek = bytes(range(0x10, 0x30))
ak = bytes(range(0x50, 0x80))
iv = bytes(range(0xa0, 0xb0))
pad = (16 - (len(inner) + 1) % 16) % 16
pt = inner + bytes(pad) + bytes([pad])
body_len = 16 + len(pt) + 24
total = 28 + 4 + body_len
header = hdr + bytes([46, 0x20, 35, 0x08]) + (1).to_bytes(4, "big") + total.to_bytes(4, "big")
skh = bytes([41, 0]) + (4 + body_len).to_bytes(2, "big")
e = Cipher(algorithms.AES(ek), modes.CBC(iv)).encryptor()
c = e.update(pt) + e.finalize()
msg = header + skh + iv + c
msg += hmac.new(ak, msg, hashlib.sha384).digest()[:24]
show("sk cbc message", msg)

# --- AUTH octets tail: prf(SK_pi, IDType | RESERVED | "left.lab") with the cbc SK_pi above ---
SK_pi = bytes.fromhex("cdf7267f145be1fa2bb9d60c2e567833a5d3a8f9d132d983661ef2dbad09325b478ebfd3e62ca8cc6545756a57c88c12")
show("maced IDi", prf(SK_pi, bytes([2, 0, 0, 0]) + b"left.lab"))
