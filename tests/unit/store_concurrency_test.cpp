// The store under threads (issue 8 point 5): reads run beside a write in progress (no lock held
// across it), concurrent writes share one transaction (group commit) without sharing failures, an
// acknowledged write survives SIGKILL, a JWT's deny-list entry and grant come from one query, and
// TokenService::prune_every deletes expired rows in the background.

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <sqlite3.h>

#include <tokctl/tokens/service.hpp>
#include <tokctl/tokens/token_store.hpp>

#include "support/run.hpp"
#include "support/sqlite_store.hpp"
#include "support/service_fixture.hpp"
#include "tokens/sqlite_conn.hpp"   // white-box: k_busy_timeout_ms
#include "tokens/sqlite_store.hpp"  // white-box: write_stats()

using tokctl::FixedClock;
using tokctl::UnixTime;
using tokctl::test::TempDir;
using tokctl::test::write_file;
using namespace tokctl::tokens;
using namespace std::chrono_literals;

namespace {

constexpr UnixTime k_t0 = 1767225600;  // 2026-01-01T00:00:00Z

TokenRecord token(const std::string& name, UnixTime exp = k_t0 + 3600, const std::string& grant_id = "") {
  TokenRecord t;
  t.hash = token_hash(name);
  t.kind = "access";
  t.format = "opaque";
  t.grant_id = grant_id;
  t.client_id = "cli";
  t.sub = "alice";
  t.scope = "read";
  t.aud = R"(["api"])";
  t.iss = "https://issuer.example";
  t.jti = "jti-" + name;
  t.iat = k_t0;
  t.exp = exp;
  t.claims = "{}";
  return t;
}

// A service issuing opaque access tokens (5 minutes) from a fresh keystore in `dir`.
std::unique_ptr<TokenService> opaque_service(const TempDir& dir, const FixedClock& clock) {
  write_file(dir.file("tokctl.yaml"), "issuer: https://tokens.example.test\ntokens:\n  access: {format: opaque, ttl: 5m}\n");
  return tokctl::test::open_service(dir.file("tokctl.yaml"), dir.file("ks"), clock);
}

// Whether the token `name` is in the store (main thread: fails the test on a lookup error).
bool stored(TokenStore& store, const std::string& name) {
  auto f = store.find(token_hash(name));
  REQUIRE(f);
  return f->has_value();
}

using tokctl::test::open_sqlite;

// A write that holds the writer for a while: many rows in one put().
std::vector<TokenRecord> big_batch(const std::string& prefix, int n) {
  std::vector<TokenRecord> v;
  v.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) v.push_back(token(prefix + std::to_string(i)));
  return v;
}

}  // namespace

TEST_CASE("reads run while a write is in progress, and queued writes commit together", "[store][concurrency]") {
  TempDir dir;
  auto store = open_sqlite(dir.file("tokens.db"));
  REQUIRE(store->put(std::nullopt, std::vector<TokenRecord>{token("existing")}));
  const auto before = store->write_stats();

  // One long write (a big batch), then 8 small writes queued behind it and a read beside it.
  const auto batch = big_batch("bulk-", 80000);
  std::atomic<bool> big_done{false};
  tokctl::Result<void> big_result;  // checked after join: Catch assertions are not thread-safe
  std::thread big([&] {
    big_result = store->put(std::nullopt, batch);
    big_done = true;
  });
  // Let the big write get under way (it becomes the leader), then queue the others behind it.
  std::this_thread::sleep_for(30ms);
  std::vector<std::thread> small;
  std::atomic<int> small_ok{0};
  for (int i = 0; i < 8; ++i) {
    small.emplace_back([&, i] {
      if (store->put(std::nullopt, std::vector<TokenRecord>{token("small-" + std::to_string(i))})) ++small_ok;
    });
  }
  // A read does not wait for the writer: it answers from the last committed state.
  const bool writing_when_read_started = !big_done;
  auto found = store->find(token_hash("existing"));
  const bool writing_when_read_ended = !big_done;
  REQUIRE(found);
  CHECK(found->has_value());
  big.join();
  for (auto& t : small) t.join();
  CHECK(big_result);
  CHECK(small_ok == 8);
  INFO("the big write finished before the read (the machine is too fast for this check)");
  CHECK(writing_when_read_started);
  CHECK(writing_when_read_ended);

  const auto after = store->write_stats();
  CHECK(after.writes - before.writes == 9);
  // The 8 small writes queued while the big one ran: they share one or two transactions.
  CHECK(after.transactions - before.transactions <= 3);
  for (int i = 0; i < 8; ++i) {
    auto f = store->find(token_hash("small-" + std::to_string(i)));
    REQUIRE(f);
    CHECK(f->has_value());
  }
}

