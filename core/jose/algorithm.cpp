#include <tokctl/jose/algorithm.hpp>

#include <algorithm>
#include <cstring>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/rsa.h>

#include "ossl.hpp"
#include <tokctl/util/io.hpp>

#include "ctx_pool.hpp"
#include "jwk_data.hpp"

namespace tokctl::jose {
namespace {

enum class Family { hmac, rsa_pkcs1, rsa_pss, ecdsa, eddsa };

struct AlgInfo {
  Alg alg;
  const char* name;
  Family family;
  const char* md;       // digest name (empty for EdDSA)
  int hash_bytes;
  const char* curve;    // JOSE curve for ES*
};

constexpr AlgInfo k_algs[] = {
    {Alg::HS256, "HS256", Family::hmac, "SHA256", 32, ""},
    {Alg::HS384, "HS384", Family::hmac, "SHA384", 48, ""},
    {Alg::HS512, "HS512", Family::hmac, "SHA512", 64, ""},
    {Alg::RS256, "RS256", Family::rsa_pkcs1, "SHA256", 32, ""},
    {Alg::RS384, "RS384", Family::rsa_pkcs1, "SHA384", 48, ""},
    {Alg::RS512, "RS512", Family::rsa_pkcs1, "SHA512", 64, ""},
    {Alg::PS256, "PS256", Family::rsa_pss, "SHA256", 32, ""},
    {Alg::PS384, "PS384", Family::rsa_pss, "SHA384", 48, ""},
    {Alg::PS512, "PS512", Family::rsa_pss, "SHA512", 64, ""},
    {Alg::ES256, "ES256", Family::ecdsa, "SHA256", 32, "P-256"},
    {Alg::ES384, "ES384", Family::ecdsa, "SHA384", 48, "P-384"},
    {Alg::ES512, "ES512", Family::ecdsa, "SHA512", 64, "P-521"},
    {Alg::EdDSA, "EdDSA", Family::eddsa, "", 0, ""},
};

const AlgInfo& info(Alg alg) { return k_algs[static_cast<int>(alg)]; }

using ossl::fetched_hmac;
using ossl::fetched_md;

Result<ossl::EvpMacCtxPtr> hmac_ctx(const AlgInfo& a, const std::string& secret) {
  auto ctx = ossl::make(EVP_MAC_CTX_new(fetched_hmac()));
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>(a.md), 0),
      OSSL_PARAM_construct_end()};
  if (!ctx || EVP_MAC_init(ctx.get(), reinterpret_cast<const unsigned char*>(secret.data()),
                           secret.size(), params) != 1) {
    return ossl::fail_ossl(ErrorCode::invalid_token, "HMAC init failed");
  }
  return ctx;
}

bool hmac_compute(EVP_MAC_CTX* ctx, bool reinit, std::string_view input, unsigned char* out,
                  std::size_t& out_len) {
  if (reinit && EVP_MAC_init(ctx, nullptr, 0, nullptr) != 1) return false;
  return EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1 &&
         EVP_MAC_final(ctx, out, &out_len, EVP_MAX_MD_SIZE) == 1;
}

// Sets RSA padding (and PSS parameters) on a signing or verification context.
bool configure_rsa(EVP_PKEY_CTX* pctx, const AlgInfo& a) {
  if (a.family == Family::rsa_pkcs1) return EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1;
  const EVP_MD* md = fetched_md(a.md);
  return EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1 &&
         EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) == 1;
}

std::unexpected<Error> key_error(KeyRole role, std::string message, std::string hint) {
  return fail(role == KeyRole::verify ? ErrorCode::invalid_token : ErrorCode::usage, std::move(message),
              std::move(hint));
}

// A key too weak for `alg`: a verifier may force the check while debugging, a signer needs a new key.
std::unexpected<Error> weak_key_error(KeyRole role, std::string message, const std::string& why, const char* alg) {
  if (role == KeyRole::verify) {
    return fail_remedy(ErrorCode::invalid_token, std::move(message),
                       why + "a weak key; such a token can still be checked while debugging", Remedy::allow_weak_keys);
  }
  return fail_remedy(ErrorCode::usage, std::move(message), why + "generate a new key", Remedy::generate_key, alg);
}

