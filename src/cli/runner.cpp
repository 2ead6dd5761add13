// Running a job list: skip what exists, load the model once per device, render in batches
// drawn lazily from the list, write each PNG atomically, report per image (log, JSON lines),
// stop cleanly on a signal or when stdout closes.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "cli.h"
#include "progress.h"
#include "sdgen/io/model_hash.h"
#include "sdgen/io/output_template.h"
#include "sdgen/io/png.h"
#include "sdgen/pipeline/pipeline.h"
#include "sdgen/pipeline/runtime.h"
#include "sdgen/text/tokenizer.h"
#include "sdgen/util/fs.h"
#include "sdgen/util/temporaries.h"

namespace sdgen::cli {
namespace {

namespace fs = std::filesystem;

std::atomic<int> g_signal{0};
std::atomic<bool> g_stdout_closed{false};

extern "C" void on_signal(int sig) { g_signal.store(sig); }

bool stopping() { return g_signal.load() != 0 || g_stdout_closed.load(); }

struct Interrupted : std::runtime_error {
  Interrupted() : std::runtime_error("interrupted") {}
};

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

// Whether the file at `path` starts with the PNG signature: --overwrite replaces only PNGs, so
// that a stray output name never destroys a user's other files.
bool is_png_file(const std::string& path) {
  static const unsigned char kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  std::ifstream in(path, std::ios::binary);
  char head[8] = {};
  return in.read(head, 8) && std::memcmp(head, kSignature, 8) == 0;
}

// What is at a job's output path now.
enum class Existing { kNone, kPng, kOtherFile, kFolder };
Existing existing(const std::string& path) {
  std::error_code ec;
  const auto st = fs::status(path, ec);
  if (ec || !fs::exists(st)) return Existing::kNone;
  if (fs::is_directory(st)) return Existing::kFolder;
  return is_png_file(path) ? Existing::kPng : Existing::kOtherFile;
}

// Throws UsageError when images cannot be written into `folder`: its nearest existing
// ancestor is not a folder, or cannot be written (permissions, a read-only file system).
void check_writable_folder(const std::string& folder) {
  fs::path existing_part = folder;
  std::error_code ec;
  while (!fs::exists(existing_part, ec) && existing_part.has_parent_path() &&
         existing_part.parent_path() != existing_part)
    existing_part = existing_part.parent_path();
  if (existing_part.empty()) existing_part = ".";
  if (!fs::is_directory(existing_part, ec))
    throw UsageError("cannot write into " + folder + ": " + existing_part.string() +
                     " is a file, not a folder; choose another -o folder");
  if (::access(existing_part.c_str(), W_OK | X_OK) != 0)
    throw UsageError("cannot write into " + folder + ": " + existing_part.string() + ": " +
                     std::strerror(errno) + "; choose another -o folder");
}

struct Reporter {
  Reporter(const CliOptions& options, Progress& p, std::string model)
      : o(options), progress(p), model_name(std::move(model)) {}
  const CliOptions& o;
  Progress& progress;
  std::string model_name;
  std::mutex mu;
  uint64_t written = 0, skipped = 0, failed = 0;

  void report(const Job& job, const GenerationParams& p, const std::string& status, double seconds,
              const std::string& error = "", const Image* image = nullptr) {
    std::lock_guard<std::mutex> lock(mu);
    (status == "written" ? written : status == "skipped" ? skipped : failed)++;
    if (o.json && !g_stdout_closed.load()) {
      nlohmann::json j = params_json(p);
      j["index"] = job.index;
      j["line"] = job.line;
      j["path"] = job.output;
      j["model"] = model_name;
      if (image) {
        // the LoRAs and embeddings the image used, name -> short hash
        for (const auto& [key, used] : {std::make_pair("loras", &image->loras),
                                        std::make_pair("embeddings", &image->embeddings)}) {
          nlohmann::json m = nlohmann::json::object();
          for (const auto& [name, hash] : *used) m[name] = hash;
          j[key] = m;
        }
      }
      j["status"] = status;
      j["seconds"] = std::round(seconds * 1000) / 1000;
      if (!error.empty()) j["error"] = error;
      std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
      // The reader went away (`sdgen --json | head -1`): SIGPIPE is ignored, so the write
      // fails instead; the run stops after the images in hand, which are on disk.
      if (!std::cout) g_stdout_closed.store(true);
    }
    std::string line = status + " " + job.output;
    if (status == "written") {
      char buf[64];
      std::snprintf(buf, sizeof(buf), " (seed %llu, %.2f s)",
                    static_cast<unsigned long long>(p.seed), seconds);
      line += buf;
    } else if (status == "skipped") {
      line += " (exists; --overwrite replaces it)";
    } else {
      line += ": " + error;
    }
    progress.image_done(line);
  }
};

// The jobs of this shard, in index order, handed out in batches to the device workers: jobs
// whose output exists are reported as skipped on the way, and the folders written to are
// cleared of killed runs' temporaries the first time they come up. Nothing is kept per job.
class BatchSource {
 public:
  BatchSource(const CliOptions& o, const JobList& jobs, const Shard& shard, Reporter& reporter)
      : o_(o), jobs_(jobs), shard_(shard), reporter_(reporter), next_(shard.index) {}

