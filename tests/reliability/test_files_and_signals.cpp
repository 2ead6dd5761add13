// Files under stress through the sdgen binary: killed and interrupted runs, two runs on one
// folder, other programs' and other hosts' temporaries, a full disk, a read-only folder and a
// closed stdout. Whatever happens, every image on disk is whole and none is lost.
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include "reliability_util.h"

namespace sdgen::test {
namespace {

// A run long enough to be interrupted: 2 prompts x 3 images of 25 steps, JSON lines on stdout.
std::vector<std::string> long_run(const fs::path& dir, const std::string& file) {
  return {"--model",
          ref("tiny-sd1.safetensors"),
          "--prompt-file",
          file,
          "--size",
          "64x64",
          "--steps",
          "25",
          "--device",
          "cpu",
          "--seed",
          "11",
          "--batch-count",
          "3",
          "--json",
          "-o",
          (dir / "out" / "{index:02}.png").string()};
}

size_t count_status(const std::string& json_lines, const std::string& status) {
  size_t n = 0;
  std::istringstream in(json_lines);
  for (std::string l; std::getline(in, l);) n += nlohmann::json::parse(l)["status"] == status;
  return n;
}

TEST_F(Reliability, KilledMidBatchThenRerunFinishesIt) {
  const auto file = write("p.txt", "a red fox\na lighthouse at dusk\n");
  SdgenProcess first(long_run(dir, file), dir);
  ASSERT_TRUE(wait_for(dir / "out/00.png"));
  first.kill(SIGKILL);
  first.wait();
  // whatever exists is whole; the killed write's temporary may be left
  const auto before = whole_images(dir / "out", /*allow_temporaries=*/true);
  ASSERT_GE(before.size(), 1u);
  ASSERT_LT(before.size(), 6u) << "the run finished before it was killed";

  auto r = run_sdgen(long_run(dir, file), dir);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(count_status(r.out, "skipped"), before.size());
  EXPECT_EQ(count_status(r.out, "written"), 6 - before.size());
  // and the killed run's temporary is gone (its process is)
  EXPECT_EQ(whole_images(dir / "out").size(), 6u);
}

TEST_F(Reliability, SigintAndSigtermExit130WithWholeFilesOnly) {
  const auto file = write("p.txt", "a red fox\na lighthouse at dusk\n");
  for (const int sig : {SIGINT, SIGTERM}) {
    fs::remove_all(dir / "out");
    SdgenProcess run(long_run(dir, file), dir);
    ASSERT_TRUE(wait_for(dir / "out/00.png"));
    run.kill(sig);
    auto r = run.wait();
    EXPECT_EQ(r.status, 130) << r.err;
    EXPECT_TRUE(contains(r.err, "interrupted: ")) << r.err;
    EXPECT_LT(whole_images(dir / "out").size(), 6u);  // no temporaries either
    r = run_sdgen(long_run(dir, file), dir);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(whole_images(dir / "out").size(), 6u);
  }
}

TEST_F(Reliability, TwoProcessesShareOneFolder) {
  // Each image is written by exactly one of them (the other skips it, finding it there or
  // losing the race to link it in place), and none is lost.
  const auto file = write("p.txt", "a red fox\na lighthouse at dusk\n");
  fs::create_directories(dir / "a");
  fs::create_directories(dir / "b");
  SdgenProcess one(long_run(dir, file), dir / "a");
  SdgenProcess two(long_run(dir, file), dir / "b");
  const auto r1 = one.wait(), r2 = two.wait();
  ASSERT_EQ(r1.status, 0) << r1.err;
  ASSERT_EQ(r2.status, 0) << r2.err;
  EXPECT_EQ(count_status(r1.out, "failed") + count_status(r2.out, "failed"), 0u);
  EXPECT_EQ(count_status(r1.out, "written") + count_status(r2.out, "written"), 6u);
  EXPECT_EQ(count_status(r1.out, "written") + count_status(r1.out, "skipped"), 6u);
  EXPECT_EQ(whole_images(dir / "out").size(), 6u);
}

// A temporary name of sdgen's pattern for another owner.
std::string temporary_of(const std::string& boot, uint64_t pid_namespace, long pid) {
  char name[200];
  std::snprintf(name, sizeof(name), ".x.png.sdgen-tmp.%s.%llu.%ld.0123456789abcdef", boot.c_str(),
                static_cast<unsigned long long>(pid_namespace), pid);
  return name;
}

TEST_F(Reliability, OnlyProvablyOrphanedTemporariesAreRemoved) {
  const auto& me = this_process();
  const pid_t dead = ::fork();
  if (dead == 0) _exit(0);
  ::waitpid(dead, nullptr, 0);
  fs::create_directories(dir / "out");
  const std::string other_boot = me.boot_id == "aaaaaaaaaaaa" ? "bbbbbbbbbbbb" : "aaaaaaaaaaaa";
  const std::vector<std::string> kept = {
      ".notes.txt.tmp-999999-mine",  // not sdgen's (the old clean-up took it)
      ".x.png.tmp-999999-0123456789abcdef",
      temporary_of(other_boot, me.pid_namespace, dead),        // another host on shared storage
      temporary_of(me.boot_id, me.pid_namespace + 1, dead),    // another container
      temporary_of(me.boot_id, me.pid_namespace, ::getpid()),  // a live process
      temporary_of(me.boot_id, me.pid_namespace, dead) + "0",  // not quite the pattern
  };
  for (const auto& name : kept) write("out/" + name, "someone's data");
  const std::string orphan = temporary_of(me.boot_id, me.pid_namespace, dead);
  write("out/" + orphan, "half an image");
  // a dead pid whose file is still locked: the pid was reused by a process that writes it
  const std::string reused = ".y.png" + orphan.substr(6);
  write("out/" + reused, "being written");
  const int fd = ::open((dir / "out" / reused).c_str(), O_RDONLY);
  ASSERT_EQ(::flock(fd, LOCK_EX), 0);

  auto r = run_sdgen(args({"--prompt", "x", "-o", (dir / "out/a.png").string()}), dir);
  ::close(fd);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_FALSE(fs::exists(dir / "out" / orphan));
  EXPECT_TRUE(fs::exists(dir / "out" / reused));
  for (const auto& name : kept) EXPECT_EQ(slurp(dir / "out" / name), "someone's data") << name;
}

TEST_F(Reliability, FullDiskLosesNothing) {
  // a 4 KiB file system: the image (about 9 KiB) does not fit
  if (!mount_tmpfs(dir / "full", "size=4k")) GTEST_SKIP() << "needs root to mount a tmpfs";
  auto r =
      run_sdgen(args({"--prompt", "x", "--seed", "1", "-o", (dir / "full/a.png").string()}), dir);
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_TRUE(contains(r.err, "No space left on device")) << r.err;
  EXPECT_TRUE(fs::is_empty(dir / "full"));  // no partial image, no temporary
  // the image made elsewhere is the one the full disk could not hold
  r = run_sdgen(args({"--prompt", "x", "--seed", "1", "-o", (dir / "a.png").string()}), dir);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_GT(fs::file_size(dir / "a.png"), 4096u);
}

TEST_F(Reliability, ReadOnlyFolderIsAnErrorBeforeLoading) {
  const auto folder = dir / "ro";
  if (::geteuid() == 0) {
    if (!mount_tmpfs(folder, "size=64k", MS_RDONLY)) GTEST_SKIP() << "cannot mount a tmpfs";
  } else {
    fs::create_directories(folder);
    fs::permissions(folder, fs::perms::owner_read | fs::perms::owner_exec);
  }
  auto r = run_sdgen(args({"--prompt", "x", "-o", (folder / "sub/a.png").string()}), dir);
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_TRUE(contains(
      r.err, "cannot write into " + (folder / "sub").string() + ": " + folder.string() + ": "))
      << r.err;
  EXPECT_TRUE(contains(r.err, "Read-only file system") || contains(r.err, "Permission denied"))
      << r.err;
  EXPECT_FALSE(contains(r.err, "loaded "));
}

TEST_F(Reliability, ClosedStdoutStopsTheRunWith141) {
  // `sdgen --json | head -1`: SIGPIPE used to kill the run with an image written, unreported
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const auto argv_strings = args(
      {"--prompt", "x", "--batch-count", "4", "--json", "-o", (dir / "out/{index}.png").string()});
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], 1);
    ::close(fds[0]);
    ::close(fds[1]);
    if (!std::freopen((dir / "stderr.txt").c_str(), "w", stderr)) _exit(126);
    std::vector<char*> argv{const_cast<char*>(SDGEN_BINARY)};
    for (const auto& a : argv_strings) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(SDGEN_BINARY, argv.data());
    _exit(127);
  }
  ::close(fds[1]);
  std::string first;
  for (char c; ::read(fds[0], &c, 1) == 1 && c != '\n';) first += c;
  ::close(fds[0]);  // as head -1 exits
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 141);
  EXPECT_EQ(nlohmann::json::parse(first)["status"], "written");
  const auto err = slurp(dir / "stderr.txt");
  EXPECT_TRUE(contains(err, "stdout was closed: stopped after ")) << err;
  const auto images = whole_images(dir / "out");
  EXPECT_GE(images.size(), 1u);
  EXPECT_LT(images.size(), 4u);
}

}  // namespace
}  // namespace sdgen::test
