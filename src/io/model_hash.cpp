#include "sdgen/io/model_hash.h"

#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <fstream>

#include <nlohmann/json.hpp>

#include "sdgen/io/png.h"
#include "sdgen/util/sha256.h"

namespace sdgen {
namespace {

std::string cache_file() {
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x)
    return std::string(x) + "/sdgen/hashes.json";
  if (const char* h = std::getenv("HOME"); h && *h)
    return std::string(h) + "/.cache/sdgen/hashes.json";
  return "";
}

}  // namespace

std::string cached_file_sha256(const std::string& path) {
  struct stat st {};
  char resolved[PATH_MAX];
  if (::stat(path.c_str(), &st) != 0 || !::realpath(path.c_str(), resolved))
    return sha256_file_hex(path);  // reports the error with the path
  const std::string key = resolved;
  const long long mtime_ns =
      static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
  const std::string cache = cache_file();
  nlohmann::json db = nlohmann::json::object();
  if (!cache.empty()) {
    std::ifstream in(cache);
    if (in) {
      try {
        db = nlohmann::json::parse(in);
        if (!db.is_object()) db = nlohmann::json::object();
      } catch (const std::exception&) {
        db = nlohmann::json::object();
      }
    }
    auto it = db.find(key);
    if (it != db.end() && it->is_object() &&
        it->value("size", -1LL) == static_cast<long long>(st.st_size) &&
        it->value("mtime_ns", -1LL) == mtime_ns && it->value("sha256", std::string()).size() == 64)
      return (*it)["sha256"].get<std::string>();
  }
  const std::string digest = sha256_file_hex(path);
  if (!cache.empty()) {
    db[key] = {
        {"size", static_cast<long long>(st.st_size)}, {"mtime_ns", mtime_ns}, {"sha256", digest}};
    try {
      const auto dir = cache.substr(0, cache.rfind('/'));
      const auto parent = dir.substr(0, dir.rfind('/'));
      ::mkdir(parent.c_str(), 0755);
      ::mkdir(dir.c_str(), 0755);
      const std::string text = db.dump(1);
      write_file_atomic(cache, text.data(), text.size(), /*overwrite=*/true);
    } catch (const std::exception&) {
      // a read-only home is no reason to fail an image
    }
  }
  return digest;
}

}  // namespace sdgen
