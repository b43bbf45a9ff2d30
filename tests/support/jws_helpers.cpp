// Encoding and JWS helpers for tests, independent of tokctl's own code (see jws_helpers.hpp).

#include "support/jws_helpers.hpp"

#include <stdexcept>

#include <nlohmann/json.hpp>

#include <openssl/evp.h>
#include <openssl/hmac.h>

namespace tokctl::test {

std::string b64url(std::string_view bytes) {
  static constexpr char k_alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  std::size_t i = 0;
  auto byte = [&](std::size_t k) { return static_cast<unsigned>(static_cast<unsigned char>(bytes[k])); };
  for (; i + 2 < bytes.size(); i += 3) {
    unsigned v = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
    out += k_alphabet[v >> 18 & 63];
    out += k_alphabet[v >> 12 & 63];
    out += k_alphabet[v >> 6 & 63];
    out += k_alphabet[v & 63];
  }
  if (bytes.size() - i == 1) {
    unsigned v = byte(i) << 16;
    out += k_alphabet[v >> 18 & 63];
    out += k_alphabet[v >> 12 & 63];
  } else if (bytes.size() - i == 2) {
    unsigned v = byte(i) << 16 | byte(i + 1) << 8;
    out += k_alphabet[v >> 18 & 63];
    out += k_alphabet[v >> 12 & 63];
    out += k_alphabet[v >> 6 & 63];
  }
  return out;
}

std::string b64url_decode(std::string_view text) {
  std::string out;
  unsigned v = 0;
  int bits = 0;
  for (char c : text) {
    int d;
    if (c >= 'A' && c <= 'Z') d = c - 'A';
    else if (c >= 'a' && c <= 'z') d = c - 'a' + 26;
    else if (c >= '0' && c <= '9') d = c - '0' + 52;
    else if (c == '-') d = 62;
    else if (c == '_') d = 63;
    else throw std::runtime_error("bad base64url in test data");
    v = v << 6 | static_cast<unsigned>(d);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>(v >> bits & 0xff);
    }
  }
  return out;
}

// Padded standard base64 (x5c).
std::string b64_std(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
            reinterpret_cast<const unsigned char*>(data.data()), data.size(), md, &len)) {
    throw std::runtime_error("HMAC failed");
  }
  return std::string(reinterpret_cast<char*>(md), len);
}

// A compact JWS from already-encoded header and payload segments, HS256-signed with `secret`.
std::string hs256_segments(const std::string& header_seg, const std::string& payload_seg,
                           std::string_view secret) {
  std::string input = header_seg + "." + payload_seg;
  return input + "." + b64url(hmac_sha256(secret, input));
}

std::string hs256_token(std::string_view header, std::string_view payload, std::string_view secret) {
  return hs256_segments(b64url(header), b64url(payload), secret);
}

std::string header_kid(std::string_view jws) {
  auto h = nlohmann::json::parse(b64url_decode(jws.substr(0, jws.find('.'))), nullptr, false);
  return h.is_object() && h.contains("kid") && h["kid"].is_string() ? h["kid"].get<std::string>() : std::string();
}

}  // namespace tokctl::test
