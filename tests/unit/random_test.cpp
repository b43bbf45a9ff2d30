// jose::random_bytes: OpenSSL's CSPRNG through a per-thread pool (tokctl/jose/digest.hpp).

#include <tokctl/jose/digest.hpp>

#include <catch2/catch.hpp>

#include <set>
#include <string>
#include <thread>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

using tokctl::jose::random_bytes;

TEST_CASE("random_bytes gives values of the asked length, never repeated across pool refills", "[random]") {
  for (std::size_t n : {0u, 1u, 16u, 63u, 64u, 65u, 1000u, 5000u}) {
    INFO("length " << n);
    CHECK(random_bytes(n).size() == n);
  }
  // 48-byte values: a 4 KiB pool holds 85 of them, so 2000 span 23 refills and every boundary
  // (a request the pool's tail cannot hold).
  std::set<std::string> seen;
  for (int i = 0; i < 2000; ++i) {
    seen.insert(random_bytes(48));
  }
  CHECK(seen.size() == 2000);
  // Mixed sizes, pooled and not.
  for (int i = 0; i < 500; ++i) seen.insert(random_bytes(static_cast<std::size_t>(17 + i % 80)));
  CHECK(seen.size() == 2500);
}

TEST_CASE("random_bytes on several threads never hands two threads the same value", "[random]") {
  constexpr int k_threads = 4, k_each = 3000;
  std::vector<std::vector<std::string>> got(k_threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < k_threads; ++t) {
    pool.emplace_back([&got, t] {
      for (int i = 0; i < k_each; ++i) got[t].push_back(random_bytes(16));
    });
  }
  for (auto& th : pool) th.join();
  std::set<std::string> all;
  for (const auto& v : got) all.insert(v.begin(), v.end());
  CHECK(all.size() == static_cast<std::size_t>(k_threads * k_each));
}

TEST_CASE("a forked child does not repeat the values its parent's pool holds", "[random]") {
  (void)random_bytes(16);  // the pool is filled: the next values are in memory before the fork
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    const std::string v = random_bytes(32);
    const bool ok = ::write(fds[1], v.data(), v.size()) == static_cast<ssize_t>(v.size());
    ::_exit(ok ? 0 : 1);
  }
  ::close(fds[1]);
  const std::string mine = random_bytes(32);
  std::string theirs(32, '\0');
  std::size_t got = 0;
  while (got < theirs.size()) {
    const ssize_t r = ::read(fds[0], theirs.data() + got, theirs.size() - got);
    if (r <= 0) break;
    got += static_cast<std::size_t>(r);
  }
  ::close(fds[0]);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  REQUIRE(got == 32);
  CHECK(theirs != mine);
}
