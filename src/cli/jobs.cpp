// The job list of a run: command-line parameters, prompt-file lines over them, batch counts,
// seeds and output names, all checked against the model (its limits and memory needs on the
// device) before its weights load.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>
#include <set>
#include <tuple>
#include <unordered_map>

#include "cli.h"
#include "sdgen/io/image_read.h"
#include "sdgen/io/output_template.h"
#include "sdgen/io/safetensors.h"
#include "sdgen/job/prompt_file.h"
#include "sdgen/loading/lora.h"
#include "sdgen/models/blocks.h"
#include "sdgen/models/memory.h"
#include "sdgen/pipeline/runtime.h"
#include "sdgen/text/tokenizer.h"

namespace sdgen::cli {
namespace {

namespace fs = std::filesystem;

uint64_t random_seed() {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32 | rd()) % 4294967296ULL;
}

// The folder a template's names start in: its text up to the first placeholder, up to the
// last '/' ("outputs/{index}.png" -> "outputs"; "{index}.png" -> ".").
fs::path template_folder(const std::string& tmpl) {
  const std::string fixed = tmpl.substr(0, tmpl.find('{'));
  const auto slash = fixed.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? fs::path("/") : fs::path(fixed.substr(0, slash));
}

// Whether `path` lies in `folder` once both are absolute, with ".." and links resolved.
bool inside(const fs::path& path, const fs::path& folder) {
  std::error_code ec;
  const auto rel = fs::weakly_canonical(fs::absolute(path, ec), ec)
                       .lexically_relative(fs::weakly_canonical(fs::absolute(folder, ec), ec));
  return !rel.empty() && *rel.begin() != "..";
}

std::string gib(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f GiB", bytes / (1ull << 30));
  return buf;
}

// Checks that images fit in the target's memory (models/memory.h), once per size.
class MemoryCheck {
 public:
  MemoryCheck(const ModelInfo& info, const RunTarget& target, int batch_size)
      : info_(info),
        target_(target),
        available_(available_memory_bytes(target.devices.front())),
        element_(target.dtype == torch::kFloat ? 4 : 2),
        // the CPU runs every image's CFG pair as its own batch; a GPU --batch-size images
        images_(target.devices.front().is_cpu() ? 1 : batch_size) {
    for (const auto& name : info.source.names()) {
      const auto* t = info.source.find(name);
      if (t->dtype == DType::F16 || t->dtype == DType::BF16 || t->dtype == DType::F32)
        weights_ += static_cast<double>(t->numel()) * element_;
    }
  }
  void check(const GenerationParams& p, const std::string& where);

