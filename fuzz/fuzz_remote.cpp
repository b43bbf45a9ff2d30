// Fuzz target: what remote mode reads from a server (tokctl/remote): metadata documents, OAuth
// error bodies, token-endpoint JSON and Cache-Control values. Properties: no crash; endpoints taken
// from metadata are http(s) URLs; an error built from a body is remote_oauth or network and its
// message holds no control character (it reaches a terminal).

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <tokctl/remote/http.hpp>
#include <tokctl/remote/oauth.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace tokctl;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto ep = remote::parse_metadata(text, "https://as.test", "https://as.test/.well-known/x"); ep) {
    for (const std::string* u : {&ep->token_endpoint, &ep->introspection_endpoint, &ep->revocation_endpoint, &ep->jwks_uri})
      if (!u->empty() && !remote::is_http_url(*u)) std::abort();
    if (ep->issuer.rfind("https://as.test", 0) != 0) std::abort();
  }
  remote::HttpResponse r;
  r.status = 400;
  r.url = "https://as.test/token";
  r.body = std::string(text);
  r.headers = {{"content-type", std::string(text.substr(0, 64))}};
  Error e = remote::error_from_response(r, "token endpoint");
  if (e.code != ErrorCode::remote_oauth && e.code != ErrorCode::network) std::abort();
  if (e.code == ErrorCode::remote_oauth) {
    for (char c : e.message)
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) std::abort();
  }
  (void)remote::json_body(r, "token endpoint");
  auto cc = remote::parse_cache_control(text);
  if (cc.max_age && *cc.max_age < 0) std::abort();
  (void)remote::redact_url(text);
  if (remote::well_known_urls(text).size() != 2) std::abort();
  return 0;
}