std::string key_kind(const Jwk& key) {
  if (key.kty() == KeyType::oct) return "an HMAC secret";
  if (key.kty() == KeyType::rsa) return "RSA";
  return std::string(to_string(key.kty())) + " " + key.crv();
}

}  // namespace

const char* to_string(Alg alg) { return info(alg).name; }

std::optional<Alg> alg_from_string(std::string_view name) {
  for (const auto& a : k_algs)
    if (name == a.name) return a.alg;
  return std::nullopt;
}

std::string supported_alg_names() {
  std::string out;
  for (const auto& a : k_algs) {
    if (!out.empty()) out += ", ";
    out += a.name;
  }
  return out;
}

bool is_symmetric(Alg alg) { return info(alg).family == Family::hmac; }

KeyType key_type_for(Alg alg) {
  switch (info(alg).family) {
    case Family::hmac: return KeyType::oct;
    case Family::rsa_pkcs1:
    case Family::rsa_pss: return KeyType::rsa;
    case Family::ecdsa: return KeyType::ec;
    case Family::eddsa: return KeyType::okp;
  }
  return KeyType::oct;
}

bool is_weak_key(Alg alg, const Jwk& key) {
  const AlgInfo& a = info(alg);
  if (key.kty() == KeyType::rsa) return key.bits() < k_min_rsa_bits;
  if (a.family == Family::hmac && key.kty() == KeyType::oct) {
    return key.secret().size() < static_cast<std::size_t>(a.hash_bytes);
  }
  return false;
}

Result<void> check_key(Alg alg, const Jwk& key, KeyRole role, KeyStrength strength) {
  const AlgInfo& a = info(alg);
  const bool allow_weak = role == KeyRole::verify && strength == KeyStrength::allow_weak;
  const char* who = role == KeyRole::verify ? "the token is " : "signing with ";
  if (key.kty() != key_type_for(alg)) {
    std::string hint = std::string(who) + a.name + " but the key is " + key_kind(key);
    if (is_symmetric(alg)) hint += " (an HMAC token checked against a public key is an algorithm-confusion attack)";
    return key_error(role, std::string(a.name) + " cannot be used with " + key.describe(), hint);
  }
  if (a.family == Family::ecdsa && key.crv() != a.curve) {
    return key_error(role, std::string(a.name) + " needs a " + a.curve + " key, not " + key.crv(),
                     std::string(who) + a.name + " but the key is EC " + key.crv());
  }
  if (a.family == Family::eddsa && key.crv() != "Ed25519" && key.crv() != "Ed448") {
    return key_error(role, "EdDSA needs an Ed25519 or Ed448 key, not " + key.crv(),
                     key.crv() + " keys are for key agreement (JWE), not signatures");
  }
  constexpr int k_insecure_min_rsa_bits = 1024;
  if (key.kty() == KeyType::rsa && key.bits() < (allow_weak ? k_insecure_min_rsa_bits : k_min_rsa_bits)) {
    return weak_key_error(role, "RSA key is " + std::to_string(key.bits()) + " bits; at least " +
                                    std::to_string(k_min_rsa_bits) + " are required",
                          "", a.name);
  }
  if (!key.alg().empty() && key.alg() != a.name) {
    auto e = key_error(role, std::string("the key is pinned to ") + key.alg() + ", not " + a.name,
                       role == KeyRole::verify ? "the token's alg does not match the key's \"alg\""
                                               : "name no algorithm, or use a key made for " + std::string(a.name));
    if (role == KeyRole::sign) e.error().param = "alg";
    return e;
  }
  // RFC 7517 §4.2/§4.3: a key marked for encryption, or whose key_ops exclude the operation,
  // must not be used for signatures.
  if (!key.use().empty() && key.use() != "sig") {
    return key_error(role, "the key is marked \"use\": \"" + key.use() + "\", not for signatures",
                     "use a signing key (\"use\": \"sig\")");
  }
  if (!key.key_ops().empty()) {
    const char* op = role == KeyRole::sign ? "sign" : "verify";
    // An entry may list several operations separated by commas: RFC 7520 §3.4 (Figure 3, and
    // Wycheproof's copies of it) has "key_ops": ["sign, verify"].
    auto allows = [&](const std::string& entry) {
      std::size_t pos = 0;
      while (pos <= entry.size()) {
        auto comma = entry.find(',', pos);
        auto item = trim(std::string_view(entry).substr(pos, comma == std::string::npos ? std::string::npos : comma - pos));
        if (item == op) return true;
        if (comma == std::string::npos) break;
        pos = comma + 1;
      }
      return false;
    };
    if (std::none_of(key.key_ops().begin(), key.key_ops().end(), allows)) {
      return key_error(role, std::string("the key's \"key_ops\" do not include \"") + op + "\"",
                       "use a key made for signatures");
    }
  }
  // RFC 7518 §3.2: a key shorter than the hash output MUST NOT be used with HS*, either way.
  if (a.family == Family::hmac && key.secret().size() < static_cast<std::size_t>(a.hash_bytes) &&
      !(allow_weak && !key.secret().empty())) {
    return weak_key_error(role, std::string(a.name) + " needs a secret of at least " +
                                    std::to_string(a.hash_bytes) + " bytes, this one has " +
                                    std::to_string(key.secret().size()),
                          "RFC 7518 §3.2; ", a.name);
  }
  if (role == KeyRole::sign) {
    if (key.kty() != KeyType::oct && !key.has_private()) {
      return key_error(role, "signing needs a private key, this is a " + key.describe(),
                       "pass the private key file");
    }
  }
  return {};
}

