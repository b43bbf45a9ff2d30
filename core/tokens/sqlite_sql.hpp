#pragma once
// The SQL of SqliteTokenStore: schema migrations and the prepared statements (indexed by
// Stmt). Private to core/tokens.

#include <cstddef>
#include <iterator>
#include <string_view>

namespace tokctl::tokens::sqlite_sql {

/// Schema version this build creates and understands (PRAGMA user_version).
inline constexpr int k_sqlite_schema_version = 8;

/// The prepared statements, indexed into k_statements. Each connection prepares a statement the
/// first time it runs it (a reader never prepares the writes).
enum class Stmt {
  begin_immediate,
  commit,
  rollback,
  savepoint,
  release,
  rollback_to,
  insert_grant,
  insert_token,
  find_token,
  find_grant,
  jwt_status,
  revoke_token,
  revoke_grant_jwts,
  revoke_grant_row,
  revoke_grant_tokens,
  revoke_client_jwts,
  revoke_client_grants,
  revoke_client_tokens,
  revoke_subject_jwts,
  revoke_subject_grants,
  revoke_subject_tokens,
  deny_jti,
  is_denied,
  uncount_jwt,
  grant_revoked,
  consume_token,
  token_consumed,
  prune_tokens,
  prune_denylist,
  prune_grants,
  legacy_keys,
  prune_legacy_keys,
  count_,  // number of statements, not one
};

// SQL steps; migration i (0-based) takes the schema from user_version i to i + 1.
// Each one runs in its own BEGIN IMMEDIATE transaction together with its user_version bump.
// Never edit a step that has shipped: append a new one.
inline constexpr std::string_view k_migrations[] = {
    // 1: grants, tokens, JWT deny-list.
    R"sql(
CREATE TABLE grants (
  id        TEXT PRIMARY KEY NOT NULL,
  client_id TEXT NOT NULL,
  sub       TEXT NOT NULL,
  scope     TEXT NOT NULL,
  started   INTEGER NOT NULL,
  revoked   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX grants_client_id ON grants(client_id);
CREATE INDEX grants_sub ON grants(sub);

CREATE TABLE tokens (
  hash      TEXT PRIMARY KEY NOT NULL,
  kind      TEXT NOT NULL,
  format    TEXT NOT NULL,
  grant_id  TEXT REFERENCES grants(id),   -- NULL when the token belongs to no grant
  client_id TEXT NOT NULL,
  sub       TEXT NOT NULL,
  scope     TEXT NOT NULL,
  aud       TEXT NOT NULL,
  iss       TEXT NOT NULL,
  jti       TEXT NOT NULL,
  iat       INTEGER NOT NULL,
  nbf       INTEGER NOT NULL,
  exp       INTEGER NOT NULL,               -- 0: never expires
  claims    TEXT NOT NULL,
  data      TEXT NOT NULL,
  revoked   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX tokens_grant_id ON tokens(grant_id);
CREATE INDEX tokens_client_id ON tokens(client_id);
CREATE INDEX tokens_sub ON tokens(sub);
CREATE INDEX tokens_exp ON tokens(exp);
CREATE INDEX tokens_jti ON tokens(jti);

CREATE TABLE denylist (
  jti TEXT PRIMARY KEY NOT NULL,
  exp INTEGER NOT NULL                      -- 0: denied for ever
);
CREATE INDEX denylist_exp ON denylist(exp);
)sql",
    // 2: grants remember when their last token expires, so prune never forgets a revocation
    // while a JWT of the grant (no row of its own) can still be presented.
    R"sql(
ALTER TABLE grants ADD COLUMN expires INTEGER NOT NULL DEFAULT 0;
)sql",
    // 3: grants count the JWTs issued under them (JWTs have no rows), so revoking a grant, a
    // client or a subject can say how many tokens it revoked.
    R"sql(
ALTER TABLE grants ADD COLUMN jwts INTEGER NOT NULL DEFAULT 0;
)sql",
    // 4: a rotated refresh token is consumed (and revoked): presenting it again is reuse, which
    // revokes its whole grant (RFC 9700 §4.14).
    R"sql(
ALTER TABLE tokens ADD COLUMN consumed INTEGER NOT NULL DEFAULT 0;
)sql",
    // 5: no query looks tokens up by jti (JWT revocation uses the deny-list), and the index on
    // random jti values cost every insert a random page: dropped.
    R"sql(
DROP INDEX IF EXISTS tokens_jti;
)sql",
    // 6: tokens keyed by the 32-byte BLOB of token_hash() (opaque and refresh tokens: in issue-time
    // order) instead of 64 hex digits of a random SHA-256: a new key lands at the right edge of
    // the key index instead of on a random page. Appending 10^5 opaque tokens to a 10^6-row store
    // went from 19k to 71k tokens/s and from 924 to 135 MB written (bench/store.sh). Old keys are
    // converted; their tokens keep them (lookups fall back: legacy_token_hash). A rowid table,
    // not WITHOUT ROWID: with ~550-byte rows the key-ordered B-tree split its pages half full
    // (measured: 43k tokens/s and 304 MB per 10^5 into an empty store, against 76k and 128 MB).
    // tokctl_unhex is registered by the writer connection.
    R"sql(
