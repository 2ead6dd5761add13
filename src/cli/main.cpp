// sdgen: the command line over the library. Parses options, loads the model once, renders,
// writes PNGs with A1111 infotext. User mistakes end with one line on stderr and exit 2;
// failures while working exit 1.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <random>
#include <regex>

#include <CLI/CLI.hpp>

#include "sdgen/io/checkpoint.h"
#include "sdgen/io/model_hash.h"
#include "sdgen/io/png.h"
#include "sdgen/pipeline/pipeline.h"
#include "sdgen/text/clip_tokenizer.h"
#include "sdgen/util/fs.h"

namespace {

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct CliOptions {
  std::string model, tokenizer, vae, model_config, output, device, dtype, size;
  sdgen::GenerationParams params;
  int64_t seed = -1;
  bool overwrite = false, quiet = false, list_samplers = false;
  bool scheduler_given = false;  // --scheduler on the command line (vs an A1111 sampler label)
};

void log(const CliOptions& o, const std::string& msg) {
  if (!o.quiet) std::cerr << "sdgen: " << msg << "\n";
}

std::string file_stem(const std::string& path) {
  auto base =
      path.substr(path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/') + 1);
  const auto dot = base.rfind('.');
  return dot == std::string::npos || dot == 0 ? base : base.substr(0, dot);
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

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
      if (exists(dir + rel)) return dir + rel;
  }
  return SDGEN_SOURCE_DIR "/models";
}

std::string default_tokenizer(const std::string& model) {
  // a diffusers-style tokenizer/ beside the checkpoint, else the CLIP vocabulary sdgen ships
  const auto dir =
      model.substr(0, model.find_last_of('/') == std::string::npos ? 0 : model.find_last_of('/'));
  const std::string beside = (dir.empty() ? "." : dir) + "/tokenizer";
  if (exists(beside + "/vocab.json")) return beside;
  return data_dir() + "/clip/bpe_simple_vocab_16e6.txt.gz";
}

torch::Device parse_device(const std::string& s) {
  if (s == "cpu") return torch::kCPU;
  static const std::regex cuda("cuda(:([0-9]+))?");
  std::smatch m;
  if (!std::regex_match(s, m, cuda))
    throw UsageError("--device must be cpu, cuda or cuda:N, not '" + s + "'");
  if (!torch::cuda::is_available())
    throw UsageError("--device " + s + ": no CUDA GPU is available to this build (" +
                     std::string(torch::cuda::device_count() ? "driver problem" : "none found") +
                     "); use --device cpu");
  const int index = m[2].matched ? std::stoi(m[2]) : 0;
  if (index >= static_cast<int>(torch::cuda::device_count()))
    throw UsageError("--device " + s + ": only " + std::to_string(torch::cuda::device_count()) +
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

void parse_size(const std::string& s, sdgen::GenerationParams& p) {
  static const std::regex re("([0-9]{1,6})[xX]([0-9]{1,6})");
  std::smatch m;
  if (!std::regex_match(s, m, re))
    throw UsageError("--size must be WIDTHxHEIGHT, e.g. 512x512, not '" + s + "'");
  p.width = std::stoi(m[1]);
  p.height = std::stoi(m[2]);
  if (p.width % 8 || p.height % 8 || p.width == 0 || p.height == 0)
    throw UsageError("--size " + s + ": width and height must be positive multiples of 8; try " +
                     std::to_string(std::max(8, p.width / 8 * 8)) + "x" +
                     std::to_string(std::max(8, p.height / 8 * 8)));
}

// outputs/NNNNN-SEED.png with the next free index, as the webuis number their outputs.
std::string default_output(uint64_t seed) {
  int next = 0;
  if (auto* dir = ::opendir("outputs")) {
    while (auto* e = ::readdir(dir)) {
      int n = 0;
      if (std::sscanf(e->d_name, "%5d-", &n) == 1) next = std::max(next, n + 1);
    }
    ::closedir(dir);
  }
  char name[64];
  std::snprintf(name, sizeof(name), "outputs/%05d-%llu.png", next,
                static_cast<unsigned long long>(seed));
  return name;
}

int run(const CliOptions& o) {
  if (o.list_samplers) {
    // name, A1111 label, description; the labels (and "... Karras" forms) work as --sampler
    for (const auto& s : sdgen::samplers())
      std::cout << s.name << "\t" << s.a1111_label << "\t" << s.description << "\n";
    for (const auto& s : sdgen::schedulers())
      std::cout << "scheduler " << s.name << "\t" << s.description << "\n";
    return 0;
  }
  if (o.model.empty())
    throw UsageError("--model PATH is required (an SD 1.x or 2.x .safetensors file)");
  if (!exists(o.model)) throw UsageError("--model " + o.model + ": no such file");
  if (!o.vae.empty() && !exists(o.vae)) throw UsageError("--vae " + o.vae + ": no such file");

  const bool cuda = torch::cuda::is_available();
  const torch::Device device = parse_device(o.device.empty() ? (cuda ? "cuda" : "cpu") : o.device);
  const torch::ScalarType dtype =
      parse_dtype(o.dtype.empty() ? (device.is_cuda() ? "fp16" : "fp32") : o.dtype, device);

  sdgen::GenerationParams params = o.params;
  if (!o.size.empty()) parse_size(o.size, params);
  if (o.seed < -1) throw UsageError("--seed must be -1 (random) or a number >= 0");
  if (o.seed == -1) {
    std::random_device rd;
    params.seed = (static_cast<uint64_t>(rd()) << 32 | rd()) % 4294967296ULL;
  } else {
    params.seed = static_cast<uint64_t>(o.seed);
  }
  // an A1111 label ("DPM++ 2M Karras") names a sampler and maybe a schedule
  sdgen::apply_sampler_alias(params.sampler, params.scheduler, o.scheduler_given);
  sdgen::validate_sampler(params.sampler, params.steps, params.sampler_options);

  const std::string output = o.output.empty() ? default_output(params.seed) : o.output;
  if (!o.overwrite && exists(output))
    throw UsageError(output + " exists; pass --overwrite to replace it or choose another -o");

  const std::string tokenizer_path = o.tokenizer.empty() ? default_tokenizer(o.model) : o.tokenizer;
  std::shared_ptr<const sdgen::Tokenizer> tokenizer =
      sdgen::ClipTokenizer::from_path(tokenizer_path);

  const auto t0 = std::chrono::steady_clock::now();
  sdgen::LoadOptions load;
  load.model_path = o.model;
  load.vae_path = o.vae;
  load.config_path = o.model_config;
  load.prediction = params.prediction;
  load.device = device;
  load.dtype = dtype;
  auto model = sdgen::load_checkpoint(load);
  for (const auto& note : model.notes) log(o, note);
  sdgen::Pipeline pipeline(std::move(model), tokenizer, device, dtype);
  const auto t1 = std::chrono::steady_clock::now();
  log(o, "loaded " + o.model + " in " +
             std::to_string(std::chrono::duration<double>(t1 - t0).count()).substr(0, 5) +
             " s on " + device.str() + " (" + std::string(c10::toString(dtype)) + ")");

  sdgen::PipelineEvents events;
  events.warn = [&](const std::string& m) { std::cerr << "sdgen: warning: " << m << "\n"; };
  if (o.seed == -1) log(o, "seed " + std::to_string(params.seed));
  auto image = pipeline.generate(params, events);
  params = image.params;
  const auto t2 = std::chrono::steady_clock::now();

  const auto info = sdgen::make_infotext(params, file_stem(o.model), sdgen::model_hash(o.model),
                                         o.vae.empty() ? "" : file_stem(o.vae));
  auto png = sdgen::encode_png(image.rgb.data(), image.width, image.height,
                               {{"parameters", sdgen::format_infotext(info)}});
  sdgen::make_parent_dirs(output);
  sdgen::write_file_atomic(output, png.data(), png.size(), o.overwrite);
  log(o, "wrote " + output + " (" + std::to_string(image.width) + "x" +
             std::to_string(image.height) + ", seed " + std::to_string(params.seed) + ", " +
             std::to_string(std::chrono::duration<double>(t2 - t1).count()).substr(0, 5) + " s)");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sdgen: Stable Diffusion text-to-image from the command line"};
  CliOptions o;
  auto& p = o.params;
  app.add_option("--model", o.model, "SD 1.x or 2.x checkpoint (.safetensors, LDM key names)");
  app.add_option("--tokenizer", o.tokenizer,
                 "CLIP BPE vocabulary: bpe_simple_vocab_16e6.txt.gz, vocab.json (+ merges.txt) "
                 "or a folder holding them (default: tokenizer/ beside the model, else the one "
                 "sdgen ships)");
  app.add_option("--vae", o.vae, "VAE weights replacing the checkpoint's (.safetensors)");
  app.add_option("--model-config", o.model_config,
                 "JSON with hyperparameters the tensor shapes do not show (default: "
                 "<model>.json when present)");
  app.add_option("--prompt,-p", p.prompt, "what to draw");
  app.add_option("--negative-prompt,-n", p.negative_prompt, "what to steer away from");
  app.add_option("--steps", p.steps, "sampling steps")
      ->default_val(30)
      ->check(CLI::Range(1, 10000));
  app.add_option("--size", o.size,
                 "WIDTHxHEIGHT, multiples of 8 (default: the model's native size)");
  app.add_option("--cfg-scale", p.cfg_scale, "classifier-free guidance scale")->default_val(7.0);
  app.add_option("--sampler", p.sampler,
                 "euler | euler_a | heun | dpm2 | dpm2_a | dpm++2s_a | dpm++2m | dpm++2m_sde | "
                 "lms | ddim | plms | unipc | lcm, or an A1111 label such as \"DPM++ 2M Karras\" "
                 "(sets the scheduler too; see --list-samplers)")
      ->default_val("euler");
  auto* scheduler = app.add_option("--scheduler", p.scheduler,
                                   "discrete | karras | exponential | sgm_uniform | simple")
                        ->default_val("discrete");
  app.add_option("--eta", p.sampler_options.eta,
                 "noise amount of ancestral and SDE samplers (default 1) and ddim (default 0)");
  app.add_option("--clip-skip", p.clip_skip,
                 "skip N-1 text-encoder layers (1 = the model's own: SD 1.x last, SD 2.x "
                 "penultimate)")
      ->default_val(1);
  app.add_option("--prediction", p.prediction,
                 "what the UNet predicts: eps | v (default: from the model; SD 2.x as A1111 "
                 "decides, SD 1.x eps)")
      ->check(CLI::IsMember({"eps", "v"}));
  app.add_option("--emphasis", p.emphasis,
                 "a1111: (word) x1.1, [word] /1.1, (word:1.3), \\( literal, BREAK (A1111 syntax); "
                 "none: brackets and BREAK are plain text")
      ->default_val("a1111")
      ->check([](const std::string& v) {
        try {
          sdgen::parse_emphasis(v);
          return std::string();
        } catch (const std::invalid_argument& e) {
          return std::string(e.what());
        }
      });
  app.add_option("--seed,-s", o.seed, "-1 for a random seed (it is reported)")->default_val(-1);
  app.add_option("--device", o.device, "cpu | cuda | cuda:N (default: cuda when present)");
  app.add_option("--dtype", o.dtype, "fp32 | fp16 | bf16 (default: fp16 on CUDA, fp32 on CPU)");
  app.add_option("--output,-o", o.output, "PNG path (default: outputs/NNNNN-SEED.png)");
  app.add_flag("--overwrite", o.overwrite, "replace an existing output file");
  app.add_flag("--quiet,-q", o.quiet, "no log lines on stderr");
  app.add_flag("--list-samplers", o.list_samplers, "print the samplers and schedulers, then exit");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  o.scheduler_given = scheduler->count() > 0;
  try {
    return run(o);
  } catch (const UsageError& e) {
    std::cerr << "sdgen: error: " << e.what() << "\n";
    return 2;
  } catch (const std::invalid_argument& e) {
    std::cerr << "sdgen: error: " << e.what() << "\n";
    return 2;
  } catch (const sdgen::FileExistsError& e) {
    std::cerr << "sdgen: error: " << e.what() << "\n";
    return 2;
  } catch (const c10::Error& e) {
    std::cerr << "sdgen: error: " << e.what_without_backtrace() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "sdgen: error: " << e.what() << "\n";
    return 1;
  }
}