 private:
  MemoryEstimate need(int w, int h, int64_t rows) const {
    return estimate_memory(info_.config, w, h, rows, element_, weights_, attention_is_quadratic());
  }
  const ModelInfo& info_;
  const RunTarget& target_;
  double available_, element_, weights_ = 0;
  int64_t images_;
  std::set<std::tuple<int, int, int64_t>> fits_;
};

void MemoryCheck::check(const GenerationParams& p, const std::string& where) {
  if (available_ <= 0) return;  // not known here
  // an open native size (SD 2.x before its prediction is settled) is at most 768
  const int native = info_.config.native_size > 0 ? info_.config.native_size : 768;
  int w = p.width ? p.width : native, h = p.height ? p.height : native;
  if (p.hires) {
    // the second pass runs at the hires size (the first is smaller)
    GenerationParams at = p;
    at.width = w;
    at.height = h;
    const HiresSize s = hires_size(at);
    w = std::max(w, s.width);
    h = std::max(h, s.height);
  }
  const int64_t rows = images_ * (p.cfg_scale == 1.0 ? 1 : 2);
  if (fits_.count({w, h, rows})) return;
  const auto needed = need(w, h, rows);
  const double available = available_;
  // the VAE tiles when its whole-image pass would not fit (pipeline.h VaeTilingMode::kAuto)
  if (needed.total_tiled() <= available) {
    fits_.insert({w, h, rows});
    return;
  }
  // the largest size of this aspect ratio that fits, in steps of the VAE factor
  const int f = info_.config.vae.downsample_factor();
  int best_w = 0, best_h = 0;
  for (int lo = 1, hi = std::max(w, h) / f; lo <= hi;) {
    const int mid = (lo + hi) / 2;
    const int cw =
        std::max(f, static_cast<int>(std::lround(double(mid) * f * w / std::max(w, h) / f)) * f);
    const int ch =
        std::max(f, static_cast<int>(std::lround(double(mid) * f * h / std::max(w, h) / f)) * f);
    if (need(cw, ch, rows).total_tiled() <= available) {
      best_w = cw;
      best_h = ch;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  std::string msg = where + "size " + std::to_string(w) + "x" + std::to_string(h) +
                    " needs about " + gib(needed.total_tiled()) + " of memory on " +
                    target_.devices.front().str() + " (weights " + gib(needed.weights) +
                    ", the largest attention " + gib(needed.attention) + "); " + gib(available) +
                    " is available. ";
  msg += best_w > 0 ? "The largest size of this shape that fits is " + std::to_string(best_w) +
                          "x" + std::to_string(best_h) + "; "
                    : "Not even the smallest size fits; ";
  msg += "render at the model's native size (" + std::to_string(native) + "x" +
         std::to_string(native) + ") and upscale the image (the VAE already tiles)" +
         (target_.devices.front().is_cpu() && attention_is_quadratic()
              ? ", or use a libtorch >= 2.0 build, whose attention needs far less memory"
              : "");
  throw UsageError(msg);
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

JobList::JobList(std::vector<Line> lines) : lines_(std::move(lines)) {
  for (auto& l : lines_) {
    l.first = size_;
    size_ += static_cast<uint64_t>(l.params.batch_count);
  }
}

Job JobList::job(uint64_t index) const {
  // the last line whose first image is at or before `index`
  auto it = std::upper_bound(lines_.begin(), lines_.end(), index,
                             [](uint64_t i, const Line& l) { return i < l.first; });
  const Line& l = *std::prev(it);
  Job j;
  j.index = index;
  j.line = l.line;
  j.params = l.params.image;
  j.params.seed = l.params.image.seed + (index - l.first);
  j.output = expand_output_template(l.params.output,
                                    TemplateValues{index, j.params.seed, l.line, j.params.prompt});
  return j;
}

RunTarget resolve_target(const CliOptions& o) {
  if (!o.device.empty() && !o.devices.empty())
    throw UsageError("give either --device or --devices, not both");
  RunTarget t;
  const std::string list = !o.devices.empty() ? o.devices : o.device;
  if (list.empty()) t.devices.push_back(parse_device(""));
  for (size_t start = 0; start < list.size();) {
    const size_t comma = list.find(',', start);
    t.devices.push_back(
        parse_device(list.substr(start, comma == std::string::npos ? comma : comma - start)));
    start = comma == std::string::npos ? list.size() : comma + 1;
  }
  t.dtype = parse_compute_dtype(o.dtype, t.devices.front());
  if (!o.vae_dtype.empty()) t.vae_dtype = parse_compute_dtype(o.vae_dtype, t.devices.front());
  return t;
}

Shard resolve_shard(const CliOptions& o) {
  try {
    return o.shard.empty() ? shard_from_environment() : parse_shard(o.shard);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
}

std::shared_ptr<const Tokenizer> load_run_tokenizer(const CliOptions& o, const ModelInfo& info) {
  const std::string path =
      o.tokenizer.empty() ? default_tokenizer(o.model, o.model_config) : o.tokenizer;
  std::shared_ptr<const Tokenizer> tokenizer;
  try {
    tokenizer = load_tokenizer(path);
  } catch (const std::runtime_error& e) {
    throw UsageError(e.what());  // a missing or broken vocabulary is the user's input
  }
  // An id past the embedding table would fail deep in the text encoder ("index out of range
  // in self") on the first prompt that uses it.
  auto check = [&](const ClipTextConfig& text, const char* which) {
    const auto rows = static_cast<size_t>(text.vocab_size);
    if (tokenizer->vocab_size() > rows)
      throw UsageError("the tokenizer " + path + " has " + std::to_string(tokenizer->vocab_size()) +
                       " tokens, but " + which + " of " + o.model + " embeds only " +
                       std::to_string(rows) + "; give the model's own tokenizer with --tokenizer");
  };
  check(info.config.text, "the text encoder");
  if (info.config.has_text_2()) check(info.config.text_2, "the second text encoder");
  return tokenizer;
}

std::vector<std::string> lora_search_dirs(const CliOptions& o) {
  std::vector<std::string> dirs = o.lora_dirs;
  std::error_code ec;
  const fs::path beside = fs::path(o.model).parent_path() / "loras";
  if (!o.model.empty() && fs::is_directory(beside, ec)) dirs.push_back(beside.string());
  if (const char* env = std::getenv("SDGEN_LORA_DIR"); env && *env) dirs.push_back(env);
  return dirs;
}

JobList build_jobs(const CliOptions& o, const ModelInfo& info, const RunTarget& target,
                   const std::function<void(const std::string&)>& log) {
  std::vector<JobLine> read;
  std::string label = "command line";
  if (!o.prompt_file.empty()) {
    try {
      read = read_prompt_file(o.prompt_file, o.prompt_format, o.job);
    } catch (const PromptFileError& e) {
      throw UsageError(e.what());
    } catch (const std::invalid_argument& e) {
      throw UsageError(e.what());
    }
    label = o.prompt_file == "-" ? "<stdin>" : o.prompt_file;
  } else {
    read.push_back({0, o.job, {}});  // the command line's own prompt
  }

  const ModelLimits limits = info.limits();
  MemoryCheck memory(info, target, o.batch_size);
  const fs::path output_folder = template_folder(o.job.output);
  std::vector<JobList::Line> lines;
  std::set<std::string> checked_images, checked_loras;
  const std::vector<std::string> loras = lora_search_dirs(o);
  for (const auto& d : o.lora_dirs) {
    std::error_code ec;
    if (!fs::is_directory(d, ec)) throw UsageError("--lora-dir " + d + ": no such folder");
  }
  uint64_t total = 0;
  bool all_indexed = true;
  for (auto& spec : read) {
    const std::string where = spec.line ? label + ":" + std::to_string(spec.line) + ": " : "";
    for (const auto& w : spec.warnings) log(where + w);
    JobParams& p = spec.params;
    try {
      finish_job(p, limits);
    } catch (const std::invalid_argument& e) {
      throw UsageError(where + e.what());
    }
    memory.check(p.image, where);
    // LoRAs are found now, so that a misspelt name stops the run before the model loads
    for (const auto& tag : image_loras(p.image)) {
      if (!checked_loras.insert(tag.name).second) continue;
      const std::string path = find_lora(tag.name, loras);
      if (path.empty()) {
        std::string searched;
        for (const auto& d : loras) searched += (searched.empty() ? "" : ", ") + d;
        throw UsageError(where + "LoRA '" + tag.name + "': no " + tag.name + ".safetensors in " +
                         (searched.empty() ? "any folder (give --lora-dir DIR)" : searched));
      }
      try {
        SafetensorsFile::open(path);
      } catch (const SafetensorsError& e) {
        throw UsageError(where + "LoRA '" + tag.name + "': " + e.what());
      }
    }
    // init images and masks are read now (once per file), so that a missing or broken one
    // stops the run before the model loads
    for (const auto* path : {&p.image.init_image, &p.image.mask}) {
      if (path->empty() || !checked_images.insert(*path).second) continue;
      try {
        if (path == &p.image.mask)
          read_mask(*path);
        else
          read_image_rgb(*path);
      } catch (const std::runtime_error& e) {
        throw UsageError(where + e.what());
      }
    }
    if (p.random_seed) {
      p.image.seed = random_seed();
      p.random_seed = false;
      log(where + "seed " + std::to_string(p.image.seed) + " (random)");
    }
    const auto count = static_cast<uint64_t>(p.batch_count);
    if (p.image.seed > UINT64_MAX - (count - 1))
      throw UsageError(where + "seed " + std::to_string(p.image.seed) + " + " +
                       std::to_string(count - 1) + " (the last of " + std::to_string(count) +
                       " images) overflows 64 bits; give a smaller --seed");
    // the names of a line differ only in placeholder values, which hold no '/' or '.': the
    // first name shows where all of them go
    const fs::path first = expand_output_template(
        p.output, TemplateValues{total, p.image.seed, spec.line, p.image.prompt});
    std::error_code ec;
    if (fs::is_directory(first, ec) || p.output.back() == '/')
      throw UsageError(where + "the output name " + first.string() +
                       " is a folder; give a file name template such as " +
                       (first / "{index:05}-{seed}.png").string());
    if (p.output != o.job.output && !o.allow_any_output &&
        !inside(first.parent_path(), output_folder))
      throw UsageError(where + "the output " + first.string() + " is outside " +
                       output_folder.string() +
                       ", the folder of -o; prompt-file outputs stay there unless "
                       "--allow-any-output is given");
    all_indexed &= p.output.find("{index") != std::string::npos;
    lines.push_back({spec.line, p, total});
    total += count;
  }
  JobList jobs(std::move(lines));

  // Two images must not share a name: compared by hash (a collision is checked exactly), up
  // to kCheckedJobs images; beyond, {index} in every template rules it out.
  if (total > kCheckedJobs) {
    if (!all_indexed)
      throw UsageError("this run makes " + std::to_string(total) + " images; above " +
                       std::to_string(kCheckedJobs) +
                       " every output template must hold {index}, so that no two names meet");
    return jobs;
  }
  std::unordered_multimap<size_t, uint64_t> seen;
  seen.reserve(static_cast<size_t>(total));
  for (uint64_t i = 0; i < total; ++i) {
    const Job job = jobs.job(i);
    const size_t hash = std::hash<std::string>()(job.output);
    const auto [begin, end] = seen.equal_range(hash);
    for (auto it = begin; it != end; ++it) {
      if (jobs.job(it->second).output != job.output) continue;
      const std::string where =
          job.line ? label + ":" + std::to_string(job.line) + ": " : std::string();
      throw UsageError(where + "images " + std::to_string(it->second) + " and " +
                       std::to_string(i) + " would both be written to " + job.output +
                       "; put {index} or {seed} in the output name (-o)");
    }
    seen.emplace(hash, i);
  }
  return jobs;
}

}  // namespace sdgen::cli
