// tokctl verify: check a token's signature and claims, saying exactly why it fails; --batch for many.

#include <algorithm>
#include <atomic>
#include <functional>
#include <iostream>
#include <mutex>
#include <optional>
#include <thread>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cctype>
#include <nlohmann/json.hpp>

#include <tokctl/jose/json.hpp>
#include <tokctl/jose/jwe.hpp>
#include <tokctl/jose/jwt.hpp>
#include <tokctl/tokens/service.hpp>
#include <tokctl/util/base64.hpp>
#include <tokctl/util/io.hpp>

#include "commands.hpp"
#include "common.hpp"
#include "keyargs.hpp"
#include "remote.hpp"
#include "render.hpp"

namespace tokctl::cli {
namespace {

struct VerifyCliOptions {
  std::string token = "-";
  KeyArgs keys;
  std::string decrypt_key;
  std::vector<std::string> algs;
  std::string iss, aud, sub, typ;
  std::string leeway = "60s";
  std::vector<std::string> required;
  std::string max_age;
  std::string cnf_cert;
  std::string cnf_key;
  bool batch = false;
  unsigned threads = 0;
  bool insecure = false;
  RemoteArgs remote;
};

// Unwraps a nested JWT (RFC 7519 §5.2: a JWE whose cty is JWT) with keys loaded once.
class Decryptor {
 public:
  static Result<Decryptor> create(const VerifyCliOptions& o) {
    Decryptor d;
    if (!o.decrypt_key.empty()) {
      warn_if_readable_by_others(o.decrypt_key, "decryption key file");
      auto data = read_input(o.decrypt_key);
      if (!data) {
        data.error().param = "decrypt_key";  // named as its flag: --decrypt-key: cannot open ...
        return std::unexpected(data.error());
      }
      auto set = jose::parse_key_material(*data);
      if (!set) {
        set.error().message = "--decrypt-key '" + o.decrypt_key + "': " + set.error().message;
        return std::unexpected(set.error());
      }
      d.m_keys = std::move(*set);
      d.m_from_file = true;
    }
    return d;
  }

  /// Loads the keystore's decryption keys now (before threads copy this); failures are kept and
  /// reported only if a JWE turns up.
  void preload() {
    if (!m_from_file && !m_loaded_keystore) {
      m_loaded_keystore = true;
      auto ks = open_keystore(false);
      auto pass = passphrase();
      if (ks && pass) {
        auto set = ks->decryption_keys("", *pass);
        if (set) m_keys = std::move(*set);
        else m_keystore_error = set.error();
      } else {
        m_keystore_error = ks ? pass.error() : ks.error();
      }
    }
  }

  /// The inner JWS of `token` when it is a JWE; nullopt when it is not one (use the token as is,
  /// without copying it: this runs for every line of a batch).
  Result<std::optional<std::string>> unwrap(std::string_view token) {
    if (jose::compact_segments(token) != 5) return std::nullopt;
    preload();
    if (m_keys.keys.empty()) {
      Error e = m_keystore_error.value_or(Error{ErrorCode::usage, "no decryption key", {}});
      e.message = "the token is a JWE (encrypted) and no key can decrypt it: " + e.message;
      replace_hint(e, "pass --decrypt-key FILE, or keep the encryption key in the keystore");
      return std::unexpected(e);
    }
    return jose::unwrap_nested_jwt(token, m_keys);
  }

