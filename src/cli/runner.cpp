// Running a job list: skip what exists, load the model once per device, render in batches,
// write each PNG atomically, report per image (log, JSON lines), stop cleanly on a signal.
#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <filesystem>
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

namespace sdgen::cli {
namespace {

std::atomic<int> g_signal{0};

extern "C" void on_signal(int sig) { g_signal.store(sig); }

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

// Temporary files of a run that was killed (".<name>.tmp-<pid>-<hex>", see write_file_atomic)
// whose process is gone: removed before the folder is written again.
void remove_stale_temporaries(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return;
  while (auto* e = ::readdir(d)) {
    const std::string name = e->d_name;
    const auto pos = name.rfind(".tmp-");
    if (name.empty() || name[0] != '.' || pos == std::string::npos) continue;
    const long pid = std::strtol(name.c_str() + pos + 5, nullptr, 10);
    if (pid <= 0 || pid == ::getpid()) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // still running
    ::unlink((dir + "/" + name).c_str());
  }
  ::closedir(d);
}

struct Reporter {
  Reporter(const CliOptions& options, Progress& p, std::string model)
      : o(options), progress(p), model_name(std::move(model)) {}
  const CliOptions& o;
  Progress& progress;
  std::string model_name;
  std::mutex mu;
  int written = 0, skipped = 0, failed = 0;

