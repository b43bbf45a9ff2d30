#include <tokctl/jose/jwk.hpp>

#include <cstring>
#include <optional>

#include <nlohmann/json.hpp>
#include <openssl/asn1.h>
#include <openssl/core_names.h>
#include <openssl/decoder.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/pem.h>

#include <tokctl/jose/json.hpp>
#include <tokctl/util/base64.hpp>
#include <tokctl/util/io.hpp>

#include "jwk_data.hpp"

namespace tokctl::jose {
namespace {

using nlohmann::json;

struct CurveInfo {
  const char* jose;      // "P-256"
  const char* ossl;      // "prime256v1"
  int nid;
  std::size_t size;      // field bytes
};
constexpr CurveInfo k_ec_curves[] = {
    {"P-256", "prime256v1", NID_X9_62_prime256v1, 32},
    {"P-384", "secp384r1", NID_secp384r1, 48},
    {"P-521", "secp521r1", NID_secp521r1, 66},
};

struct OkpInfo {
  const char* jose;
  const char* ossl;  // key type name for EVP_PKEY_new_raw_*_ex
  int id;
  std::size_t pub_size;
  std::size_t priv_size;
  int bits;
};
constexpr OkpInfo k_okp_curves[] = {
    {"Ed25519", "ED25519", EVP_PKEY_ED25519, 32, 32, 253},
    {"Ed448", "ED448", EVP_PKEY_ED448, 57, 57, 456},
    {"X25519", "X25519", EVP_PKEY_X25519, 32, 32, 253},
    {"X448", "X448", EVP_PKEY_X448, 56, 56, 448},
};

const CurveInfo* ec_by_jose(std::string_view crv) {
  for (const auto& c : k_ec_curves)
    if (crv == c.jose) return &c;
  return nullptr;
}
const CurveInfo* ec_by_ossl(std::string_view name) {
  for (const auto& c : k_ec_curves)
    if (name == c.ossl || name == c.jose) return &c;
  return nullptr;
}
const OkpInfo* okp_by_jose(std::string_view crv) {
  for (const auto& c : k_okp_curves)
    if (crv == c.jose) return &c;
  return nullptr;
}
const OkpInfo* okp_by_id(int id) {
  for (const auto& c : k_okp_curves)
    if (id == c.id) return &c;
  return nullptr;
}

// A parse failure that means "this key type is simply not supported" (skipped inside a JWKS).
struct Unsupported {};

Result<std::string> member_b64(const json& j, const char* name, bool required) {
  auto it = j.find(name);
  if (it == j.end()) {
    if (required) return fail(ErrorCode::malformed, std::string("JWK is missing \"") + name + "\"");
    return std::string();
  }
  if (!it->is_string()) {
    return fail(ErrorCode::malformed, std::string("JWK member \"") + name + "\" must be a string");
  }
  auto bytes = b64url_decode(it->get_ref<const std::string&>());
  if (!bytes) {
    return fail(ErrorCode::malformed, std::string("JWK member \"") + name + "\": " + bytes.error().message);
  }
  if (bytes->empty() && required) {
    return fail(ErrorCode::malformed, std::string("JWK member \"") + name + "\" is empty");
  }
  return bytes;
}

ossl::BnPtr to_bn(const std::string& be) {
  return ossl::make(BN_bin2bn(reinterpret_cast<const unsigned char*>(be.data()),
                              static_cast<int>(be.size()), nullptr));
}

std::string bn_param(EVP_PKEY* pkey, const char* name, std::size_t pad = 0) {
  BIGNUM* bn = nullptr;
  if (EVP_PKEY_get_bn_param(pkey, name, &bn) != 1 || bn == nullptr) {
    ossl::clear_errors();
    return {};
  }
  auto owned = ossl::make(bn);
  std::size_t len = static_cast<std::size_t>(BN_num_bytes(bn));
  if (pad > len) len = pad;
  std::string out(len, '\0');
  BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(len));
  return out;
}

Result<ossl::EvpPkeyPtr> pkey_fromdata(const char* type, OSSL_PARAM_BLD* bld, int selection) {
  auto params = ossl::make(OSSL_PARAM_BLD_to_param(bld));
  auto ctx = ossl::make(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* pkey = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &pkey, selection, params.get()) != 1) {
    return ossl::fail_ossl(ErrorCode::malformed, std::string("cannot build ") + type + " key");
  }
  return ossl::make(pkey);
}

