// tokctl decode: show a token's header and claims, with human times and warnings. Verifies nothing.

#include <iostream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <tokctl/jose/json.hpp>
#include <tokctl/jose/jwt.hpp>
#include <tokctl/util/base64.hpp>
#include <tokctl/util/utf8.hpp>

#include "commands.hpp"
#include "common.hpp"
#include "render.hpp"

namespace tokctl::cli {
namespace {

struct DecodeOptions {
  std::string token = "-";
};

bool is_text(const std::string& s) { return s.find('\0') == std::string::npos && valid_utf8(s); }

constexpr const char* k_time_claims[] = {"iat", "nbf", "exp", "auth_time"};

int run_decode(const DecodeOptions& opt) {
  auto token = read_token(opt.token);
  if (!token) return report(token.error());
  auto jws = jose::parse_compact(*token);
  if (!jws) return report(jws.error());
  UnixTime now = (*clock())->now();
  nlohmann::json payload;
  bool payload_is_json = false;
  auto parsed = jose::parse_json_strict(jws->payload, "claims");
  if (parsed) {
    payload = std::move(*parsed);
    payload_is_json = true;
  } else if (jose::meant_as_json_object(jws->payload)) {
    // Claims that are not strict JSON (duplicates, NUL, a BOM) are malformed, never shown as text.
    return report(parsed.error());
  } else if (is_text(jws->payload)) {
    payload = jws->payload;  // a plain-text JWS payload
  }
  auto warnings = jose::decode_warnings(jws->header, payload_is_json ? payload : nlohmann::json(), now);
  if (!payload_is_json && payload.is_null()) warnings.push_back("the payload is binary (" +
      std::to_string(jws->payload.size()) + " bytes); shown base64url-encoded in JSON output");

  if (json_output()) {
    nlohmann::json out;
    out["header"] = jws->header;
    out["payload"] = payload_is_json || payload.is_string() ? payload : nlohmann::json(jws->payload_b64);
    out["signature"] = jws->signature_b64;
    out["warnings"] = warnings;
    out["verified"] = false;
    print_json(out);
    return 0;
  }
  auto& o = std::cout;
  o << style(Stream::out, "1", "Header") << '\n' << json_for_terminal(jws->header) << '\n';
  o << style(Stream::out, "1", "Payload") << '\n';
  if (payload_is_json) o << json_for_terminal(payload) << '\n';
  else if (payload.is_string()) o << terminal_safe(jws->payload, Newlines::keep) << '\n';
  else o << "(binary, " << jws->payload.size() << " bytes) " << jws->payload_b64 << '\n';
  if (payload_is_json && payload.is_object()) {
    bool any = false;
    for (const char* name : k_time_claims) {
      auto it = payload.find(name);
      if (it == payload.end() || !it->is_number()) continue;
      if (!any) o << style(Stream::out, "1", "Times") << " (now " << format_rfc3339(now) << ")\n";
      any = true;
      auto t_or = time_from_seconds(it->get<double>());
      if (!t_or) {
        o << "  " << name << std::string(10 - std::string(name).size(), ' ')
          << style(Stream::out, "31", "out of range (" + terminal_safe(it->dump()) + ")") << '\n';
        continue;
      }
      UnixTime t = *t_or;
      std::string rel = format_relative(t, now);
      if (std::string(name) == "exp") rel = t > now ? "expires " + rel : "expired " + rel;
      o << "  " << name << std::string(10 - std::string(name).size(), ' ') << format_rfc3339(t) << "  "
        << style(Stream::out, t <= now && std::string(name) == "exp" ? "31" : "2", rel) << '\n';
    }
  }
  o << style(Stream::out, "1", "Signature") << '\n' << "  " << jws->signature.size() << " bytes, alg "
    << terminal_safe(jws->alg) << '\n';
  if (!warnings.empty()) {
    o << style(Stream::out, "1", "Warnings") << '\n';
    for (const auto& w : warnings) o << "  " << style(Stream::out, "33", "! " + terminal_safe(w)) << '\n';
  }
  o << style(Stream::out, "33", "NOT VERIFIED: decode only reads the token; nothing was checked. "
                                "Use 'tokctl verify' to check the signature and claims.")
    << '\n';
  return 0;
}

}  // namespace

void register_decode(CLI::App& app) {
  auto opt = std::make_shared<DecodeOptions>();
  auto* sub = app.add_subcommand("decode", "Show a token's header and claims without verifying anything");
  dash_positional(sub, file_value(sub->add_option("token", opt->token, "The token, or - for stdin (default)")));
  examples(sub, {"tokctl decode eyJhbGciOi...",
                 "pbpaste | tokctl decode -",
                 "tokctl decode -o json \"$TOKEN\" | jq .payload.sub",
                 "tokctl decode --now 2026-01-01T00:00:00Z \"$TOKEN\"   # times relative to then"});
  on_run(sub, [opt] { return run_decode(*opt); });
}

}  // namespace tokctl::cli