// DER ECDSA-Sig-Value -> fixed-width r||s (RFC 7518 §3.4).
// The longest DER ECDSA-Sig-Value: a SEQUENCE of two INTEGERs of up to 66 bytes (P-521) plus a
// sign byte each.
constexpr std::size_t k_max_ecdsa_der = 3 + 2 * (2 + 1 + 66);

// The raw JWS r||s (`n` bytes each, RFC 7518 §3.4) of the DER ECDSA-Sig-Value that
// EVP_PKEY_sign wrote, read in place into `out` (2n bytes). d2i_ECDSA_SIG and two BN_bn2binpad
// cost about 8k instructions per token (issue 11). Strict all the same: one SEQUENCE of two
// non-negative INTEGERs that fit in n bytes, definite short or one-byte lengths, nothing after.
static bool ecdsa_der_to_raw(const unsigned char* der, std::size_t len, std::size_t n, unsigned char* out) {
  std::size_t i = 0;
  auto read_length = [&](std::size_t& v) {
    if (i >= len) return false;
    const unsigned char b = der[i++];
    if (b < 0x80) {
      v = b;
      return true;
    }
    if (b != 0x81 || i >= len) return false;
    v = der[i++];
    return v >= 0x80;  // DER: the short form where it fits
  };
  std::size_t seq = 0;
  if (len < 2 || der[i++] != 0x30 || !read_length(seq) || seq != len - i) return false;
  for (std::size_t k = 0; k < 2; ++k) {
    std::size_t ilen = 0;
    if (i >= len || der[i++] != 0x02 || !read_length(ilen) || ilen == 0 || ilen > len - i) return false;
    const unsigned char* v = der + i;
    i += ilen;
    if (v[0] & 0x80) return false;  // negative
    while (ilen > 0 && v[0] == 0) {
      ++v;
      --ilen;
    }
    if (ilen > n) return false;
    unsigned char* dst = out + k * n;
    std::memset(dst, 0, n - ilen);
    std::memcpy(dst + n - ilen, v, ilen);
  }
  return i == len;
}

