// The job list of a run: command-line defaults, prompt-file lines over them, batch counts,
// seeds and output names, all validated before the model loads.
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <random>
#include <regex>

#include <nlohmann/json.hpp>

#include "cli.h"
#include "sdgen/io/output_template.h"
#include "sdgen/io/prompt_file.h"
#include "sdgen/text/tokenizer.h"

namespace sdgen::cli {

bool path_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

std::string file_stem(const std::string& path) {
  const auto slash = path.find_last_of('/');
  auto base = path.substr(slash == std::string::npos ? 0 : slash + 1);
  const auto dot = base.rfind('.');
  return dot == std::string::npos || dot == 0 ? base : base.substr(0, dot);
}

namespace {

// The shipped data folder (models/): $SDGEN_DATA_DIR, beside the executable, or the source tree.
std::string data_dir() {
  if (const char* d = std::getenv("SDGEN_DATA_DIR"); d && *d) return d;
  char exe[4096];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n > 0) {
    exe[n] = 0;
    std::string dir(exe);
    dir = dir.substr(0, dir.rfind('/'));
    for (const char* rel : {"/../share/sdgen/models", "/../models", "/models"})
      if (path_exists(dir + rel)) return dir + rel;
  }
  return SDGEN_SOURCE_DIR "/models";
}

uint64_t random_seed() {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32 | rd()) % 4294967296ULL;
}

}  // namespace

std::string default_tokenizer(const std::string& model, const std::string& config) {
  const auto slash = model.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : model.substr(0, slash);
  // the tokenizer the model's config JSON names (sdgen-train writes "tokenizer.model")
  std::string json_path = config;
  if (json_path.empty()) {
    const auto dot = model.rfind('.');
    if (dot != std::string::npos && (slash == std::string::npos || dot > slash))
      json_path = model.substr(0, dot) + ".json";
  }
  if (!json_path.empty() && path_exists(json_path)) {
    try {
      std::ifstream in(json_path);
      const auto j = nlohmann::json::parse(in);
      if (auto t = j.find("tokenizer"); t != j.end() && t->is_string()) {
        std::string name = t->get<std::string>();
        const auto js = json_path.find_last_of('/');
        if (!name.empty() && name[0] != '/' && js != std::string::npos)
          name = json_path.substr(0, js) + "/" + name;
        if (path_exists(name)) return name;
      }
    } catch (const std::exception&) {
      // an unreadable config is reported when the model loads
    }
  }
  // a SentencePiece model or a diffusers-style tokenizer/ beside the checkpoint, else the CLIP
  // vocabulary sdgen ships
  if (path_exists(dir + "/tokenizer.model")) return dir + "/tokenizer.model";
  if (path_exists(dir + "/tokenizer/vocab.json")) return dir + "/tokenizer";
  return data_dir() + "/clip/bpe_simple_vocab_16e6.txt.gz";
}

std::string default_model() {
  const std::string path = data_dir() + "/default/model.safetensors";
  return path_exists(path) ? path : "";
}

torch::Device parse_device(const std::string& s) {
  if (s == "cpu") return torch::kCPU;
  static const std::regex cuda("cuda(:([0-9]+))?");
  std::smatch m;
  if (!std::regex_match(s, m, cuda))
    throw UsageError("device must be cpu, cuda or cuda:N, not '" + s + "'");
  if (!torch::cuda::is_available())
    throw UsageError("device " + s + ": no CUDA GPU is available to this build; use --device cpu");
  const int index = m[2].matched ? std::stoi(m[2]) : 0;
  if (index >= static_cast<int>(torch::cuda::device_count()))
    throw UsageError("device " + s + ": only " + std::to_string(torch::cuda::device_count()) +
                     " CUDA device(s) present");
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
}

torch::ScalarType parse_dtype(const std::string& s, const torch::Device& device) {
  if (s == "fp32") return torch::kFloat;
  if (s == "fp16") {
    if (device.is_cpu())
      throw UsageError("--dtype fp16 is for CUDA devices; on the CPU use fp32 (or bf16)");
    return torch::kHalf;
  }
  if (s == "bf16") return torch::kBFloat16;
  throw UsageError("--dtype must be fp32, fp16 or bf16, not '" + s + "'");
}