Result<void> check_pkey(EVP_PKEY* pkey, bool has_private, const char* what) {
  auto ctx = ossl::make(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey, nullptr));
  if (!ctx) return ossl::fail_ossl(ErrorCode::malformed, "cannot check key");
  int ok = has_private ? EVP_PKEY_pairwise_check(ctx.get()) : EVP_PKEY_public_check(ctx.get());
  if (ok != 1) {
    return ossl::fail_ossl(ErrorCode::malformed,
                           std::string(what) + (has_private ? ": private and public parts do not match"
                                                            : ": public key is not valid"));
  }
  return {};
}

std::string ec_order_bytes(int nid, std::size_t size) {
  EC_GROUP* g = EC_GROUP_new_by_curve_name(nid);
  if (!g) return {};
  std::string out(size, '\0');
  BN_bn2binpad(EC_GROUP_get0_order(g), reinterpret_cast<unsigned char*>(out.data()),
               static_cast<int>(size));
  EC_GROUP_free(g);
  return out;
}

// Fills kty/crv/bits/has_private/ec fields of `d` from its pkey.
Result<void> describe_pkey(Jwk::Data& d) {
  EVP_PKEY* pkey = d.pkey.get();
  int id = EVP_PKEY_get_base_id(pkey);
  d.bits = EVP_PKEY_get_bits(pkey);
  if (id == EVP_PKEY_RSA) {
    d.kty = KeyType::rsa;
    d.has_private = !bn_param(pkey, OSSL_PKEY_PARAM_RSA_D).empty();
    return {};
  }
  if (id == EVP_PKEY_EC) {
    char name[64] = {};
    std::size_t len = 0;
    if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof name, &len) != 1) {
      return ossl::fail_ossl(ErrorCode::malformed, "EC key without a named curve");
    }
    const CurveInfo* c = ec_by_ossl(name);
    if (!c) {
      return fail(ErrorCode::malformed, std::string("unsupported EC curve '") + name + "'",
                  "supported curves: P-256, P-384, P-521");
    }
    d.kty = KeyType::ec;
    d.crv = c->jose;
    d.ec_size = c->size;
    d.ec_order = ec_order_bytes(c->nid, c->size);
    d.has_private = !bn_param(pkey, OSSL_PKEY_PARAM_PRIV_KEY).empty();
    return {};
  }
  if (const OkpInfo* o = okp_by_id(id)) {
    d.kty = KeyType::okp;
    d.crv = o->jose;
    std::size_t len = 0;
    d.has_private = EVP_PKEY_get_raw_private_key(pkey, nullptr, &len) == 1 && len > 0;
    ossl::clear_errors();
    return {};
  }
  if (id == EVP_PKEY_RSA_PSS) {
    return fail(ErrorCode::malformed, "RSA-PSS restricted keys (id-RSASSA-PSS) are not supported",
                "use a plain rsaEncryption key; PS256/384/512 work with it");
  }
  return fail(ErrorCode::malformed, std::string("unsupported key type '") +
                                        (EVP_PKEY_get0_type_name(pkey) ? EVP_PKEY_get0_type_name(pkey) : "?") + "'");
}

Result<std::shared_ptr<Jwk::Data>> data_from_pkey(ossl::EvpPkeyPtr pkey) {
  auto d = std::make_shared<Jwk::Data>();
  d->pkey = std::move(pkey);
  if (auto r = describe_pkey(*d); !r) return std::unexpected(r.error());
  return d;
}

