// Running the sdgen binary from tests: arguments, optional stdin, captured stdout and stderr.
#pragma once
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace sdgen::test {

struct RunResult {
  int status;  // exit status; -1 when killed by a signal
  std::string out, err;
};

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A running sdgen whose output goes to files in `dir`; the sha256 cache is kept in `dir` too.
class SdgenProcess {
 public:
  SdgenProcess(const std::vector<std::string>& args, const std::filesystem::path& dir,
               const std::string& stdin_text = "",
               const std::vector<std::pair<std::string, std::string>>& env = {})
      : dir_(dir) {
    const auto in_file = dir / "stdin.txt";
    std::ofstream(in_file) << stdin_text;
    pid_ = ::fork();
    if (pid_ == 0) {
      if (!std::freopen(in_file.c_str(), "r", stdin) ||
          !std::freopen((dir / "stdout.txt").c_str(), "w", stdout) ||
          !std::freopen((dir / "stderr.txt").c_str(), "w", stderr))
        _exit(126);
      setenv("XDG_CACHE_HOME", (dir / "cache").c_str(), 1);
      for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
      std::vector<char*> argv{const_cast<char*>(SDGEN_BINARY)};
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv(SDGEN_BINARY, argv.data());
      _exit(127);
    }
  }
  void kill(int sig) { ::kill(pid_, sig); }
  // `usage` (optional): the process' resource use, peak memory (ru_maxrss, KiB) included.
  RunResult wait(struct rusage* usage = nullptr) {
    int status = 0;
    struct rusage ignored {};
    ::wait4(pid_, &status, 0, usage ? usage : &ignored);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(dir_ / "stdout.txt"),
            slurp(dir_ / "stderr.txt")};
  }

 private:
  std::filesystem::path dir_;
  pid_t pid_ = -1;
};

// The command line the issues' checks run (sdgen --model M --tokenizer V --prompt P
// --negative-prompt "" --steps 6 --cfg-scale 7.5 --sampler euler --scheduler discrete --seed 1234
// --size 64x64 --device cpu --dtype fp32 -o OUT); tests change single values by position.
inline std::vector<std::string> check_args(const std::string& model, const std::string& vocab,
                                           const std::string& prompt, const std::string& out) {
  return {"--model",
          model,
          "--tokenizer",
          vocab,
          "--prompt",
          prompt,
          "--negative-prompt",
          "",
          "--steps",
          "6",
          "--cfg-scale",
          "7.5",
          "--sampler",
          "euler",
          "--scheduler",
          "discrete",
          "--seed",
          "1234",
          "--size",
          "64x64",
          "--device",
          "cpu",
          "--dtype",
          "fp32",
          "-o",
          out};
}

inline RunResult run_sdgen(const std::vector<std::string>& args, const std::filesystem::path& dir,
                           const std::string& stdin_text = "",
                           const std::vector<std::pair<std::string, std::string>>& env = {}) {
  return SdgenProcess(args, dir, stdin_text, env).wait();
}

}  // namespace sdgen::test
