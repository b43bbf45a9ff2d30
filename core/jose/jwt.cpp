#include <tokctl/jose/jwt.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>

#include <tokctl/jose/json.hpp>

#include "jwk_data.hpp"

namespace tokctl::jose {
namespace {

using nlohmann::json;

void add(std::vector<Problem>& out, ProblemCode code, std::string message, std::string hint = {},
         bool malformed = false) {
  out.push_back(Problem{code, std::move(message), std::move(hint), malformed});
}

// Reads a NumericDate claim. Returns nullopt when absent; sets `bad` when present but not a number.
std::optional<std::int64_t> numeric_date(const json& payload, const char* name, std::vector<Problem>& out) {
  auto it = payload.find(name);
  if (it == payload.end()) return std::nullopt;
  if (!it->is_number()) {
    add(out, ProblemCode::bad_claim_type,
        std::string("claim \"") + name + "\" must be a number (NumericDate), not " + it->type_name(),
        "time claims are seconds since 1970-01-01T00:00:00Z", true);
    return std::nullopt;
  }
  auto t = time_from_seconds(it->get<double>());
  if (!t) {
    add(out, ProblemCode::bad_claim_type,
        std::string("claim \"") + name + "\" is out of range (" + it->dump() + ")",
        "NumericDate values must lie between years 0001 and 9999", true);
  }
  return t;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// True when `text` equals `lower_case` ignoring ASCII case (no locale: this runs for every token).
bool iequals(std::string_view text, std::string_view lower_case) {
  return std::equal(text.begin(), text.end(), lower_case.begin(), lower_case.end(), [](char t, char l) {
    return (t >= 'A' && t <= 'Z' ? static_cast<char>(t - 'A' + 'a') : t) == l;
  });
}

std::string media_type(const std::string& typ) {
  std::string t = lower(typ);
  if (t.rfind("application/", 0) == 0) t = t.substr(12);
  return t;
}

void check_string_claim(const json& payload, const char* name, const std::optional<std::string>& want,
                        ProblemCode code, std::vector<Problem>& out) {
  if (!want) return;
  auto it = payload.find(name);
  if (it == payload.end()) {
    add(out, code, std::string(name) + " is missing, expected '" + *want + "'");
  } else if (!it->is_string()) {
    add(out, ProblemCode::bad_claim_type, std::string("claim \"") + name + "\" must be a string", {}, true);
  } else if (it->get_ref<const std::string&>() != *want) {
    add(out, code, std::string(name) + " mismatch: token has '" + it->get<std::string>() + "', expected '" +
                       *want + "'");
  }
}

}  // namespace

const char* to_string(ProblemCode code) {
  switch (code) {
    case ProblemCode::malformed: return "malformed";
    case ProblemCode::not_a_jwt: return "not_a_jwt";
    case ProblemCode::alg_none: return "alg_none";
    case ProblemCode::alg_unsupported: return "alg_unsupported";
    case ProblemCode::alg_not_allowed: return "alg_not_allowed";
    case ProblemCode::crit_unsupported: return "crit_unsupported";
    case ProblemCode::key_mismatch: return "key_mismatch";
    case ProblemCode::kid_not_found: return "kid_not_found";
    case ProblemCode::key_unsupported: return "key_unsupported";
    case ProblemCode::bad_signature: return "bad_signature";
    case ProblemCode::expired: return "expired";
    case ProblemCode::not_yet_valid: return "not_yet_valid";
    case ProblemCode::iat_in_future: return "iat_in_future";
    case ProblemCode::too_old: return "too_old";
    case ProblemCode::iss_mismatch: return "iss_mismatch";
    case ProblemCode::aud_mismatch: return "aud_mismatch";
    case ProblemCode::sub_mismatch: return "sub_mismatch";
    case ProblemCode::typ_mismatch: return "typ_mismatch";
    case ProblemCode::missing_claim: return "missing_claim";
    case ProblemCode::bad_claim_type: return "bad_claim_type";
    case ProblemCode::revoked: return "revoked";
    case ProblemCode::store_error: return "store_error";
    case ProblemCode::decrypt_failed: return "decrypt_failed";
    case ProblemCode::cnf_mismatch: return "cnf_mismatch";
  }
  return "unknown";
}

ErrorCode VerifyReport::error_code() const {
  bool only_store = !problems.empty();
  for (const auto& p : problems) {
    if (p.malformed) return ErrorCode::malformed;
    only_store = only_store && p.code == ProblemCode::store_error;
  }
  // A token whose one problem is that the store could not be asked has no verdict: exit 4, so
  // that a script never reads a store outage as "this token is invalid". Any other problem decides.
  return only_store ? ErrorCode::keystore : ErrorCode::invalid_token;
}

int VerifyReport::exit_code() const { return valid ? 0 : tokctl::exit_code(error_code()); }

void check_claims(const json& header, const json& payload, const ClaimRules& rules, UnixTime now,
                  std::vector<Problem>& out) {
  const std::int64_t leeway = rules.leeway;
  // Only a failed check spells out the leeway: a valid token builds no strings.
  auto lw = [leeway] { return ", leeway " + format_duration(leeway); };
  auto exp = numeric_date(payload, "exp", out);
  auto nbf = numeric_date(payload, "nbf", out);
  auto iat = numeric_date(payload, "iat", out);
  if (exp && now - leeway >= *exp) {
    add(out, ProblemCode::expired, "expired " + format_duration(now - *exp) + " ago (exp " + format_rfc3339(*exp) + lw() + ")",
        now - *exp < 86400 * 365 ? "" : "is the verification time right?");
    if (now - *exp >= 86400 * 365) out.back().remedy = Remedy::check_clock;
  }
  if (nbf && now + leeway < *nbf) {
    add(out, ProblemCode::not_yet_valid, "not valid for another " + format_duration(*nbf - now) + " (nbf " +
                                  format_rfc3339(*nbf) + lw() + ")");
  }
  if (iat && *iat > now + leeway) {
    add(out, ProblemCode::iat_in_future, "issued " + format_duration(*iat - now) + " in the future (iat " +
                                  format_rfc3339(*iat) + lw() + ")",
        "the issuer's clock may be ahead");
  }
  if (rules.max_age) {
    if (!iat) {
      if (!payload.contains("iat")) add(out, ProblemCode::missing_claim, "iat is required by the max-age check but missing");
    } else if (now - *iat > *rules.max_age + leeway) {
      add(out, ProblemCode::too_old, "issued " + format_duration(now - *iat) + " ago, over the max age of " +
                              format_duration(*rules.max_age) + " (iat " + format_rfc3339(*iat) + lw() + ")");
    }
  }
  check_string_claim(payload, "iss", rules.iss, ProblemCode::iss_mismatch, out);
  check_string_claim(payload, "sub", rules.sub, ProblemCode::sub_mismatch, out);
  if (rules.aud) {
    auto it = payload.find("aud");
    std::vector<std::string> auds;
    bool typed = true;
    if (it != payload.end()) {
      if (it->is_string()) {
        auds.push_back(it->get<std::string>());
      } else if (it->is_array()) {
        for (const auto& a : *it) {
          if (!a.is_string()) typed = false;
          else auds.push_back(a.get<std::string>());
        }
      } else {
        typed = false;
      }
    }
    if (!typed) {
      add(out, ProblemCode::bad_claim_type, "claim \"aud\" must be a string or an array of strings", {}, true);
    } else if (it == payload.end()) {
      add(out, ProblemCode::aud_mismatch, "aud is missing, expected '" + *rules.aud + "'");
    } else if (std::find(auds.begin(), auds.end(), *rules.aud) == auds.end()) {
      std::string have;
      for (const auto& a : auds) have += (have.empty() ? "'" : ", '") + a + "'";
      add(out, ProblemCode::aud_mismatch, "aud mismatch: token is for " + (have.empty() ? "nobody" : have) +
                                   ", expected '" + *rules.aud + "'");
    }
  }
  if (rules.typ) {
    auto it = header.find("typ");
    if (it == header.end() || !it->is_string()) {
      add(out, ProblemCode::typ_mismatch,
          std::string(it == header.end() ? "header typ is missing" : "header typ is not a string") + ", expected '" +
              *rules.typ + "'");
    } else if (media_type(it->get<std::string>()) != media_type(*rules.typ)) {
      add(out, ProblemCode::typ_mismatch, "typ mismatch: token has '" + it->get<std::string>() + "', expected '" +
                                   *rules.typ + "'");
    }
  }
  for (const auto& name : rules.required) {
    if (!payload.contains(name)) add(out, ProblemCode::missing_claim, "required claim \"" + name + "\" is missing");
  }
  // RFC 8705 §3.1 and RFC 9449 §6.1: the confirmation member the token is bound by.
  struct Binding {
    const std::optional<std::string>& want;
    const char* member;
    const char* thing;  // what the thumbprint is of
    const char* how;    // where such tokens come from
  };
  for (const Binding& b : {Binding{rules.cnf_x5t, "x5t#S256", "certificate", "RFC 8705 bound tokens come from a token "
                                                                             "endpoint over mutual TLS"},
                           Binding{rules.cnf_jkt, "jkt", "DPoP key", "RFC 9449 bound tokens come from a token request "
                                                                     "with a DPoP proof"}}) {
    if (!b.want) continue;
    auto cnf = payload.find("cnf");
    // RFC 7800 §3.1: cnf is an object, its thumbprints strings; a wrong type is named as such.
    if (cnf != payload.end() && !cnf->is_object()) {
      add(out, ProblemCode::bad_claim_type, "claim \"cnf\" must be an object", {}, true);
      break;  // once, whichever bindings were asked for
    }
    if (cnf != payload.end() && cnf->contains(b.member) && !(*cnf)[b.member].is_string()) {
      add(out, ProblemCode::bad_claim_type, std::string("claim \"cnf\".\"") + b.member + "\" must be a string", {},
          true);
      continue;
    }
    const std::string* bound = cnf != payload.end() ? string_member(*cnf, b.member) : nullptr;
    if (!bound) {
      add(out, ProblemCode::cnf_mismatch,
          std::string("the token is not bound to a ") + b.thing + " (it has no cnf." + b.member + ")", b.how);
    } else if (*bound != *b.want) {
      add(out, ProblemCode::cnf_mismatch, std::string("the token is bound to another ") + b.thing + ": its cnf." +
                                              b.member + " is " + *bound + ", the " + b.thing + "'s thumbprint is " +
                                              *b.want);
    }
  }
}

std::vector<std::string> decode_warnings(const json& header, const json& payload, UnixTime now) {
  std::vector<std::string> w;
  std::string alg = string_or(header, "alg");
  if (iequals(alg, "none")) {
    w.push_back("alg is \"none\": the token is unsigned and tokctl will never accept it");
  } else if (auto a = alg_from_string(alg); a && is_symmetric(*a)) {
    w.push_back(alg + " is symmetric: anyone able to verify this token can also forge one");
  } else if (!a) {
    w.push_back("alg \"" + alg + "\" is not a supported signature algorithm");
  }
  for (const char* h : {"typ", "cty"}) {
    if (header.is_object() && header.contains(h) && !header[h].is_string())
      w.push_back(std::string("header \"") + h + "\" is not a string: verify will reject the token");
  }
  for (const char* h : {"jwk", "jku", "x5u", "x5c"}) {
    if (header.is_object() && header.contains(h)) {
      w.push_back(std::string("header carries \"") + h + "\": tokctl never lets the token choose its own key");
    }
  }
  if (header.is_object() && header.contains("crit")) w.push_back("header has \"crit\" extensions");
  if (!payload.is_object()) {
    w.push_back("the payload is not a JSON object, so this is not a JWT claims set");
    return w;
  }
  auto num = [&](const char* n) -> std::optional<std::int64_t> {
    auto it = payload.find(n);
    if (it == payload.end()) return std::nullopt;
    if (!it->is_number()) {
      w.push_back(std::string("claim \"") + n + "\" is not a number (NumericDate)");
      return std::nullopt;
    }
    auto t = time_from_seconds(it->get<double>());
    if (!t) w.push_back(std::string("claim \"") + n + "\" is out of range (" + it->dump() + ")");
    return t;
  };
  auto exp = num("exp");
  auto iat = num("iat");
  num("nbf");
  if (!payload.contains("exp")) {
    w.push_back("no exp claim: the token never expires");
  } else if (exp) {
    std::int64_t start = iat.value_or(now);
    if (*exp - start > 86400) {
      w.push_back("lifetime is " + format_duration(*exp - start) + ", over 24h");
    }
    if (*exp <= now) w.push_back("expired " + format_duration(now - *exp) + " ago");
  }
  static constexpr const char* sensitive[] = {"email", "phone", "phone_number", "address", "birthdate",
                                              "ssn", "password", "passwd", "secret", "credit_card",
                                              "card_number", "iban", "name", "given_name", "family_name"};
  for (const auto& [k, v] : payload.items()) {
    std::string lk = lower(k);
    for (const char* s : sensitive) {
      if (lk == s) {
        w.push_back("claim \"" + k + "\" looks like personal or secret data; anyone holding the token can read it");
        break;
      }
    }
  }
  return w;
}

// ---- TokenVerifier ----------------------------------------------------------------------------

namespace {

// The hint for a key that pins no alg and implies none (RSA, oct), and an alg to name for it.
std::string alg_example(const Jwk& k) { return k.kty() == KeyType::rsa ? "RS256" : k.kty() == KeyType::oct ? "HS256" : ""; }

std::string alg_hint(const Jwk& k) {
  std::string example = k.kty() == KeyType::rsa ? "RS256 (or PS256)" : k.kty() == KeyType::oct ? "HS256" : "...";
  return "a JWK with \"alg\" pins one; a PEM, bare secret or JWKS member without \"alg\" does not. For this key, "
         "name one: " + example;
}

}  // namespace

struct TokenVerifier::Impl {
  struct Candidate {
    std::size_t key_index;
    Alg alg;
    SignatureVerifier verifier;
  };
  JwkSet keys;
  KeySource source;
  VerifyOptions options;
  const Clock* clock;
  std::vector<std::vector<Alg>> allowed;  // per key
  std::vector<Candidate> verifiers;       // every usable (key, allowed alg), built by create()

