// JWE compact serialization (RFC 7516) over the primitives in jwe_crypto.cpp.
#include <tokctl/jose/jwe.hpp>

#include <utility>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <tokctl/jose/jws.hpp>
#include "ossl.hpp"
#include <tokctl/util/base64.hpp>

namespace tokctl::jose {
namespace {

using nlohmann::json;
namespace jc = jwe_crypto;

struct AlgName {
  KeyMgmtAlg alg;
  const char* name;
};
constexpr AlgName k_alg_names[] = {
    {KeyMgmtAlg::RSA_OAEP, "RSA-OAEP"},
    {KeyMgmtAlg::RSA_OAEP_256, "RSA-OAEP-256"},
    {KeyMgmtAlg::ECDH_ES, "ECDH-ES"},
    {KeyMgmtAlg::ECDH_ES_A128KW, "ECDH-ES+A128KW"},
    {KeyMgmtAlg::ECDH_ES_A256KW, "ECDH-ES+A256KW"},
    {KeyMgmtAlg::A128KW, "A128KW"},
    {KeyMgmtAlg::A256KW, "A256KW"},
    {KeyMgmtAlg::dir, "dir"},
    {KeyMgmtAlg::PBES2_HS256_A128KW, "PBES2-HS256+A128KW"},
    {KeyMgmtAlg::PBES2_HS512_A256KW, "PBES2-HS512+A256KW"},
};

struct EncName {
  ContentEnc enc;
  const char* name;
};
constexpr EncName k_enc_names[] = {
    {ContentEnc::A128GCM, "A128GCM"},
    {ContentEnc::A256GCM, "A256GCM"},
    {ContentEnc::A128CBC_HS256, "A128CBC-HS256"},
    {ContentEnc::A256CBC_HS512, "A256CBC-HS512"},
};

/// Wipes a secret buffer (CEK, KEK, shared secret) when leaving scope.
class Wipe {
 public:
  explicit Wipe(std::string& s) : m_s(s) {}
  Wipe(const Wipe&) = delete;
  Wipe& operator=(const Wipe&) = delete;
  ~Wipe() { OPENSSL_cleanse(m_s.data(), m_s.size()); }