namespace {

// The OpenSSL contexts one sign or verify call uses; reused through a ContextPool.
struct CtxBundle {
  ossl::EvpMacCtxPtr mac{nullptr, &EVP_MAC_CTX_free};
  ossl::EvpMdCtxPtr md{nullptr, &EVP_MD_CTX_free};
  ossl::EvpPkeyCtxPtr pkey{nullptr, &EVP_PKEY_CTX_free};
  bool mac_used = false;
  // Signing: the largest signature the key gives (EVP_PKEY_get_size), asked once here instead of
  // by a size query per signature (an EVP_PKEY_sign call of its own, ~4.8k instructions).
  std::size_t max_sig = 0;
};

// Sets up `c` for signing or verifying with (a, key): HMAC on an EVP_MAC context, RSA and ECDSA
// on a digest context plus an EVP_PKEY context initialised once, EdDSA on a one-shot digest-sign
// context. False when OpenSSL refuses (its error queue says why).
bool init_bundle(CtxBundle& c, const AlgInfo& a, const Jwk& key, KeyRole role) {
  const bool sign = role == KeyRole::sign;
  if (sign && a.family != Family::hmac) {
    const int size = EVP_PKEY_get_size(key.pkey());
    if (size <= 0) return false;
    c.max_sig = static_cast<std::size_t>(size);
  }
  switch (a.family) {
    case Family::hmac: {
      auto ctx = hmac_ctx(a, key.secret());
      if (!ctx) return false;
      c.mac = std::move(*ctx);
      return true;
    }
    case Family::rsa_pkcs1:
    case Family::rsa_pss:
    case Family::ecdsa:
      // Digest once per token, then EVP_PKEY_sign/verify on a context initialised once.
      c.md = ossl::make(EVP_MD_CTX_new());
      c.pkey = ossl::make(EVP_PKEY_CTX_new_from_pkey(nullptr, key.pkey(), nullptr));
      return c.md && c.pkey &&
             (sign ? EVP_PKEY_sign_init(c.pkey.get()) : EVP_PKEY_verify_init(c.pkey.get())) == 1 &&
             EVP_PKEY_CTX_set_signature_md(c.pkey.get(), fetched_md(a.md)) == 1 &&
             (a.family == Family::ecdsa || configure_rsa(c.pkey.get(), a));
    case Family::eddsa:
      c.md = ossl::make(EVP_MD_CTX_new());
      return c.md && (sign ? EVP_DigestSignInit(c.md.get(), nullptr, nullptr, nullptr, key.pkey())
                           : EVP_DigestVerifyInit(c.md.get(), nullptr, nullptr, nullptr, key.pkey())) == 1;
  }
  return false;
}

}  // namespace

struct Signer::Cache : CtxBundle {};
struct Signer::Pool : detail::ContextPool<Signer::Cache> {};

Signer::Signer(Alg alg, Jwk key) : m_alg(alg), m_key(std::move(key)), m_pool(std::make_shared<Pool>()) {}

Result<Signer> Signer::create(Alg alg, const Jwk& key) {
  if (auto c = check_key(alg, key, KeyRole::sign); !c) return std::unexpected(c.error());
  return Signer(alg, key);
}

