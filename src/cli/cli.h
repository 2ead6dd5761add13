// Pieces of the sdgen command line shared by its files: options, usage errors, job lists.
#pragma once
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "sdgen/job/params.h"
#include "sdgen/loading/model_loader.h"

namespace sdgen::cli {

// A mistake of the user's, found before any work: one line on stderr, exit status 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The run's options; the job parameters (job/params.h) are the defaults of every line.
struct CliOptions {
  std::string model, tokenizer, vae, model_config, device, devices, dtype, vae_dtype;
  std::string prompt_file, prompt_format, shard;
  JobParams job;
  int batch_size = 1;
  int threads = 0;  // CPU threads (0: OMP_NUM_THREADS, else every core)
  bool overwrite = false, quiet = false, json = false, list_samplers = false;
  LoadOptions load_options() const;  // model, vae, config and --prediction (not the device)
};

// One image to make: the expanded list is lines x batch_count in file order, so indices and
// seeds do not depend on sharding or batch size.
struct Job {
  uint64_t index = 0;
  int line = 0;  // prompt-file line (0: the command line)
  GenerationParams params;
  std::string output;
};

// The jobs of a run from the command line and the prompt file, every line checked against the
// model's limits (errors name the file and line) before any weight is loaded. Random seeds are
// drawn here, one per line, and reported through `log`.
std::vector<Job> build_jobs(const CliOptions& o, const ModelLimits& limits,
                            const std::function<void(const std::string&)>& log);

// Runs the jobs (those of this shard) of the model `info` describes and returns the exit
// status: 0 when every job was written or skipped, 1 when some failed, 130 when interrupted by
// SIGINT/SIGTERM.
int run_jobs(const CliOptions& o, const ModelInfo& info, const std::vector<Job>& jobs);

// Where sdgen's shipped data lives (defaults.cpp).
// The tokenizer of `model`: the "tokenizer" its config JSON (`config`, else <model>.json)
// names, relative to the JSON; else tokenizer.model (SentencePiece) or tokenizer/ (CLIP BPE)
// beside the model; else the CLIP vocabulary sdgen ships.
std::string default_tokenizer(const std::string& model, const std::string& config = "");
// sdgen's own model (models/default/model.safetensors, see scripts/train-default-model.sh),
// used for `--model default` and when no --model is given; empty when it is not there.
std::string default_model();

}  // namespace sdgen::cli
