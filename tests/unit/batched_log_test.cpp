// The access log's batched writer: tokctl/util/batched_log.hpp.

#include <tokctl/util/batched_log.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <ostream>
#include <sstream>
#include <streambuf>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using tokctl::BatchedLog;

namespace {

// A stream buffer another thread may read while the writer writes; it can hold writes back (a
// reader that stopped reading) and fail the next write (EPIPE).
class SharedBuf : public std::streambuf {
 public:
  std::string text() {
    std::lock_guard lock(m_mutex);
    return m_text;
  }
  std::size_t writes() {
    std::lock_guard lock(m_mutex);
    return m_writes;
  }
  void hold(bool on) {
    {
      std::lock_guard lock(m_mutex);
      m_held = on;
    }
    m_cv.notify_all();
  }
  void fail_next() {
    std::lock_guard lock(m_mutex);
    m_fail = true;
  }
  // Waits until a write is held back by hold(true).
  bool wait_held_writer(std::chrono::milliseconds limit) {
    std::unique_lock lock(m_mutex);
    return m_cv.wait_for(lock, limit, [&] { return m_waiting > 0; });
  }
  bool wait_for_text(const std::string& needle, std::chrono::milliseconds limit) {
    std::unique_lock lock(m_mutex);
    return m_cv.wait_for(lock, limit, [&] { return m_text.find(needle) != std::string::npos; });
  }

 protected:
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    std::unique_lock lock(m_mutex);
    ++m_waiting;
    m_cv.notify_all();
    m_cv.wait(lock, [&] { return !m_held; });
    --m_waiting;
    if (std::exchange(m_fail, false)) return 0;
    m_text.append(s, static_cast<std::size_t>(n));
    ++m_writes;
    m_cv.notify_all();
    return n;
  }
  int_type overflow(int_type c) override {
    if (c == traits_type::eof()) return traits_type::not_eof(c);
    const char ch = traits_type::to_char_type(c);
    return xsputn(&ch, 1) == 1 ? c : traits_type::eof();
  }

 private:
  std::mutex m_mutex;
  std::condition_variable m_cv;
  std::string m_text;
  std::size_t m_writes = 0;
  bool m_held = false;
  int m_waiting = 0;
  bool m_fail = false;
};

}  // namespace

TEST_CASE("BatchedLog: lines of many threads all arrive whole, each thread's in order", "[batched_log]") {
  SharedBuf buf;
  std::ostream out(&buf);
  constexpr int threads = 4, per_thread = 2000;
  {
    BatchedLog log(out);
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) {
      ts.emplace_back([&log, t] {
        for (int i = 0; i < per_thread; ++i)
          log.line("{\"t\":" + std::to_string(t) + ",\"i\":" + std::to_string(i) + "}\n");
      });
    }
    for (auto& t : ts) t.join();
  }  // the destructor writes what is still pending
  std::istringstream lines(buf.text());
  std::vector<int> next(threads, 0);
  int count = 0;
  for (std::string l; std::getline(lines, l); ++count) {
    int t = -1, i = -1;
    REQUIRE(std::sscanf(l.c_str(), "{\"t\":%d,\"i\":%d}", &t, &i) == 2);
    REQUIRE(t >= 0);
    REQUIRE(t < threads);
    CHECK(i == next[static_cast<std::size_t>(t)]);
    next[static_cast<std::size_t>(t)] = i + 1;
  }
  CHECK(count == threads * per_thread);
  // Batches, not a write per line.
  CHECK(buf.writes() < static_cast<std::size_t>(count));
}

TEST_CASE("BatchedLog: a line is written soon without anything else happening", "[batched_log]") {
  SharedBuf buf;
  std::ostream out(&buf);
  BatchedLog log(out);
  log.line("first\n");
  CHECK(buf.wait_for_text("first\n", 5s));
  // Again after a quiet spell: the writer, waiting for a first line, is woken by it.
  std::this_thread::sleep_for(20ms);
  log.line("second\n");
  CHECK(buf.wait_for_text("second\n", 5s));
  CHECK(buf.text() == "first\nsecond\n");
}

TEST_CASE("BatchedLog: a line after flush() took the line that woke the writer is still written", "[batched_log]") {
  // The writer, woken by x, found x taken by flush() and waited again: the next line must wake it.
  SharedBuf buf;
  std::ostream out(&buf);
  BatchedLog log(out);
  for (int i = 0; i < 20; ++i) {
    std::this_thread::sleep_for(5ms);
    log.line("x" + std::to_string(i) + "\n");
    log.flush();
    std::this_thread::sleep_for(5ms);
    const std::string y = "y" + std::to_string(i) + "\n";
    log.line(y);
    INFO(i);
    REQUIRE(buf.wait_for_text(y, 5s));
  }
}

TEST_CASE("BatchedLog: the destructor does not wait out the gathering time", "[batched_log]") {
  SharedBuf buf;
  std::ostream out(&buf);
  const auto start = std::chrono::steady_clock::now();
  {
    BatchedLog log(out, 30s);
    std::this_thread::sleep_for(10ms);  // the writer waits for a first line
    log.line("a\n");                    // and now gathers for 30 s
    std::this_thread::sleep_for(10ms);
  }
  CHECK(std::chrono::steady_clock::now() - start < 10s);
  CHECK(buf.text() == "a\n");
}

TEST_CASE("BatchedLog: now() and flush() return with the text written, after every earlier line", "[batched_log]") {
  SharedBuf buf;
  std::ostream out(&buf);
  // A long gather time: only now() or flush() can have written these lines when they return.
  BatchedLog log(out, 10s);
  log.line("a\n");
  log.line("b\n");
  log.now("notice\n");
  CHECK(buf.text() == "a\nb\nnotice\n");
  log.line("c\n");
  log.flush();
  CHECK(buf.text() == "a\nb\nnotice\nc\n");
}

TEST_CASE("BatchedLog: a stream that stops taking lines holds appenders back at the cap, losing none", "[batched_log]") {
  SharedBuf buf;
  std::ostream out(&buf);
  BatchedLog log(out, 0us, 64);
  buf.hold(true);
  log.line("0123456789\n");
  // The writer takes that line and blocks writing it; the next lines fill the cap.
  REQUIRE(buf.wait_held_writer(5s));
  std::string expected = "0123456789\n";
  for (int i = 0; i < 6; ++i) {
    log.line("abcdefghij\n");
    expected += "abcdefghij\n";
  }
  std::atomic<bool> returned{false};
  std::thread late([&] {
    log.line("late\n");
    returned = true;
  });
  std::this_thread::sleep_for(200ms);
  CHECK_FALSE(returned.load());  // 66 bytes pending, over the cap of 64: it waits
  buf.hold(false);
  late.join();
  CHECK(returned.load());
  log.flush();
  CHECK(buf.text() == expected + "late\n");
}

TEST_CASE("BatchedLog: a failed write loses its batch, not the lines after it", "[batched_log]") {
  SharedBuf buf;
  std::ostream out(&buf);
  const bool throwing = GENERATE(false, true);
  if (throwing) out.exceptions(std::ios::badbit);  // the failed write throws: the same outcome
  INFO("stream throws: " << throwing);
  BatchedLog log(out, 10s);
  buf.fail_next();
  log.now("lost\n");
  CHECK(buf.text().empty());
  log.now("kept\n");
  log.line("after\n");
  log.flush();
  CHECK(buf.text() == "kept\nafter\n");
}
