// Key sets and key material: JWKS parsing (unsupported members skipped, RFC 7517 §5), sniffing
// JWK / JWKS / PEM / DER input, and the algs a key implies.

#include <tokctl/jose/jwk.hpp>

#include <nlohmann/json.hpp>

#include <tokctl/jose/json.hpp>
#include <tokctl/util/io.hpp>

#include "jwk_data.hpp"

namespace tokctl::jose {

using nlohmann::json;

std::string JwkSet::kid_list() const {
  std::string out;
  for (const auto& k : keys) {
    if (!out.empty()) out += ", ";
    out += k.kid().empty() ? "(no kid)" : k.kid();
  }
  return out;
}

std::string JwkSet::type_list() const {
  std::string out;
  for (const auto& k : keys) {
    if (!out.empty()) out += ", ";
    std::string d = k.describe();
    for (const char* suffix : {" private key", " public key", " secret", " key"}) {
      if (d.ends_with(suffix)) {
        d.resize(d.size() - std::char_traits<char>::length(suffix));
        break;
      }
    }
    out += d + " (" + (k.kid().empty() ? "no kid" : "kid '" + k.kid() + "'") + ")";
  }
  return out;
}

std::optional<std::string> implied_jws_alg(const Jwk& key) {
  if (!key.alg().empty()) return key.alg();
  if (key.kty() == KeyType::ec) {
    if (key.crv() == "P-256") return "ES256";
    if (key.crv() == "P-384") return "ES384";
    if (key.crv() == "P-521") return "ES512";
  }
  if (key.kty() == KeyType::okp && (key.crv() == "Ed25519" || key.crv() == "Ed448")) return "EdDSA";
  return std::nullopt;
}

nlohmann::json JwkSet::to_json(KeyPart part) const {
  json arr = json::array();
  for (const auto& k : keys) arr.push_back(k.to_json(part));
  return json{{"keys", arr}};
}

Result<JwkSet> parse_jwks(const nlohmann::json& jwks) {
  if (!jwks.is_object() || !jwks.contains("keys") || !jwks["keys"].is_array()) {
    return fail(ErrorCode::malformed, "a JWKS must be an object with a \"keys\" array");
  }
  JwkSet set;
  std::size_t i = 0;
  for (const auto& j : jwks["keys"]) {
    auto k = detail::parse_jwk_or_skip(j);
    if (!k) {
      k.error().message = "JWKS key #" + std::to_string(i) + ": " + k.error().message;
      return std::unexpected(k.error());
    }
    if (*k) {
      set.keys.push_back(std::move(**k));
    } else {
      // RFC 7517 §5: ignore keys with unsupported types, but remember them for messages.
      std::string kty = string_or(j, "kty", "?");
      std::string crv = string_or(j, "crv");
      set.skipped.push_back(SkippedKey{string_or(j, "kid"), crv.empty() ? "kty '" + kty + "'" : kty + " " + crv});
    }
    ++i;
  }
  return set;
}

Result<JwkSet> parse_key_material(std::string_view content) {
  std::string_view text = trim(content);
  if (text.empty()) return fail(ErrorCode::malformed, "the key input is empty");
  if (text.front() == '{') {
    auto j = parse_json_object(text, "key JSON", JsonLimits{k_max_input_bytes, 64});
    if (!j) return std::unexpected(j.error());
    if (j->contains("keys")) return parse_jwks(*j);
    auto k = Jwk::from_json(*j);
    if (!k) return std::unexpected(k.error());
    return JwkSet{{std::move(*k)}};
  }
  if (text.find("-----BEGIN ") != std::string_view::npos) {
    JwkSet set;
    std::size_t pos = 0;
    while ((pos = text.find("-----BEGIN ", pos)) != std::string_view::npos) {
      auto label_end = text.find("-----", pos + 11);
      if (label_end == std::string_view::npos) break;
      std::string end_marker = "-----END " + std::string(text.substr(pos + 11, label_end - pos - 11)) + "-----";
      auto end = text.find(end_marker, label_end);
      if (end == std::string_view::npos) {
        return fail(ErrorCode::malformed, "PEM block has no matching '" + end_marker + "' line");
      }
      auto block = text.substr(pos, end + end_marker.size() - pos);
      auto k = Jwk::from_pem(block);
      if (!k) return std::unexpected(k.error());
      set.keys.push_back(std::move(*k));
      pos = end + end_marker.size();
    }
    if (set.keys.empty()) return fail(ErrorCode::malformed, "no PEM key found");
    return set;
  }
  auto der = Jwk::from_der(content);  // binary: not trimmed
  if (der) return JwkSet{{std::move(*der)}};
  return fail(ErrorCode::malformed, "the key is not a JWK, JWKS, PEM or DER key",
              "an HMAC secret in a file is passed as a secret file, not as a key");
}

Result<Jwk> parse_single_key(std::string_view content) {
  auto set = parse_key_material(content);
  if (!set) return std::unexpected(set.error());
  if (set->keys.size() != 1) {
    return fail(ErrorCode::usage, "expected one key, found " + std::to_string(set->keys.size()),
                "pass a key set as a JWKS");
  }
  return std::move(set->keys.front());
}

bool looks_like_asymmetric_key(std::string_view secret) {
  std::string_view text = trim(secret);
  if (text.find("-----BEGIN ") != std::string_view::npos) return true;
  if (!text.empty() && text.front() == '{') {
    auto j = parse_json_strict(text, "secret", JsonLimits{k_max_input_bytes, 64});
    if (j && j->is_object()) {
      if (j->contains("keys")) return true;
      std::string kty = string_or(*j, "kty");
      return kty == "RSA" || kty == "EC" || kty == "OKP";
    }
  }
  if (secret.size() > 32 && static_cast<unsigned char>(secret[0]) == 0x30) {
    auto der = Jwk::from_der(secret);
    ossl::clear_errors();
    return der.has_value();
  }
  return false;
}

}  // namespace tokctl::jose