TEST_CASE("a failing write in a group commit fails alone", "[store][concurrency]") {
  TempDir dir;
  auto store = open_sqlite(dir.file("tokens.db"));
  REQUIRE(store->put(std::nullopt, std::vector<TokenRecord>{token("taken")}));
  const auto batch = big_batch("bulk-", 80000);
  tokctl::Result<void> big_result;  // checked after join: Catch assertions are not thread-safe
  std::thread big([&] { big_result = store->put(std::nullopt, batch); });
  std::this_thread::sleep_for(30ms);
  // Queued behind the big write, likely in one group: a duplicate (constraint violation) between
  // two good writes.
  tokctl::Result<void> good1, dup, good2;
  std::thread t1([&] { good1 = store->put(std::nullopt, std::vector<TokenRecord>{token("good-1")}); });
  std::thread t2([&] {
    dup = store->put(std::nullopt, std::vector<TokenRecord>{token("dup-new"), token("taken")});
  });
  std::thread t3([&] { good2 = store->put(std::nullopt, std::vector<TokenRecord>{token("good-2")}); });
  big.join();
  t1.join();
  t2.join();
  t3.join();
  CHECK(big_result);
  CHECK(good1);
  CHECK(good2);
  REQUIRE_FALSE(dup);
  CHECK(dup.error().code == tokctl::ErrorCode::keystore);
  for (const char* name : {"good-1", "good-2"}) {
    auto f = store->find(token_hash(name));
    REQUIRE(f);
    CHECK(f->has_value());
  }
  // The failed write left nothing behind, not even its first row.
  auto partial = store->find(token_hash("dup-new"));
  REQUIRE(partial);
  CHECK_FALSE(partial->has_value());
}

// A group runs without a savepoint per write; when one of its writes fails on its own, the group is
// rolled back and runs again with savepoints, so that only that write is undone.
TEST_CASE("a group whose write fails runs again with savepoints: the others commit, the failed one leaves nothing",
          "[store][concurrency]") {
  TempDir dir;
  auto store = open_sqlite(dir.file("tokens.db"));
  REQUIRE(store->put(std::nullopt, std::vector<TokenRecord>{token("taken")}));
  std::mutex mu;
  std::condition_variable cv;
  bool maker_in = false, release = false;
  int completed = 0;
  std::vector<int> outcomes(4, -1);
  auto done = [&](int i) {
    return [&, i](tokctl::Result<void> r) {
      std::lock_guard lock(mu);
      outcomes[static_cast<std::size_t>(i)] = r ? 1 : 0;
      ++completed;
      cv.notify_all();
    };
  };
  // The writer takes this write alone and waits in its row maker: the next three queue meanwhile
  // and are then taken as one group.
  using Rows = std::function<std::vector<TokenRecord>()>;
  store->put_async(std::nullopt, Rows([&] {
                     std::unique_lock lock(mu);
                     maker_in = true;
                     cv.notify_all();
                     cv.wait(lock, [&] { return release; });
                     return std::vector<TokenRecord>{token("first")};
                   }),
                   done(0));
  {
    std::unique_lock lock(mu);
    REQUIRE(cv.wait_for(lock, 20s, [&] { return maker_in; }));
  }
  const auto before = store->write_stats();
  store->put_async(std::nullopt, std::vector<TokenRecord>{token("good-1"), token("good-1b")}, done(1));
  store->put_async(std::nullopt, std::vector<TokenRecord>{token("dup-new"), token("taken")}, done(2));
  store->put_async(std::nullopt, std::vector<TokenRecord>{token("good-2")}, done(3));
  {
    std::lock_guard lock(mu);
    release = true;
  }
  cv.notify_all();
  {
    std::unique_lock lock(mu);
    REQUIRE(cv.wait_for(lock, 20s, [&] { return completed == 4; }));
  }
  CHECK(outcomes == std::vector<int>{1, 1, 0, 1});
  for (const char* name : {"first", "good-1", "good-1b", "good-2", "taken"}) {
    INFO(name);
    CHECK(stored(*store, name));
  }
  CHECK_FALSE(stored(*store, "dup-new"));  // its first row went with it
  const auto after = store->write_stats();
  CHECK(after.transactions - before.transactions == 2);  // the lone write, then the group of three
  CHECK(after.guarded_reruns - before.guarded_reruns == 1);
  // A group that fails nothing runs once.
  REQUIRE(store->put(std::nullopt, std::vector<TokenRecord>{token("later")}));
  CHECK(store->write_stats().guarded_reruns == after.guarded_reruns);
}