  const SignatureVerifier* verifier_for(std::size_t index, Alg alg) const {
    for (const auto& c : verifiers)
      if (c.key_index == index && c.alg == alg) return &c.verifier;
    return nullptr;
  }
};

TokenVerifier::TokenVerifier(std::shared_ptr<const Impl> impl) : m_impl(std::move(impl)) {}
TokenVerifier::TokenVerifier(const TokenVerifier&) = default;
TokenVerifier& TokenVerifier::operator=(const TokenVerifier&) = default;
TokenVerifier::TokenVerifier(TokenVerifier&&) noexcept = default;
TokenVerifier& TokenVerifier::operator=(TokenVerifier&&) noexcept = default;
TokenVerifier::~TokenVerifier() = default;

Result<TokenVerifier> TokenVerifier::create(JwkSet keys, KeySource source, VerifyOptions options,
                                            const Clock& clock) {
  if (keys.keys.empty()) {
    return fail(ErrorCode::usage, "no usable verification key", "the JWKS has no key of a supported type");
  }
  auto impl = std::make_unique<Impl>();
  impl->source = source;
  impl->clock = &clock;
  bool any_unpinned = false;
  bool any_allowed = false;
  for (const auto& key : keys.keys) {
    std::vector<Alg> algs;
    if (!key.alg().empty()) {
      auto pinned = alg_from_string(key.alg());
      bool wanted = options.allowed_algs.empty() ||
                    std::find(options.allowed_algs.begin(), options.allowed_algs.end(), pinned) !=
                        options.allowed_algs.end();
      if (pinned && wanted) algs.push_back(*pinned);
    } else if (!options.allowed_algs.empty()) {
      algs = options.allowed_algs;
    } else if (auto implied = implied_jws_alg(key); implied && alg_from_string(*implied)) {
      algs.push_back(*alg_from_string(*implied));  // EC and Ed keys imply their one alg
    } else {
      any_unpinned = true;
    }
    any_allowed = any_allowed || !algs.empty();
    impl->allowed.push_back(std::move(algs));
  }
  if (!any_allowed) {
    if (any_unpinned && options.allowed_algs.empty()) {
      const Jwk& k = keys.keys.front();
      return fail_param(ErrorCode::usage, "alg", "an algorithm is required: the " + k.describe() + " does not pin one",
                        alg_hint(k));
    }
    std::string pinned, unknown;
    for (const auto& k : keys.keys) {
      if (k.alg().empty()) continue;
      pinned += (pinned.empty() ? "" : ", ") + k.alg();
      if (!alg_from_string(k.alg())) unknown += (unknown.empty() ? "'" : ", '") + k.alg() + "'";
    }
    // No algorithm was asked for: the key itself is at fault, not an option nobody gave.
    if (options.allowed_algs.empty() && !unknown.empty()) {
      return fail(ErrorCode::malformed,
                  "the key pins alg " + unknown + ", which is not a signature algorithm tokctl verifies with" +
                      (unknown == "'none'" ? " ('none' never is)" : ""),
                  "fix or drop the key's \"alg\" member");
    }
    return fail_param(ErrorCode::usage, "alg", "the requested algorithm does not match the key's own alg (" + pinned + ")",
                      "name no algorithm, or use a matching key");
  }
  impl->keys = std::move(keys);
  impl->options = std::move(options);
  // Built once: verify() is const and shared by threads. A pair that check_key refuses has none
  // (verify() reports why when a token selects it).
  for (std::size_t i = 0; i < impl->keys.keys.size(); ++i) {
    for (Alg alg : impl->allowed[i]) {
      auto v = SignatureVerifier::create(alg, impl->keys.keys[i], impl->options.key_strength);
      if (v) impl->verifiers.push_back(Impl::Candidate{i, alg, std::move(*v)});
    }
  }
  return TokenVerifier(std::move(impl));
}

VerifyReport TokenVerifier::verify(std::string_view token, ReportDetail detail) const {
  const Impl& im = *m_impl;
  VerifyReport report;
  auto& problems = report.problems;
  // Per-thread scratch: a batch decodes every token into the same buffers (issue 11 point 2).
  thread_local CompactParts jws;
  thread_local std::vector<std::size_t> by_kid;  // keys the kid selects
  thread_local std::vector<std::size_t> usable;  // of those, the ones allowed and fit for the alg
  if (auto parsed = parse_compact_into(token, im.options.limits, jws); !parsed) {
    add(problems, ProblemCode::malformed, parsed.error().message, parsed.error().hint, true);
    return report;
  }
  report.parsed = true;
  // Only this thread's next parse replaces the document `header` refers to; nothing below parses
  // another compact token.
  const json& header = *jws.header;
  if (detail == ReportDetail::full) report.header = header;
  // RFC 7515 §4.1.9-4.1.10: typ and cty are strings; an array typ must not pass unnoticed. (A
  // verdict, not a parse failure: `decode` still shows such a token, with a warning.)
  for (const char* name : {"typ", "cty"}) {
    auto m = jws.header->find(name);
    if (m != jws.header->end() && !m->is_string())
      add(problems, ProblemCode::malformed, std::string("header \"") + name + "\" must be a string", {}, true);
  }
  auto payload = parse_json_strict(jws.payload, "claims", im.options.limits.json);
  const bool meant_as_json = meant_as_json_object(jws.payload);
  if (payload && payload->is_object()) {
    report.payload = std::move(*payload);
  } else if (meant_as_json) {
    add(problems, ProblemCode::malformed, payload ? "claims must be a JSON object" : payload.error().message, {}, true);
  } else {
    // Not a JWT: a JWS over arbitrary bytes. Its signature can still be checked; claim rules cannot.
    report.payload_bytes = jws.payload;
    const ClaimRules& c = im.options.claims;
    if (c.iss || c.aud || c.sub || !c.required.empty() || c.max_age || c.cnf_x5t || c.cnf_jkt) {
      add(problems, ProblemCode::not_a_jwt, "the payload is not a JWT claims set (" + std::to_string(jws.payload.size()) +
                                     " bytes), so claim checks cannot pass",
          "drop the claim checks (issuer, audience, subject, required claims, max age, certificate, DPoP key) to "
          "check only "
          "the signature");
    }
  }

  // Algorithm policy.
  const std::string_view alg_name = jws.alg;
  auto alg = alg_from_string(alg_name);
  bool can_check_signature = true;
  if (iequals(alg_name, "none")) {
    add(problems, ProblemCode::alg_none, "alg \"" + std::string(alg_name) + "\" (unsigned token) is never accepted");
    can_check_signature = false;
  } else if (!alg) {
    add(problems, ProblemCode::alg_unsupported, "alg \"" + std::string(alg_name) + "\" is not supported",
        "supported: " + supported_alg_names());
    can_check_signature = false;
  }
  if (auto c = check_crit(header); !c) {
    add(problems, ProblemCode::crit_unsupported, c.error().message, c.error().hint);
    can_check_signature = false;
  }

  if (can_check_signature) {
    // Keys that may verify this token: kid-selected in a set, and allowed to use this alg.
    const std::string_view token_kid = jws.kid;
    by_kid.clear();
    for (std::size_t i = 0; i < im.keys.keys.size(); ++i) {
      if (im.source == KeySource::single || token_kid.empty() || im.keys.keys[i].kid() == token_kid) {
        by_kid.push_back(i);
      }
    }
    auto skipped = std::find_if(im.keys.skipped.begin(), im.keys.skipped.end(),
                                [&](const SkippedKey& k) { return !token_kid.empty() && k.kid == token_kid; });
    if (by_kid.empty() && skipped != im.keys.skipped.end()) {
      add(problems, ProblemCode::key_unsupported,
          "kid '" + std::string(token_kid) + "' is in the JWKS, but it is an " + skipped->type +
              " key, which tokctl does not support",
          "supported: RSA, EC P-256/P-384/P-521, OKP Ed25519/Ed448, oct");
    } else if (by_kid.empty()) {
      add(problems, ProblemCode::kid_not_found,
          "kid '" + std::string(token_kid) + "' not in JWKS (have: " + im.keys.kid_list() + ")",
          "the signer may have rotated keys; refresh the JWKS. The set has: " + im.keys.type_list());
    } else {
      usable.clear();
      std::string mismatch_hint;
      std::string mismatch_reason;  // why the first allowed key was refused
      Remedy mismatch_remedy = Remedy::none;
      for (auto i : by_kid) {
        const auto& allowed = im.allowed[i];
        if (std::find(allowed.begin(), allowed.end(), *alg) == allowed.end()) continue;
        // create() built a verifier for every allowed pair check_key accepts: only a pair without
        // one needs check_key again, for its reason.
        if (!im.verifier_for(i, *alg)) {
          auto ok = check_key(*alg, im.keys.keys[i], KeyRole::verify, im.options.key_strength);
          if (!ok && mismatch_reason.empty()) {
            mismatch_reason = ok.error().message;
            mismatch_hint = ok.error().hint;
            mismatch_remedy = ok.error().remedy;
          }
          continue;
        }
        usable.push_back(i);
      }
      if (usable.empty()) {
        std::string allowed_names;
        for (auto i : by_kid)
          for (auto a : im.allowed[i])
            if (allowed_names.find(to_string(a)) == std::string::npos)
              allowed_names += (allowed_names.empty() ? "" : ", ") + std::string(to_string(a));
        if (mismatch_hint.empty() && !by_kid.empty()) {
          auto probe = check_key(*alg, im.keys.keys[by_kid.front()], KeyRole::verify, im.options.key_strength);
          if (!probe) {
            mismatch_hint = probe.error().hint.empty() ? probe.error().message : probe.error().hint;
            mismatch_remedy = probe.error().remedy;
          }
        }
        bool unpinned = std::all_of(by_kid.begin(), by_kid.end(), [&](std::size_t i) { return im.allowed[i].empty(); });
        // The selected key pins an alg that is no JWS algorithm ("none", a typo): the key is at
        // fault (malformed, as when it is the only key), not a missing pin or an --alg.
        const Jwk& first = im.keys.keys[by_kid.front()];
        if (unpinned && !first.alg().empty() && !alg_from_string(first.alg())) {
          add(problems, ProblemCode::key_unsupported,
              "the " + first.describe() + (first.kid().empty() ? "" : " (kid '" + first.kid() + "')") +
                  " pins alg '" + first.alg() + "', which is not a signature algorithm tokctl verifies with",
              "fix or drop the key's \"alg\" member", true);
        } else if (unpinned && im.options.allowed_algs.empty()) {
          const Jwk& k = im.keys.keys[by_kid.front()];
          add(problems, ProblemCode::alg_not_allowed,
              "the " + k.describe() + (k.kid().empty() ? "" : " (kid '" + k.kid() + "')") +
                  " does not pin an algorithm, so no alg is allowed for it",
              alg_hint(k));
          problems.back().remedy = Remedy::name_alg;
          problems.back().subject = alg_example(k);
        } else if (allowed_names.find(alg_name) == std::string::npos) {
          add(problems, ProblemCode::alg_not_allowed,
              "alg " + std::string(alg_name) + " is not allowed (allowed: " +
                  (allowed_names.empty() ? "none" : allowed_names) + ")",
              mismatch_hint);
          problems.back().remedy = mismatch_remedy;
        } else {
          add(problems, ProblemCode::key_mismatch,
              "no key can verify a " + std::string(alg_name) + " token" +
                  (mismatch_reason.empty() ? "" : ": " + mismatch_reason),
              mismatch_hint);
          problems.back().remedy = mismatch_remedy;
        }
      } else {
        // "header.payload" as it stands in the token: parse_compact_into checked the three segments.
        const std::string_view input = token.substr(0, jws.header_b64.size() + 1 + jws.payload_b64.size());
        bool verified = false;
        for (auto i : usable) {
          if (im.verifier_for(i, *alg)->verify(input, jws.signature)) {
            verified = true;
            report.signature_verified = true;
            report.kid = im.keys.keys[i].kid();
            report.weak_key = is_weak_key(*alg, im.keys.keys[i]);
            break;
          }
        }
        if (!verified) {
          const Jwk& k = im.keys.keys[usable.front()];
          std::string msg = "signature does not verify";
          if (usable.size() == 1) {
            msg += " with the " + k.describe() + (k.kid().empty() ? "" : " (kid '" + k.kid() + "')");
          } else {
            msg += " with any of " + std::to_string(usable.size()) + " candidate keys";
          }
          std::string hint = "wrong key, or the token was altered";
          if (!token_kid.empty() && im.source == KeySource::single && !k.kid().empty() && k.kid() != token_kid) {
            hint = "the token's kid is '" + std::string(token_kid) + "' but the key's kid is '" + k.kid() + "'";
          }
          if (alg_name.starts_with("ES") && jws.signature.size() != 2 * k.data().ec_size && k.kty() == KeyType::ec) {
            hint = "an " + std::string(alg_name) + " signature is " + std::to_string(2 * k.data().ec_size) +
                   " bytes of raw r||s; this one is " + std::to_string(jws.signature.size()) +
                   " (DER-encoded signatures are not JWS)";
          }
          add(problems, ProblemCode::bad_signature, msg, hint);
          report.kid = k.kid();
        }
      }
    }
  }

  if (report.payload.is_object()) {
    check_claims(header, report.payload, im.options.claims, im.clock->now(), problems);
  }
  report.valid = problems.empty();
  return report;
}

}  // namespace tokctl::jose
