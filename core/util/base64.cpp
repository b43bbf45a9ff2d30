#include <tokctl/util/base64.hpp>

#include <array>
#include <cstdint>

namespace tokctl {
namespace {

constexpr char k_url_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr char k_std_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<std::int8_t, 256> make_table(const char* alphabet) {
  std::array<std::int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(alphabet[i])] = static_cast<std::int8_t>(i);
  return t;
}
constexpr auto k_url_table = make_table(k_url_alphabet);
constexpr auto k_std_table = make_table(k_std_alphabet);

std::string encode(std::string_view in, const char* alphabet, bool pad) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  const auto* p = reinterpret_cast<const unsigned char*>(in.data());
  for (; i + 3 <= in.size(); i += 3) {
    std::uint32_t v = (std::uint32_t{p[i]} << 16) | (std::uint32_t{p[i + 1]} << 8) | p[i + 2];
    out.push_back(alphabet[(v >> 18) & 63]);
    out.push_back(alphabet[(v >> 12) & 63]);
    out.push_back(alphabet[(v >> 6) & 63]);
    out.push_back(alphabet[v & 63]);
  }
  std::size_t rest = in.size() - i;
  if (rest == 1) {
    std::uint32_t v = std::uint32_t{p[i]} << 16;
    out.push_back(alphabet[(v >> 18) & 63]);
    out.push_back(alphabet[(v >> 12) & 63]);
    if (pad) out += "==";
  } else if (rest == 2) {
    std::uint32_t v = (std::uint32_t{p[i]} << 16) | (std::uint32_t{p[i + 1]} << 8);
    out.push_back(alphabet[(v >> 18) & 63]);
    out.push_back(alphabet[(v >> 12) & 63]);
    out.push_back(alphabet[(v >> 6) & 63]);
    if (pad) out += "=";
  }
  return out;
}

// Decodes unpadded symbols; `name` is used in messages.
Result<std::string> decode(std::string_view in, const std::array<std::int8_t, 256>& table,
                           const char* name) {
  std::string out;
  out.reserve(in.size() * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (std::size_t i = 0; i < in.size(); ++i) {
    auto c = static_cast<unsigned char>(in[i]);
    int v = table[c];
    if (v < 0) {
      std::string shown = (c >= 0x21 && c < 0x7f) ? std::string("'") + static_cast<char>(c) + "'"
                                                   : "byte 0x" + hex_encode(std::string(1, static_cast<char>(c)));
      return fail(ErrorCode::malformed, std::string("invalid ") + name + ": illegal character " +
                                            shown + " at offset " + std::to_string(i));
    }
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  if (in.size() % 4 == 1) {
    return fail(ErrorCode::malformed,
                std::string("invalid ") + name + ": length " + std::to_string(in.size()) +
                    " is not a valid encoded length (1 mod 4)");
  }
  // Leftover bits must be zero, or the encoding is not canonical (two encodings, one value).
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) {
    return fail(ErrorCode::malformed,
                std::string("invalid ") + name + ": non-canonical encoding (trailing bits set)");
  }
  return out;
}

}  // namespace

std::string b64url_encode(std::string_view bytes) { return encode(bytes, k_url_alphabet, false); }

Result<std::string> b64url_decode(std::string_view text) {
  if (!text.empty() && text.back() == '=') {
    return fail(ErrorCode::malformed, "invalid base64url: padding '=' is not allowed in JOSE");
  }
  return decode(text, k_url_table, "base64url");
}

std::string b64_encode(std::string_view bytes) { return encode(bytes, k_std_alphabet, true); }

Result<std::string> b64_decode(std::string_view text) {
  if (text.size() % 4 != 0) {
    return fail(ErrorCode::malformed, "invalid base64: length is not a multiple of 4");
  }
  std::size_t pad = 0;
  while (pad < 2 && pad < text.size() && text[text.size() - 1 - pad] == '=') ++pad;
  return decode(text.substr(0, text.size() - pad), k_std_table, "base64");
}

std::string hex_encode(std::string_view bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

Result<std::string> hex_decode(std::string_view text) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (text.size() % 2 != 0) return fail(ErrorCode::malformed, "invalid hex: odd length");
  std::string out;
  out.reserve(text.size() / 2);
  for (std::size_t i = 0; i < text.size(); i += 2) {
    int hi = nibble(text[i]), lo = nibble(text[i + 1]);
    if (hi < 0 || lo < 0) {
      return fail(ErrorCode::malformed, "invalid hex: illegal character at offset " + std::to_string(i));
    }
    out.push_back(static_cast<char>(hi << 4 | lo));
  }
  return out;
}

}  // namespace tokctl