// put_async: the caller does not wait; completions come once each, after the commit, with the
// write's own outcome; sync and async writes share groups; closing the store runs what is queued.
TEST_CASE("put_async completes every write once, after its commit, with its own outcome", "[store][concurrency]") {
  TempDir dir;
  const std::string path = dir.file("tokens.db");
  auto store = open_sqlite(path);
  REQUIRE(store->put(std::nullopt, std::vector<TokenRecord>{token("taken")}));
  constexpr int k_threads = 4, k_each = 50;
  std::mutex mu;
  std::condition_variable cv;
  int completed = 0, failed = 0, found_after = 0;
  std::vector<std::string> errors;
  auto done = [&](bool expect_ok, std::string name) {
    return [&, expect_ok, name](tokctl::Result<void> r) {
      // Committed before the completion: visible to a reader now (no Catch macro off the main thread).
      bool visible = false;
      if (r) {
        auto f = store->find(token_hash(name));
        visible = f && f->has_value();
      }
      std::lock_guard lock(mu);
      ++completed;
      if (!r) ++failed;
      if (visible) ++found_after;
      if (bool(r) != expect_ok) errors.push_back(name);
      cv.notify_all();
    };
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < k_threads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < k_each; ++i) {
        const std::string name = "a-" + std::to_string(t) + "-" + std::to_string(i);
        if (i % 10 == 9) {
          (void)store->put(std::nullopt, std::vector<TokenRecord>{token("s" + name)});  // sync ones in between
        }
        if (t == 0 && i == 7) {  // a duplicate: fails alone
          store->put_async(std::nullopt, std::vector<TokenRecord>{token("dup-" + name), token("taken")},
                           done(false, "dup-" + name));
        } else {
          store->put_async(std::nullopt, std::vector<TokenRecord>{token(name)}, done(true, name));
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  {
    std::unique_lock lock(mu);
    REQUIRE(cv.wait_for(lock, 20s, [&] { return completed == k_threads * k_each; }));
  }
  CHECK(completed == k_threads * k_each);
  CHECK(failed == 1);
  CHECK(found_after == k_threads * k_each - 1);
  CHECK(errors.empty());
  auto partial = store->find(token_hash("dup-a-0-7"));
  REQUIRE(partial);
  CHECK_FALSE(partial->has_value());
  const auto stats = store->write_stats();
  CHECK(stats.transactions < stats.writes);  // grouped

  // Closing the store runs the queued writes and their completions before it returns.
  std::atomic<int> late{0};
  for (int i = 0; i < 100; ++i) {
    store->put_async(std::nullopt, std::vector<TokenRecord>{token("late-" + std::to_string(i))},
                     [&late](tokctl::Result<void> r) { late += r ? 1 : 1000; });
  }
  store.reset();
  CHECK(late.load() == 100);
  CHECK(stored(*open_sqlite(path), "late-99"));
}

TEST_CASE("TokenService::issue_async answers once the token is stored", "[tokens][concurrency]") {
  TempDir dir;
  FixedClock clock(k_t0);
  auto svc = opaque_service(dir, clock);
  std::promise<tokctl::Result<IssueResponse>> answer;
  IssueRequest req;
  req.client_id = "cli";
  req.sub = "alice";
  svc->issue_async(req, [&answer](tokctl::Result<IssueResponse> r) { answer.set_value(std::move(r)); });
  auto r = answer.get_future().get();
  REQUIRE(r);
  auto info = svc->introspect(r->access.token);
  REQUIRE(info);
  CHECK((*info)["active"] == true);
  // A refusal comes through the same callback, before any write.
  std::promise<tokctl::Result<IssueResponse>> refused;
  req.format = "no-such-format";
  svc->issue_async(req, [&refused](tokctl::Result<IssueResponse> x) { refused.set_value(std::move(x)); });
  CHECK_FALSE(refused.get_future().get());
}

TEST_CASE("a write acknowledged to its caller survives SIGKILL of the process", "[store]") {
  TempDir dir;
  const std::string path = dir.file("tokens.db");
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[0]);
    auto s = SqliteTokenStore::open(path);
    if (!s || !(*s)->put(std::nullopt, std::vector<TokenRecord>{token("acked")})) ::_exit(3);
    (void)!::write(fds[1], "1", 1);  // acknowledged
    for (;;) ::pause();
  }
  ::close(fds[1]);
  char c = 0;
  REQUIRE(::read(fds[0], &c, 1) == 1);
  ::close(fds[0]);
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  REQUIRE(WIFSIGNALED(status));
  CHECK(stored(*open_sqlite(path), "acked"));
}

