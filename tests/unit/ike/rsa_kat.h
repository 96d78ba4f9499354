// Known-answer data for RSA AUTH (RFC 7427 method 14), produced once by the
// openssl command line (OpenSSL 3.0), not by storcrypt:
//   openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out kat.pem
//   octets = bytes((i * 7) & 0xff for i in range(300))
//   openssl dgst -sha384 -sign kat.pem octets                       -> kPkcs1Sha384Sig
//   openssl dgst -sha512 -sign kat.pem octets                       -> kPkcs1Sha512Sig
//   openssl dgst -sha384 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:48
//                -sigopt rsa_mgf1_md:sha384 -sign kat.pem octets    -> kPssSha384Sig
//   openssl dgst -sha512 ... rsa_pss_saltlen:64 rsa_mgf1_md:sha512  -> kPssSha512Sig
// PKCS#1 v1.5 is deterministic (our signature must be byte-identical); PSS is
// randomized (our verifier must accept these).
// The key is a test key with no other use.
#pragma once

namespace storcrypt::ike::testing {

inline constexpr const char* kRsaKatKeyPem = R"(-----BEGIN PRIVATE KEY-----
MIIG/AIBADANBgkqhkiG9w0BAQEFAASCBuYwggbiAgEAAoIBgQCFKS2W2Tkm1o8Q
aSj7P9/CBcc1+NhMkrU7kpGof2W0meydub6E1Vg3FumROOmsn+mhCGWR7JeDQ9nz
HB83/F0xy6UYTTmrqg4Lqlxw4f5KBvILqH7Palz78vnXZMaxtgRN1Qanhvxq1b4y
WkD4dvnoTGwphBGAsecvLAc4hfdzd6XEsjzj6vX3yejtd9rYAw1HMvZWSPA2a14u
751IZ2s1EEGEbWxLEuJpZoplRGMAMm+b1lU7oJAKKus+N3fCi0AAa5Kz7YcqwDbi
E+zIEFLUCqVyi/fX0pzALl5lYx5dp4sSltPjphxeUW9rdcIahpe7BpJDccNv0fCd
mf9glWPlwpMYCCpGAzUXEn2kCXQ1411EXMpsAtcPG9ssYqMqUhaXTBwaqGPZHl5k
3lLyah4JinTH/lAv9VSttafBeMNCo/Q40K6X/Ej2fuTCZ4B7EjM7ztIBRB201OYH
5anRkKNHmKGdVO+M9fpchmPEXSVQChZZCVKV6t5pl3pf9PAL0TsCAwEAAQKCAYAc
6X9uCNUZYy2l5QdSYiB9uo5x4AlqutHh0OWSXbLh/ye6aUl+AuqH75AgCWjnI8Nw
xOd0wxd0l0dbuyfmGoPLm4lJmP7kEGTDUKaIlfEF9rMYJ+n8s/3jcHKhu05O6JPP
qGis+CiXM7h7q0//AqopL2ququ+37yige+FHewLqzbgu2HpTDEGCnxLVeJgKHcOE
yYJl4qlRT4egDkOqpFXJLDHlhHKmbD+/ndV/vlT2hnzoK6XO8AJGSuJP3HBCy8P2
AiuV4c1qy6WTeOL6GVPPmazBQL4+GK7ECt4vBtQ2S1KCm+tBW7YcYoqZ2a/ThoB6
OgE7uaHKA4Xy/LnuuRgHbV8BV4uhk6B6nOjTpRv97AtSdN/zZmptZIp4BaiW8+3R
hR4pDUQvNQouIe99Xj7riN8lv4D3LdTLrDD9D+b0EqJ2nogEJFvj08nJPJlZAhAU
mXmbQoh++zj2e9qxUWPuntw+I8buAcCwSO2bto3ziyQ3zhYhE65ZSe7cWRXtnQUC
gcEAvFBaNCxlf78NROd3Okm9TR6giKDqyf9KbvFQcBEb+USGItnx5PNBq7tvvw0g
A39t3I6pw5ck7FrCwj3/jRnFl4FOGL4jqNY/zxavz4/vRQo0H0SlMSBtO7yEf5nW
ETqQrt0n+AV8x0jq/klFajnxZ2F2zvzIsmfJ8DN4QGO3VZrbbBudPujYSJzL+dYM
qJ6i38yW2pXdnmKdEvPRatNrk7MOit1dEZyFW2okfTP4IQ+8U9KYBfSbq6VWDlHJ
7FCVAoHBALUF75ck++mcgaG8KVzxd34iOmI4/wYpqW8HYkh0oNpTJ6jyAMf68abx
cjkJnt/xecDGYDJxKCrfjaqqBJFNo2x2mrzNo1IRgx3FLRJ/xMWGmwbP8OhodPcl
zncrZc+Ux3MG0dd/xXadO0jJkyTm2QHWwwqrkwvWNQzP678P/astvAaJ7rHPDC3n
CIKmJjnRsvrSSndNzA5InotXj+U0NEZ4tKbmVxtrU8+GjoQQ1P2p2ysR5x0VzMbh
2ThjYCYWjwKBwGJTJjY1tC12aQxAO02w8OmSg0mzk8Qyyv+Qemp5VHzbnZoW6Cme
JfzwGlHMHZoV8BwIVXWttna+kRBw5L0c5sHLnyZmKSJf8+NCOjwLMGiBAmQNKJ+1
CbP2I8yoW1CVnrPe/56N5u/7D9AEG/1yEazkA+/hpz0X2iXUCga8yh4lhEo3ROxz
EXMgg5SIggWNBwgJv/6T36pyXQdnTUIU8Aenp4E0QgMPEcaAblr9RqKkn7W4sO3z
IVEHPB6v79m23QKBwGiORiVZkjsLT4B4KrfpLChpYqlq3DnWBGwBqs3It0OC9gxJ
wxO+qKbRHDU/jkkwsy8aJWPdIeMpfizNyJeYbUTveE6Gw8daIA4o3fCqZZ/lMFON
9Up3Ut+RMaB5K3PrLgwNK1S6EvaAuEZBT0DoKP076ymVkfgrQDbnPPX9KXoej1SD
hJ+kxBcbMzoq9zc8HJFstuATykGRxikbaRxsu6jcfRNNRZCrvBvITzaOdkcRPWqy
C3gsKDvTJODB3T4ClwKBwGV/pOHoOufVeag+SYwETVLJ5GVfHYRqMLxc4/btOQqm
D6kJnzHZqirFkIkAYVOY9Ggl227HB2FlkXLQ16BUOfiL6Q60MQiMkQtOy087uizf
MyqaOUnmc6BxqOkizaymtu0AX5Z4c2I+hXE0Nc7632+D1NiQWPHQdDv6u1bC4g5V
T9EZ5Cb6ZH13/2A21Av5HpuvERl0/C0WWRWJbq3Qn78z+PSDtjjyazamDEkehVoD
DGpx/HC8Wa+P4EhjbKXJeA==
-----END PRIVATE KEY-----
)";

