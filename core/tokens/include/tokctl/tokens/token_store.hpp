#pragma once
// Token store: what the token service remembers about the tokens it issued. Opaque, wrapped,
// refresh and split tokens are stored under a key made from the SHA-256 of the token (token_hash),
// never in clear.
// Grants group the tokens issued together (one delegation); revoking a grant revokes all of them.
// JWT revocation is a jti deny-list. Implementations: SqliteTokenStore (embedded, default) and a
// PostgreSQL one for several `serve` instances.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <tokctl/util/error.hpp>
#include <tokctl/util/time.hpp>

namespace tokctl::tokens {

struct GrantRecord {
  std::string id;         ///< random, base64url
  std::string client_id;
  std::string sub;
  std::string scope;      ///< space-separated scopes granted
  UnixTime started = 0;   ///< when the grant began (scope TTLs count from here)
  bool revoked = false;
  /// The latest exp of any token issued under the grant, JWTs included (they have no rows):
  /// prune keeps the grant, and so its revocation, until then. Re-storing keeps the maximum.
  UnixTime expires = 0;
  /// JWTs issued under the grant (they have no rows), so revocations can count them. put() adds
  /// this to the stored count: pass only the JWTs issued since the grant was last stored.
  std::int64_t jwts = 0;
};

struct TokenRecord {
  std::string hash;       ///< hex SHA-256 of the token (for a JWT: of its jti, prefixed "jti:")
  std::string kind;       ///< access | refresh | id | split
  std::string format;     ///< jwt | opaque | wrapped | jwe
  std::string grant_id;
  std::string client_id;
  std::string sub;
  std::string scope;
  std::string aud;        ///< JSON array text, e.g. ["api-a"]
  std::string iss;
  std::string jti;
  UnixTime iat = 0;
  UnixTime nbf = 0;
  UnixTime exp = 0;
  std::string claims;     ///< JSON object text: every claim of the token
  std::string data;       ///< kind-specific payload (split: the gateway part header.payload)
  bool revoked = false;
  bool consumed = false;  ///< a refresh token redeemed with rotation: presenting it again is reuse
  UnixTime grant_started = 0;  ///< find(): when its grant began (0: no grant), from the same query
};

/// What the store knows about a JWT (which has no row): from one query.
struct JwtStatus {
  bool denied = false;         ///< its jti is on the deny-list
  bool grant_found = false;    ///< its sid names a stored grant
  bool grant_revoked = false;
  UnixTime grant_started = 0;
};

/// What redeeming a refresh token did.
enum class Redeemed {
  ok,        ///< consumed; the new tokens are stored
  reused,    ///< it was consumed before: its whole grant is now revoked, nothing stored
  inactive,  ///< unknown or revoked (by revocation, not by use): nothing changed
};

/// Implementations are safe to call from many threads at once.
class TokenStore {
 public:
  virtual ~TokenStore() = default;

  /// Stores a grant and its tokens atomically (one transaction). Fails with ErrorCode::keystore.
  virtual Result<void> put(const std::optional<GrantRecord>& grant, std::span<const TokenRecord> tokens) = 0;

  /// put() without waiting: `done` gets the outcome once the write is committed (or failed), on
  /// whichever thread finishes it, possibly before put_async returns. `done` must not throw. For
  /// servers: a thread that queued a write goes on with other work instead of parking on it.
  /// The default runs put() at once on the calling thread.
  virtual void put_async(std::optional<GrantRecord> grant, std::vector<TokenRecord> tokens,
                         std::function<void(Result<void>)> done);

  /// The rows of a put_async() made by `make_rows` where the write runs, not by the caller: a
  /// batch issuer hands over its signed tokens and the store's writer builds their rows (record
  /// copies, token_hash) while the caller signs the next batch. `make_rows` runs once, before the
  /// transaction that holds the write begins (so no lock is held while it runs); if it throws, the
  /// write fails alone. The default runs it at once on the calling thread, then put_async().
  virtual void put_async(std::optional<GrantRecord> grant, std::function<std::vector<TokenRecord>()> make_rows,
                         std::function<void(Result<void>)> done);

  /// The token with this hash, or nullopt. Revoked and expired tokens are returned as stored
  /// (callers decide); the grant's revocation is folded into `revoked`.
  virtual Result<std::optional<TokenRecord>> find(std::string_view hash) = 0;
  virtual Result<std::optional<GrantRecord>> grant(std::string_view id) = 0;