CREATE TABLE tokens_v6 (
  key       BLOB PRIMARY KEY NOT NULL,
  kind      TEXT NOT NULL,
  format    TEXT NOT NULL,
  grant_id  TEXT REFERENCES grants(id),
  client_id TEXT NOT NULL,
  sub       TEXT NOT NULL,
  scope     TEXT NOT NULL,
  aud       TEXT NOT NULL,
  iss       TEXT NOT NULL,
  jti       TEXT NOT NULL,
  iat       INTEGER NOT NULL,
  nbf       INTEGER NOT NULL,
  exp       INTEGER NOT NULL,
  claims    TEXT NOT NULL,
  data      TEXT NOT NULL,
  revoked   INTEGER NOT NULL DEFAULT 0,
  consumed  INTEGER NOT NULL DEFAULT 0
);
INSERT INTO tokens_v6 SELECT tokctl_unhex(hash), kind, format, grant_id, client_id, sub, scope, aud, iss, jti,
  iat, nbf, exp, claims, data, revoked, consumed FROM tokens;
DROP TABLE tokens;
ALTER TABLE tokens_v6 RENAME TO tokens;
CREATE INDEX tokens_grant_id ON tokens(grant_id);
CREATE INDEX tokens_client_id ON tokens(client_id);
CREATE INDEX tokens_sub ON tokens(sub);
CREATE INDEX tokens_exp ON tokens(exp);
-- prune_grants finds expired grants by this index instead of reading every grant.
CREATE INDEX grants_expires ON grants(expires);
)sql",
    // 7: whether rows may still carry a schema-5 key (legacy_token_hash), and until when: one row
    // holding the latest exp of the rows present when the store reached this version (0: a row
    // that never expires), none when there were no rows. A lookup that misses under token_hash()
    // tries the legacy key only while this row exists, so an unknown token costs one lookup, not
    // two, in every store created by this version or pruned past the last legacy row's expiry.
    // Rows written by schema 6 count as legacy here too (their keys look the same): harmless, it
    // only keeps the second lookup until they expire. `until` is the rowid, so pruning searches.
    R"sql(
CREATE TABLE legacy_keys (until INTEGER PRIMARY KEY);
INSERT INTO legacy_keys SELECT CASE WHEN min(exp) <= 0 THEN 0 ELSE max(exp) END FROM tokens HAVING count(*) > 0;
)sql",
    // 8: from this version on, every write that may change existing rows bumps the change counter
    // in PATH-rev (sqlite_cache.hpp), which lets a process cache its lookups. The version makes an
    // older tokctl refuse the store when it opens it; these triggers stop one that had it open
    // already (an instance not yet upgraded): its next UPDATE or DELETE re-prepares against this
    // schema and fails on a function only this build registers, instead of revoking unseen.
    R"sql(
CREATE TRIGGER tokens_update_counted BEFORE UPDATE ON tokens BEGIN SELECT tokctl_counted_write(); END;
CREATE TRIGGER tokens_delete_counted BEFORE DELETE ON tokens BEGIN SELECT tokctl_counted_write(); END;
CREATE TRIGGER grants_update_counted BEFORE UPDATE ON grants BEGIN SELECT tokctl_counted_write(); END;
CREATE TRIGGER grants_delete_counted BEFORE DELETE ON grants BEGIN SELECT tokctl_counted_write(); END;
)sql",
};
static_assert(std::size(k_migrations) == k_sqlite_schema_version,
              "k_sqlite_schema_version must equal the number of migrations");

