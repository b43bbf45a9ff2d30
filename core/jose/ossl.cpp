#include <tokctl/jose/ossl.hpp>

#include <openssl/err.h>

namespace tokctl::ossl {

std::string drain_errors() {
  std::string out;
  unsigned long e;
  char buf[256];
  while ((e = ERR_get_error()) != 0) {
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

std::unexpected<Error> fail_ossl(ErrorCode code, std::string what) {
  auto queue = drain_errors();
  if (!queue.empty()) what += " (openssl: " + queue + ")";
  return fail(code, std::move(what));
}

void clear_errors() { ERR_clear_error(); }

}  // namespace tokctl::ossl
