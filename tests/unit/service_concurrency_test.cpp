// The token service under threads (issue 8 points 1 and 8): 4 threads issue, introspect, refresh
// and revoke against one service and one store while another process rotates the keystore's keys.
// Every token verifies, and every token issued after the rotation (plus one check interval) is
// signed by the new active key. Run under ThreadSanitizer by scripts/tsan.
//
// Catch2 assertions are not thread-safe: the threads count failures and keep the first messages,
// and the main thread asserts on them.

#include <tokctl/tokens/service.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <tokctl/keys/key_ring.hpp>
#include <tokctl/tokens/policy.hpp>
#include <tokctl/util/base64.hpp>

#include "support/jws_helpers.hpp"
#include "support/run.hpp"

using nlohmann::json;
using tokctl::FixedClock;
using tokctl::UnixTime;
using namespace tokctl::tokens;
using namespace std::chrono_literals;
namespace keys = tokctl::keys;
using tokctl::test::TempDir;
using tokctl::test::write_file;
using steady = std::chrono::steady_clock;

namespace {

constexpr UnixTime k_t0 = 1767225600;  // 2026-01-01T00:00:00Z
constexpr auto k_interval = 200ms;

constexpr const char* k_policy = R"(issuer: https://tokens.example.test
tokens:
  access: {format: jwt, ttl: 15m}
  refresh: {ttl: 1d, rotate: true}
scopes:
  - name: read
clients:
  svc: {scopes: [read], audiences: [api-a]}
)";

struct Issued {
  steady::time_point started;
  std::string token;
  std::string kid;
  bool revoked = false;
};

// Failures seen by worker threads, asserted by the main thread.
struct Failures {
  std::mutex mu;
  std::vector<std::string> messages;
  void add(std::string m) {
    std::lock_guard lock(mu);
    if (messages.size() < 10) messages.push_back(std::move(m));
  }
};

std::string active_kid(const std::string& ks_dir, const FixedClock& clock) {
  auto ks = keys::Keystore::open(ks_dir, clock, false);
  REQUIRE(ks);
  auto m = ks->manifest();
  REQUIRE(m);
  const keys::KeyEntry* e = m->active("ES256");
  REQUIRE(e);
  return e->kid;
}

}  // namespace

TEST_CASE("4 threads issue, introspect, refresh and revoke while another process rotates the keys",
          "[concurrency][service]") {
  TempDir dir;
  FixedClock clock{k_t0};
  const std::string ks_dir = dir.file("ks");
  write_file(dir.file("tokctl.yaml"), k_policy);
  {
    auto ks = keys::Keystore::open(ks_dir, clock, true);
    REQUIRE(ks);
    keys::AddOptions add;
    add.alg = "ES256";
    add.state = keys::KeyState::active;
    REQUIRE(ks->add(add, std::nullopt));
    add.state = keys::KeyState::next;
    REQUIRE(ks->add(add, std::nullopt));
  }
  const std::string old_kid = active_kid(ks_dir, clock);
  auto policy = load_policy(dir.file("tokctl.yaml"));
  REQUIRE(policy);
  auto ks = keys::Keystore::open(ks_dir, clock, false);
  REQUIRE(ks);
  auto provider = std::make_shared<const keys::KeyProvider>(std::move(*ks), std::nullopt, clock, k_interval);
  auto opened = TokenService::open(std::make_shared<const Policy>(std::move(*policy)), provider, clock);
  REQUIRE(opened);
  const TokenService& svc = **opened;

  constexpr int k_threads = 4;
  std::atomic<bool> stop{false};
  std::atomic<int> refreshed{0}, revoked{0};
  Failures failures;
  std::vector<std::vector<Issued>> issued(k_threads);
  std::vector<std::thread> workers;
  for (int n = 0; n < k_threads; ++n) {
    workers.emplace_back([&, n] {
      auto& mine = issued[static_cast<std::size_t>(n)];
      for (int i = 0; !stop.load(); ++i) {
        IssueRequest req;
        req.client_id = "svc";
        req.sub = "user-" + std::to_string(n);
        req.scope = "read";
        req.with_refresh = true;
        const auto started = steady::now();
        auto r = svc.issue(req);
        if (!r) {
          failures.add("issue: " + r.error().message);
          continue;
        }
        mine.push_back(Issued{started, r->access.token, tokctl::test::header_kid(r->access.token)});
        auto in = svc.introspect(r->access.token);
        if (!in || !(*in)["active"].get<bool>()) failures.add("a fresh token is not active");
        if (i % 3 == 0) {
          RefreshRequest rr;
          rr.refresh_token = r->refresh->token;
          rr.client_id = "svc";
          const auto rstarted = steady::now();
          auto fresh = svc.refresh(rr);
          if (!fresh) {
            failures.add("refresh: " + fresh.error().message);
          } else {
            ++refreshed;
            mine.push_back(Issued{rstarted, fresh->access.token, tokctl::test::header_kid(fresh->access.token)});
            auto again = svc.refresh(rr);  // reuse: refused, and the whole grant is revoked
            if (again) failures.add("a consumed refresh token was redeemed twice");
            mine.back().revoked = true;
            mine[mine.size() - 2].revoked = true;
          }
        } else if (i % 5 == 1) {
          auto rv = svc.revoke(r->access.token, false);
          if (!rv || *rv != 1) failures.add("revoke did not revoke the token");
          ++revoked;
          mine.back().revoked = true;
          auto gone = svc.introspect(r->access.token);
          if (!gone || (*gone)["active"].get<bool>()) failures.add("a revoked token is still active");
        }
      }
    });
  }

  std::this_thread::sleep_for(400ms);
  const auto rotation_began = steady::now();
  // Nothing may throw while the workers run (a joinable std::thread would terminate the process).
  tokctl::test::RunResult rot;
  try {
    rot = tokctl::test::run({"keys", "rotate", "--force", "--keystore", ks_dir});
  } catch (const std::exception& e) {
    rot.err = e.what();
  }
  const auto rotated = steady::now();
  // Slack for the reload itself (reading and parsing the keys) on a slow or sanitized build.
  const auto deadline = rotated + k_interval + 500ms;
  std::this_thread::sleep_until(deadline + 1s);
  stop = true;
  for (auto& w : workers) w.join();

  INFO(rot.err);
  REQUIRE(rot.code == 0);
  const std::string new_kid = active_kid(ks_dir, clock);
  REQUIRE(new_kid != old_kid);
  {
    std::lock_guard lock(failures.mu);
    for (const auto& m : failures.messages) UNSCOPED_INFO(m);
    CHECK(failures.messages.empty());
  }
  CHECK(refreshed > 0);
  CHECK(revoked > 0);

  int before = 0, after = 0, total = 0, inactive = 0, wrong_key = 0;
  for (const auto& list : issued) {
    for (const auto& t : list) {
      ++total;
      if (t.started < rotation_began) {
        ++before;
        if (t.kid != old_kid) ++wrong_key;
      } else if (t.started > deadline) {
        ++after;
        if (t.kid != new_kid) ++wrong_key;
      }
      if (t.kid != old_kid && t.kid != new_kid) ++wrong_key;
      // Every token verifies now, with the key that signed it (the old one is retired, not gone).
      auto in = svc.introspect(t.token);
      REQUIRE(in);
      if ((*in)["active"].get<bool>() == t.revoked) ++inactive;
    }
  }
  INFO("tokens: " << total << ", before the rotation: " << before << ", after: " << after);
  CHECK(before > 0);
  CHECK(after > 0);
  CHECK(wrong_key == 0);
  CHECK(inactive == 0);
}