namespace {

// A fresh context bundle for signing with (a, key).
Result<std::unique_ptr<Signer::Cache>> new_sign_cache(const AlgInfo& a, const Jwk& key) {
  auto c = std::make_unique<Signer::Cache>();
  if (!init_bundle(*c, a, key, KeyRole::sign)) {
    return ossl::fail_ossl(ErrorCode::usage, std::string(a.name) + " sign init failed");
  }
  return c;
}

Result<std::string> sign_with(const AlgInfo& a, const Jwk& key, Signer::Cache& c, std::string_view input) {
  const auto* in = reinterpret_cast<const unsigned char*>(input.data());
  if (a.family == Family::hmac) {
    unsigned char out[EVP_MAX_MD_SIZE];
    std::size_t len = 0;
    bool ok = hmac_compute(c.mac.get(), c.mac_used, input, out, len);
    c.mac_used = true;
    if (!ok) return ossl::fail_ossl(ErrorCode::usage, "HMAC failed");
    return std::string(reinterpret_cast<char*>(out), len);
  }
  if (a.family == Family::eddsa) {
    std::string sig(c.max_sig, '\0');
    std::size_t len = sig.size();
    if (EVP_DigestSign(c.md.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, in, input.size()) != 1) {
      return ossl::fail_ossl(ErrorCode::usage, "EdDSA sign failed");
    }
    sig.resize(len);
    return sig;
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int dlen = 0;
  if (EVP_DigestInit_ex(c.md.get(), fetched_md(a.md), nullptr) != 1 ||
      EVP_DigestUpdate(c.md.get(), in, input.size()) != 1 || EVP_DigestFinal_ex(c.md.get(), digest, &dlen) != 1) {
    return ossl::fail_ossl(ErrorCode::usage, "digest failed");
  }
  if (a.family != Family::ecdsa) {
    std::string sig(c.max_sig, '\0');
    std::size_t len = sig.size();
    if (EVP_PKEY_sign(c.pkey.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, digest, dlen) != 1) {
      return ossl::fail_ossl(ErrorCode::usage, std::string(a.name) + " sign failed");
    }
    sig.resize(len);
    return sig;
  }
  // ECDSA: the DER signature on the stack, then r||s.
  unsigned char der[k_max_ecdsa_der];
  std::size_t len = sizeof der;
  if (c.max_sig > sizeof der ||
      EVP_PKEY_sign(c.pkey.get(), der, &len, digest, dlen) != 1) {
    return ossl::fail_ossl(ErrorCode::usage, std::string(a.name) + " sign failed");
  }
  const std::size_t n = key.data().ec_size;
  std::string raw(2 * n, '\0');
  if (!ecdsa_der_to_raw(der, len, n, reinterpret_cast<unsigned char*>(raw.data()))) {
    return fail(ErrorCode::usage, std::string(a.name) + " sign failed: OpenSSL's signature is not a DER ECDSA-Sig-Value");
  }
  return raw;
}

}  // namespace

Result<std::string> Signer::sign(std::string_view input) const {
  const AlgInfo& a = info(m_alg);
  auto cache = m_pool->take();
  if (!cache) {
    auto fresh = new_sign_cache(a, m_key);
    if (!fresh) return std::unexpected(fresh.error());
    cache = std::move(*fresh);
  }
  auto sig = sign_with(a, m_key, *cache, input);
  // A context whose operation failed may be left half-way: drop it rather than reuse it.
  if (sig) m_pool->give(std::move(cache));
  return sig;
}

Result<std::string> sign(Alg alg, const Jwk& key, std::string_view input) {
  auto signer = Signer::create(alg, key);
  if (!signer) return std::unexpected(signer.error());
  return signer->sign(input);
}

// ---- SignatureVerifier ------------------------------------------------------------------------

struct SignatureVerifier::Cache : CtxBundle {};
struct SignatureVerifier::Pool : detail::ContextPool<SignatureVerifier::Cache> {};

SignatureVerifier::SignatureVerifier(Alg alg, Jwk key)
    : m_alg(alg), m_key(std::move(key)), m_pool(std::make_shared<Pool>()) {}

Result<SignatureVerifier> SignatureVerifier::create(Alg alg, const Jwk& key, KeyStrength strength) {
  if (auto c = check_key(alg, key, KeyRole::verify, strength); !c) return std::unexpected(c.error());
  return SignatureVerifier(alg, key);
}

namespace {

// A fresh context bundle for verifying with (a, key); null when OpenSSL refuses the key.
std::unique_ptr<SignatureVerifier::Cache> new_verify_cache(const AlgInfo& a, const Jwk& key) {
  auto c = std::make_unique<SignatureVerifier::Cache>();
  if (!init_bundle(*c, a, key, KeyRole::verify)) {
    ossl::clear_errors();
    return nullptr;
  }
  return c;
}

bool verify_with(const AlgInfo& a, const Jwk& key, SignatureVerifier::Cache& c, std::string_view input,
                 std::string_view signature);

}  // namespace

bool SignatureVerifier::verify(std::string_view input, std::string_view signature) const {
  const AlgInfo& a = info(m_alg);
  auto cache = m_pool->take();
  if (!cache) cache = new_verify_cache(a, m_key);
  if (!cache) return false;
  bool ok = verify_with(a, m_key, *cache, input, signature);
  m_pool->give(std::move(cache));
  return ok;
}

namespace {

// The DER ECDSA-Sig-Value (RFC 3279 §2.2.3: SEQUENCE { INTEGER r, INTEGER s }) that
// EVP_PKEY_verify takes, for a raw JWS r||s of `n` bytes each (n <= 66, P-521). Written straight
// into `out`: going through two BIGNUMs, an ECDSA_SIG and i2d_ECDSA_SIG cost about 15k
// instructions per token (issue 11). Minimal encoding: leading zero bytes dropped, one 0x00
// added when the top bit is set. OpenSSL re-encodes what it parsed and compares, so anything
// non-canonical would fail closed. Returns the length, 0 when n is out of range.
std::size_t ecdsa_der(const unsigned char* sig, std::size_t n, unsigned char (&out)[k_max_ecdsa_der]) {
  if (n == 0 || n > 66) return 0;
  unsigned char ints[2 * (2 + 1 + 66)];
  std::size_t len = 0;
  for (const unsigned char* v : {sig, sig + n}) {
    std::size_t m = n;
    while (m > 1 && *v == 0) {
      ++v;
      --m;
    }
    const bool pad = (*v & 0x80) != 0;
    ints[len++] = 0x02;
    ints[len++] = static_cast<unsigned char>(m + (pad ? 1 : 0));
    if (pad) ints[len++] = 0x00;
    std::memcpy(ints + len, v, m);
    len += m;
  }
  std::size_t o = 0;
  out[o++] = 0x30;
  if (len >= 0x80) out[o++] = 0x81;  // at most 138 bytes: one length byte
  out[o++] = static_cast<unsigned char>(len);
  std::memcpy(out + o, ints, len);
  return o + len;
}

bool verify_with(const AlgInfo& a, const Jwk& key, SignatureVerifier::Cache& c, std::string_view input,
                 std::string_view signature) {
  const auto* in = reinterpret_cast<const unsigned char*>(input.data());
  const auto* sig = reinterpret_cast<const unsigned char*>(signature.data());
  switch (a.family) {
    case Family::hmac: {
      unsigned char mac[EVP_MAX_MD_SIZE];
      std::size_t len = 0;
      bool ok = hmac_compute(c.mac.get(), c.mac_used, input, mac, len);
      c.mac_used = true;
      return ok && signature.size() == len && CRYPTO_memcmp(mac, sig, len) == 0;
    }
    case Family::eddsa: {
      int ok = EVP_DigestVerify(c.md.get(), sig, signature.size(), in, input.size());
      if (ok != 1) ossl::clear_errors();
      return ok == 1;
    }
    case Family::rsa_pkcs1:
    case Family::rsa_pss:
    case Family::ecdsa:
      break;
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int dlen = 0;
  if (EVP_DigestInit_ex(c.md.get(), fetched_md(a.md), nullptr) != 1 ||
      EVP_DigestUpdate(c.md.get(), in, input.size()) != 1 ||
      EVP_DigestFinal_ex(c.md.get(), digest, &dlen) != 1) {
    ossl::clear_errors();
    return false;
  }
  int ok = 0;
  if (a.family != Family::ecdsa) {
    // RSA signatures are exactly the modulus length (RFC 8017 §8.2.2 step 1).
    if (signature.size() != static_cast<std::size_t>(EVP_PKEY_get_size(key.pkey()))) return false;
    ok = EVP_PKEY_verify(c.pkey.get(), sig, signature.size(), digest, dlen);
  } else {
    // JWS ECDSA signatures are raw r||s, each exactly the field size; DER is not accepted.
    const Jwk::Data& kd = key.data();
    const std::size_t n = kd.ec_size;
    if (n == 0 || signature.size() != 2 * n) return false;
    // 0 < r, s < n, checked here explicitly (CVE-2022-21449 accepted r = s = 0).
    auto in_range = [&](const unsigned char* v) {
      bool zero = true;
      for (std::size_t i = 0; i < n; ++i) zero = zero && v[i] == 0;
      return !zero && std::memcmp(v, kd.ec_order.data(), n) < 0;
    };
    if (!in_range(sig) || !in_range(sig + n)) return false;
    unsigned char der[k_max_ecdsa_der];
    const std::size_t der_len = ecdsa_der(sig, n, der);
    if (der_len == 0) return false;
    ok = EVP_PKEY_verify(c.pkey.get(), der, der_len, digest, dlen);
  }
  if (ok != 1) ossl::clear_errors();
  return ok == 1;
}

}  // namespace

}  // namespace tokctl::jose
