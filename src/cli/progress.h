// Progress on stderr: a live bar on a terminal, plain periodic lines otherwise, or nothing.
#pragma once
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace sdgen::cli {

class Progress {
 public:
  Progress(uint64_t images, bool quiet);
  // A UNet step of the current batch (of `batch` images) finished.
  void step(int step, int steps, int batch);
  // An image is done (written, skipped or failed); `line` is logged as it stands.
  void image_done(const std::string& line);
  void log(const std::string& line);  // a message between bars
  void finish();

 private:
  void draw(bool force);
  void clear_bar();
  std::mutex mu_;
  const uint64_t total_;
  uint64_t done_ = 0;
  int step_ = 0, steps_ = 0;
  double step_images_ = 0;  // images x steps completed, for it/s and the ETA
  const bool quiet_, tty_;
  bool bar_shown_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace sdgen::cli
