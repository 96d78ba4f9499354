// Known-answer tests for ike/crypto.h.
//
// Provenance of the expected values:
//  - HMAC: RFC 4231 test cases 1 and 2.
//  - ECDH: RFC 5903 §8.1 (P-256) and §8.2 (P-384) private values and g^ir;
//    the KE public values (x || y) were recomputed from the private values
//    with python3 `cryptography` (gen_vectors.py), which also checks g^ir.
//  - X25519: RFC 7748 §6.1.
//  - AES-GCM: GCM specification (McGrew/Viega) test case 16 (AES-256, 96-bit
//    nonce, AAD), the same vector NIST's gcmEncryptExtIV256 set carries.
//  - AES-CBC: NIST SP 800-38A F.2.5 (CBC-AES256.Encrypt).
//  - NAT-D: also two hashes charon computed (captured, see the test).
//  - prf+, SKEYSEED, SK_*, KEYMAT, NAT-D: no published IKEv2 vectors exist;
//    computed independently by tests/unit/ike/gen_vectors.py with Python's
//    hmac/hashlib (not our code); re-run it to check.
#include "storcrypt/ike/crypto.h"

#include <gtest/gtest.h>

#include <sstream>

#include "ike_test_util.h"

namespace storcrypt::ike {
namespace {

using testing::hx;

std::string hex_of(const SecretBytes& s) { return s.reveal_hex(); }
std::string hex_of(const Bytes& b) { return to_hex(b); }
std::span<const std::uint8_t> str(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

TEST(IkeCrypto, HmacRfc4231) {
  const Bytes key1(20, 0x0b);
  EXPECT_EQ(hex_of(*prf(PrfAlg::kHmacSha384, key1, str("Hi There"))),
            "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6");
  EXPECT_EQ(hex_of(*prf(PrfAlg::kHmacSha256, key1, str("Hi There"))),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  EXPECT_EQ(hex_of(*prf(PrfAlg::kHmacSha384, str("Jefe"), str("what do ya want for nothing?"))),
            "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649");
  EXPECT_EQ(hex_of(*prf(PrfAlg::kHmacSha256, str("Jefe"), str("what do ya want for nothing?"))),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_EQ(*prf_from_transform(6), PrfAlg::kHmacSha384);
  EXPECT_FALSE(prf_from_transform(2).ok());  // HMAC-SHA1 is not offered
}

TEST(IkeCrypto, PrfPlusAgainstIndependentComputation) {
  Bytes key(48);
  for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<std::uint8_t>(i);
  auto out = prf_plus(PrfAlg::kHmacSha384, key, str("storcrypt"), 200);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(hex_of(*out),
            "3be12a77b20502b535624ef547d16680962ca2660fe53c0527398d946569dabfaddd663442ca9e99438e3434a1f397ee"
            "18493b782ff926f7d90c9016c58c2dd972b6c275ee7767062d58269ee2176f67b2292bc7084fa5f33595137654426674"
            "613b5f3b460542f19284a811a1c16b2352af05ac5d24d8c23f190a5c7cbf22311a8642574f02ef7e882ad585a6ecc899"
            "2411d9fbe98b62b0dbc657dd3a60bcb830a14c04450071b08bf03d18938df14ede8adaf58d7d46843b6780e654692b7a"
            "abbe3c598a4a9b25");
  // A prefix of a longer output is the shorter output.
  auto short_out = prf_plus(PrfAlg::kHmacSha384, key, str("storcrypt"), 20);
  EXPECT_EQ(hex_of(*short_out), hex_of(*out).substr(0, 40));
  EXPECT_FALSE(prf_plus(PrfAlg::kHmacSha384, key, str("x"), 255 * 48 + 1).ok());
}

struct Inputs {
  Bytes ni = Bytes(32);
  Bytes nr = Bytes(32);
  SecretBytes gir;
  Inputs() {
    for (int i = 0; i < 32; ++i) {
      ni[i] = static_cast<std::uint8_t>(i);
      nr[i] = static_cast<std::uint8_t>(0x80 + i);
    }
    gir = *SecretBytes::from_hex(
        "11187331C279962D93D604243FD592CB9D0A926F422E47187521287E7156C5C4D603135569B9E9D09CF5D4A270F59746");
  }
  static constexpr std::uint64_t kSpiI = 0x0123456789abcdefULL;
  static constexpr std::uint64_t kSpiR = 0xfedcba9876543210ULL;
};

TEST(IkeCrypto, SkeyseedAndIkeSaKeysCbc) {
  Inputs in;
  auto seed = skeyseed(PrfAlg::kHmacSha384, in.ni, in.nr, in.gir);
  ASSERT_TRUE(seed.ok());
  EXPECT_EQ(hex_of(*seed),
            "a9a6f9d35a0c304c3164c24552daeae1e91d100cb00e97374c6319320c309021993d93e355d5313a929d43029f731230");
  auto sizes = ike_key_sizes(transform_id::kEncrAesCbc, 256, transform_id::kIntegHmacSha384_192);
  ASSERT_TRUE(sizes.ok());
  EXPECT_EQ(sizes->encr, 32u);
  EXPECT_EQ(sizes->integ, 48u);
  auto k = derive_ike_sa_keys(PrfAlg::kHmacSha384, *seed, in.ni, in.nr, Inputs::kSpiI, Inputs::kSpiR, *sizes);
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(hex_of(k->sk_d),
            "e37bf45d40bc73f0676f865140811b701a2fd72f88d6f0df7b53194287f8f9147521345acea25b918f439ccb780c7560");
  EXPECT_EQ(hex_of(k->sk_ai),
            "f9b3b16062efa525e48813c8cba5b1a669df5bfda6e130fab2568751bbb0651987f277f1d434b648eb4df5139a9800d6");
  EXPECT_EQ(hex_of(k->sk_ar),
            "1dfaf7faab1c6beb26a3eb94fd5114a325ff7052fb1b5044d7c41014bdd4fa0e520269b4b4be0f0fe56b1e32ad8ecf31");
  EXPECT_EQ(hex_of(k->sk_ei), "6154cd710215b8d3ed96cf63cb9c965e17eacb28d505dbc8b8990a66881477c4");
  EXPECT_EQ(hex_of(k->sk_er), "7283d8c030ea37756f6af74c3e3c09da2efb7bcd2a24ae002967d1bb6823a70d");
  EXPECT_EQ(hex_of(k->sk_pi),
            "cdf7267f145be1fa2bb9d60c2e567833a5d3a8f9d132d983661ef2dbad09325b478ebfd3e62ca8cc6545756a57c88c12");
  EXPECT_EQ(hex_of(k->sk_pr),
            "06400c1ba1fd4ef5dd7c922b9a803897fb47b3031464eeba527ba7da0a3ed0688fda6e229fa0290a2cd15db876cb4fcd");
}

TEST(IkeCrypto, IkeSaKeysGcmAndChildKeymat) {
  Inputs in;
  auto seed = skeyseed(PrfAlg::kHmacSha384, in.ni, in.nr, in.gir);
  auto sizes = ike_key_sizes(transform_id::kEncrAesGcm16, 256, transform_id::kIntegNone);
  ASSERT_TRUE(sizes.ok());
  EXPECT_EQ(sizes->encr, 36u);  // RFC 5282: 32-byte key + 4-byte salt
  EXPECT_EQ(sizes->integ, 0u);
  EXPECT_FALSE(ike_key_sizes(transform_id::kEncrAesGcm16, 256, transform_id::kIntegHmacSha384_192).ok());
  EXPECT_FALSE(ike_key_sizes(transform_id::kEncrAesCbc, 256, 0).ok());
  auto k = derive_ike_sa_keys(PrfAlg::kHmacSha384, *seed, in.ni, in.nr, Inputs::kSpiI, Inputs::kSpiR, *sizes);
  ASSERT_TRUE(k.ok());
  EXPECT_TRUE(k->sk_ai.empty());
  EXPECT_EQ(hex_of(k->sk_ei), "f9b3b16062efa525e48813c8cba5b1a669df5bfda6e130fab2568751bbb0651987f277f1");
  EXPECT_EQ(hex_of(k->sk_er), "d434b648eb4df5139a9800d61dfaf7faab1c6beb26a3eb94fd5114a325ff7052fb1b5044");
  EXPECT_EQ(hex_of(k->sk_pr),
            "b8990a66881477c47283d8c030ea37756f6af74c3e3c09da2efb7bcd2a24ae002967d1bb6823a70dcdf7267f145be1fa");

  // ESP AES-GCM-16-256: 36 bytes of KEYMAT per direction, no integrity key.
  auto esp = esp_key_sizes(transform_id::kEncrAesGcm16, 256, 0);
  ASSERT_TRUE(esp.ok());
  auto child = derive_child_sa_keys(PrfAlg::kHmacSha384, k->sk_d, nullptr, in.ni, in.nr, *esp);
  ASSERT_TRUE(child.ok());
  EXPECT_EQ(hex_of(child->encr_i), "029198b121c860a2f28eca988d101b87bd0404b2987bd2cd68e1728986f5a10f60765b6c");
  EXPECT_EQ(hex_of(child->encr_r), "362e26131d874cce90fee8bd6d50c51d446e29267e68214e4b28e85aaf856d41815be17c");
  EXPECT_TRUE(child->integ_i.empty());
  auto pfs = derive_child_sa_keys(PrfAlg::kHmacSha384, k->sk_d, &in.gir, in.ni, in.nr, *esp);
  ASSERT_TRUE(pfs.ok());
  EXPECT_EQ(hex_of(pfs->encr_i), "d019b263835f174169b00c10af22149807494b429a48b353b01f006527d81762dce3c213");

  auto rekey = skeyseed_rekey(PrfAlg::kHmacSha384, k->sk_d, in.gir, in.ni, in.nr);
  ASSERT_TRUE(rekey.ok());
  EXPECT_EQ(hex_of(*rekey),
            "ec4eaf235e9d0ac5e12263a8c07fb7b04ed283f53bb4476f4e43dff8a28ee82aefc50186184462595ac65fed4c616bf8");
}

TEST(IkeCrypto, AuthOctets) {
  auto sk_pi = *SecretBytes::from_hex(
      "cdf7267f145be1fa2bb9d60c2e567833a5d3a8f9d132d983661ef2dbad09325b478ebfd3e62ca8cc6545756a57c88c12");
  IdPayload id;
  id.id_type = id_type::kFqdn;
  const std::string name = "left.lab";
  id.data.assign(name.begin(), name.end());
  const Bytes msg1 = testing::sa_init_request();
  Inputs in;
  auto octets = auth_octets(PrfAlg::kHmacSha384, msg1, in.nr, sk_pi, id);
  ASSERT_TRUE(octets.ok());
  ASSERT_EQ(octets->size(), msg1.size() + 32 + 48);
  EXPECT_TRUE(std::equal(msg1.begin(), msg1.end(), octets->begin()));
  EXPECT_TRUE(std::equal(in.nr.begin(), in.nr.end(), octets->begin() + static_cast<long>(msg1.size())));
  EXPECT_EQ(to_hex(std::span(*octets).subspan(msg1.size() + 32)),
            "aa7239277bd98eef10e5a410094bc1658103a17412d07d99aba1c534610300564944cef6da5325d25d79d27c9b0a2dfa");
}

TEST(IkeCrypto, KeysAreRedactedWhenPrinted) {
  Inputs in;
  auto seed = skeyseed(PrfAlg::kHmacSha384, in.ni, in.nr, in.gir);
  std::ostringstream os;
  os << *seed;
  EXPECT_EQ(os.str(), "<redacted>");
}

TEST(IkeCrypto, EcdhP384Rfc5903) {
  auto i = KeyExchange::from_private(
      20, hx("099F3C7034D4A2C699884D73A375A67F7624EF7C6B3C0F160647B67414DCE655E35B538041E649EE3FAEF896783AB194"));
  auto r = KeyExchange::from_private(
      20, hx("41CB0779B4BDB85D47846725FBEC3C9430FAB46CC8DC5060855CC9BDA0AA2942E0308312916B8ED2960E4BD55A7448FC"));
  ASSERT_TRUE(i.ok()) << i.error().to_string();
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(hex_of(i->public_value()), testing::kP384KEi);
  EXPECT_EQ(hex_of(r->public_value()),
            "e558dbef53eecde3d3fccfc1aea08a89a987475d12fd950d83cfa41732bc509d0d1ac43a0336def96fda41d0774a3571"
            "dcfbec7aacf3196472169e838430367f66eebe3c6e70c416dd5f0c68759dd1fff83fa40142209dff5eaad96db9e6386c");
  const Bytes rpub = r->public_value();
  auto gir_i = i->derive(rpub);
  auto gir_r = r->derive(hx(testing::kP384KEi));
  ASSERT_TRUE(gir_i.ok()) << gir_i.error().to_string();
  ASSERT_TRUE(gir_r.ok());
  const std::string expected =
      "11187331c279962d93d604243fd592cb9d0a926f422e47187521287e7156c5c4d603135569b9e9d09cf5d4a270f59746";
  EXPECT_EQ(hex_of(*gir_i), expected);
  EXPECT_EQ(hex_of(*gir_r), expected);
  // The private key is used once.
  EXPECT_FALSE(i->derive(rpub).ok());
}

TEST(IkeCrypto, EcdhP256Rfc5903) {
  auto i = KeyExchange::from_private(19, hx("C88F01F510D9AC3F70A292DAA2316DE544E9AAB8AFE84049C62A9C57862D1433"));
  ASSERT_TRUE(i.ok());
  EXPECT_EQ(hex_of(i->public_value()),
            "dad0b65394221cf9b051e1feca5787d098dfe637fc90b9ef945d0c37725811805271a0461cdb8252d61f1c456fa3e59ab1f45b"
            "33accf5f58389e0577b8990bb3");
  auto gir =
      i->derive(hx("d12dfb5289c8d4f81208b70270398c342296970a0bccb74c736fc7554494bf63"
                   "56fbf3ca366cc23e8157854c13c58d6aac23f046ada30f8353e74f33039872ab"));
  ASSERT_TRUE(gir.ok());
  EXPECT_EQ(hex_of(*gir), "d6840f6b42f6edafd13116e0e12565202fef8e9ece7dce03812464d04b9442de");
}

TEST(IkeCrypto, X25519Rfc7748) {
  auto a = KeyExchange::from_private(31, hx("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"));
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(hex_of(a->public_value()), "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
  auto z = a->derive(hx("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"));
  ASSERT_TRUE(z.ok());
  EXPECT_EQ(hex_of(*z), "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
  // A low-order point (all zero) gives an all-zero secret: refused.
  auto b = KeyExchange::generate(31);
  ASSERT_TRUE(b.ok());
  EXPECT_FALSE(b->derive(Bytes(32, 0)).ok());
}

TEST(IkeCrypto, GeneratedKeysAgreeAndPeerValuesAreChecked) {
  for (std::uint16_t g : {19, 20, 21, 31}) {
    auto a = KeyExchange::generate(g);
    auto b = KeyExchange::generate(g);
    ASSERT_TRUE(a.ok() && b.ok()) << g;
    EXPECT_EQ(a->public_value().size(), KeyExchange::public_size(g));
    const Bytes pa = a->public_value(), pb = b->public_value();
    auto za = a->derive(pb);
    auto zb = b->derive(pa);
    ASSERT_TRUE(za.ok() && zb.ok()) << g;
    EXPECT_TRUE(za->equals(*zb));
  }
  EXPECT_EQ(KeyExchange::public_size(20), 96u);
  EXPECT_EQ(KeyExchange::public_size(19), 64u);
  EXPECT_EQ(KeyExchange::public_size(31), 32u);
  EXPECT_FALSE(KeyExchange::generate(14).ok());  // MODP-2048 is not offered
  {                                              // wrong length
    auto a = KeyExchange::generate(20);
    EXPECT_EQ(a->derive(Bytes(95, 1)).error().code(), ErrorCode::kProtocol);
  }
  {  // a point off the curve (y + 1)
    auto a = KeyExchange::generate(20);
    Bytes bad = hx(testing::kP384KEi);
    bad.back() ^= 1;
    EXPECT_EQ(a->derive(bad).error().code(), ErrorCode::kProtocol);
  }
  {  // the point at infinity has no affine encoding; all zeros is not on the curve
    auto a = KeyExchange::generate(19);
    EXPECT_FALSE(a->derive(Bytes(64, 0)).ok());
  }
}

TEST(IkeCrypto, NatDetectionHash) {
  auto h = nat_detection_hash(Inputs::kSpiI, Inputs::kSpiR, hx("c0000201"), 500);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(hex_of(*h), "b43b59394bf8bc930246a8f80b6fddf05c58d9bf");
  EXPECT_FALSE(nat_detection_hash(1, 2, hx("c00002"), 500).ok());
  // Computed by charon: the NAT-D notifies of its captured IKE_SA_INIT answer
  // (message_test.cpp ParsesCapturedCharonResponse), 192.0.2.2:500 -> 192.0.2.1:500.
  EXPECT_EQ(hex_of(*nat_detection_hash(0x8877665544332211ULL, 0x43ff07a10538362eULL, hx("c0000202"), 500)),
            "be3ede64b8bfc565674909264c8a8397fadbe16c");
  EXPECT_EQ(hex_of(*nat_detection_hash(0x8877665544332211ULL, 0x43ff07a10538362eULL, hx("c0000201"), 500)),
            "1aa7fd0268a391ba517cb21ce79f6c638820f52c");
}

TEST(IkeCrypto, AesGcmTestCase16) {
  const auto key = hx("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308");
  const auto pt =
      hx("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
         "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39");
  const auto aad = hx("feedfacedeadbeeffeedfacedeadbeefabaddad2");
  const auto nonce = hx("cafebabefacedbaddecaf888");  // RFC 5282: salt cafebabe || IV facedbaddecaf888
  const std::string expected =
      "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
      "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
      "76fc6ece0f4e1768cddf8853bb2d551b";
  auto ct = aes_gcm_seal(key, nonce, aad, pt);
  ASSERT_TRUE(ct.ok());
  EXPECT_EQ(hex_of(*ct), expected);
  auto back = aes_gcm_open(key, nonce, aad, *ct);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, pt);
  auto tampered = *ct;
  tampered[3] ^= 1;
  EXPECT_EQ(aes_gcm_open(key, nonce, aad, tampered).error().name(), "xIkeIntegrity");
  auto aad2 = aad;
  aad2[0] ^= 1;
  EXPECT_FALSE(aes_gcm_open(key, nonce, aad2, *ct).ok());
}

TEST(IkeCrypto, AesCbcSp80038a) {
  const auto key = hx("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4");
  const auto iv = hx("000102030405060708090a0b0c0d0e0f");
  const auto pt =
      hx("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
         "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710");
  auto ct = aes_cbc(true, key, iv, pt);
  ASSERT_TRUE(ct.ok());
  EXPECT_EQ(hex_of(*ct),
            "f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d"
            "39f23369a9d9bacfa530e26304231461b2eb05e2c39be9fcda6c19078c6a9d1b");
  EXPECT_EQ(*aes_cbc(false, key, iv, *ct), pt);
  EXPECT_FALSE(aes_cbc(true, key, iv, Bytes(15)).ok());
}

}  // namespace
}  // namespace storcrypt::ike