  // The next batch: consecutive pending jobs whose settings let them share the UNet, up to
  // --batch-size; empty at the end.
  std::vector<Job> next() {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<Job> batch;
    while (static_cast<int>(batch.size()) < o_.batch_size) {
      std::optional<Job> job = std::move(held_);
      held_.reset();
      if (!job) job = pending();
      if (!job) break;
      if (!batch.empty() && !batchable(batch.front().params, job->params)) {
        held_ = std::move(job);
        break;
      }
      batch.push_back(std::move(*job));
    }
    return batch;
  }

 private:
  std::optional<Job> pending() {
    for (; next_ < jobs_.size(); next_ += shard_.count) {
      Job job = jobs_.job(next_);
      if (!o_.overwrite && existing(job.output) != Existing::kNone) {
        reporter_.report(job, job.params, "skipped", 0);
        continue;
      }
      auto dir = fs::path(job.output).parent_path().string();
      if (dir.empty()) dir = ".";
      if (cleaned_.insert(dir).second) remove_stale_temporaries(dir);
      next_ += shard_.count;
      return job;
    }
    return std::nullopt;
  }

  const CliOptions& o_;
  const JobList& jobs_;
  const Shard shard_;
  Reporter& reporter_;
  std::mutex mu_;
  uint64_t next_;
  std::optional<Job> held_;
  std::set<std::string> cleaned_;
};

struct Worker {
  torch::Device device;
  std::unique_ptr<Pipeline> pipeline;
};

std::string error_text(const std::exception& e) {
  const auto* c10 = dynamic_cast<const c10::Error*>(&e);
  return c10 ? c10->what_without_backtrace() : e.what();
}

}  // namespace

int run_jobs(const CliOptions& o, const ModelInfo& info, const RunTarget& target,
             const Shard& shard, std::shared_ptr<const Tokenizer> tokenizer, const JobList& jobs,
             std::shared_ptr<const EmbeddingDatabase> embeddings) {
  const uint64_t in_shard =
      jobs.size() > shard.index ? (jobs.size() - shard.index - 1) / shard.count + 1 : 0;

  // What is there already, before anything loads: existing images are done (their jobs are
  // skipped), what is not an image is an error (never replaced, not even by --overwrite), and
  // so is a folder that cannot be written. Beyond kCheckedJobs images, up to the first job
  // with work to do (the rest are checked as they come).
  uint64_t pending = 0;
  std::set<std::string> folders;
  for (uint64_t i = shard.index; i < jobs.size(); i += shard.count) {
    const std::string output = jobs.job(i).output;
    const Existing e = existing(output);
    if (e == Existing::kFolder)
      throw UsageError("the output " + output + " is a folder; choose another -o name");
    if (e == Existing::kOtherFile && o.overwrite)
      throw UsageError("the output " + output +
                       " exists and is not a PNG image; --overwrite replaces only PNG files, so "
                       "move it away or choose another -o name");
    if (e != Existing::kNone && !o.overwrite) continue;
    ++pending;
    auto folder = fs::path(output).parent_path().string();
    if (folders.size() < 10000 && folders.insert(folder.empty() ? "." : folder).second)
      check_writable_folder(folder.empty() ? "." : folder);
    if (in_shard > kCheckedJobs) break;
  }
  Progress progress(in_shard, o.quiet);
  Reporter reporter(o, progress, file_stem(o.model));
  if (shard.count > 1)
    progress.log("shard " + std::to_string(shard.index) + "/" + std::to_string(shard.count) + ": " +
                 std::to_string(in_shard) + " of " + std::to_string(jobs.size()) + " images");
  BatchSource source(o, jobs, shard, reporter);
  if (pending == 0) {
    source.next();  // reports every job as skipped
    progress.finish();
    return 0;
  }

  install_signal_handlers();
  // (a diffusers folder is named by its folder and hashed by its UNet weights)
  const ModelStamp stamp{file_stem(o.model),
                         model_hash(info.hash_file.empty() ? o.model : info.hash_file),
                         o.vae.empty() ? "" : file_stem(o.vae)};
  std::vector<Worker> workers;
  for (const auto& d : target.devices) workers.push_back({d, nullptr});
  std::mutex load_mu;
  std::exception_ptr load_error;

  auto work = [&](Worker& w) {
    try {
      const auto t0 = std::chrono::steady_clock::now();
      LoadOptions load = o.load_options();
      load.device = w.device;
      load.dtype = target.dtype;
      load.vae_dtype = target.vae_dtype;
      auto model = load_model(load, info);
      {
        std::lock_guard<std::mutex> lock(load_mu);
        if (&w == &workers.front())
          for (const auto& note : model.notes) progress.log(note);
      }
      w.pipeline = std::make_unique<Pipeline>(std::move(model), tokenizer, w.device, target.dtype);
      if (o.vae_tiling) w.pipeline->set_vae_tiling(Pipeline::VaeTilingMode::kOn);
      w.pipeline->set_lora_dirs(lora_search_dirs(o));
      if (embeddings) w.pipeline->prompts().set_embeddings(embeddings);
      char took[32];
      std::snprintf(took, sizeof(took), "%.2f",
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      progress.log("loaded " + o.model + " on " + w.device.str() + " (" +
                   std::string(c10::toString(target.dtype)) + ") in " + took + " s");
    } catch (...) {
      std::lock_guard<std::mutex> lock(load_mu);
      if (!load_error) load_error = std::current_exception();
      return;
    }
    PipelineEvents events;
    events.warn = [&](const std::string& m) { progress.log("warning: " + m); };
    while (!stopping()) {
      const std::vector<Job> batch = source.next();
      if (batch.empty()) break;
      std::vector<GenerationParams> params;
      for (const Job& j : batch) params.push_back(j.params);
      const int n = static_cast<int>(batch.size());
      events.step = [&](int step, int steps, const torch::Tensor&) {
        if (g_signal.load()) throw Interrupted();
        progress.step(step + 1, steps, n);
      };
      const auto t0 = std::chrono::steady_clock::now();
      std::vector<Image> images;
      try {
        images = w.pipeline->generate_batch(params, events);
      } catch (const Interrupted&) {
        return;
      } catch (const std::exception& e) {
        for (const Job& j : batch) reporter.report(j, j.params, "failed", 0, error_text(e));
        continue;
      }
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / n;
      for (int i = 0; i < n; ++i) {
        const Job& job = batch[i];
        const auto& p = images[i].params;
        try {
          const auto png =
              encode_png(images[i].rgb.data(), images[i].width, images[i].height,
                         {{"parameters", format_infotext(image_infotext(images[i], stamp))}});
          make_parent_dirs(job.output);
          // (a file that appeared meanwhile and is not a PNG stays, as in the scan above)
          if (o.overwrite && existing(job.output) == Existing::kOtherFile)
            throw std::runtime_error(job.output +
                                     " appeared and is not a PNG image; it was not replaced");
          write_file_atomic(job.output, png.data(), png.size(), o.overwrite);
          reporter.report(job, p, "written", seconds, "", &images[i]);
        } catch (const FileExistsError&) {
          reporter.report(job, p, "skipped", 0);  // appeared meanwhile (another process)
        } catch (const std::exception& e) {
          reporter.report(job, p, "failed", 0, error_text(e));
        }
      }
    }
  };

  if (workers.size() == 1) {
    work(workers.front());
  } else {
    std::vector<std::thread> threads;
    for (auto& w : workers) threads.emplace_back(work, std::ref(w));
    for (auto& t : threads) t.join();
  }
  progress.finish();
  if (load_error && reporter.written == 0 && reporter.failed == 0)
    std::rethrow_exception(load_error);
  if (load_error) {
    try {
      std::rethrow_exception(load_error);
    } catch (const std::exception& e) {
      progress.log("error: a device failed to load the model: " + error_text(e));
    }
  }
  if (g_signal.load()) {
    progress.log("interrupted: " + std::to_string(reporter.written) +
                 " images written; run the same command again to finish the batch");
    return 130;
  }
  if (g_stdout_closed.load()) {
    progress.log("stdout was closed: stopped after " + std::to_string(reporter.written) +
                 " images written; run the same command again to finish the batch");
    return 141;  // as a shell reports a process ended by SIGPIPE
  }
  // jobs never attempted because every device failed to load
  const uint64_t attempted = reporter.written + reporter.skipped + reporter.failed;
  if (attempted < in_shard) return 1;
  return reporter.failed ? 1 : 0;
}

}  // namespace sdgen::cli