 private:
  std::string& m_s;
};

bool is_gcm(ContentEnc enc) { return enc == ContentEnc::A128GCM || enc == ContentEnc::A256GCM; }
bool is_ecdh(KeyMgmtAlg a) {
  return a == KeyMgmtAlg::ECDH_ES || a == KeyMgmtAlg::ECDH_ES_A128KW || a == KeyMgmtAlg::ECDH_ES_A256KW;
}
bool is_pbes2(KeyMgmtAlg a) {
  return a == KeyMgmtAlg::PBES2_HS256_A128KW || a == KeyMgmtAlg::PBES2_HS512_A256KW;
}
bool is_rsa(KeyMgmtAlg a) { return a == KeyMgmtAlg::RSA_OAEP || a == KeyMgmtAlg::RSA_OAEP_256; }

/// Key-wrap key size for the *KW algs (A128KW, ECDH-ES+A128KW, PBES2-...+A128KW...), else 0.
std::size_t kw_bytes(KeyMgmtAlg a) {
  switch (a) {
    case KeyMgmtAlg::A128KW:
    case KeyMgmtAlg::ECDH_ES_A128KW:
    case KeyMgmtAlg::PBES2_HS256_A128KW: return 16;
    case KeyMgmtAlg::A256KW:
    case KeyMgmtAlg::ECDH_ES_A256KW:
    case KeyMgmtAlg::PBES2_HS512_A256KW: return 32;
    default: return 0;
  }
}

Result<std::string> random_bytes(std::size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    return ossl::fail_ossl(ErrorCode::usage, "random generation failed");
  }
  return out;
}

template <class T>
std::unexpected<Error> with_context(Result<T>&& r, std::string_view context) {
  Error e = std::move(r).error();
  e.message = std::string(context) + ": " + e.message;
  return std::unexpected(std::move(e));
}

/// Why `key` cannot be used with alg/enc, or nothing. `code` is usage (encrypt) or invalid_token
/// (decrypt).
Result<void> check_jwe_key(KeyMgmtAlg alg, ContentEnc enc, const Jwk& key, ErrorCode code) {
  const std::string alg_name = to_string(alg);
  // A key that names its algorithm is pinned to it (for dir, the enc name is accepted too, as in
  // RFC 7520 §5.6).
  if (!key.alg().empty() && key.alg() != alg_name &&
      !(alg == KeyMgmtAlg::dir && key.alg() == to_string(enc))) {
    return fail(code, "the token uses alg " + alg_name + " but the key is for " + key.alg(),
                "a key with an \"alg\" member is only used with that algorithm");
  }
  if (!key.use().empty() && key.use() != "enc") {
    return fail(code, "the key has \"use\":\"" + key.use() + "\"; JWE needs \"enc\"");
  }
  if (is_rsa(alg)) {
    if (key.kty() != KeyType::rsa) {
      return fail(code, alg_name + " needs an RSA key, not " + key.describe());
    }
    if (key.bits() < k_min_rsa_bits) {
      return fail(code, "RSA keys must be at least " + std::to_string(k_min_rsa_bits) + " bits; this one has " +
                            std::to_string(key.bits()));
    }
    return {};
  }
  if (is_ecdh(alg)) {
    const bool ok = key.kty() == KeyType::ec ||
                    (key.kty() == KeyType::okp && (key.crv() == "X25519" || key.crv() == "X448"));
    if (!ok) {
      return fail(code, alg_name + " needs an EC (P-256/P-384/P-521) or OKP X25519/X448 key, not " +
                            key.describe());
    }
    return {};
  }
  if (key.kty() != KeyType::oct) {
    return fail(code, alg_name + " needs a symmetric (oct) key, not " + key.describe());
  }
  if (is_pbes2(alg)) return {};
  const std::size_t need = alg == KeyMgmtAlg::dir ? cek_bytes(enc) : kw_bytes(alg);
  if (key.secret().size() != need) {
    return fail(code, alg_name + (alg == KeyMgmtAlg::dir ? std::string(" with ") + to_string(enc) : std::string()) +
                          " needs a key of exactly " + std::to_string(need) + " bytes (" +
                          std::to_string(need * 8) + " bits); this one has " +
                          std::to_string(key.secret().size()) + " bytes");
  }
  return {};
}

Result<jc::AeadOutput> content_encrypt(ContentEnc enc, std::string_view cek, std::string_view iv,
                                       std::string_view aad, std::string_view plaintext) {
  return is_gcm(enc) ? jc::aes_gcm_encrypt(cek, iv, aad, plaintext)
                     : jc::aes_cbc_hmac_encrypt(cek, iv, aad, plaintext);
}

Result<std::string> content_decrypt(ContentEnc enc, std::string_view cek, std::string_view iv,
                                    std::string_view aad, std::string_view ciphertext, std::string_view tag) {
  return is_gcm(enc) ? jc::aes_gcm_decrypt(cek, iv, aad, ciphertext, tag)
                     : jc::aes_cbc_hmac_decrypt(cek, iv, aad, ciphertext, tag);
}

/// The Concat KDF output for ECDH-ES: the CEK (direct) or the key-wrap key.
Result<std::string> ecdh_kdf(KeyMgmtAlg alg, ContentEnc enc, const Jwk& priv, const Jwk& peer,
                             std::string_view apu, std::string_view apv) {
  auto z = jc::ecdh_derive(priv, peer);
  if (!z) return std::unexpected(z.error());
  Wipe wipe_z(*z);
  const bool direct = alg == KeyMgmtAlg::ECDH_ES;
  const std::string alg_id = direct ? to_string(enc) : to_string(alg);
  return jc::concat_kdf(*z, alg_id, apu, apv, direct ? cek_bytes(enc) : kw_bytes(alg));
}

jc::OaepHash oaep_hash(KeyMgmtAlg alg) {
  return alg == KeyMgmtAlg::RSA_OAEP ? jc::OaepHash::sha1 : jc::OaepHash::sha256;
}

/// Optional base64url string member of the header ("apu", "apv", "p2s"). Fails with
/// ErrorCode::malformed on a wrong type or bad encoding.
Result<std::string> header_b64(const json& header, const char* name) {
  auto it = header.find(name);
  if (it == header.end()) return std::string();
  if (!it->is_string()) {
    return fail(ErrorCode::malformed, std::string("JWE header \"") + name + "\" must be a string");
  }
  auto bytes = b64url_decode(it->get_ref<const std::string&>());
  if (!bytes) return with_context(std::move(bytes), std::string("JWE header \"") + name + "\"");
  return bytes;
}

/// The five compact segments, split without copying.
struct Segments {
  std::string_view header, encrypted_key, iv, ciphertext, tag;
};

Result<Segments> split_compact(std::string_view token) {
  std::string_view parts[5];
  std::size_t count = 0, start = 0;
  for (std::size_t i = 0; i <= token.size(); ++i) {
    if (i == token.size() || token[i] == '.') {
      if (count < 5) parts[count] = token.substr(start, i - start);
      ++count;
      start = i + 1;
    }
  }
  if (count != 5) {
    std::string hint;
    if (count == 3) hint = "three segments make a JWS; use verify for signed tokens";
    if (!token.empty() && token.front() == '{') hint = "JWE JSON serialization is not supported; use the compact form";
    return fail(ErrorCode::malformed,
                "a compact JWE has 5 dot-separated segments; this input has " + std::to_string(count), hint);
  }
  return Segments{parts[0], parts[1], parts[2], parts[3], parts[4]};
}

Result<std::string> decode_segment(std::string_view seg, const char* what) {
  auto bytes = b64url_decode(seg);
  if (!bytes) return with_context(std::move(bytes), std::string("JWE ") + what);
  return bytes;
}

/// Reads "p2c" and enforces [k_pbes2_min_p2c, max_p2c] before any PBKDF2 work.
Result<int> read_p2c(const json& header, int max_p2c) {
  auto it = header.find("p2c");
  if (it == header.end()) return fail(ErrorCode::malformed, "PBES2 JWE header has no \"p2c\"");
  if (!it->is_number_integer()) {
    return fail(ErrorCode::malformed, "JWE header \"p2c\" must be an integer");
  }
  const bool negative = !it->is_number_unsigned() && it->get<std::int64_t>() < 0;
  if (!negative && it->get<std::uint64_t>() > static_cast<std::uint64_t>(max_p2c)) {
    return fail(ErrorCode::invalid_token,
                "PBES2 \"p2c\" is " + it->dump() + ", above the ceiling of " + std::to_string(max_p2c) +
                    " iterations; refused before any key derivation",
                "a huge iteration count is a denial-of-service attempt; raise the limit only for trusted input");
  }
  if (negative || it->get<std::int64_t>() < k_pbes2_min_p2c) {
    return fail(ErrorCode::invalid_token, "PBES2 \"p2c\" is " + it->dump() + ", below the minimum of " +
                                              std::to_string(k_pbes2_min_p2c) + " iterations");
  }
  return static_cast<int>(it->get<std::int64_t>());
}

}  // namespace