// Indexed by SqliteTokenStore::Stmt.
inline constexpr const char* k_statements[] = {
    /* begin_immediate */ "BEGIN IMMEDIATE",
    /* commit */ "COMMIT",
    /* rollback */ "ROLLBACK",
    /* savepoint: one per caller of a group commit */ "SAVEPOINT job",
    /* release */ "RELEASE job",
    /* rollback_to: undoes one caller's writes, keeps the others' */ "ROLLBACK TO job",
    /* insert_grant: re-storing a grant keeps its fields; revocation is sticky */
    "INSERT INTO grants (id, client_id, sub, scope, started, revoked, expires, jwts) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
    "ON CONFLICT (id) DO UPDATE SET revoked = max(grants.revoked, excluded.revoked), "
    "expires = max(grants.expires, excluded.expires), jwts = grants.jwts + excluded.jwts",
    /* insert_token */
    "INSERT INTO tokens (key, kind, format, grant_id, client_id, sub, scope, aud, iss, jti, iat, nbf, exp, "
    "claims, data, revoked) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    /* find_token */
    "SELECT t.key, t.kind, t.format, coalesce(t.grant_id, ''), t.client_id, t.sub, t.scope, t.aud, t.iss, "
    "t.jti, t.iat, t.nbf, t.exp, t.claims, t.data, (t.revoked OR coalesce(g.revoked, 0)), t.consumed, "
    "coalesce(g.started, 0) "
    "FROM tokens t LEFT JOIN grants g ON g.id = t.grant_id WHERE t.key = ?1",
    /* find_grant */ "SELECT id, client_id, sub, scope, started, revoked, expires, jwts FROM grants WHERE id = ?1",
    /* jwt_status: one query for a JWT's jti (deny-list) and sid (grant) */
    "SELECT EXISTS (SELECT 1 FROM denylist WHERE jti = ?1), g.id IS NOT NULL, coalesce(g.revoked, 0), "
    "coalesce(g.started, 0) FROM (SELECT 1) LEFT JOIN grants g ON g.id = ?2",
    /* revoke_token */ "UPDATE tokens SET revoked = 1 WHERE key = ?1 AND revoked = 0",
    /* revoke_grant_jwts: JWTs of the grants about to be revoked (they have no rows) */
    "SELECT coalesce(sum(jwts), 0) FROM grants WHERE id = ?1 AND revoked = 0",
    /* revoke_grant_row */ "UPDATE grants SET revoked = 1 WHERE id = ?1 AND revoked = 0",
    /* revoke_grant_tokens */ "UPDATE tokens SET revoked = 1 WHERE grant_id = ?1 AND revoked = 0",
    /* revoke_client_jwts */ "SELECT coalesce(sum(jwts), 0) FROM grants WHERE client_id = ?1 AND revoked = 0",
    /* revoke_client_grants */ "UPDATE grants SET revoked = 1 WHERE client_id = ?1 AND revoked = 0",
    /* revoke_client_tokens: the client's rows, and every row of its grants (exchanged tokens) */
    "UPDATE tokens SET revoked = 1 WHERE revoked = 0 AND "
    "(client_id = ?1 OR grant_id IN (SELECT id FROM grants WHERE client_id = ?1))",
    /* revoke_subject_jwts */
    "SELECT coalesce(sum(jwts), 0) FROM grants WHERE revoked = 0 AND "
    "(sub = ?1 OR id IN (SELECT grant_id FROM tokens WHERE sub = ?1 AND grant_id IS NOT NULL))",
    /* revoke_subject_grants: grants keep the real sub; a pairwise sub reaches its grants via rows */
    "UPDATE grants SET revoked = 1 WHERE revoked = 0 AND "
    "(sub = ?1 OR id IN (SELECT grant_id FROM tokens WHERE sub = ?1 AND grant_id IS NOT NULL))",
    /* revoke_subject_tokens: the subject's rows, and every row of its grants (pairwise subs) */
    "UPDATE tokens SET revoked = 1 WHERE revoked = 0 AND "
    "(sub = ?1 OR grant_id IN (SELECT id FROM grants WHERE sub = ?1 OR "
    "id IN (SELECT grant_id FROM tokens WHERE sub = ?1 AND grant_id IS NOT NULL)))",
    /* deny_jti: a later deny never shortens an earlier one; 0 (for ever) wins */
    "INSERT INTO denylist (jti, exp) VALUES (?1, ?2) ON CONFLICT (jti) DO UPDATE SET exp = "
    "CASE WHEN denylist.exp <= 0 OR excluded.exp <= 0 THEN 0 ELSE max(denylist.exp, excluded.exp) END",
    /* is_denied */ "SELECT 1 FROM denylist WHERE jti = ?1",
    /* uncount_jwt: a JWT denied on its own no longer counts as an active token of its grant */
    "UPDATE grants SET jwts = jwts - 1 WHERE id = ?1 AND revoked = 0 AND jwts > 0",
    /* grant_revoked */ "SELECT revoked FROM grants WHERE id = ?1",
    /* consume_token: only an active, unconsumed token of an active grant is redeemed */
    "UPDATE tokens SET consumed = 1, revoked = 1 WHERE key = ?1 AND revoked = 0 AND consumed = 0 AND "
    "NOT EXISTS (SELECT 1 FROM grants WHERE grants.id = tokens.grant_id AND grants.revoked = 1)",
    /* token_consumed */ "SELECT consumed, coalesce(grant_id, '') FROM tokens WHERE key = ?1",
    /* prune_tokens */ "DELETE FROM tokens WHERE exp > 0 AND exp < ?1",
    /* prune_denylist */ "DELETE FROM denylist WHERE exp > 0 AND exp < ?1",
    /* prune_grants */
    "DELETE FROM grants WHERE expires < ?1 AND NOT EXISTS (SELECT 1 FROM tokens WHERE tokens.grant_id = grants.id)",
    /* legacy_keys: whether a lookup must also try the schema-5 key */
    "SELECT 1 FROM legacy_keys WHERE until >= 0 LIMIT 1",
    /* prune_legacy_keys: the rows it stands for are pruned by prune_tokens in the same transaction */
    "DELETE FROM legacy_keys WHERE until > 0 AND until < ?1",
};
static_assert(std::size(k_statements) == static_cast<std::size_t>(Stmt::count_));

}  // namespace tokctl::tokens::sqlite_sql