Result<std::shared_ptr<Jwk::Data>> rsa_from_json(const json& j) {
  auto n = member_b64(j, "n", true);
  if (!n) return std::unexpected(n.error());
  auto e = member_b64(j, "e", true);
  if (!e) return std::unexpected(e.error());
  auto d = member_b64(j, "d", false);
  if (!d) return std::unexpected(d.error());
  auto bld = ossl::make(OSSL_PARAM_BLD_new());
  auto bn_n = to_bn(*n), bn_e = to_bn(*e), bn_d = to_bn(*d);
  OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get());
  OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get());
  std::vector<ossl::BnPtr> keep;
  bool priv = !d->empty();
  if (priv) {
    OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_D, bn_d.get());
    static constexpr std::pair<const char*, const char*> crt[] = {
        {"p", OSSL_PKEY_PARAM_RSA_FACTOR1},    {"q", OSSL_PKEY_PARAM_RSA_FACTOR2},
        {"dp", OSSL_PKEY_PARAM_RSA_EXPONENT1}, {"dq", OSSL_PKEY_PARAM_RSA_EXPONENT2},
        {"qi", OSSL_PKEY_PARAM_RSA_COEFFICIENT1}};
    int present = 0;
    for (auto [name, _] : crt) present += j.contains(name);
    if (present != 0 && present != 5) {
      return fail(ErrorCode::malformed, "RSA JWK has some but not all of p, q, dp, dq, qi");
    }
    if (j.contains("oth")) {
      return fail(ErrorCode::malformed, "RSA JWK with \"oth\" (multi-prime) is not supported");
    }
    for (auto [name, param] : crt) {
      if (present == 0) break;
      auto v = member_b64(j, name, true);
      if (!v) return std::unexpected(v.error());
      keep.push_back(to_bn(*v));
      OSSL_PARAM_BLD_push_BN(bld.get(), param, keep.back().get());
    }
  }
  auto pkey = pkey_fromdata("RSA", bld.get(), priv ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY);
  if (!pkey) return std::unexpected(pkey.error());
  if (BN_is_odd(bn_n.get()) == 0 || BN_is_odd(bn_e.get()) == 0 || BN_is_one(bn_e.get())) {
    return fail(ErrorCode::malformed, "RSA JWK has an invalid modulus or exponent");
  }
  // No pairwise check for RSA: OpenSSL's costs ~100 ms (a full key check), and a corrupt private
  // key only produces signatures that fail to verify.
  auto data = data_from_pkey(std::move(*pkey));
  if (!data) return data;
  (*data)->has_private = priv;
  return data;
}

Result<std::shared_ptr<Jwk::Data>> ec_from_json(const json& j, const std::string& crv, KeyCheck check) {
  const CurveInfo* c = ec_by_jose(crv);
  if (!c) throw Unsupported{};
  auto x = member_b64(j, "x", true);
  if (!x) return std::unexpected(x.error());
  auto y = member_b64(j, "y", true);
  if (!y) return std::unexpected(y.error());
  auto d = member_b64(j, "d", false);
  if (!d) return std::unexpected(d.error());
  if (x->size() != c->size || y->size() != c->size || (!d->empty() && d->size() != c->size)) {
    return fail(ErrorCode::malformed, "EC JWK coordinates must be exactly " + std::to_string(c->size) +
                                          " bytes for " + crv);
  }
  std::string pub = "\x04" + *x + *y;
  auto bld = ossl::make(OSSL_PARAM_BLD_new());
  OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, c->ossl, 0);
  OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, pub.data(), pub.size());
  auto bn_d = to_bn(*d);
  bool priv = !d->empty();
  if (priv) OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_PRIV_KEY, bn_d.get());
  auto pkey = pkey_fromdata("EC", bld.get(), priv ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY);
  if (!pkey) {
    return fail(ErrorCode::malformed, "EC JWK: the point (x, y) is not on " + crv + " (" +
                                          pkey.error().message + ")");
  }
  // The point is on the curve (fromdata checks that); the full public check and, for a private
  // key, the pairwise check are for keys from outside. The keystore's own, thumbprint-checked
  // against its manifest, skip them (a one-shot verify pays them per key otherwise).
  if (check == KeyCheck::full) {
    if (auto r = check_pkey(pkey->get(), priv, "EC JWK"); !r) return std::unexpected(r.error());
  }
  return data_from_pkey(std::move(*pkey));
}