inline constexpr const char* kPkcs1Sha384Sig =
    "674d6c991bbb38a36ff05468c19893732d885b853d1a047fad76d4335e2c55d33ed57cf181a5e99264d83b4e9c8fac42"
    "abcbe2bf6e94511ee9fb0e8662c5992a4cf084042191c336520242ff1da43030a639198bb399a7457cfbecb2099a2848"
    "f3f278453d6bc7347f7765e093f81bd38981f3734049cce317c15f2b4fcf7c38aae868fc3cbcff141f037a1a967e4e49"
    "08a7c42fab3eeb3fbfc20be6b99b4fac7ca9ef92e0cde7cfd31b057817b70a25e1e6f97c6608329aca6e6dde89e54d5b"
    "eac641051a254a1b124728091c440de81d5d85c505997864960513d5eceffa8f6dbaa16104463b5aa4245f0f63f7be9f"
    "9f61601189d4d284f8b4914e010b57b5347e58f5f0e07f3b55291b80e68ed7562f57df3ee6491f3d4cb55fe4cfb92a5b"
    "c1e3f6a9c54f4493d9518f87b1ec57ebaa314c6c8fdf0d35f8e95d03681983773f7d89008650b5a04cf192698dd3a6f2"
    "80305a3faa4b4f57e2e6dbcebd6ea88b4a6d7408408409a1fdc8e912d368803f1989f7160ba67ca4ccbcddc4da399027";

