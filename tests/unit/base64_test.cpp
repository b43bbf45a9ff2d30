// Strict base64url (JOSE), padded standard base64 and hex: tokctl/util/base64.hpp.

#include <tokctl/util/base64.hpp>

#include <catch2/catch.hpp>

#include <random>
#include <string>
#include <utility>

using tokctl::b64_decode;
using tokctl::b64_encode;
using tokctl::b64url_decode;
using tokctl::b64url_encode;
using tokctl::ErrorCode;
using tokctl::hex_decode;
using tokctl::hex_encode;

namespace {

std::string random_bytes(std::size_t n, std::mt19937& rng) {
  std::uniform_int_distribution<int> byte(0, 255);
  std::string out(n, '\0');
  for (auto& c : out) c = static_cast<char>(byte(rng));
  return out;
}

// RFC 4648 §10.
const std::pair<const char*, const char*> k_rfc4648_std[] = {
    {"", ""},          {"f", "Zg=="},         {"fo", "Zm8="},        {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
};

void require_malformed(const tokctl::Result<std::string>& r) {
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == ErrorCode::malformed);
  CHECK_FALSE(r.error().message.empty());
}

}  // namespace

TEST_CASE("b64url round-trips random bytes of every length from 0 to 64", "[base64]") {
  std::mt19937 rng(20240601);
  for (std::size_t n = 0; n <= 64; ++n) {
    INFO("length " << n);
    const std::string bytes = random_bytes(n, rng);
    const std::string text = b64url_encode(bytes);
    CHECK(text.size() == (n * 4 + 2) / 3);  // unpadded length
    CHECK(text.find_first_of("=+/") == std::string::npos);
    auto back = b64url_decode(text);
    REQUIRE(back.has_value());
    CHECK(*back == bytes);
  }
}

TEST_CASE("standard base64 round-trips random bytes of every length from 0 to 64", "[base64]") {
  std::mt19937 rng(7);
  for (std::size_t n = 0; n <= 64; ++n) {
    INFO("length " << n);
    const std::string bytes = random_bytes(n, rng);
    const std::string text = b64_encode(bytes);
    CHECK(text.size() % 4 == 0);
    auto back = b64_decode(text);
    REQUIRE(back.has_value());
    CHECK(*back == bytes);
  }
}

TEST_CASE("b64url matches the RFC 4648 test vectors without padding", "[base64]") {
  for (auto [plain, padded] : k_rfc4648_std) {
    std::string unpadded = padded;
    while (!unpadded.empty() && unpadded.back() == '=') unpadded.pop_back();
    INFO(plain);
    CHECK(b64url_encode(plain) == unpadded);
    auto back = b64url_decode(unpadded);
    REQUIRE(back.has_value());
    CHECK(*back == plain);
  }
}

TEST_CASE("standard base64 matches the RFC 4648 test vectors with padding", "[base64]") {
  for (auto [plain, padded] : k_rfc4648_std) {
    INFO(plain);
    CHECK(b64_encode(plain) == padded);
    auto back = b64_decode(padded);
    REQUIRE(back.has_value());
    CHECK(*back == plain);
  }
}

TEST_CASE("b64url uses '-' and '_' where standard base64 uses '+' and '/'", "[base64]") {
  const std::string bytes("\xfb\xff\xbf", 3);
  CHECK(b64url_encode(bytes) == "-_-_");
  CHECK(b64_encode(bytes) == "+/+/");
  auto back = b64url_decode("-_-_");
  REQUIRE(back.has_value());
  CHECK(*back == bytes);
}

TEST_CASE("b64url_decode rejects padding", "[base64]") {
  require_malformed(b64url_decode("Zg=="));
  require_malformed(b64url_decode("Zm8="));
  require_malformed(b64url_decode("="));
  auto r = b64url_decode("Zg==");
  REQUIRE_FALSE(r);
  CHECK_THAT(r.error().message, Catch::Contains("padding"));
}

TEST_CASE("b64url_decode rejects '=' inside the text", "[base64]") {
  require_malformed(b64url_decode("Zg==Zm9v"));
}

TEST_CASE("b64url_decode rejects the standard alphabet's '+' and '/'", "[base64]") {
  require_malformed(b64url_decode("Zm+v"));
  require_malformed(b64url_decode("Zm/v"));
  auto r = b64url_decode("Zm+v");
  REQUIRE_FALSE(r);
  CHECK_THAT(r.error().message, Catch::Contains("'+'") && Catch::Contains("offset 2"));
}

