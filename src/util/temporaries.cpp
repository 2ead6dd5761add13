#include "sdgen/util/temporaries.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>

namespace sdgen {
namespace {

constexpr const char* kMarker = ".sdgen-tmp.";

TemporaryOwner read_owner() {
  TemporaryOwner o;
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(in, id);
  for (char c : id)
    if (std::isxdigit(static_cast<unsigned char>(c)) && o.boot_id.size() < 12)
      o.boot_id += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (o.boot_id.size() != 12) o.boot_id = "000000000000";  // unknown: never provably ours
  std::error_code ec;
  const auto ns = std::filesystem::read_symlink("/proc/self/ns/pid", ec).string();  // pid:[N]
  const auto open = ns.find('['), close = ns.find(']');
  if (!ec && open != std::string::npos && close != std::string::npos)
    o.pid_namespace = std::strtoull(ns.substr(open + 1, close - open - 1).c_str(), nullptr, 10);
  o.pid = static_cast<long>(::getpid());
  return o;
}

}  // namespace

const TemporaryOwner& this_process() {
  // (after a fork the child has another pid: read it again)
  static TemporaryOwner owner = read_owner();
  if (owner.pid != static_cast<long>(::getpid())) owner = read_owner();
  return owner;
}

std::string temporary_name(const std::string& dir, const std::string& base) {
  static std::atomic<uint64_t> counter{0};
  static const uint64_t seed = [] {
    std::random_device rd;
    return (uint64_t(rd()) << 32) ^ rd();
  }();
  std::mt19937_64 rng(seed ^ (counter.fetch_add(1) * 0x9e3779b97f4a7c15ULL));
  const auto& me = this_process();
  char suffix[128];
  std::snprintf(suffix, sizeof(suffix), "%s%s.%llu.%ld.%016llx", kMarker, me.boot_id.c_str(),
                static_cast<unsigned long long>(me.pid_namespace), me.pid,
                static_cast<unsigned long long>(rng()));
  // within NAME_MAX (255) however long the target's name is
  const std::string stem = base.size() > 180 ? base.substr(0, 180) : base;
  return (dir == "/" ? "/" : dir + "/") + "." + stem + suffix;
}

bool parse_temporary_name(const std::string& name, TemporaryOwner* owner) {
  static const std::regex pattern(
      R"(^\..+\.sdgen-tmp\.([0-9a-f]{12})\.([0-9]{1,20})\.([0-9]{1,10})\.[0-9a-f]{16}$)");
  std::smatch m;
  if (!std::regex_match(name, m, pattern)) return false;
  if (owner) {
    owner->boot_id = m[1];
    owner->pid_namespace = std::strtoull(m[2].str().c_str(), nullptr, 10);
    owner->pid = std::strtol(m[3].str().c_str(), nullptr, 10);
  }
  return true;
}

int remove_stale_temporaries(const std::string& dir, int* kept) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return 0;
  const auto& me = this_process();
  int removed = 0, left = 0;
  while (auto* e = ::readdir(d)) {
    TemporaryOwner owner;
    if (!parse_temporary_name(e->d_name, &owner)) continue;  // not sdgen's: never touched
    const std::string path = dir + "/" + e->d_name;
    const bool same_system = owner.boot_id == me.boot_id && owner.boot_id != "000000000000" &&
                             owner.pid_namespace == me.pid_namespace && me.pid_namespace != 0;
    const bool dead = same_system && owner.pid != me.pid && owner.pid > 0 &&
                      ::kill(static_cast<pid_t>(owner.pid), 0) != 0 && errno == ESRCH;
    bool gone = false;
    if (dead) {
      // and nobody holds the lock the writer takes (a pid can be reused)
      const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
      if (fd >= 0) {
        gone = ::flock(fd, LOCK_EX | LOCK_NB) == 0;
        if (gone) ::unlink(path.c_str());
        ::close(fd);
      }
    }
    gone ? ++removed : ++left;
  }
  ::closedir(d);
  if (kept) *kept = left;
  return removed;
}

}  // namespace sdgen
