#include <tokctl/util/batched_log.hpp>

#include <system_error>
#include <utility>

namespace tokctl {

BatchedLog::BatchedLog(std::ostream& out, std::chrono::microseconds gather, std::size_t cap)
    : m_out(out), m_gather(gather), m_cap(cap) {
  try {
    m_thread = std::thread([this] { run(); });
  } catch (const std::system_error&) {
    // No thread to be had: every line is written as it comes (line() sees no writer thread).
  }
}

BatchedLog::~BatchedLog() {
  if (m_thread.joinable()) {
    {
      std::lock_guard lock(m_mutex);
      m_stop = true;
    }
    m_wake.notify_one();
    m_drained.notify_all();
    m_thread.join();
  }
  std::lock_guard write(m_write);
  write_pending();
}

void BatchedLog::line(std::string_view text) {
  if (!m_thread.joinable()) {
    std::lock_guard write(m_write);
    {
      std::lock_guard lock(m_mutex);
      m_pending.append(text);
    }
    write_pending();
    return;
  }
  bool wake = false;
  {
    std::unique_lock lock(m_mutex);
    if (m_pending.size() >= m_cap) m_drained.wait(lock, [&] { return m_pending.size() < m_cap || m_stop; });
    m_pending.append(text);
    wake = std::exchange(m_idle, false);
  }
  if (wake) m_wake.notify_one();
}

void BatchedLog::now(std::string_view text) {
  std::lock_guard write(m_write);
  {
    std::lock_guard lock(m_mutex);
    m_pending.append(text);
  }
  write_pending();
}

void BatchedLog::flush() {
  std::lock_guard write(m_write);
  write_pending();
}

void BatchedLog::write_pending() {
  // m_spare is the writer's buffer (guarded by m_write): swapped with the pending lines, so that
  // neither buffer gives its capacity back between batches.
  {
    std::lock_guard lock(m_mutex);
    m_spare.swap(m_pending);
  }
  m_drained.notify_all();
  if (m_spare.empty()) return;
  try {
    m_out.write(m_spare.data(), static_cast<std::streamsize>(m_spare.size()));
    m_out.flush();
  } catch (...) {  // a stream set to throw: the batch is lost as with a failed write, nothing else
  }
  // A failed write (a reader gone: EPIPE, SIGPIPE being ignored) loses that batch; the next one
  // is tried again rather than the stream staying silent for good.
  m_out.clear();
  m_spare.clear();
}

void BatchedLog::run() {
  std::unique_lock lock(m_mutex);
  for (;;) {
    while (m_pending.empty() && !m_stop) {
      // Idle again after every wake-up: now() or flush() may have taken the line that woke it,
      // and the next line must wake it again.
      m_idle = true;
      m_wake.wait(lock);
    }
    m_idle = false;
    // Let the lines of a busy moment gather (appenders do not wake it now; the destructor does).
    m_wake.wait_for(lock, m_gather, [&] { return m_stop; });
    lock.unlock();
    {
      std::lock_guard write(m_write);
      write_pending();
    }
    lock.lock();
    if (m_stop && m_pending.empty()) return;
  }
}

}  // namespace tokctl