  /// Revocations return how many active tokens they revoked: rows, plus the JWTs counted on the
  /// grants they revoked (revoke_subject also reaches the grants of rows with that sub, e.g. a
  /// pairwise one). Unknown ids are not an error (RFC 7009).
  virtual Result<int> revoke_token(std::string_view hash) = 0;
  virtual Result<int> revoke_grant(std::string_view grant_id) = 0;
  virtual Result<int> revoke_client(std::string_view client_id) = 0;
  virtual Result<int> revoke_subject(std::string_view sub) = 0;

  /// JWT deny-list: the jti stays denied until `exp` (then prune drops it). `grant_id` is the
  /// JWT's grant (its `sid`), or empty when it has none or the JWT is counted as a row.
  /// Returns whether this revoked a token that was still valid: false when the jti was denied
  /// already or its grant is revoked. A JWT newly denied leaves its active grant's JWT count, so
  /// revoking the grant afterwards does not count it a second time.
  virtual Result<bool> deny_jti(std::string_view jti, UnixTime exp, std::string_view grant_id) = 0;
  virtual Result<bool> is_denied(std::string_view jti) = 0;
  /// The deny-list entry of `jti` and the grant `grant_id` (may be empty) in one query.
  virtual Result<JwtStatus> jwt_status(std::string_view jti, std::string_view grant_id) = 0;

  /// Refresh-token redemption with rotation, in one transaction: consumes the token with `hash`
  /// (it becomes revoked and consumed) and stores `grant` (an upsert) and `tokens`. A token that
  /// was consumed before is reuse: its whole grant is revoked (RFC 9700 §4.14) and nothing is
  /// stored. Two concurrent redemptions of one token: exactly one gets Redeemed::ok.
  virtual Result<Redeemed> redeem(std::string_view hash, const GrantRecord& grant,
                                  std::span<const TokenRecord> tokens) = 0;

  /// Deletes tokens and deny-list entries expired before `now`, and grants without tokens whose
  /// `expires` is before `now` (no token of theirs can still be valid, revoked or not).
  /// Returns the number of rows deleted.
  virtual Result<std::int64_t> prune(UnixTime now) = 0;

  /// Whether rows keyed by legacy_token_hash() may exist (a store migrated from schema 5 or
  /// older, until prune has removed every such row). When false, find_token() does one lookup.
  virtual bool may_hold_legacy_keys() const { return true; }
};

/// Opens "sqlite:PATH" (created with its schema, WAL) or a "postgresql://..." URL.
/// Fails with ErrorCode::keystore (unreachable, bad schema version) or ErrorCode::usage (bad URL).
Result<std::unique_ptr<TokenStore>> open_token_store(const std::string& url);

/// Fails (ErrorCode::keystore) when the SQLite store at `path` is missing or empty while its change
/// counter (PATH-rev, which outlives it) shows revocations were made in it: a new empty store in its
/// place would make revoked JWTs valid again. Opening the store checks this; `verify`, which never
/// creates a store, asks it directly.
Result<void> check_store_not_vanished(const std::string& path);

/// A token's store key, as 64 lower-case hex digits (32 bytes): the 6 bytes its last 8 characters
/// encode as base64url (zeros when they do not), then the first 26 bytes of SHA-256 of the whole
/// token. Opaque and refresh tokens end with their issue time (opaque_token_value), so their keys
/// grow in time order and a new row lands at the end of the key index instead of on a random page.
/// The key is derived from the token alone: nothing is trusted from it but the hash.
std::string token_hash(std::string_view token);
/// The key schema 5 and older stores gave a token (hex SHA-256 of it): rows migrated from them
/// keep it, so a lookup that misses under token_hash() tries this one (find_token).
std::string legacy_token_hash(std::string_view token);
/// The stored record of a presented token under its key, else under its legacy key (only while
/// the store may hold legacy keys).
Result<std::optional<TokenRecord>> find_token(TokenStore& store, std::string_view token);

/// The characters of an opaque or refresh token (before any policy prefix), 43 of them:
/// 35 base64url characters of `random[0..26)` (208 bits), then 8 encoding `iat` (4 bytes, big
/// endian) and `tick` (2 bytes, big endian). `random` must hold 26 random bytes. The token may
/// start with '-'; callers draw again (a leading dash reads as an option on command lines).
std::string opaque_token_value(std::string_view random, UnixTime iat, std::uint16_t tick);
/// The same with the current subsecond_tick(): keys of tokens made within one second also grow in
/// time order, so a group commit's rows land on the last page of the key index, not one page each.
std::string opaque_token_value(std::string_view random, UnixTime iat);
/// Where the system clock is within its current second, in 1/65536 s.
std::uint16_t subsecond_tick();

}  // namespace tokctl::tokens