Result<std::shared_ptr<Jwk::Data>> okp_from_json(const json& j, const std::string& crv) {
  const OkpInfo* o = okp_by_jose(crv);
  if (!o) throw Unsupported{};
  auto x = member_b64(j, "x", true);
  if (!x) return std::unexpected(x.error());
  auto d = member_b64(j, "d", false);
  if (!d) return std::unexpected(d.error());
  if (x->size() != o->pub_size || (!d->empty() && d->size() != o->priv_size)) {
    return fail(ErrorCode::malformed, "OKP JWK: wrong key length for " + crv);
  }
  EVP_PKEY* raw = nullptr;
  if (d->empty()) {
    raw = EVP_PKEY_new_raw_public_key_ex(nullptr, o->ossl, nullptr,
                                         reinterpret_cast<const unsigned char*>(x->data()), x->size());
  } else {
    raw = EVP_PKEY_new_raw_private_key_ex(nullptr, o->ossl, nullptr,
                                          reinterpret_cast<const unsigned char*>(d->data()), d->size());
  }
  if (!raw) return ossl::fail_ossl(ErrorCode::malformed, "cannot build " + crv + " key");
  auto pkey = ossl::make(raw);
  if (!d->empty()) {
    std::string derived(o->pub_size, '\0');
    std::size_t len = derived.size();
    if (EVP_PKEY_get_raw_public_key(raw, reinterpret_cast<unsigned char*>(derived.data()), &len) != 1 ||
        derived != *x) {
      ossl::clear_errors();
      return fail(ErrorCode::malformed, "OKP JWK: \"x\" does not match the private key \"d\"");
    }
  }
  return data_from_pkey(std::move(pkey));
}

Result<std::string> optional_string(const json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end()) return std::string();
  if (!it->is_string()) {
    return fail(ErrorCode::malformed, std::string("JWK member \"") + name + "\" must be a string");
  }
  return it->get<std::string>();
}

Result<void> set_metadata(Jwk& jwk, const json& j) {
  auto kid = optional_string(j, "kid");
  if (!kid) return std::unexpected(kid.error());
  auto alg = optional_string(j, "alg");
  if (!alg) return std::unexpected(alg.error());
  auto use = optional_string(j, "use");
  if (!use) return std::unexpected(use.error());
  if (auto ops = j.find("key_ops"); ops != j.end()) {
    if (!ops->is_array()) return fail(ErrorCode::malformed, "JWK member \"key_ops\" must be an array");
    std::vector<std::string> list;
    for (const auto& op : *ops) {
      if (!op.is_string()) return fail(ErrorCode::malformed, "JWK \"key_ops\" entries must be strings");
      list.push_back(op.get<std::string>());
    }
    jwk.set_key_ops(std::move(list));
  }
  jwk.set_kid(std::move(*kid));
  jwk.set_alg(std::move(*alg));
  jwk.set_use(std::move(*use));
  return {};
}

// Parses a JWK; throws Unsupported for a kty/crv this implementation does not know.
Result<Jwk> parse_jwk(const json& j, KeyCheck check) {
  if (!j.is_object()) return fail(ErrorCode::malformed, "a JWK must be a JSON object");
  auto kty_it = j.find("kty");
  if (kty_it == j.end() || !kty_it->is_string()) {
    return fail(ErrorCode::malformed, "JWK has no \"kty\" string");
  }
  const auto& kty = kty_it->get_ref<const std::string&>();
  auto crv = optional_string(j, "crv");
  if (!crv) return std::unexpected(crv.error());
  Result<Jwk> jwk = fail(ErrorCode::malformed, "unsupported");
  if (kty == "RSA") {
    auto d = rsa_from_json(j);
    if (!d) return std::unexpected(d.error());
    jwk = Jwk::from_data(std::move(*d));
  } else if (kty == "EC") {
    auto d = ec_from_json(j, *crv, check);
    if (!d) return std::unexpected(d.error());
    jwk = Jwk::from_data(std::move(*d));
  } else if (kty == "OKP") {
    auto d = okp_from_json(j, *crv);
    if (!d) return std::unexpected(d.error());
    jwk = Jwk::from_data(std::move(*d));
  } else if (kty == "oct") {
    auto k = member_b64(j, "k", true);
    if (!k) return std::unexpected(k.error());
    jwk = Jwk::from_secret(std::move(*k));
    if (!jwk) return jwk;
  } else {
    throw Unsupported{};
  }
  if (auto r = set_metadata(*jwk, j); !r) return std::unexpected(r.error());
  return jwk;
}