const char* to_string(KeyMgmtAlg alg) {
  for (const auto& a : k_alg_names)
    if (a.alg == alg) return a.name;
  return "?";
}

const char* to_string(ContentEnc enc) {
  for (const auto& e : k_enc_names)
    if (e.enc == enc) return e.name;
  return "?";
}

std::optional<KeyMgmtAlg> key_mgmt_from_string(std::string_view name) {
  for (const auto& a : k_alg_names)
    if (name == a.name) return a.alg;
  return std::nullopt;
}

std::optional<ContentEnc> content_enc_from_string(std::string_view name) {
  for (const auto& e : k_enc_names)
    if (name == e.name) return e.enc;
  return std::nullopt;
}

Result<KeyMgmtAlg> default_key_management(const Jwk& key) {
  if (!key.alg().empty()) {
    // RFC 7520 §5.6: a dir key may name its content encryption instead.
    if (content_enc_from_string(key.alg())) return KeyMgmtAlg::dir;
    if (auto a = key_mgmt_from_string(key.alg())) return *a;
    return fail_remedy(ErrorCode::usage, "the " + key.describe() + " is for " + key.alg() + ", not a JWE algorithm",
                       "use an encryption key, or name the JWE alg", Remedy::generate_key, "ECDH-ES+A256KW");
  }
  switch (key.kty()) {
    case KeyType::rsa:
      return KeyMgmtAlg::RSA_OAEP_256;
    case KeyType::ec:
      return KeyMgmtAlg::ECDH_ES_A256KW;
    case KeyType::okp:
      if (key.crv() != "X25519" && key.crv() != "X448") {
        return fail_remedy(ErrorCode::usage, "the " + key.describe() + " is a signing key and cannot receive JWE",
                           "use an X25519/X448 or EC key", Remedy::generate_key, "ECDH-ES+A256KW");
      }
      return KeyMgmtAlg::ECDH_ES_A256KW;
    case KeyType::oct:
      if (key.secret().size() == 16) return KeyMgmtAlg::A128KW;
      if (key.secret().size() == 32) return KeyMgmtAlg::A256KW;
      return fail(ErrorCode::usage,
                  "the JWE alg must be named: a " + std::to_string(key.secret().size()) +
                      "-byte secret is no AES key-wrap key",
                  "A128KW takes 16 bytes, A256KW 32; dir takes the content key itself (16, 32 or 64 bytes)");
  }
  return fail(ErrorCode::usage, "no JWE algorithm fits the " + key.describe());
}