TEST_CASE("a JWT's deny-list entry and grant come from one query", "[store]") {
  TempDir dir;
  auto store = open_sqlite(dir.file("tokens.db"));
  GrantRecord g{.id = "g1", .client_id = "cli", .sub = "alice", .scope = "read", .started = k_t0 - 60};
  REQUIRE(store->put(g, {}));
  auto st = store->jwt_status("j1", "g1");
  REQUIRE(st);
  CHECK_FALSE(st->denied);
  CHECK(st->grant_found);
  CHECK_FALSE(st->grant_revoked);
  CHECK(st->grant_started == k_t0 - 60);
  auto none = store->jwt_status("j1", "");
  REQUIRE(none);
  CHECK_FALSE(none->grant_found);
  REQUIRE(store->deny_jti("j1", k_t0 + 60, "g1"));
  REQUIRE(store->revoke_grant("g1"));
  st = store->jwt_status("j1", "g1");
  REQUIRE(st);
  CHECK(st->denied);
  CHECK(st->grant_revoked);
}

TEST_CASE("many threads reading and writing one store see every acknowledged write", "[store][concurrency]") {
  TempDir dir;
  auto store = open_sqlite(dir.file("tokens.db"));
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int n = 0; n < 6; ++n) {
    threads.emplace_back([&, n] {
      for (int i = 0; i < 60; ++i) {
        const std::string name = "t" + std::to_string(n) + "-" + std::to_string(i);
        if (!store->put(std::nullopt, std::vector<TokenRecord>{token(name)})) ++failures;
        auto f = store->find(token_hash(name));  // read-your-write from a reader connection
        if (!f || !f->has_value()) ++failures;
        if (i % 7 == 0) {
          auto r = store->revoke_token(token_hash(name));
          if (!r || *r != 1) ++failures;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(failures == 0);
  const auto stats = store->write_stats();
  CHECK(stats.writes >= 6 * 60);
}

TEST_CASE("the service prunes expired rows in the background", "[store][tokens]") {
  TempDir dir;
  FixedClock clock{k_t0};
  auto svc = opaque_service(dir, clock);
  IssueRequest req;
  req.sub = "alice";
  auto r = svc->issue(req);
  REQUIRE(r);
  auto in = svc->introspect(r->access.token);
  REQUIRE(in);
  CHECK((*in)["active"] == true);
  clock.set(k_t0 + 3600);  // long expired
  svc->prune_every(20ms);
  for (int i = 0; i < 250 && svc->prune_status().deleted == 0; ++i) std::this_thread::sleep_for(20ms);
  const PruneStatus st = svc->prune_status();
  CHECK(st.runs >= 1);
  CHECK(st.deleted >= 1);
  CHECK_FALSE(st.last_error);
  svc->prune_every(0ms);  // stops; the service (and its store) stay usable
  auto gone = svc->introspect(r->access.token);
  REQUIRE(gone);
  CHECK((*gone)["active"] == false);
}

TEST_CASE("tokens tokctl issues never start with a dash (they are pasted on command lines)", "[tokens]") {
  TempDir dir;
  FixedClock clock{k_t0};
  auto svc = opaque_service(dir, clock);
  IssueRequest req;
  req.sub = "alice";
  // 2000 random base64url tokens would start with '-' about 31 times.
  auto many = svc->issue_many(req, 2000);
  REQUIRE(many);
  int dashed = 0;
  for (const auto& r : *many) dashed += r.access.token.front() == '-';
  req.with_refresh = true;
  for (int i = 0; i < 200; ++i) {
    auto one = svc->issue(req);
    REQUIRE(one);
    dashed += one->access.token.front() == '-' || one->refresh->token.front() == '-';
  }
  CHECK(dashed == 0);
}

TEST_CASE("put_async with a row maker: made once on the writer's side; a maker that throws fails its write alone",
          "[store][concurrency]") {
  TempDir dir;
  const std::string path = dir.file("tokens.db");
  auto store = open_sqlite(path);
  std::mutex mu;
  std::condition_variable cv;
  int completed = 0, made = 0;
  std::vector<bool> outcomes(3);
  std::string error;
  std::thread::id maker_thread;
  auto done = [&](int i) {
    return [&, i](tokctl::Result<void> r) {
      std::lock_guard lock(mu);
      outcomes[static_cast<std::size_t>(i)] = bool(r);
      if (!r) error = r.error().message;
      ++completed;
      cv.notify_all();
    };
  };
  using Rows = std::function<std::vector<TokenRecord>()>;
  store->put_async(std::nullopt, Rows([&] {
                     std::lock_guard lock(mu);
                     ++made;
                     maker_thread = std::this_thread::get_id();
                     return std::vector<TokenRecord>{token("made-1"), token("made-2")};
                   }),
                   done(0));
  store->put_async(std::nullopt, Rows([]() -> std::vector<TokenRecord> { throw std::runtime_error("no memory"); }),
                   done(1));
  store->put_async(std::nullopt, std::vector<TokenRecord>{token("plain")}, done(2));
  {
    std::unique_lock lock(mu);
    REQUIRE(cv.wait_for(lock, 20s, [&] { return completed == 3; }));
  }
  CHECK(made == 1);
  CHECK(maker_thread != std::this_thread::get_id());
  CHECK(outcomes == std::vector<bool>{true, false, true});
  CHECK(error.find("making their rows: no memory") != std::string::npos);
  CHECK(stored(*store, "made-1"));
  CHECK(stored(*store, "made-2"));
  CHECK(stored(*store, "plain"));
}

TEST_CASE("a write blocked by another connection's lock gives up after one busy_timeout, not eight",
          "[store][concurrency]") {
  TempDir dir;
  const std::string path = dir.file("tokens.db");
  auto store = open_sqlite(path);
  REQUIRE(store->put(std::nullopt, std::vector<TokenRecord>{token("before")}));
  // Another process (here another connection) holds the write lock for longer than busy_timeout.
  sqlite3* other = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &other) == SQLITE_OK);
  REQUIRE(sqlite3_exec(other, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr) == SQLITE_OK);
  const auto started = std::chrono::steady_clock::now();
  auto blocked = store->put(std::nullopt, std::vector<TokenRecord>{token("blocked")});
  const auto waited = std::chrono::steady_clock::now() - started;
  CHECK_FALSE(blocked);
  // busy_timeout (10 s) once, plus backoff: never 8 x 10 s (a server's request hung 80 s).
  CHECK(waited >= std::chrono::milliseconds(tokctl::tokens::sqlite::k_busy_timeout_ms - 500));
  CHECK(waited < std::chrono::milliseconds(tokctl::tokens::sqlite::k_busy_timeout_ms) + 5s);
  // Reads go on meanwhile (WAL), and once the lock is gone writes do too.
  CHECK(stored(*store, "before"));
  REQUIRE(sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(other);
  REQUIRE(store->put(std::nullopt, std::vector<TokenRecord>{token("after")}));
  CHECK(stored(*store, "after"));
  CHECK_FALSE(stored(*store, "blocked"));
}

TEST_CASE("WAL checkpoints run on a thread of their own; a WAL that cannot start over is checkpointed by the commit",
          "[store][concurrency]") {
  TempDir dir;
  const std::string path = dir.file("tokens.db");
  auto store = open_sqlite(path);
  using Store = SqliteTokenStore;
  int batch = 0;
  auto put_batch = [&] {
    REQUIRE(store->put(std::nullopt, big_batch("b" + std::to_string(batch++) + "-", 200)));
  };
  // Writes until the WAL holds `frames` frames (a bounded number of batches: ~50 frames each).
  auto fill_to = [&](int frames) {
    for (int i = 0; i < 1000 && store->write_stats().wal_frames < frames; ++i) put_batch();
    REQUIRE(store->write_stats().wal_frames >= frames);
  };
  auto wait_for = [&](auto&& done) {
    for (int i = 0; i < 500 && !done(store->write_stats()); ++i) std::this_thread::sleep_for(10ms);
    return done(store->write_stats());
  };

  SECTION("the checkpoint thread runs them, not the commits") {
    fill_to(Store::k_checkpoint_frames + 200);
    CHECK(wait_for([](const Store::WriteStats& s) { return s.checkpoints >= 1; }));
    const auto s = store->write_stats();
    CHECK(s.commit_checkpoints == 0);
    CHECK(s.checkpoint_failures == 0);
    // Copied back: the WAL starts over at a later write (it never reaches the cap here).
    for (int i = 0; i < 200 && store->write_stats().wal_frames >= Store::k_checkpoint_frames; ++i) {
      put_batch();
      std::this_thread::sleep_for(5ms);
    }
    CHECK(store->write_stats().wal_frames < Store::k_checkpoint_frames);
  }

  SECTION("a reader holding an old snapshot: the WAL reaches the cap, then starts over once it lets go") {
    sqlite3* reader = nullptr;
    REQUIRE(sqlite3_open_v2(path.c_str(), &reader, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_exec(reader, "BEGIN; SELECT count(*) FROM tokens;", nullptr, nullptr, nullptr) == SQLITE_OK);
    fill_to(Store::k_wal_cap + 200);
    // Neither the thread nor the commits could copy back past the snapshot; the commits tried.
    CHECK(store->write_stats().commit_checkpoints >= 1);
    REQUIRE(sqlite3_exec(reader, "COMMIT", nullptr, nullptr, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_close(reader) == SQLITE_OK);
    for (int i = 0; i < 50 && store->write_stats().wal_frames >= Store::k_wal_cap; ++i) put_batch();
    CHECK(store->write_stats().wal_frames < Store::k_wal_cap);
    CHECK(store->write_stats().checkpoint_failures == 0);
  }
  // Nothing lost on the way: the first and the last batch are there.
  CHECK(stored(*store, "b0-0"));
  CHECK(stored(*store, "b" + std::to_string(batch - 1) + "-199"));
}
