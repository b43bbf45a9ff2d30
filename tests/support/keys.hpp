#pragma once
// Fixed test keys, generated once with openssl (see keys.cpp) and shared by all unit tests.
//
// Names: "rsa2048", "rsa2048b" (a second, unrelated RSA key), "rsa1024" (too small: refused when
// used), "p256", "p256b" (a second P-256 key), "p384", "p521", "ed25519", "ed448", "x25519"
// (key agreement only), "hs256", "hs384", "hs512" (oct secrets of 32, 48 and 64 bytes).
// Every key is private and carries no kid, alg or use: tests set those on their copies.
// An unknown name throws std::out_of_range, so a typo fails the test that made it.

#include <string_view>
#include <vector>

#include <tokctl/jose/jwk.hpp>

namespace tokctl::test {

/// The key parsed from its JWK, once per process (thread-safe).
const jose::Jwk& test_key(std::string_view name);

/// The private JWK JSON text (no kid, alg or use).
std::string_view test_key_json(std::string_view name);

/// The private key as unencrypted PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----"). Empty for oct keys.
std::string_view test_key_pem(std::string_view name);

/// The public key as SPKI PEM ("-----BEGIN PUBLIC KEY-----"). Empty for oct keys.
std::string_view test_key_public_pem(std::string_view name);

/// All key names, in the order listed above.
const std::vector<std::string_view>& test_key_names();

}  // namespace tokctl::test