std::string unsupported_message(const json& j) {
  std::string kty = j.is_object() && j.contains("kty") && j["kty"].is_string() ? j["kty"].get<std::string>() : "?";
  std::string crv = j.is_object() && j.contains("crv") && j["crv"].is_string() ? j["crv"].get<std::string>() : "";
  return "unsupported JWK: kty \"" + kty + "\"" + (crv.empty() ? "" : ", crv \"" + crv + "\"");
}

Result<Jwk> pkey_from_decoder(std::string_view data, const char* input_type, const char* key_type = nullptr,
                              const char* structure = nullptr) {
  EVP_PKEY* pkey = nullptr;
  auto* dctx = OSSL_DECODER_CTX_new_for_pkey(&pkey, input_type, structure, key_type, 0, nullptr, nullptr);
  if (!dctx) return ossl::fail_ossl(ErrorCode::malformed, "cannot create key decoder");
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  std::size_t len = data.size();
  int ok = OSSL_DECODER_from_data(dctx, &p, &len);
  OSSL_DECODER_CTX_free(dctx);
  if (ok != 1 || !pkey) {
    return ossl::fail_ossl(ErrorCode::malformed, std::string("cannot decode ") + input_type + " key");
  }
  ossl::clear_errors();
  return Jwk::from_pkey(pkey);
}

// The key type an AlgorithmIdentifier names, in a SubjectPublicKeyInfo or (with `pkcs8`, after
// the version) a PrivateKeyInfo; nullptr for anything else. Read with OpenSSL's ASN.1 primitives.
const char* der_key_type(const unsigned char* der, long len, bool pkcs8) {
  const unsigned char* p = der;
  long n = 0;
  int tag = 0, cls = 0;
  if ((ASN1_get_object(&p, &n, &tag, &cls, len) & 0x80) || tag != V_ASN1_SEQUENCE) return nullptr;
  const unsigned char* end = p + n;
  if (pkcs8) {
    if ((ASN1_get_object(&p, &n, &tag, &cls, end - p) & 0x80) || tag != V_ASN1_INTEGER) return nullptr;
    p += n;
  }
  if ((ASN1_get_object(&p, &n, &tag, &cls, end - p) & 0x80) || tag != V_ASN1_SEQUENCE) return nullptr;
  ASN1_OBJECT* oid = d2i_ASN1_OBJECT(nullptr, &p, n);
  if (!oid) return nullptr;
  const int nid = OBJ_obj2nid(oid);
  ASN1_OBJECT_free(oid);
  switch (nid) {
    case NID_X9_62_id_ecPublicKey: return "EC";
    case NID_rsaEncryption: return "RSA";
    case NID_rsassaPss: return "RSA-PSS";
    case NID_ED25519: return "ED25519";
    case NID_ED448: return "ED448";
    case NID_X25519: return "X25519";
    case NID_X448: return "X448";
    default: return nullptr;
  }
}

