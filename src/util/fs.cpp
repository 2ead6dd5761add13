// File helpers: atomic writes (temporary file + fsync + rename/link), whole-file reads, mkdir -p.
#include "sdgen/util/fs.h"

#include <sys/file.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "sdgen/util/temporaries.h"

namespace sdgen {
namespace {

std::string errno_text(int err) { return std::strerror(err); }

namespace fs = std::filesystem;

bool is_folder(const fs::path& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Best effort: makes the new directory entry durable. Some file systems refuse fsync on a
// directory (EINVAL); the file itself is already complete, so errors are ignored.
void fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  while (::fsync(fd) != 0 && errno == EINTR) {
  }
  ::close(fd);
}

// Moves `tmp` to `path` without ever replacing an existing `path`. Returns 0 or an errno value
// (EEXIST when `path` exists). `tmp` is gone afterwards only on success.
int install_noreplace(const std::string& tmp, const std::string& path) {
  if (::link(tmp.c_str(), path.c_str()) == 0) {
    ::unlink(tmp.c_str());
    return 0;
  }
  int err = errno;
  if (err != EPERM && err != ENOTSUP && err != EOPNOTSUPP && err != ENOSYS && err != EMLINK &&
      err != EXDEV) {
    return err;
  }
  // No hard links here (FAT, some FUSE/network file systems): rename that refuses to replace.
#if defined(__linux__) && defined(RENAME_NOREPLACE)
  if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) == 0) return 0;
  err = errno;
  if (err != EINVAL && err != ENOSYS && err != ENOTSUP && err != EOPNOTSUPP) return err;
#endif
  // Last resort, not atomic against a concurrent writer: check, then rename.
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) return EEXIST;
  if (::rename(tmp.c_str(), path.c_str()) == 0) return 0;
  return errno;
}

}  // namespace

std::string file_stem(const std::string& path) {
  fs::path p(path);
  if (!p.has_filename()) p = p.parent_path();  // "models/my-model/" names the folder
  return p.stem().string();
}

void make_parent_dirs(const std::string& path) {
  const fs::path dir = fs::path(path).parent_path();
  if (dir.empty() || is_folder(dir)) return;
  // One component at a time, so that the error names the folder that could not be made.
  fs::path prefix;
  for (const auto& part : dir) {
    prefix /= part;
    if (part == "/" || part == "." || part == ".." || part.empty()) continue;
    if (::mkdir(prefix.c_str(), 0777) != 0) {
      const int err = errno;
      if (err != EEXIST)
        throw std::runtime_error("cannot create folder " + prefix.string() + " (for " + path +
                                 "): " + errno_text(err));
      if (!is_folder(prefix))
        throw std::runtime_error("cannot create folder " + prefix.string() + " (for " + path +
                                 "): a file of that name exists");
    }
  }
}

void write_file_atomic(const std::string& path, const void* data, size_t size, bool overwrite) {
  write_file_atomic(path, {{data, size}}, overwrite);
}

void write_file_atomic(const std::string& path,
                       const std::vector<std::pair<const void*, size_t>>& pieces, bool overwrite) {
  const fs::path target(path);
  const std::string base = target.filename().string();
  if (path.empty() || base.empty() || base == "." || base == "..") {
    throw std::runtime_error("cannot write '" + path + "': not a file name");
  }
  const std::string dir =
      target.parent_path().empty() ? std::string(".") : target.parent_path().string();

  // The temporary file: created exclusively, mode 0644 less the umask.
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; attempt < 16 && fd < 0; ++attempt) {
    tmp = temporary_name(dir, base);
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 && errno != EEXIST) break;
  }
  // Held until the file is in place: a later run's clean-up leaves a locked temporary alone.
  if (fd >= 0) ::flock(fd, LOCK_EX);
  if (fd < 0) {
    const int err = errno;
    throw std::runtime_error("cannot write " + path + ": cannot create a temporary file in " + dir +
                             ": " + errno_text(err));
  }

  auto fail = [&](const std::string& what, int err) {
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    throw std::runtime_error("cannot write " + path + ": " + what + ": " + errno_text(err));
  };

  for (const auto& [data, size] : pieces) {
    const char* p = static_cast<const char*>(data);
    size_t left = size;
    while (left > 0) {
      const ssize_t n = ::write(fd, p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        fail("write failed", errno);
      }
      if (n == 0) fail("write failed", EIO);
      p += n;
      left -= size_t(n);
    }
  }
  while (::fsync(fd) != 0) {
    if (errno != EINTR) fail("fsync failed", errno);
  }
  if (overwrite) {
    if (::rename(tmp.c_str(), path.c_str()) != 0) fail("rename failed", errno);
  } else {
    const int err = install_noreplace(tmp, path);
    if (err == EEXIST) {
      ::close(fd);
      ::unlink(tmp.c_str());
      throw FileExistsError(path + " exists; pass --overwrite to replace it");
    }
    if (err != 0) fail("cannot create the file", err);
  }
  const int close_rc = ::close(fd);  // (releases the lock)
  fd = -1;
  if (close_rc != 0 && errno != EINTR) fail("close failed", errno);
  fsync_dir(dir);
}

std::vector<uint8_t> read_file_bytes(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    throw std::runtime_error("cannot open " + path + ": " + errno_text(err));
  }
  // Read straight into the result; one spare byte lets the final read see end-of-file
  // without growing the buffer when the size from fstat is exact.
  std::vector<uint8_t> out;
  struct stat st;
  size_t cap = size_t(1) << 16;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
    cap = size_t(st.st_size) + 1;
  }
  out.resize(cap);
  size_t len = 0;
  for (;;) {
    if (len == out.size()) out.resize(out.size() * 2);
    const ssize_t n = ::read(fd, out.data() + len, out.size() - len);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      throw std::runtime_error("cannot read " + path + ": " + errno_text(err));
    }
    if (n == 0) break;
    len += size_t(n);
  }
  out.resize(len);
  ::close(fd);
  return out;
}

}  // namespace sdgen
