#pragma once
// A log stream written in batches by a thread of its own: `tokctl serve`'s access log.
//
// Writing each request's line with its own write(2), under a lock the I/O threads contend for,
// cost a syscall and often a futex per request (strace: one write and 0.7 futex calls per JWKS
// answer). Here a request only appends its line to a buffer; the writer thread wakes at the first
// line after a quiet spell, lets a batch gather for `gather` (1 ms by default) and writes it with
// one call. An idle service's line is out within about that long; a busy one writes about
// 1/gather batches a second. Lines are never reordered, split or dropped (a write the stream
// fails loses its batch, as a failed direct write lost its line): when the stream is slower than
// the lines (a reader that stopped reading), line() waits once `cap` bytes are pending, as a
// direct write would have blocked.

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <ostream>
#include <string>
#include <string_view>
#include <thread>

namespace tokctl {

class BatchedLog {
 public:
  explicit BatchedLog(std::ostream& out, std::chrono::microseconds gather = std::chrono::milliseconds(1),
                      std::size_t cap = std::size_t{4} << 20);
  /// Writes what is pending, then stops the writer thread.
  ~BatchedLog();
  BatchedLog(const BatchedLog&) = delete;
  BatchedLog& operator=(const BatchedLog&) = delete;

  /// Appends `text` (whole lines, newline included); written within about `gather`.
  void line(std::string_view text);
  /// Appends `text` and returns once it, and every line before it, is written: notices the
  /// operator must see in order with the ready line on stdout.
  void now(std::string_view text);
  /// Returns once every line appended before the call is written.
  void flush();

 private:
  void run();
  void write_pending();  // under m_write: takes the pending lines and writes them

  std::ostream& m_out;
  const std::chrono::microseconds m_gather;
  const std::size_t m_cap;
  std::mutex m_write;  // held while taking and writing a batch: batches leave in append order
  std::mutex m_mutex;  // guards the fields below
  std::condition_variable m_wake;     // the writer: lines arrived, or stop
  std::condition_variable m_drained;  // appenders waiting for room
  std::string m_pending;
  std::string m_spare;  // the batch being written (guarded by m_write)
  bool m_idle = false;  // the writer waits for a first line and must be woken
  bool m_stop = false;
  std::thread m_thread;  // last: started when the rest is ready
};

}  // namespace tokctl