ContentEnc default_content_enc(KeyMgmtAlg alg, const Jwk& key) {
  if (alg == KeyMgmtAlg::dir) {
    // The key is the content key: its alg (an enc name) or its size decides.
    if (auto e = content_enc_from_string(key.alg())) return *e;
    if (key.kty() == KeyType::oct && key.secret().size() == 16) return ContentEnc::A128GCM;
    if (key.kty() == KeyType::oct && key.secret().size() == 64) return ContentEnc::A256CBC_HS512;
  }
  return ContentEnc::A256GCM;
}

std::string supported_key_mgmt_names() {
  std::string out;
  for (const auto& a : k_alg_names) out += (out.empty() ? "" : ", ") + std::string(a.name);
  return out;
}

std::string supported_content_enc_names() {
  std::string out;
  for (const auto& e : k_enc_names) out += (out.empty() ? "" : ", ") + std::string(e.name);
  return out;
}

std::size_t cek_bytes(ContentEnc enc) {
  switch (enc) {
    case ContentEnc::A128GCM: return 16;
    case ContentEnc::A256GCM: return 32;
    case ContentEnc::A128CBC_HS256: return 32;
    case ContentEnc::A256CBC_HS512: return 64;
  }
  return 0;
}

int default_p2c(KeyMgmtAlg alg) {
  return alg == KeyMgmtAlg::PBES2_HS512_A256KW ? 210000 : 600000;
}

