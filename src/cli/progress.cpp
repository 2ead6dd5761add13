#include "progress.h"

#include <unistd.h>

#include <cstdio>
#include <iostream>

namespace sdgen::cli {
namespace {

std::string clock_text(double seconds) {
  if (!(seconds >= 0) || seconds > 99 * 3600) return "--:--";
  const long s = static_cast<long>(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof(buf), "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
  else
    std::snprintf(buf, sizeof(buf), "%ld:%02ld", s / 60, s % 60);
  return buf;
}

}  // namespace

Progress::Progress(uint64_t images, bool quiet)
    : total_(images),
      quiet_(quiet),
      tty_(::isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

void Progress::clear_bar() {
  if (bar_shown_) std::cerr << "\r\033[K";
  bar_shown_ = false;
}

void Progress::draw(bool force) {
  if (quiet_) return;
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_draw_).count();
  // a terminal gets a live bar (at most 10 redraws a second); a pipe a line every 10 s
  if (!force && since < (tty_ ? 0.1 : 10.0)) return;
  last_draw_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double its = elapsed > 0 ? step_images_ / elapsed : 0;  // image-steps per second
  const double remaining_steps =
      static_cast<double>(total_ - done_) * (steps_ ? steps_ : 1) - (steps_ ? step_ : 0);
  const double eta = its > 0 ? remaining_steps / its : -1;
  char buf[160];
  std::snprintf(buf, sizeof(buf), "image %llu/%llu  step %d/%d  %.2f it/s  ETA %s",
                static_cast<unsigned long long>(std::min(done_ + 1, total_)),
                static_cast<unsigned long long>(total_), step_, steps_, its,
                clock_text(eta).c_str());
  if (tty_) {
    const int width = 24;
    const double frac = total_
                            ? (static_cast<double>(done_) + (steps_ ? double(step_) / steps_ : 0)) /
                                  static_cast<double>(total_)
                            : 1.0;
    const int filled = static_cast<int>(frac * width);
    std::cerr << "\r\033[K[" << std::string(filled, '#') << std::string(width - filled, '.') << "] "
              << buf << std::flush;
    bar_shown_ = true;
  } else {
    std::cerr << "sdgen: " << buf << "\n";
  }
}

void Progress::step(int step, int steps, int batch) {
  std::lock_guard<std::mutex> lock(mu_);
  step_ = step;
  steps_ = steps;
  step_images_ += batch;
  draw(false);
}

void Progress::image_done(const std::string& line) {
  std::lock_guard<std::mutex> lock(mu_);
  ++done_;
  step_ = 0;
  if (quiet_) return;
  clear_bar();
  std::cerr << "sdgen: " << line << "\n";
  if (done_ < total_ && tty_) draw(true);
}

void Progress::log(const std::string& line) {
  std::lock_guard<std::mutex> lock(mu_);
  if (quiet_) return;
  clear_bar();
  std::cerr << "sdgen: " << line << "\n";
}

void Progress::finish() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!quiet_) clear_bar();
}

}  // namespace sdgen::cli