 private:
  jose::JwkSet m_keys;
  bool m_from_file = false;
  bool m_loaded_keystore = false;
  std::optional<Error> m_keystore_error;
};

// Whether anything is at `path`, a dangling symlink included (its target is the store's business).
bool exists_no_follow(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

// With the local keystore, tokens revoked in the local token store (jti deny-list, revoked grant)
// are invalid too (TokenService::apply_revocation). Only consulted when the store exists.
class RevocationCheck {
 public:
  Result<void> open(bool keystore_mode) {
    if (!keystore_mode) return {};
    auto ks = open_keystore(false);
    auto p = policy();
    if (!ks) return {};  // verify itself reports keystore problems
    if (!p) {
      if (p.error().code != ErrorCode::keystore) return std::unexpected(p.error());
      m_error = p.error();
      return {};
    }
    std::string db = (*p)->store.empty() ? ks->dir() + "/tokens.db" : (*p)->store;
    if ((*p)->store.empty() && !exists_no_follow(db)) {
      // No store: nothing was ever revoked, unless its change counter (kept beside the store
      // for good once it was opened) says revocations were made in one that has gone.
      if (auto v = tokens::check_store_not_vanished(db); !v) m_error = v.error();
      return {};
    }
    auto svc = open_service();
    if (svc) m_service = std::shared_ptr<tokens::TokenService>(std::move(*svc));
    else m_error = svc.error();
    return {};
  }

  void apply(jose::VerifyReport& r) {
    if (m_error && r.valid) {
      // The store exists but cannot be read: never call a token valid without its revocation check.
      r.problems.push_back(jose::Problem{jose::ProblemCode::store_error, "cannot check revocation: " + m_error->message, m_error->hint, false});
      r.valid = false;
      return;
    }
    if (m_service) m_service->apply_revocation(r);  // the service is safe to share between threads
  }

 private:
  std::shared_ptr<tokens::TokenService> m_service;
  std::optional<Error> m_error;
};

RevocationCheck& revocation() {
  static RevocationCheck check;
  return check;
}

// A report for a token that could not even be decrypted.
jose::VerifyReport decrypt_failure(const Error& e) {
  jose::VerifyReport r;
  r.problems.push_back(jose::Problem{e.code == ErrorCode::malformed ? jose::ProblemCode::malformed : jose::ProblemCode::decrypt_failed, e.message,
                                     e.hint, e.code == ErrorCode::malformed, e.remedy, e.subject});
  return r;
}

Result<jose::TokenVerifier> make_verifier(const VerifyCliOptions& o, const Clock& clk,
                                          std::optional<jose::JwkSet> remote_keys, const std::string& remote_issuer) {
  jose::VerifyOptions vo;
  for (const auto& a : o.algs) {
    auto alg = jose::alg_from_string(a);
    if (!alg) {
      if (a == "none") return fail(ErrorCode::usage, "--alg none is never accepted");
      return fail(ErrorCode::usage, "unknown alg '" + a + "'", "supported: " + jose::supported_alg_names());
    }
    vo.allowed_algs.push_back(*alg);
  }
  if (o.insecure) {
    vo.key_strength = jose::KeyStrength::allow_weak;
    std::cerr << style(Stream::err, "33", "tokctl: warning: ")
              << "--insecure: RSA keys under 2048 bits and short HMAC secrets are accepted; anyone may be "
                 "able to forge such tokens\n";
  }
  auto opt = [](const std::string& s) { return s.empty() ? std::nullopt : std::optional<std::string>(s); };
  vo.claims.iss = opt(o.iss.empty() ? remote_issuer : o.iss);
  vo.claims.aud = opt(o.aud);
  vo.claims.sub = opt(o.sub);
  vo.claims.typ = opt(o.typ);
  vo.claims.required = o.required;
  auto leeway = parse_duration(o.leeway);
  if (!leeway) return std::unexpected(leeway.error());
  vo.claims.leeway = *leeway;
  if (!o.max_age.empty()) {
    auto ma = parse_duration(o.max_age);
    if (!ma) return std::unexpected(ma.error());
    vo.claims.max_age = *ma;
  }
  if (!o.cnf_cert.empty()) {
    auto pem = read_input(o.cnf_cert);
    if (!pem) {
      pem.error().param = "cnf_cert";
      return std::unexpected(pem.error());
    }
    auto x5t = jose::certificate_thumbprint(*pem);
    if (!x5t) {
      x5t.error().message = "--cnf-cert '" + o.cnf_cert + "': " + x5t.error().message;
      return std::unexpected(x5t.error());
    }
    vo.claims.cnf_x5t = std::move(*x5t);
  }
  if (!o.cnf_key.empty()) {
    // RFC 9449 §6.1: the thumbprint of the DPoP key, public or private (only the public part counts).
    auto set = load_key_file(o.cnf_key);
    if (!set) {
      set.error().param = "cnf_key";
      return std::unexpected(set.error());
    }
    if (set->keys.size() != 1) {
      return fail_param(ErrorCode::usage, "cnf_key", "--cnf-key '" + o.cnf_key + "' must hold exactly one key");
    }
    if (set->keys.front().kty() == jose::KeyType::oct) {
      return fail_param(ErrorCode::usage, "cnf_key", "--cnf-key '" + o.cnf_key + "' is a secret: DPoP keys are EC, OKP or RSA");
    }
    auto jkt = set->keys.front().thumbprint();
    if (!jkt) return std::unexpected(jkt.error());
    vo.claims.cnf_jkt = std::move(*jkt);
  }
  jose::KeySource source = jose::KeySource::set;
  Result<jose::JwkSet> keys = fail(ErrorCode::usage, "no key");
  if (remote_keys) {
    keys = std::move(*remote_keys);
  } else if (has_key(o.keys)) {
    keys = load_keys(o.keys, source);
  } else {
    // No key flags: next, active and retired keys of the keystore, each pinned to its alg.
    auto ks = open_keystore(false);
    if (!ks) {
      if (ks.error().detail == ErrorDetail::keystore_missing) {
        // Nothing to sign/verify with at all: a usage error, like a missing --key.
        ks.error().code = ErrorCode::usage;
        ks.error().message = "no key given (and " + ks.error().message + ")";
        replace_hint(ks.error(), "pass one of --key FILE, --jwks FILE, --secret-file FILE or --secret-env NAME");
      }
      return std::unexpected(ks.error());
    }
    auto pass = passphrase();
    if (!pass) return std::unexpected(pass.error());
    keys = ks->verification_keys(*pass);
  }
  if (!keys) return std::unexpected(keys.error());
  return jose::TokenVerifier::create(std::move(*keys), source, std::move(vo), clk);
}

nlohmann::json errors_json(const jose::VerifyReport& r) {
  nlohmann::json errs = nlohmann::json::array();
  for (const auto& p : r.problems) {
    nlohmann::json e{{"code", jose::to_string(p.code)}, {"message", p.message}};
    if (auto hint = hint_text(p.hint, p.remedy, p.subject); !hint.empty()) e["hint"] = std::move(hint);
    errs.push_back(std::move(e));
  }
  return errs;
}

std::string summary(const jose::VerifyReport& r, UnixTime now) {
  std::string s = std::string(r.weak_key ? "valid (INSECURE key) " : "valid ") + jose::string_or(r.header, "alg", "?") +
                  " token";
  if (!r.kid.empty()) s += ", kid '" + r.kid + "'";
  if (r.payload_bytes) s += " (a JWS, not a JWT: payload of " + std::to_string(r.payload_bytes->size()) + " bytes)";
  if (r.payload.is_object()) {
    if (const std::string* sub = jose::string_member(r.payload, "sub")) s += ", sub '" + *sub + "'";
    auto exp_it = r.payload.find("exp");
    if (auto exp = exp_it != r.payload.end() && exp_it->is_number() ? time_from_seconds(exp_it->get<double>())
                                                                      : std::nullopt) {
      s += ", expires " + format_relative(*exp, now);
    } else {
      s += ", never expires";
    }
  }
  return terminal_safe(s);
}

int run_single(const VerifyCliOptions& o, jose::TokenVerifier& verifier, Decryptor& decryptor, UnixTime now,
               RemoteKeys& remote_keys) {
  auto token = read_token(o.token);
  if (!token) return report(token.error());
  auto inner = decryptor.unwrap(*token);
  if (!inner && inner.error().code != ErrorCode::invalid_token && inner.error().code != ErrorCode::malformed) {
    return report(inner.error());  // no key, keystore trouble: not a verdict on the token
  }
  auto r = inner ? verifier.verify(*inner ? **inner : *token) : decrypt_failure(inner.error());
  if (kid_not_found(r)) {
    std::string why_not;
    auto fresh = remote_keys.refetch(why_not);
    if (!fresh) return report(fresh.error());
    if (*fresh) {
      verifier = std::move(**fresh);
      r = verifier.verify(*inner ? **inner : *token);
      for (auto& p : r.problems) {
        if (p.code == jose::ProblemCode::kid_not_found) {
          p.hint = "the server's JWKS was refetched just now and does not have this kid either: the token "
                   "is not from this server, or its key was removed";
          p.remedy = Remedy::none;
        }
      }
    } else if (!why_not.empty()) {
      for (auto& p : r.problems)
        if (p.code == jose::ProblemCode::kid_not_found) p.hint = why_not;
    }
  }
  revocation().apply(r);
  if (json_output()) {
    nlohmann::json out{{"valid", r.valid}};
    if (r.valid) {
      out["header"] = r.header;
      out["payload"] = r.payload;
      out["kid"] = r.kid.empty() ? nlohmann::json() : nlohmann::json(r.kid);
      if (r.weak_key) out["insecure_key"] = true;
      if (r.payload_bytes) {
        out["payload"] = nullptr;
        out["payload_b64"] = b64url_encode(*r.payload_bytes);
        out["payload_bytes"] = r.payload_bytes->size();
      }
    } else {
      out["errors"] = errors_json(r);
    }
    print_json(out);
    return r.exit_code();
  }
  if (r.valid) {
    if (!globals().quiet) {
      std::cout << style(Stream::out, r.weak_key ? "33" : "32", "✓ " + summary(r, now)) << '\n';
      if (r.payload_bytes) std::cout << "payload (base64url): " << b64url_encode(*r.payload_bytes) << '\n';
      else std::cout << json_for_terminal(r.payload) << '\n';
    }
    return 0;
  }
  // Exit 4 (store_error its only problem) is no verdict on the token: the headline says so.
  const bool no_verdict = r.exit_code() == 4;
  std::cerr << style(Stream::err, "31", "tokctl: error: ")
            << (no_verdict ? "no verdict: revocation could not be checked (" : "token is invalid (") << r.problems.size()
            << (r.problems.size() == 1 ? " problem" : " problems") << ")\n";
  for (const auto& p : r.problems) {
    std::cerr << "  - " << style(Stream::err, "1", jose::to_string(p.code)) << ": " << terminal_safe(p.message) << '\n';
    if (auto hint = hint_text(p.hint, p.remedy, p.subject); !hint.empty()) {
      std::cerr << "    " << style(Stream::err, "33", "hint: ") << terminal_safe(hint) << '\n';
    }
  }
  return r.exit_code();
}

// One --batch output line, keys in the order nlohmann's sorted objects print them. Written
// directly (issue 11): building and dumping a JSON object per token was a fifth of an HS256
// token's instructions. Errors, and a sub that is not a plain ASCII string, still go through
// nlohmann; tests compare every line with the parsed report.
void append_batch_line(std::string& out, std::size_t line, const jose::VerifyReport& r) {
  constexpr auto replace = nlohmann::json::error_handler_t::replace;
  out += "{\"errors\":";
  out += r.problems.empty() ? std::string("[]") : errors_json(r).dump(-1, ' ', false, replace);
  out += ",\"kid\":";
  if (r.kid.empty()) out += "null";
  else append_json_string(out, r.kid);
  out += ",\"line\":";
  out += std::to_string(line);
  out += ",\"sub\":";
  auto sub = r.payload.is_object() ? r.payload.find("sub") : r.payload.end();
  if (!r.payload.is_object() || sub == r.payload.end()) out += "null";
  else if (sub->is_string()) append_json_string(out, sub->get_ref<const std::string&>());
  else out += sub->dump(-1, ' ', false, replace);
  out += ",\"valid\":";
  out += r.valid ? "true" : "false";
  out += "}\n";
}

// One chunk of --batch input and its results, in input order. The lines are stored end to end in
// one buffer that keeps its capacity from chunk to chunk: no allocation and no free per line
// (freed line strings let glibc trim the heap, and the next chunk page-faulted it back in).
struct BatchChunk {
  std::size_t first_line = 0;  // line number before the chunk's first line
  std::string text;               // the chunk's lines, without their line endings
  std::vector<std::size_t> ends;  // per line: where it ends in `text`
  std::vector<std::size_t> too_long;  // per line: its size when it was over max_token_line() (not read), else 0
  std::vector<std::string> out;  // per block of k_batch_block lines: their output lines, in order
  std::vector<char> valid;
  std::vector<char> missing;  // an unknown kid (a remote JWKS may have rotated)

  std::size_t size() const { return ends.size(); }
  std::string_view line(std::size_t i) const {
    const std::size_t from = i == 0 ? 0 : ends[i - 1];
    return std::string_view(text).substr(from, ends[i] - from);
  }
};

// Lines a worker takes at a time. Its output is one string per block, made and filled by the
// thread that verified the block: no allocation per line, and no thread frees memory another
// allocated per line (glibc then takes the other thread's arena lock).
constexpr std::size_t k_batch_block = 64;

// Reads tokens line by line in chunks and verifies each chunk on `threads` threads, each with its
// own verifier copy (shared parsed keys, private OpenSSL contexts); output keeps input order.
// With more than one thread nothing is serial (issue 11 point 2): while the workers verify chunk
// k, this thread writes chunk k-1's lines and reads chunk k+1; workers take blocks of adjacent
// lines from a shared counter, so no two threads write the same cache lines and none idles while
// another still has work. One thread verifies in this thread, with no pipeline, so that a
// one-thread run uses one core.
// A line too long to be a token is reported on its line, like any malformed token, and the run goes
// on; a read error ends it after the lines read before it are written (exit 2).
int run_batch(const VerifyCliOptions& o, const jose::TokenVerifier& proto, const Decryptor& decryptor_proto,
              RemoteKeys& remote_keys, LineReader& input) {
  const unsigned threads = o.threads ? o.threads : std::max(1u, std::thread::hardware_concurrency());
  std::vector<jose::TokenVerifier> verifiers(threads, proto);
  std::vector<Decryptor> decryptors(threads, decryptor_proto);
  // A chunk ends at k_chunk lines or k_chunk_bytes of them: with two chunks in flight, lines near
  // max_token_line() cannot add up to gigabytes.
  constexpr std::size_t k_chunk = 16384;
  constexpr std::size_t k_chunk_bytes = 8 << 20;
  std::ios::sync_with_stdio(false);
  std::size_t lines_read = 0;
  bool at_end = false;
  std::optional<Error> read_error;

  std::string line;  // one line at a time, appended to its chunk's text
  auto read_chunk = [&](BatchChunk& c) {
    c.first_line = lines_read;
    c.text.clear();
    // Its largest size, once: growing by doubling copied and page-faulted it several times over.
    // Only the pages a chunk fills are ever touched.
    c.text.reserve(k_chunk_bytes + max_token_line());
    c.ends.clear();
    c.too_long.clear();
    while (c.size() < k_chunk && c.text.size() < k_chunk_bytes) {
      auto got = input.next(line);
      if (!got) read_error = got.error();
      if (!got || *got == LineReader::Read::end) {
        at_end = true;
        break;
      }
      const bool skipped = *got == LineReader::Read::too_long;  // `line` is empty then
      c.too_long.push_back(skipped ? input.length() : 0);
      // A line as pasted ("Bearer x", surrounding blanks) is normalised like a token argument;
      // a bare token (the common case) has no blank or ':' and is taken as it is.
      if (pasted_token(line)) {
        c.text += normalize_token(line);
      } else {
        c.text += line;
      }
      c.ends.push_back(c.text.size());
    }
    lines_read += c.size();
    c.out.resize((c.size() + k_batch_block - 1) / k_batch_block);  // kept strings keep their capacity
    c.valid.assign(c.size(), 1);
    c.missing.assign(c.size(), 0);
  };
  // Verifies the lines of block `b` of `c` on verifier `t`, writing the block's output.
  auto verify_block = [&](BatchChunk& c, unsigned t, std::size_t b) {
    const std::size_t from = b * k_batch_block, to = std::min(c.size(), from + k_batch_block);
    std::string& text = c.out[b];
    text.clear();
    text.reserve(160 * (to - from));
    for (std::size_t i = from; i < to; ++i) {
      if (c.too_long[i]) {
        jose::VerifyReport r;
        r.problems.push_back(jose::Problem{jose::ProblemCode::malformed, token_line_too_long(c.too_long[i]),
                                           "", true, Remedy::none, ""});
        c.valid[i] = false;
        append_batch_line(text, c.first_line + i + 1, r);
        continue;
      }
      const std::string_view token = c.line(i);
      if (token.empty()) continue;  // blank lines are skipped, numbering kept
      auto inner = decryptors[t].unwrap(token);
      auto r = inner ? verifiers[t].verify(*inner ? std::string_view(**inner) : token, jose::ReportDetail::verdict)
                     : decrypt_failure(inner.error());
      c.missing[i] = kid_not_found(r);
      revocation().apply(r);
      c.valid[i] = r.valid;
      append_batch_line(text, c.first_line + i + 1, r);
    }
  };
  // Starts the workers on `c`; join them before touching `c` again.
  auto start = [&](BatchChunk& c, std::atomic<std::size_t>& next) {
    next = 0;
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < threads; ++t) {
      pool.emplace_back([&c, &next, &verify_block, t] {
        for (;;) {
          const std::size_t b = next.fetch_add(1, std::memory_order_relaxed);
          if (b >= c.out.size()) return;
          verify_block(c, t, b);
        }
      });
    }
    return pool;
  };
  auto run_here = [&](BatchChunk& c) {
    for (std::size_t b = 0; b < c.out.size(); ++b) verify_block(c, 0, b);
  };
  auto join = [](std::vector<std::thread>& pool) {
    for (auto& th : pool) th.join();
    pool.clear();
  };
  // An unknown kid with a remote JWKS: one refetch for the whole run, then the chunk again.
  auto refetch_if_needed = [&](BatchChunk& c) {
    if (std::find(c.missing.begin(), c.missing.end(), 1) == c.missing.end()) return;
    std::string why_not;
    auto fresh = remote_keys.refetch(why_not);
    if (!fresh) {
      std::cerr << style(Stream::err, "33", "tokctl: warning: ") << "cannot refetch the JWKS: "
                << terminal_safe(fresh.error().message) << '\n';
    } else if (*fresh) {
      verifiers.assign(threads, **fresh);
      if (threads == 1) {
        run_here(c);
      } else {
        std::atomic<std::size_t> next{0};
        auto pool = start(c, next);
        join(pool);
      }
    }
  };
  bool all_valid = true;
  auto write = [&](const BatchChunk& c) {
    for (const auto& text : c.out) std::cout << text;
    all_valid = all_valid && std::find(c.valid.begin(), c.valid.end(), 0) == c.valid.end();
  };

  BatchChunk current;
  read_chunk(current);
  if (threads == 1) {
    for (;;) {
      run_here(current);
      refetch_if_needed(current);
      write(current);
      if (at_end) break;
      read_chunk(current);
    }
  } else {
    // Two chunks in flight, by index: the workers hold a reference to theirs, so never swap them.
    BatchChunk chunks[2];
    chunks[0] = std::move(current);
    std::size_t k = 0;
    std::atomic<std::size_t> next{0};
    auto pool = start(chunks[k], next);
    for (;;) {
      BatchChunk& following = chunks[k ^ 1];
      following.ends.clear();
      if (!at_end) read_chunk(following);
      join(pool);
      refetch_if_needed(chunks[k]);
      const bool more = following.size() != 0;
      if (more) pool = start(following, next);
      write(chunks[k]);
      if (!more) break;
      k ^= 1;
    }
  }
  std::cout.flush();
  if (read_error) return report(*read_error);
  return all_valid ? 0 : 1;
}

int run_verify(const VerifyCliOptions& o) {
  auto clk_or = clock();
  if (!clk_or) return report(clk_or.error());
  const Clock& clk = **clk_or;
  // Stdin is checked before any key is fetched: `--batch < dir` is refused, never an empty success.
  std::optional<LineReader> batch_input;
  if (o.batch) {
    // A token argument would be silently ignored: a script adding --batch to a one-token call
    // must not get exit 0 for a token nobody checked.
    if (!o.token.empty() && o.token != "-")
      return report(Error{ErrorCode::usage, "--batch reads tokens from stdin, one per line: it takes no token argument",
                          "pipe the tokens in: printf '%s\\n' \"$TOKEN\" | tokctl verify --batch ..."});
    auto in = stdin_token_lines();
    if (!in) return report(in.error());
    batch_input.emplace(std::move(*in));
  }
  RemoteKeys remote_keys;
  std::optional<jose::JwkSet> keys;
  std::string remote_issuer;
  if (remote_requested(o.remote, false)) {
    if (has_key(o.keys)) {
      return report(Error{ErrorCode::usage, "--key/--jwks/--secret-* and a server (--server, --profile, --jwks-url) "
                                            "exclude each other", {}});
    }
    auto session = open_remote(o.remote, {Endpoint::jwks}, false);
    if (!session) return report(session.error());
    remote_keys.session = std::move(*session);
    auto& sess = *remote_keys.session;
    remote_keys.jwks.emplace(sess.http, sess.cache, sess.endpoints.jwks_uri, clk, o.remote.offline);
    auto fetched = remote_keys.jwks->keys();
    if (!fetched) return report(fetched.error());
    keys = std::move(*fetched);
    if (!o.remote.server.empty() || !o.remote.profile.empty()) remote_issuer = sess.endpoints.issuer;
    remote_keys.rebuild = [&o, &clk, remote_issuer](jose::JwkSet set) {
      return make_verifier(o, clk, std::move(set), remote_issuer);
    };
  }
  auto verifier = make_verifier(o, clk, std::move(keys), remote_issuer);
  if (!verifier) {
    if (json_output() && verifier.error().code == ErrorCode::invalid_token) {
      print_json(nlohmann::json{{"valid", false},
                                {"errors", {{{"code", "key_mismatch"}, {"message", verifier.error().message}}}}});
    }
    return report(verifier.error());
  }
  // A policy that does not load is exit 3 like for every command, not a store outage.
  if (auto policy_ok = revocation().open(!has_key(o.keys) && !remote_keys.jwks); !policy_ok)
    return report(policy_ok.error());
  auto decryptor = Decryptor::create(o);
  if (!decryptor) return report(decryptor.error());
  if (o.batch) {
    decryptor->preload();
    return run_batch(o, *verifier, *decryptor, remote_keys, *batch_input);
  }
  return run_single(o, *verifier, *decryptor, clk.now(), remote_keys);
}

}  // namespace

void register_verify(CLI::App& app) {
  auto o = std::make_shared<VerifyCliOptions>();
  auto* sub = app.add_subcommand("verify", "Verify a token's signature and claims; list every failed check");
  dash_positional(sub, file_value(sub->add_option("token", o->token, "The token, or - for stdin (default)")));
  add_key_options(sub, o->keys, true);
  file_value(sub->add_option("--decrypt-key", o->decrypt_key,
                             "Key to decrypt a nested JWT (JWE around a JWS); default: the keystore's encryption keys"));
  choice_value(sub->add_option("--alg", o->algs, "Allowed algorithm (repeatable); required when the key does not pin one"),
               jws_alg_names(), ChoiceCheck::suggest);
  sub->add_option("--iss", o->iss, "Required issuer");
  sub->add_option("--aud", o->aud, "Required audience (must be in the token's aud)");
  sub->add_option("--sub", o->sub, "Required subject");
  sub->add_option("--typ", o->typ, "Required typ header, e.g. at+jwt");
  sub->add_option("--leeway", o->leeway, "Clock skew allowed for exp/nbf/iat")->capture_default_str();
  sub->add_option("--require", o->required, "Claim that must be present (repeatable)");
  sub->add_option("--max-age", o->max_age, "Reject tokens issued (iat) longer ago than DUR");
  file_value(sub->add_option("--cnf-cert", o->cnf_cert,
                             "Certificate (PEM or DER) the token must be bound to (RFC 8705 cnf.x5t#S256)"));
  file_value(sub->add_option("--cnf-key", o->cnf_key,
                             "DPoP key (JWK or PEM, public or private) the token must be bound to (RFC 9449 cnf.jkt)"));
  sub->add_flag("--insecure", o->insecure,
                "Accept weak keys (RSA < 2048 bits, HMAC secrets shorter than the hash) for debugging; "
                "the verdict says INSECURE");
  sub->add_flag("--batch", o->batch, "Read tokens one per line on stdin; write one JSON object per line");
  sub->add_option("--threads", o->threads, "Worker threads for --batch (default: all cores)")
      ->check(CLI::Range(1u, 256u));
  add_remote_options(sub, o->remote, RemoteOptions::jwks);
  examples(sub, {"tokctl verify \"$TOKEN\"   # against the keystore (next, active and retired keys)",
                 "tokctl verify \"$TOKEN\" --key es256.pub.jwk",
                 "tokctl verify \"$NESTED\" --key signer.pub.jwk --decrypt-key recipient.jwk",
                 "tokctl verify - --jwks jwks.json --iss https://issuer.test --aud api < token.txt",
                 "tokctl verify \"$TOKEN\" --key rsa.pub.pem --alg RS256 --leeway 30s --require jti",
                 "tokctl verify \"$TOKEN\" --secret-env JWT_SECRET --alg HS256 -o json",
                 "tokctl verify --batch --threads 4 --key k.jwk < tokens.txt > results.jsonl",
                 "tokctl verify \"$TOKEN\" --server https://issuer.test --aud api   # JWKS by discovery, iss checked",
                 "tokctl verify \"$TOKEN\" --jwks-url https://issuer.test/jwks --offline"});
  on_run(sub, [o] { return run_verify(*o); });
}

}  // namespace tokctl::cli