Result<std::string> encrypt_compact(std::string_view plaintext, const Jwk& key, const EncryptOptions& o) {
  const KeyMgmtAlg alg = o.alg;
  const ContentEnc enc = o.enc;
  if (auto r = check_jwe_key(alg, enc, key, ErrorCode::usage); !r) return std::unexpected(r.error());
  if (!o.extra_header.is_object()) return fail(ErrorCode::usage, "extra JWE header must be a JSON object");
  for (const char* reserved : {"alg", "enc", "zip", "epk", "p2s", "p2c", "kid", "cty", "iv", "tag", "crit"}) {
    if (o.extra_header.contains(reserved)) {
      return fail(ErrorCode::usage,
                  std::string("extra JWE header may not set \"") + reserved + "\"",
                  std::string(reserved) == "zip" ? "compression (zip) is not supported: it leaks plaintext through length"
                                                 : "use the dedicated option, or leave it to tokctl");
    }
  }
  json header = o.extra_header;
  header["alg"] = to_string(alg);
  header["enc"] = to_string(enc);
  if (!o.kid.empty()) header["kid"] = o.kid;
  if (!o.cty.empty()) header["cty"] = o.cty;

  std::string cek;
  Wipe wipe_cek(cek);
  std::string kek;  // key-wrap key for the *KW algs
  Wipe wipe_kek(kek);
  std::string encrypted_key;

  if (is_ecdh(alg)) {
    auto apu = header_b64(header, "apu");
    if (!apu) return fail(ErrorCode::usage, apu.error().message);
    auto apv = header_b64(header, "apv");
    if (!apv) return fail(ErrorCode::usage, apv.error().message);
    EVP_PKEY* raw = key.kty() == KeyType::ec
                        ? EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", key.crv().c_str())
                        : EVP_PKEY_Q_keygen(nullptr, nullptr, key.crv().c_str());
    if (!raw) return ossl::fail_ossl(ErrorCode::usage, "cannot generate an ephemeral " + key.crv() + " key");
    auto eph = Jwk::from_pkey(raw);
    if (!eph) return std::unexpected(eph.error());
    header["epk"] = eph->to_json(KeyPart::public_only);
    auto derived = ecdh_kdf(alg, enc, *eph, key, *apu, *apv);
    if (!derived) return with_context(std::move(derived), "ECDH-ES key agreement");
    if (alg == KeyMgmtAlg::ECDH_ES) {
      cek = std::move(*derived);
    } else {
      kek = std::move(*derived);
    }
  } else if (is_pbes2(alg)) {
    const int p2c = o.p2c.value_or(default_p2c(alg));
    if (p2c < k_pbes2_min_p2c || p2c > JweLimits{}.max_p2c) {
      return fail(ErrorCode::usage, "PBES2 iteration count must be " + std::to_string(k_pbes2_min_p2c) + " to " +
                                        std::to_string(JweLimits{}.max_p2c) + ", not " + std::to_string(p2c));
    }
    auto p2s = random_bytes(16);
    if (!p2s) return std::unexpected(p2s.error());
    header["p2s"] = b64url_encode(*p2s);
    header["p2c"] = p2c;
    auto derived = jc::pbes2_derive_kek(alg, key.secret(), *p2s, p2c);
    if (!derived) return std::unexpected(derived.error());
    kek = std::move(*derived);
  } else if (alg == KeyMgmtAlg::A128KW || alg == KeyMgmtAlg::A256KW) {
    kek = key.secret();
  } else if (alg == KeyMgmtAlg::dir) {
    cek = key.secret();
  }

  if (cek.empty()) {
    auto fresh = random_bytes(cek_bytes(enc));
    if (!fresh) return std::unexpected(fresh.error());
    cek = std::move(*fresh);
  }
  if (is_rsa(alg)) {
    auto ek = jc::rsa_oaep_encrypt(key, oaep_hash(alg), cek);
    if (!ek) return std::unexpected(ek.error());
    encrypted_key = std::move(*ek);
  } else if (!kek.empty()) {
    auto ek = jc::aes_key_wrap(kek, cek);
    if (!ek) return std::unexpected(ek.error());
    encrypted_key = std::move(*ek);
  }

  const std::string header_b64u = b64url_encode(header.dump());
  auto iv = random_bytes(is_gcm(enc) ? 12 : 16);
  if (!iv) return std::unexpected(iv.error());
  auto sealed = content_encrypt(enc, cek, *iv, header_b64u, plaintext);
  if (!sealed) return std::unexpected(sealed.error());
  return header_b64u + "." + b64url_encode(encrypted_key) + "." + b64url_encode(*iv) + "." +
         b64url_encode(sealed->ciphertext) + "." + b64url_encode(sealed->tag);
}