// The fast path of from_pem: the PEM label names the structure, and the AlgorithmIdentifier (or a
// legacy label) the key type, so OpenSSL builds the decoder for that one chain instead of every
// key type and structure it knows (an EC public key: 7.2M -> 1.6M instructions). nullopt when it
// cannot tell: the general decoder then decides, and reports.
std::optional<Jwk> pem_with_known_type(std::string_view pem) {
  auto bio = ossl::make(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  char* name = nullptr;
  char* header = nullptr;
  unsigned char* data = nullptr;
  long len = 0;
  if (!bio || PEM_read_bio(bio.get(), &name, &header, &data, &len) != 1) {
    ossl::clear_errors();
    return std::nullopt;
  }
  const std::string label = name;
  const bool has_header = header && *header;
  OPENSSL_free(name);
  OPENSSL_free(header);
  std::string der(reinterpret_cast<const char*>(data), static_cast<std::size_t>(len));
  OPENSSL_clear_free(data, static_cast<std::size_t>(len));
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  const char* type = nullptr;
  const char* structure = nullptr;
  if (has_header) {
    type = nullptr;  // legacy encrypted PEM: the general path refuses it
  } else if (label == "PUBLIC KEY") {
    type = der_key_type(p, len, false);
    structure = "SubjectPublicKeyInfo";
  } else if (label == "PRIVATE KEY") {
    type = der_key_type(p, len, true);
    structure = "PrivateKeyInfo";
  } else if (label == "EC PRIVATE KEY") {
    type = "EC";
    structure = "type-specific";
  } else if (label == "RSA PRIVATE KEY" || label == "RSA PUBLIC KEY") {
    type = "RSA";
    structure = "type-specific";
  }
  std::optional<Jwk> out;
  if (type) {
    if (auto k = pkey_from_decoder(der, "DER", type, structure)) out = std::move(*k);
    else ossl::clear_errors();
  }
  OPENSSL_cleanse(der.data(), der.size());
  return out;
}

Result<Jwk> cert_public_key(X509* cert) {
  EVP_PKEY* pkey = X509_get_pubkey(cert);
  if (!pkey) return ossl::fail_ossl(ErrorCode::malformed, "certificate has no usable public key");
  return Jwk::from_pkey(pkey);
}

}  // namespace

const char* to_string(KeyType kty) {
  switch (kty) {
    case KeyType::rsa: return "RSA";
    case KeyType::ec: return "EC";
    case KeyType::okp: return "OKP";
    case KeyType::oct: return "oct";
  }
  return "?";
}

Jwk Jwk::from_data(std::shared_ptr<const Data> data) {
  Jwk k;
  k.m_data = std::move(data);
  return k;
}

Result<Jwk> Jwk::from_json(const nlohmann::json& jwk, KeyCheck check) {
  try {
    return parse_jwk(jwk, check);
  } catch (const Unsupported&) {
    return fail(ErrorCode::malformed, unsupported_message(jwk),
                "supported: RSA, EC P-256/P-384/P-521, OKP Ed25519/Ed448/X25519/X448, oct");
  }
}

