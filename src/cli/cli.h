// Pieces of the sdgen command line shared by its files: options, usage errors, job lists.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "sdgen/io/output_template.h"
#include "sdgen/job/params.h"
#include "sdgen/loading/model_loader.h"

namespace sdgen {
class Tokenizer;
class EmbeddingDatabase;
}  // namespace sdgen

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
  bool allow_any_output = false;            // prompt-file outputs outside the -o template's folder
  bool vae_tiling = false;                  // --vae-tiling: always tile (else when memory is short)
  std::vector<std::string> lora_dirs;       // --lora-dir, in order
  std::vector<std::string> embedding_dirs;  // --embedding-dir, in order
  LoadOptions load_options() const;         // model, vae, config and --prediction (not the device)
};

// Up to this many images a run checks every output before the model loads (names distinct,
// what exists at each path); beyond, names are distinct by {index} and each output is checked
// when its job comes (a check of millions of paths would delay the start by minutes).
constexpr uint64_t kCheckedJobs = 1000000;

// One image to make: the jobs are lines x batch_count in file order, so indices and seeds do
// not depend on sharding or batch size.
struct Job {
  uint64_t index = 0;
  int line = 0;  // prompt-file line (0: the command line)
  GenerationParams params;
  std::string output;
};

// The jobs of a run, made one at a time from their lines: memory grows with the lines, not
// with the images (--batch-count 1000000 over a 10-line file is 10 lines).
class JobList {
 public:
  struct Line {
    int line = 0;
    JobParams params;    // finished: sampler resolved, seed drawn, checked
    uint64_t first = 0;  // index of its first image
  };
  JobList() = default;
  explicit JobList(std::vector<Line> lines);
  uint64_t size() const { return size_; }
  Job job(uint64_t index) const;
  const std::vector<Line>& lines() const { return lines_; }

 private:
  std::vector<Line> lines_;
  uint64_t size_ = 0;
};

// Where the images are made: the devices (--device / --devices) and dtypes, resolved before
// anything is loaded.
struct RunTarget {
  std::vector<torch::Device> devices;
  torch::ScalarType dtype = torch::kFloat;
  std::optional<torch::ScalarType> vae_dtype;
};
RunTarget resolve_target(const CliOptions& o);

// This process' part of the job list: --shard K/N, else the Slurm array task, else all.
Shard resolve_shard(const CliOptions& o);

// The jobs of a run from the command line and the prompt file, every line checked before any
// weight is loaded (errors name the file and line): against the model's limits, its memory
// needs on `target` (the size), and the output names (folders, collisions, the -o folder).
// Random seeds are drawn here, one per line, and reported through `log`.
JobList build_jobs(const CliOptions& o, const ModelInfo& info, const RunTarget& target,
                   const std::function<void(const std::string&)>& log);

// Runs the jobs (those of this shard) of the model `info` describes and returns the exit
// status: 0 when every job was written or skipped, 1 when some failed, 130 when interrupted by
// SIGINT/SIGTERM, 141 when stdout (--json) was closed. Outputs that are folders, and with
// --overwrite files that are not PNGs, are usage errors found before the model loads.
// `embeddings` (may be null): the textual-inversion embeddings every device's pipeline uses.
int run_jobs(const CliOptions& o, const ModelInfo& info, const RunTarget& target,
             const Shard& shard, std::shared_ptr<const Tokenizer> tokenizer, const JobList& jobs,
             std::shared_ptr<const EmbeddingDatabase> embeddings = nullptr);

// The run's tokenizer (--tokenizer, else default_tokenizer), checked against the model: every
// id it makes must be a row of the text encoders' embedding tables.
std::shared_ptr<const Tokenizer> load_run_tokenizer(const CliOptions& o, const ModelInfo& info);

// Where <lora:NAME> looks for NAME.safetensors: the --lora-dir folders, then loras/ beside the
// model, then $SDGEN_LORA_DIR (those that exist after the first).
std::vector<std::string> lora_search_dirs(const CliOptions& o);

// The run's textual-inversion embeddings (embeddings.cpp), read once before the model: the
// --embedding-dir folders, then embeddings/ beside the model, then $SDGEN_EMBEDDING_DIR, each
// file checked against the model's text encoders (skipped files are warned about through
// `log`). Throws UsageError naming a --embedding-dir folder that is missing or unreadable.
std::shared_ptr<const EmbeddingDatabase> load_run_embeddings(
    const CliOptions& o, const ModelInfo& info, const Tokenizer& tokenizer,
    const std::function<void(const std::string&)>& log);

// Where sdgen's shipped data lives (defaults.cpp).
// The tokenizer of `model`: the "tokenizer" its config JSON (`config`, else <model>.json)
// names, relative to the JSON; else a diffusers folder's tokenizer/; else tokenizer.model
// (SentencePiece) or tokenizer/ (CLIP BPE) beside the model; else the CLIP vocabulary sdgen
// ships.
std::string default_tokenizer(const std::string& model, const std::string& config = "");
// sdgen's own model (models/default/model.safetensors, see scripts/train-default-model.sh),
// used for `--model default` and when no --model is given; empty when it is not there.
std::string default_model();

}  // namespace sdgen::cli