  void report(const Job& job, const GenerationParams& p, const std::string& status, double seconds,
              const std::string& error = "") {
    std::lock_guard<std::mutex> lock(mu);
    (status == "written" ? written : status == "skipped" ? skipped : failed)++;
    if (o.json) {
      nlohmann::json j = params_json(p);
      j["index"] = job.index;
      j["line"] = job.line;
      j["path"] = job.output;
      j["model"] = model_name;
      j["status"] = status;
      j["seconds"] = std::round(seconds * 1000) / 1000;
      if (!error.empty()) j["error"] = error;
      std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
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

struct Worker {
  torch::Device device;
  std::unique_ptr<Pipeline> pipeline;
};

}  // namespace

int run_jobs(const CliOptions& o, const ModelInfo& info, const std::vector<Job>& all_jobs) {
  // This process' shard of the job list.
  Shard shard;
  try {
    shard = o.shard.empty() ? shard_from_environment() : parse_shard(o.shard);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  std::vector<const Job*> jobs;
  for (const auto& j : all_jobs)
    if (shard.contains(j.index)) jobs.push_back(&j);

  // Devices, resolved before anything is loaded.
  std::vector<std::string> device_names;
  const std::string list = !o.devices.empty() ? o.devices : o.device;
  if (list.empty()) device_names.push_back("");
  for (size_t start = 0; start < list.size();) {
    const size_t comma = list.find(',', start);
    device_names.push_back(list.substr(start, comma == std::string::npos ? comma : comma - start));
    start = comma == std::string::npos ? list.size() : comma + 1;
  }
  std::vector<Worker> workers;
  for (const auto& name : device_names) workers.push_back({parse_device(name), nullptr});
  const torch::ScalarType dtype = parse_compute_dtype(o.dtype, workers[0].device);
  std::optional<torch::ScalarType> vae_dtype;
  if (!o.vae_dtype.empty()) vae_dtype = parse_compute_dtype(o.vae_dtype, workers[0].device);

  Progress progress(jobs.size(), o.quiet);
  Reporter reporter(o, progress, file_stem(o.model));
  if (shard.count > 1)
    progress.log("shard " + std::to_string(shard.index) + "/" + std::to_string(shard.count) + ": " +
                 std::to_string(jobs.size()) + " of " + std::to_string(all_jobs.size()) +
                 " images");

  // Existing outputs are never replaced: those jobs are done already.
  std::vector<const Job*> pending;
  std::set<std::string> dirs;
  for (const Job* j : jobs) {
    std::error_code ec;
    if (!o.overwrite && std::filesystem::exists(j->output, ec)) {
      reporter.report(*j, j->params, "skipped", 0);
    } else {
      pending.push_back(j);
      const auto dir = std::filesystem::path(j->output).parent_path();
      dirs.insert(dir.empty() ? "." : dir.string());
    }
  }
  if (pending.empty()) {
    progress.finish();
    return reporter.failed ? 1 : 0;
  }
  for (const auto& d : dirs) remove_stale_temporaries(d);

  install_signal_handlers();
  std::shared_ptr<const Tokenizer> tokenizer;
  try {
    tokenizer = load_tokenizer(o.tokenizer.empty() ? default_tokenizer(o.model, o.model_config)
                                                   : o.tokenizer);
  } catch (const std::runtime_error& e) {
    throw UsageError(e.what());  // a missing or broken vocabulary is the user's input
  }
  const ModelStamp stamp{file_stem(o.model), model_hash(o.model),
                         o.vae.empty() ? "" : file_stem(o.vae)};

  // Batches: consecutive pending jobs whose settings let them share the UNet, up to
  // --batch-size images each.
  std::vector<std::vector<const Job*>> batches;
  for (const Job* j : pending) {
    if (batches.empty() || static_cast<int>(batches.back().size()) >= o.batch_size ||
        !batchable(batches.back().front()->params, j->params))
      batches.emplace_back();
    batches.back().push_back(j);
  }
  std::atomic<size_t> next_batch{0};
  std::mutex load_mu;
  std::exception_ptr load_error;

  auto work = [&](Worker& w) {
    try {
      const auto t0 = std::chrono::steady_clock::now();
      LoadOptions load = o.load_options();
      load.device = w.device;
      load.dtype = dtype;
      load.vae_dtype = vae_dtype;
      auto model = load_model(load, info);
      {
        std::lock_guard<std::mutex> lock(load_mu);
        if (&w == &workers.front())
          for (const auto& note : model.notes) progress.log(note);
      }
      w.pipeline = std::make_unique<Pipeline>(std::move(model), tokenizer, w.device, dtype);
      progress.log("loaded " + o.model + " on " + w.device.str() + " (" +
                   std::string(c10::toString(dtype)) + ") in " +
                   std::to_string(
                       std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count())
                       .substr(0, 5) +
                   " s");
    } catch (...) {
      std::lock_guard<std::mutex> lock(load_mu);
      if (!load_error) load_error = std::current_exception();
      return;
    }
    PipelineEvents events;
    events.warn = [&](const std::string& m) { progress.log("warning: " + m); };
    for (size_t b; !g_signal.load() && (b = next_batch.fetch_add(1)) < batches.size();) {
      const auto& batch = batches[b];
      std::vector<GenerationParams> params;
      for (const Job* j : batch) params.push_back(j->params);
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
        const std::string msg = dynamic_cast<const c10::Error*>(&e)
                                    ? static_cast<const c10::Error&>(e).what_without_backtrace()
                                    : e.what();
        for (const Job* j : batch) reporter.report(*j, j->params, "failed", 0, msg);
        continue;
      }
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / n;
      for (int i = 0; i < n; ++i) {
        const Job& job = *batch[i];
        const auto& p = images[i].params;
        try {
          const auto png = encode_png(images[i].rgb.data(), images[i].width, images[i].height,
                                      {{"parameters", format_infotext(make_infotext(p, stamp))}});
          make_parent_dirs(job.output);
          write_file_atomic(job.output, png.data(), png.size(), o.overwrite);
          reporter.report(job, p, "written", seconds);
        } catch (const FileExistsError&) {
          reporter.report(job, p, "skipped", 0);  // appeared meanwhile (another process)
        } catch (const std::exception& e) {
          reporter.report(job, p, "failed", 0, e.what());
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
      progress.log(std::string("error: a device failed to load the model: ") + e.what());
    }
  }
  if (g_signal.load()) {
    progress.log("interrupted: " + std::to_string(reporter.written) +
                 " images written; run the same command again to finish the batch");
    return 130;
  }
  // jobs never attempted because every device failed to load
  const int attempted = reporter.written + reporter.skipped + reporter.failed;
  if (attempted < static_cast<int>(jobs.size())) return 1;
  return reporter.failed ? 1 : 0;
}

}  // namespace sdgen::cli