Result<Jwk> Jwk::from_pem(std::string_view pem) {
  if (pem.find("-----BEGIN CERTIFICATE-----") != std::string_view::npos) {
    auto bio = ossl::make(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
    if (!cert) return ossl::fail_ossl(ErrorCode::malformed, "cannot parse PEM certificate");
    auto owned = ossl::make(cert);
    return cert_public_key(cert);
  }
  if (pem.find("ENCRYPTED PRIVATE KEY") != std::string_view::npos ||
      pem.find("Proc-Type: 4,ENCRYPTED") != std::string_view::npos) {
    return fail(ErrorCode::malformed, "the PEM private key is encrypted",
                "decrypt it first, e.g. openssl pkey -in KEY.pem -out plain.pem");
  }
  if (auto fast = pem_with_known_type(pem)) return std::move(*fast);
  auto k = pkey_from_decoder(pem, "PEM");
  if (!k) k.error().message = "cannot parse PEM key: " + k.error().message;
  return k;
}

Result<Jwk> Jwk::from_der(std::string_view der) {
  auto k = pkey_from_decoder(der, "DER");
  if (k) return k;
  // Untyped, a PKCS#1 RSAPublicKey (SEQUENCE of two INTEGERs) decodes as DH parameters: retry as RSA.
  if (auto rsa = pkey_from_decoder(der, "DER", "RSA", "type-specific")) return rsa;
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  X509* cert = d2i_X509(nullptr, &p, static_cast<long>(der.size()));
  if (!cert) {
    ossl::clear_errors();
    return k;
  }
  auto owned = ossl::make(cert);
  return cert_public_key(cert);
}

Result<Jwk> Jwk::from_secret(std::string secret) {
  if (secret.empty()) return fail(ErrorCode::malformed, "the secret is empty");
  auto d = std::make_shared<Data>();
  d->kty = KeyType::oct;
  d->bits = static_cast<int>(secret.size() * 8);
  d->has_private = true;
  d->secret = std::move(secret);
  return from_data(std::move(d));
}

Result<Jwk> Jwk::from_pkey(EVP_PKEY* pkey_owned) {
  if (!pkey_owned) return fail(ErrorCode::malformed, "no key");
  auto d = data_from_pkey(ossl::make(pkey_owned));
  if (!d) return std::unexpected(d.error());
  return from_data(std::move(*d));
}

KeyType Jwk::kty() const { return m_data->kty; }
const std::string& Jwk::crv() const { return m_data->crv; }
bool Jwk::has_private() const { return m_data->has_private; }
int Jwk::bits() const { return m_data->bits; }
EVP_PKEY* Jwk::pkey() const { return m_data->pkey.get(); }
const std::string& Jwk::secret() const { return m_data->secret; }

Result<Jwk> Jwk::to_public() const {
  if (kty() == KeyType::oct) {
    return fail(ErrorCode::usage, "an oct (symmetric) key has no public form",
                "HMAC secrets must never be published");
  }
  if (!has_private()) return *this;
  // Re-import only the public part, so the private key is not even in memory of the copy.
  auto pub = to_json(KeyPart::public_only);
  return from_json(pub);
}

nlohmann::json Jwk::to_json(KeyPart part) const {
  json j;
  const bool priv = part == KeyPart::with_private && has_private();
  EVP_PKEY* pk = pkey();
  j["kty"] = to_string(kty());
  switch (kty()) {
    case KeyType::rsa:
      j["n"] = b64url_encode(bn_param(pk, OSSL_PKEY_PARAM_RSA_N));
      j["e"] = b64url_encode(bn_param(pk, OSSL_PKEY_PARAM_RSA_E));
      if (priv) {
        j["d"] = b64url_encode(bn_param(pk, OSSL_PKEY_PARAM_RSA_D));
        std::string p = bn_param(pk, OSSL_PKEY_PARAM_RSA_FACTOR1);
        if (!p.empty()) {
          j["p"] = b64url_encode(p);
          j["q"] = b64url_encode(bn_param(pk, OSSL_PKEY_PARAM_RSA_FACTOR2));
          j["dp"] = b64url_encode(bn_param(pk, OSSL_PKEY_PARAM_RSA_EXPONENT1));
          j["dq"] = b64url_encode(bn_param(pk, OSSL_PKEY_PARAM_RSA_EXPONENT2));
          j["qi"] = b64url_encode(bn_param(pk, OSSL_PKEY_PARAM_RSA_COEFFICIENT1));
        }
      }
      break;
    case KeyType::ec:
      j["crv"] = crv();
      j["x"] = b64url_encode(bn_param(pk, OSSL_PKEY_PARAM_EC_PUB_X, m_data->ec_size));
      j["y"] = b64url_encode(bn_param(pk, OSSL_PKEY_PARAM_EC_PUB_Y, m_data->ec_size));
      if (priv) j["d"] = b64url_encode(bn_param(pk, OSSL_PKEY_PARAM_PRIV_KEY, m_data->ec_size));
      break;
    case KeyType::okp: {
      j["crv"] = crv();
      unsigned char buf[128];
      std::size_t len = sizeof buf;
      if (EVP_PKEY_get_raw_public_key(pk, buf, &len) == 1) {
        j["x"] = b64url_encode(std::string_view(reinterpret_cast<char*>(buf), len));
      }
      len = sizeof buf;
      if (priv && EVP_PKEY_get_raw_private_key(pk, buf, &len) == 1) {
        j["d"] = b64url_encode(std::string_view(reinterpret_cast<char*>(buf), len));
      }
      OPENSSL_cleanse(buf, sizeof buf);
      break;
    }
    case KeyType::oct:
      // A symmetric key is all secret: its JWK always carries k.
      j["k"] = b64url_encode(secret());
      break;
  }
  if (!m_kid.empty()) j["kid"] = m_kid;
  if (!m_alg.empty()) j["alg"] = m_alg;
  if (!m_use.empty()) j["use"] = m_use;
  if (!m_key_ops.empty()) j["key_ops"] = m_key_ops;
  return j;
}

Result<std::string> Jwk::to_pem(KeyPart part) const {
  if (kty() == KeyType::oct) {
    return fail_param(ErrorCode::usage, "format", "an oct (symmetric) key has no PEM form", "export it as a JWK");
  }
  auto bio = ossl::make(BIO_new(BIO_s_mem()));
  int ok = (part == KeyPart::with_private && has_private())
               ? PEM_write_bio_PrivateKey(bio.get(), pkey(), nullptr, nullptr, 0, nullptr, nullptr)
               : PEM_write_bio_PUBKEY(bio.get(), pkey());
  if (ok != 1) return ossl::fail_ossl(ErrorCode::malformed, "cannot encode key as PEM");
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(len));
}