std::vector<Job> build_jobs(const CliOptions& o,
                            const std::function<void(const std::string&)>& log) {
  std::vector<JobSpec> specs;
  std::string label = "command line";
  if (!o.prompt_file.empty()) {
    if (o.prompt_file != "-" && !path_exists(o.prompt_file))
      throw UsageError("--prompt-file " + o.prompt_file + ": no such file");
    try {
      specs = read_prompt_file(o.prompt_file, o.prompt_format);
    } catch (const PromptFileError& e) {
      throw UsageError(e.what());
    } catch (const std::invalid_argument& e) {
      throw UsageError(e.what());
    }
    label = o.prompt_file == "-" ? "<stdin>" : o.prompt_file;
  } else {
    specs.emplace_back();  // the command line's own prompt
  }
  if (o.batch_count < 1) throw UsageError("--batch-count must be at least 1");
  if (o.batch_size < 1) throw UsageError("--batch-size must be at least 1");
  try {
    validate_output_template(o.output);
  } catch (const std::invalid_argument& e) {
    throw UsageError(std::string("-o: ") + e.what());
  }

  std::vector<Job> jobs;
  std::map<std::string, uint64_t> outputs;
  for (const auto& spec : specs) {
    const std::string where = spec.line ? label + ":" + std::to_string(spec.line) + ": " : "";
    for (const auto& w : spec.warnings) log(where + w);
    GenerationParams p = o.params;
    if (!o.size.empty()) {
      try {
        std::tie(p.width, p.height) = parse_size_text(o.size);
      } catch (const std::invalid_argument& e) {
        throw UsageError(std::string("--size: ") + e.what());
      }
    }
    if (spec.prompt) p.prompt = *spec.prompt;
    if (spec.negative_prompt) p.negative_prompt = *spec.negative_prompt;
    if (spec.steps) p.steps = *spec.steps;
    if (spec.cfg_scale) p.cfg_scale = *spec.cfg_scale;
    if (spec.clip_skip) p.clip_skip = *spec.clip_skip;
    if (spec.width) p.width = *spec.width;
    if (spec.height) p.height = *spec.height;
    if (spec.sampler) p.sampler = *spec.sampler;
    if (spec.scheduler) p.scheduler = *spec.scheduler;
    try {
      // A line's own sampler label may set its schedule unless the line names one itself.
      const bool explicit_scheduler =
          spec.scheduler.has_value() || (o.scheduler_given && !spec.sampler.has_value());
      apply_sampler_alias(p.sampler, p.scheduler, explicit_scheduler);
      validate_sampler(p.sampler, p.steps, p.sampler_options);
      bool known = false;
      std::string valid;
      for (const auto& s : schedulers()) {
        known |= s.name == p.scheduler;
        valid += (valid.empty() ? "" : ", ") + s.name;
      }
      if (!known)
        throw std::invalid_argument("unknown scheduler '" + p.scheduler + "'; valid: " + valid);
      if (p.width < 0 || p.height < 0 || p.width % 8 || p.height % 8 ||
          (p.width == 0) != (p.height == 0))
        throw std::invalid_argument("size " + std::to_string(p.width) + "x" +
                                    std::to_string(p.height) +
                                    ": width and height must be positive multiples of 8");
      if (p.clip_skip < 1) throw std::invalid_argument("clip skip must be at least 1");
      parse_emphasis(p.emphasis);
    } catch (const std::invalid_argument& e) {
      throw UsageError(where + e.what());
    }

    const int64_t seed = spec.seed ? *spec.seed : o.seed;
    uint64_t base = 0;
    if (seed == -1) {
      base = random_seed();
      log(where + "seed " + std::to_string(base) + " (random)");
    } else {
      base = static_cast<uint64_t>(seed);
    }
    const int count = spec.batch_count ? *spec.batch_count : o.batch_count;
    if (base > UINT64_MAX - static_cast<uint64_t>(count))
      throw UsageError(where + "seed " + std::to_string(base) + " + " + std::to_string(count) +
                       " images overflows 64 bits");
    const std::string tmpl = spec.output ? *spec.output : o.output;
    for (int i = 0; i < count; ++i) {
      Job job;
      job.index = jobs.size();
      job.line = spec.line;
      job.params = p;
      job.params.seed = base + static_cast<uint64_t>(i);
      try {
        job.output = expand_output_template(
            tmpl, TemplateValues{job.index, job.params.seed, spec.line, p.prompt});
        validate_output_template(tmpl);
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