TEST_CASE("b64url_decode rejects whitespace anywhere", "[base64]") {
  require_malformed(b64url_decode("Zm9v Zg"));
  require_malformed(b64url_decode("Zm9vYg\n"));
  require_malformed(b64url_decode(" Zm9vYg"));
  require_malformed(b64url_decode("Zm9v\tYmFy"));
  require_malformed(b64url_decode("Zm9v\r\nYmFy"));
}

TEST_CASE("b64url_decode rejects control, NUL and non-ASCII bytes", "[base64]") {
  require_malformed(b64url_decode(std::string("Zm\0v", 4)));
  require_malformed(b64url_decode("Zm\xc3\xa9v"));
  require_malformed(b64url_decode("Zm9\x7f"));
  auto r = b64url_decode(std::string("Zm\0v", 4));
  REQUIRE_FALSE(r);
  CHECK_THAT(r.error().message, Catch::Contains("0x00"));
}

TEST_CASE("b64url_decode rejects lengths of 1 mod 4", "[base64]") {
  for (const char* text : {"Z", "Zm9vY", "Zm9vYmFyZ"}) {
    INFO(text);
    require_malformed(b64url_decode(text));
  }
}

TEST_CASE("b64url_decode rejects non-canonical trailing bits", "[base64]") {
  // "QQ" is the one encoding of "A" (0x41); "QR".."QZ" differ only in the 4 unused bits.
  auto canonical = b64url_decode("QQ");
  REQUIRE(canonical.has_value());
  CHECK(*canonical == "A");
  for (const char* text : {"QR", "QS", "QT", "QU", "QV", "QW", "QX", "QY", "QZ", "Qf", "Q_"}) {
    INFO(text);
    require_malformed(b64url_decode(text));
  }
  // Three symbols (2 unused bits): "QUI" is "AB", "QUJ" sets a trailing bit.
  auto ab = b64url_decode("QUI");
  REQUIRE(ab.has_value());
  CHECK(*ab == "AB");
  require_malformed(b64url_decode("QUJ"));
  require_malformed(b64url_decode("QUL"));
  auto r = b64url_decode("QR");
  REQUIRE_FALSE(r);
  CHECK_THAT(r.error().message, Catch::Contains("non-canonical"));
}

TEST_CASE("b64url_decode of the empty string is empty", "[base64]") {
  auto r = b64url_decode("");
  REQUIRE(r.has_value());
  CHECK(r->empty());
  CHECK(b64url_encode("").empty());
}

TEST_CASE("b64_decode rejects missing padding, whitespace and the url alphabet", "[base64]") {
  require_malformed(b64_decode("Zg"));          // unpadded
  require_malformed(b64_decode("Zg="));         // short padding
  require_malformed(b64_decode("Zm9v\n"));      // newline
  require_malformed(b64_decode("Zm9v Zm9v"));   // space
  require_malformed(b64_decode("-_-_"));        // url alphabet
  require_malformed(b64_decode("Zg==Zg=="));    // padding in the middle
  require_malformed(b64_decode("Z==="));        // three padding characters
  require_malformed(b64_decode("===="));
}

TEST_CASE("b64_decode rejects non-canonical trailing bits", "[base64]") {
  REQUIRE(b64_decode("QQ==").has_value());
  require_malformed(b64_decode("QR=="));
  REQUIRE(b64_decode("QUI=").has_value());
  require_malformed(b64_decode("QUJ="));
}

TEST_CASE("hex_encode writes lower-case pairs", "[base64][hex]") {
  CHECK(hex_encode("") == "");
  CHECK(hex_encode(std::string("\x00\xff\x10\xab", 4)) == "00ff10ab");
}

TEST_CASE("hex_decode accepts either case and round-trips", "[base64][hex]") {
  auto lower = hex_decode("00ff10ab");
  REQUIRE(lower.has_value());
  CHECK(*lower == std::string("\x00\xff\x10\xab", 4));
  auto upper = hex_decode("00FF10AB");
  REQUIRE(upper.has_value());
  CHECK(*upper == *lower);
  std::mt19937 rng(3);
  const std::string bytes = random_bytes(33, rng);
  auto back = hex_decode(hex_encode(bytes));
  REQUIRE(back.has_value());
  CHECK(*back == bytes);
}

TEST_CASE("hex_decode rejects odd lengths and non-hex characters", "[base64][hex]") {
  require_malformed(hex_decode("abc"));
  require_malformed(hex_decode("0g"));
  require_malformed(hex_decode("0x00"));
  require_malformed(hex_decode("00 1"));
  require_malformed(hex_decode("00\n"));
}