Result<std::string> Jwk::thumbprint(std::string_view hash) const {
  const EVP_MD* md = nullptr;
  if (hash == "sha256") md = EVP_sha256();
  else if (hash == "sha384") md = EVP_sha384();
  else if (hash == "sha512") md = EVP_sha512();
  else if (hash == "sha1") md = EVP_sha1();
  else return fail(ErrorCode::usage, "unknown thumbprint hash '" + std::string(hash) + "'",
                   "use sha256, sha384, sha512 or sha1");
  // RFC 7638 §3.2: only the required members, lexicographic order, no whitespace.
  json full = to_json(KeyPart::public_only);
  json req;
  static const std::vector<std::string> members[] = {{"e", "kty", "n"}, {"crv", "kty", "x", "y"},
                                                     {"crv", "kty", "x"}, {"k", "kty"}};
  for (const auto& m : members[static_cast<int>(kty())]) req[m] = full[m];
  std::string canonical = req.dump();
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(canonical.data(), canonical.size(), out, &len, md, nullptr) != 1) {
    return ossl::fail_ossl(ErrorCode::malformed, "thumbprint digest failed");
  }
  return b64url_encode(std::string_view(reinterpret_cast<char*>(out), len));
}

std::string Jwk::describe() const {
  std::string s = to_string(kty());
  if (!crv().empty()) s += " " + crv();
  if (kty() == KeyType::rsa || kty() == KeyType::oct) s += " " + std::to_string(bits()) + "-bit";
  if (kty() == KeyType::oct) return s + " secret";
  return s + (has_private() ? " private key" : " public key");
}

namespace detail {

Result<std::optional<Jwk>> parse_jwk_or_skip(const nlohmann::json& j) {
  try {
    auto k = parse_jwk(j, KeyCheck::full);
    if (!k) return std::unexpected(k.error());
    return std::optional<Jwk>(std::move(*k));
  } catch (const Unsupported&) {
    return std::optional<Jwk>();
  }
}

}  // namespace detail

Result<std::string> certificate_thumbprint(std::string_view pem_or_der) {
  X509* cert = nullptr;
  if (pem_or_der.find("-----BEGIN CERTIFICATE-----") != std::string_view::npos) {
    auto bio = ossl::make(BIO_new_mem_buf(pem_or_der.data(), static_cast<int>(pem_or_der.size())));
    if (bio) cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
  } else if (!pem_or_der.empty()) {
    const auto* start = reinterpret_cast<const unsigned char*>(pem_or_der.data());
    const unsigned char* p = start;
    cert = d2i_X509(nullptr, &p, static_cast<long>(pem_or_der.size()));
    if (cert && p != start + pem_or_der.size()) {  // bytes after the certificate
      X509_free(cert);
      cert = nullptr;
    }
  }
  if (!cert) return ossl::fail_ossl(ErrorCode::malformed, "not an X.509 certificate (PEM or DER)");
  auto owned = ossl::make(cert);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert, EVP_sha256(), digest, &len) != 1) {
    return ossl::fail_ossl(ErrorCode::malformed, "cannot hash the certificate");
  }
  return b64url_encode(std::string_view(reinterpret_cast<const char*>(digest), len));
}

}  // namespace tokctl::jose
