// The reliability suite (ctest label "reliability", docs/reliability.md): the sdgen binary
// under careless and hostile input, signals, full disks and shared folders. Each test runs the
// binary on the tiny reference model and checks exit codes, messages, files left and lost.
#pragma once
#include <gtest/gtest.h>
#include <stb_image.h>
#include <sys/mount.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "sdgen/io/png.h"
#include "sdgen/util/fs.h"
#include "sdgen/util/temporaries.h"
#include "torch/cli_test_util.h"

namespace sdgen::test {

namespace fs = std::filesystem;

inline std::string ref(const std::string& rel) {
  return std::string(SDGEN_REFERENCE_DIR) + "/" + rel;
}

class Reliability : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = fs::temp_directory_path() /
          ("sdgen-reliability-" + std::to_string(::getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  void TearDown() override {
    for (const auto& m : mounts_) ::umount2(m.c_str(), MNT_DETACH);
    std::error_code ec;
    fs::permissions(dir, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(dir, ec);
  }
  // The tiny model at 64x64, 2 steps, on the CPU, then `extra`.
  std::vector<std::string> args(const std::vector<std::string>& extra) const {
    std::vector<std::string> a = {
        "--model", ref("tiny-sd1.safetensors"), "--size", "64x64", "--steps", "2", "--device",
        "cpu"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(dir / name, std::ios::binary) << text;
    return (dir / name).string();
  }
  // Mounts a tmpfs at `path` (root only; GTEST_SKIP elsewhere): a full disk or a read-only
  // file system where the test can make one.
  bool mount_tmpfs(const fs::path& path, const std::string& options, unsigned long flags = 0) {
    fs::create_directories(path);
    if (::geteuid() != 0 || ::mount("tmpfs", path.c_str(), "tmpfs", flags, options.c_str()) != 0)
      return false;
    mounts_.push_back(path.string());
    return true;
  }
  fs::path dir;

 private:
  std::vector<std::string> mounts_;
};

// The PNGs under `root` (relative names), each decodable with its parameters chunk; fails the
// test on any temporary file left unless `allow_temporaries`.
inline std::set<std::string> whole_images(const fs::path& root, bool allow_temporaries = false) {
  std::set<std::string> names;
  if (!fs::exists(root)) return names;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (!e.is_regular_file()) continue;
    const auto name = e.path().filename().string();
    if (parse_temporary_name(name, nullptr)) {
      EXPECT_TRUE(allow_temporaries) << "stray temporary " << e.path();
      continue;
    }
    if (e.path().extension() != ".png") continue;
    const auto png = read_file_bytes(e.path().string());
    int w = 0, h = 0, n = 0;
    unsigned char* px =
        stbi_load_from_memory(png.data(), static_cast<int>(png.size()), &w, &h, &n, 3);
    EXPECT_NE(px, nullptr) << "not a whole PNG: " << e.path();
    stbi_image_free(px);
    EXPECT_TRUE(png_text_chunks(png).count("parameters")) << e.path();
    names.insert(fs::relative(e.path(), root).string());
  }
  return names;
}

// Waits up to a minute for `path` to exist.
inline bool wait_for(const fs::path& path) {
  for (int i = 0; i < 1200; ++i) {
    if (fs::exists(path)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace sdgen::test