Result<DecryptedJwe> decrypt_compact(std::string_view token, const Jwk& key, const JweLimits& limits) {
  if (token.size() > limits.max_token_bytes) {
    return fail(ErrorCode::malformed, "the JWE is " + std::to_string(token.size()) + " bytes, over the " +
                                          std::to_string(limits.max_token_bytes) + "-byte limit");
  }
  auto seg = split_compact(token);
  if (!seg) return std::unexpected(seg.error());
  auto header_json = decode_segment(seg->header, "protected header");
  if (!header_json) return std::unexpected(header_json.error());
  auto header = parse_json_object(*header_json, "JWE protected header", limits.json);
  if (!header) return std::unexpected(header.error());

  auto alg_it = header->find("alg");
  if (alg_it == header->end() || !alg_it->is_string()) {
    return fail(ErrorCode::malformed, "JWE protected header has no \"alg\" string");
  }
  auto enc_it = header->find("enc");
  if (enc_it == header->end() || !enc_it->is_string()) {
    return fail(ErrorCode::malformed, "JWE protected header has no \"enc\" string");
  }
  const std::string& alg_name = alg_it->get_ref<const std::string&>();
  const std::string& enc_name = enc_it->get_ref<const std::string&>();
  if (header->contains("zip")) {
    return fail(ErrorCode::invalid_token, "compressed JWE (\"zip\") is refused",
                "compression before encryption leaks plaintext through length, and inflating is a "
                "decompression-bomb risk; tokctl never produces or accepts zip");
  }
  auto alg = key_mgmt_from_string(alg_name);
  if (!alg) {
    if (alg_name == "RSA1_5") {
      return fail(ErrorCode::invalid_token, "JWE alg RSA1_5 is refused",
                  "RSA PKCS#1 v1.5 key encryption is open to padding-oracle attacks (Bleichenbacher); "
                  "use RSA-OAEP-256");
    }
    return fail(ErrorCode::invalid_token, "unsupported JWE alg '" + alg_name + "'",
                "supported: " + supported_key_mgmt_names());
  }
  auto enc = content_enc_from_string(enc_name);
  if (!enc) {
    return fail(ErrorCode::invalid_token, "unsupported JWE enc '" + enc_name + "'",
                "supported: " + supported_content_enc_names());
  }
  if (auto r = check_crit(*header); !r) return std::unexpected(r.error());
  if (auto r = check_jwe_key(*alg, *enc, key, ErrorCode::invalid_token); !r) return std::unexpected(r.error());
  if (key.kty() != KeyType::oct && !key.has_private()) {
    return fail(ErrorCode::usage, "decrypting " + std::string(alg_name) + " needs the private key, not " +
                                      key.describe(),
                "pass the recipient's private JWK or PEM");
  }
  int p2c = 0;
  if (is_pbes2(*alg)) {
    auto n = read_p2c(*header, limits.max_p2c);  // before any PBKDF2 work
    if (!n) return std::unexpected(n.error());
    p2c = *n;
  }

  auto encrypted_key = decode_segment(seg->encrypted_key, "encrypted key");
  if (!encrypted_key) return std::unexpected(encrypted_key.error());
  auto iv = decode_segment(seg->iv, "initialization vector");
  if (!iv) return std::unexpected(iv.error());
  auto ciphertext = decode_segment(seg->ciphertext, "ciphertext");
  if (!ciphertext) return std::unexpected(ciphertext.error());
  auto tag = decode_segment(seg->tag, "authentication tag");
  if (!tag) return std::unexpected(tag.error());

  const std::size_t want_iv = is_gcm(*enc) ? 12 : 16;
  if (iv->size() != want_iv) {
    return fail(ErrorCode::invalid_token, "initialization vector is " + std::to_string(iv->size()) +
                                              " bytes; " + enc_name + " requires exactly " + std::to_string(want_iv));
  }
  const std::size_t want_tag = *enc == ContentEnc::A256CBC_HS512 ? 32 : 16;
  if (tag->size() != want_tag) {
    return fail(ErrorCode::invalid_token, "authentication tag is " + std::to_string(tag->size()) + " bytes; " +
                                              enc_name + " requires exactly " + std::to_string(want_tag));
  }
  const bool direct = *alg == KeyMgmtAlg::dir || *alg == KeyMgmtAlg::ECDH_ES;
  if (direct && !encrypted_key->empty()) {
    return fail(ErrorCode::invalid_token, alg_name + " tokens must have an empty encrypted key");
  }
  if (!direct && encrypted_key->empty()) {
    return fail(ErrorCode::invalid_token, alg_name + " tokens need an encrypted key; this one is empty");
  }

  const std::size_t want_cek = cek_bytes(*enc);
  std::string cek;
  Wipe wipe_cek(cek);
  std::string kek;
  Wipe wipe_kek(kek);

  if (is_rsa(*alg)) {
    auto k = jc::rsa_oaep_decrypt(key, oaep_hash(*alg), *encrypted_key);
    if (k && k->size() == want_cek) {
      cek = std::move(*k);
    } else {
      if (k) OPENSSL_cleanse(k->data(), k->size());
      // RFC 7516 §11.5: carry on with a random CEK so that a bad RSA block and a bad tag look
      // the same to the sender (no padding oracle); the tag check below then fails.
      auto fake = random_bytes(want_cek);
      if (!fake) return std::unexpected(fake.error());
      cek = std::move(*fake);
    }
  } else if (is_ecdh(*alg)) {
    auto epk_it = header->find("epk");
    if (epk_it == header->end() || !epk_it->is_object()) {
      return fail(ErrorCode::malformed, alg_name + " JWE header has no \"epk\" object");
    }
    auto epk = Jwk::from_json(*epk_it);
    if (!epk) {
      return fail(ErrorCode::invalid_token, "the ephemeral public key (epk) is refused: " + epk.error().message,
                  "an epk off the curve is an invalid-curve attack");
    }
    if (epk->has_private()) {
      return fail(ErrorCode::invalid_token, "the ephemeral key (epk) must be a public key");
    }
    auto apu = header_b64(*header, "apu");
    if (!apu) return std::unexpected(apu.error());
    auto apv = header_b64(*header, "apv");
    if (!apv) return std::unexpected(apv.error());
    auto derived = ecdh_kdf(*alg, *enc, key, *epk, *apu, *apv);
    if (!derived) return with_context(std::move(derived), "ECDH-ES key agreement");
    if (*alg == KeyMgmtAlg::ECDH_ES) {
      cek = std::move(*derived);
    } else {
      kek = std::move(*derived);
    }
  } else if (is_pbes2(*alg)) {
    // Required (RFC 7518 §4.8.1.1), like p2c: missing is a malformed header, not a short salt.
    if (!header->contains("p2s")) return fail(ErrorCode::malformed, "PBES2 JWE header has no \"p2s\"");
    auto p2s = header_b64(*header, "p2s");
    if (!p2s) return std::unexpected(p2s.error());
    if (p2s->size() < 8) {
      return fail(ErrorCode::invalid_token, "PBES2 salt \"p2s\" is " + std::to_string(p2s->size()) +
                                                " bytes; at least 8 are required (RFC 7518 §4.8.1.1)");
    }
    auto derived = jc::pbes2_derive_kek(*alg, key.secret(), *p2s, p2c);
    if (!derived) return std::unexpected(derived.error());
    kek = std::move(*derived);
  } else if (*alg == KeyMgmtAlg::dir) {
    cek = key.secret();
  } else {
    kek = key.secret();
  }

  if (!kek.empty()) {
    auto k = jc::aes_key_unwrap(kek, *encrypted_key);
    if (!k) return std::unexpected(k.error());
    cek = std::move(*k);
  }
  if (cek.size() != want_cek) {
    return fail(ErrorCode::invalid_token, "the content encryption key is " + std::to_string(cek.size()) +
                                              " bytes; " + enc_name + " needs " + std::to_string(want_cek));
  }
  auto plaintext = content_decrypt(*enc, cek, *iv, seg->header, *ciphertext, *tag);
  if (!plaintext) return std::unexpected(plaintext.error());
  return DecryptedJwe{std::move(*header), std::move(*plaintext)};
}

}  // namespace tokctl::jose
