#pragma once
// Hashes and MACs for the modules above jose (token hashes, key-file checksums, pairwise subjects,
// at_hash), on digests OpenSSL fetches once per process. They fail only when OpenSSL cannot
// allocate or lacks SHA-2, which no caller can handle: then they throw std::runtime_error (main
// maps it to exit 70), never return a wrong or empty hash.

#include <cstddef>
#include <string>
#include <string_view>

namespace tokctl::jose {

enum class Digest { sha256, sha384, sha512 };

/// The raw digest of `data` (32, 48 or 64 bytes).
std::string digest(Digest d, std::string_view data);

/// digest(Digest::sha256, data).
inline std::string sha256(std::string_view data) { return digest(Digest::sha256, data); }

/// The raw HMAC-SHA256 of `data` under `key` (32 bytes).
std::string hmac_sha256(std::string_view key, std::string_view data);

/// `n` bytes from OpenSSL's CSPRNG (ids, jti values, salts); up to 64 through a per-thread pool.
std::string random_bytes(std::size_t n);

}  // namespace tokctl::jose
