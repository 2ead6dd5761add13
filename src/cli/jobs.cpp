// The job list of a run: command-line parameters, prompt-file lines over them, batch counts,
// seeds and output names, all checked against the model before its weights load.
#include <map>
#include <random>

#include "cli.h"
#include "sdgen/io/output_template.h"
#include "sdgen/job/prompt_file.h"

namespace sdgen::cli {
namespace {

uint64_t random_seed() {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32 | rd()) % 4294967296ULL;
}

}  // namespace

LoadOptions CliOptions::load_options() const {
  LoadOptions l;
  l.model_path = model;
  l.vae_path = vae;
  l.config_path = model_config;
  l.prediction = job.image.prediction;
  return l;
}

std::vector<Job> build_jobs(const CliOptions& o, const ModelLimits& limits,
                            const std::function<void(const std::string&)>& log) {
  std::vector<JobLine> lines;
  std::string label = "command line";
  if (!o.prompt_file.empty()) {
    try {
      lines = read_prompt_file(o.prompt_file, o.prompt_format, o.job);
    } catch (const PromptFileError& e) {
      throw UsageError(e.what());
    } catch (const std::invalid_argument& e) {
      throw UsageError(e.what());
    }
    label = o.prompt_file == "-" ? "<stdin>" : o.prompt_file;
  } else {
    lines.push_back({0, o.job, {}});  // the command line's own prompt
  }

  std::vector<Job> jobs;
  std::map<std::string, uint64_t> outputs;
  for (auto& spec : lines) {
    const std::string where = spec.line ? label + ":" + std::to_string(spec.line) + ": " : "";
    for (const auto& w : spec.warnings) log(where + w);
    JobParams& p = spec.params;
    try {
      finish_job(p, limits);
    } catch (const std::invalid_argument& e) {
      throw UsageError(where + e.what());
    }
    uint64_t base = p.image.seed;
    if (p.random_seed) {
      base = random_seed();
      log(where + "seed " + std::to_string(base) + " (random)");
    }
    const auto count = static_cast<uint64_t>(p.batch_count);
    if (base > UINT64_MAX - (count - 1))
      throw UsageError(where + "seed " + std::to_string(base) + " + " + std::to_string(count - 1) +
                       " (the last of " + std::to_string(count) +
                       " images) overflows 64 bits; give a smaller --seed");
    for (uint64_t i = 0; i < count; ++i) {
      Job job;
      job.index = jobs.size();
      job.line = spec.line;
      job.params = p.image;
      job.params.seed = base + i;
      try {
        job.output = expand_output_template(
            p.output, TemplateValues{job.index, job.params.seed, spec.line, p.image.prompt});
      } catch (const std::invalid_argument& e) {
        throw UsageError(where + e.what());
      }
      auto [it, fresh] = outputs.emplace(job.output, job.index);
      if (!fresh)
        throw UsageError(where + "images " + std::to_string(it->second) + " and " +
                         std::to_string(job.index) + " would both be written to " + job.output +
                         "; put {index} or {seed} in the output name (-o)");
      jobs.push_back(std::move(job));
    }
  }
  return jobs;
}

}  // namespace sdgen::cli