inline constexpr const char* kPkcs1Sha512Sig =
    "6c6ad4a6e6685cf072cd6e1dba3235283374f0e4fa293d2b6882681814361d2dcce67f194ac3a11026637dbadb464423"
    "e0755ca858122b32f90890a62af4cf96e64076390b51d7a0f39810449e7a02c79fcdcad8bffa6b6ddbec7ecd2be29666"
    "ea6dbfd1766e409795b270f61c321cb84395ff00ccd658c74b07fc61e4807ef956357f6bf0a0956c926f870b5bf57083"
    "ba6bf919dae01a6945e4bc6329d16db702fe056b042e6d109a3d494f4d1c950e91aa5b6368982354c04c2a831c6bc681"
    "cc978e73cb111d6192edfba522dff7912d5f8dd0ce665462c4eaa95aae9981ceb68c1f21baf42c5b0a3756430bd6bae5"
    "8b0d096f5947a4e981563386cb9df8b3cd8e08e5e064849c3070917c57558141f4d7e79241ff0a80dd7ed578ea550a3a"
    "056c512bc06092388be40d56c0b15d537efe1ad4b013926f7c2febf1df78057d9d88a572f6afa7b4f9cb969672060a1e"
    "0246914c48a33e31163b6b877b0cc55737e8c1cacdf2e14999da97071e21d0596df6c21bce7fc9e70731e3b03aab56e7";

inline constexpr const char* kPssSha384Sig =
    "7eb85ac46659294be2c7229e8e4622442ebdcc478747e7b81eb83e38cf1c5d53d2ec368927b6d0c3c28f448bce6f8983"
    "ea9d62fa7bdde6118810c642feab543f9ae05bce5cc7fef19c70a9442032e593eed891887d5da7bc29d5eafe22e4ce80"
    "8a6823231ffb7fa35601c05fdaf9020e509e0d561f726412269d0cb9c82923157976685c7e236fb45cd684b59e1f25f5"
    "756ab1abfc363c17d29cf5540530efd9714a5f6917887d73dd74efd194b0b7fc19fab4b95b3b9be27c531dab0dfa2114"
    "8a3ecc34ffd9577392d3998f53434ee2f68a13862682c88db0a89b564595b5e5f04d299aad51d7d7d3fd5518d389537e"
    "f921deb2dd0835c7eac36ac28ce9c2eb14b56198baa37be3806b3bf0f3096a5b9223420761b9932977e7e8ce93133afb"
    "25c68bcbc53b990294e739caa4799baaceaf214d143c17eb6d4cfcb3224b9063a8c757f65a3c93a47cb444e27fd29e03"
    "caca1a3298a33bcd7701c003dea39c4e499f434ee450963d1cc9cb3307dcf92ac88410cd053564c23b2ab718359640b5";

inline constexpr const char* kPssSha512Sig =
    "06e736a4f451598f2bb15860d21e066945e5c3b941e540b45977176bf2f2067cdf83bb358ec716e659a0b1c8015771ec"
    "c49bee4bb2914d8a8c816e94e9313bc2b1810cc8ed396025e45187978e6880956b02e3851bf4f35707f7f1c8c9f5c417"
    "8e60a64ae7b08c9ac2ee307f84e68d48fa1bbd7ae4aa51286e9ebced8ea27355fa8720989393713517eab631ad40eb84"
    "e87d12619a7775e9b55b9142df95d2fe85a3ddc5e24a599b7e7a4220589e55d2220c829f23ec7daf9a0342888084ebde"
    "b8f76641291d37d05294595de7adbf2ddd06820e822a17bdbb0400b68446868f6891324924e1b1494dfc1eb05a91d89f"
    "84dd6a281625788603de0637398eca8443b77eae97cc8b7d3aa5723c9a39592629145ed2e92f8c26c16b8de6178e668e"
    "ff53e93b7a0f35f638ab8351ca4a97aa3648fb30d44da76ea72b25495e0243212d39a0aaa3cf94f336a077806bea2ff1"
    "3436c673dfe0b19b8352e48d2ab6d57ad980bb83dd557fed1c379efb7f533ed19de2b20e9dc19b042d2a7ade77289d32";

}  // namespace storcrypt::ike::testing
