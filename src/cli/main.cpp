// sdgen: the command line over the library. Parses options (the job parameters from their
// schema, job/params.h), inspects the model, builds and checks the job list (a prompt or a
// prompt file), then runs it with the model loaded once per device.
// Exit status: 0 all written or skipped, 1 some failed, 2 usage or input errors found before
// any work, 130 interrupted, 141 stdout closed.
#include <csignal>
#include <filesystem>
#include <iostream>
#include <map>

#include <CLI/CLI.hpp>

#include "bench_command.h"
#include "cli.h"
#include "sdgen/io/png.h"
#include "sdgen/pipeline/runtime.h"

namespace sdgen::cli {
namespace {

int run(CliOptions o) {
  if (o.list_samplers) {
    for (const auto& s : samplers())
      std::cout << s.name << "\t" << s.a1111_label << "\t" << s.description << "\n";
    for (const auto& s : schedulers())
      std::cout << "scheduler " << s.name << "\t" << s.description << "\n";
    return 0;
  }
  if (o.model.empty() || o.model == "default") {
    // sdgen's own small model (issue #6), when it has been built
    o.model = default_model();
    if (o.model.empty())
      throw UsageError(
          "--model PATH is required (an SD 1.x, 2.x or SDXL .safetensors file): sdgen's default "
          "model "
          "(models/default/model.safetensors) is not there; scripts/train-default-model.sh "
          "builds it");
  }
  std::error_code ec;
  for (const auto& [flag, path] :
       {std::pair<const char*, const std::string&>{"--model", o.model}, {"--vae", o.vae}}) {
    if (path.empty()) continue;
    if (!std::filesystem::exists(path, ec))
      throw UsageError(std::string(flag) + " " + path + ": no such file");
    // A folder is a diffusers one: a pipeline (model_index.json) as --model, an AutoencoderKL
    // (config.json) or a pipeline as --vae; the loader checks the rest.
    const std::filesystem::path dir(path);
    const bool vae = std::string(flag) == "--vae";
    if (std::filesystem::is_directory(dir, ec) &&
        !std::filesystem::exists(dir / "model_index.json", ec) &&
        !(vae && std::filesystem::exists(dir / "config.json", ec)))
      throw UsageError(std::string(flag) + " " + path +
                       (vae ? " is a folder without config.json; give a VAE .safetensors file or "
                              "a diffusers AutoencoderKL folder (config.json, "
                              "diffusion_pytorch_model.safetensors)"
                            : " is a folder without model_index.json; give a single-file "
                              "checkpoint (.safetensors with LDM key names, as A1111 and Civitai "
                              "ship them) or a diffusers StableDiffusionPipeline folder"));
  }
  if (!o.prompt_file.empty() && !o.job.image.prompt.empty())
    throw UsageError("give either --prompt or --prompt-file; --prompt-file lines carry prompts");
  if (!o.prompt_file.empty() && o.prompt_file != "-") {
    if (!std::filesystem::exists(o.prompt_file, ec))
      throw UsageError("--prompt-file " + o.prompt_file + ": no such file");
    if (std::filesystem::is_directory(o.prompt_file, ec))
      throw UsageError("--prompt-file " + o.prompt_file +
                       " is a folder; give a text file of prompts (txt, jsonl or A1111 lines)");
  }
  const Shard shard = resolve_shard(o);
  auto log = [&](const std::string& m) {
    if (!o.quiet) std::cerr << "sdgen: " << m << "\n";
  };
  // What the model is, from its header and config (no weights yet), so that every job is
  // checked against it before anything loads.
  const ModelInfo info = inspect_model(o.load_options());
  const RunTarget target = resolve_target(o);
  const auto tokenizer = load_run_tokenizer(o, info);
  const auto embeddings = load_run_embeddings(o, info, *tokenizer, log);
  const JobList jobs = build_jobs(o, info, target, log);
  return run_jobs(o, info, target, shard, tokenizer, jobs, embeddings);
}

// The job parameters' flags, from the schema. Values are kept as text and set after parsing,
// so that one parser (the schema's) reads the command line, the prompt files and the JSON.
struct SchemaFlags {
  std::vector<std::pair<const ParamSpec*, CLI::Option*>> options;
  std::map<std::string, std::string> values;
  void add(CLI::App& app) {
    for (const auto& spec : param_specs()) {
      if (spec.cli.empty()) continue;
      const std::string names = spec.cli + (spec.cli_short.empty() ? "" : "," + spec.cli_short);
      std::string help = spec.help;
      if (!spec.default_text.empty()) help += " (default: " + spec.default_text + ")";
      options.emplace_back(&spec, app.add_option(names, values[spec.name], help));
    }
  }
  // Sets the given flags on `job` (the last of a repeated flag; see main).
  void apply(JobParams& job) const {
    for (const auto& [spec, option] : options) {
      if (option->count() == 0) continue;
      try {
        spec->set_text(job, values.at(spec->name));
      } catch (const std::invalid_argument& e) {
        throw UsageError(spec->cli + " " + e.what());
      }
    }
  }
};

}  // namespace
}  // namespace sdgen::cli

int main(int argc, char** argv) {
  using sdgen::cli::CliOptions;
  // A closed stdout (`sdgen --json | head -1`) makes writes fail instead of killing the run
  // with images half-reported: the runner stops cleanly and exits 141 (runner.cpp).
  ::signal(SIGPIPE, SIG_IGN);
  CLI::App app{"sdgen: Stable Diffusion from the command line: text-to-image, img2img, inpainting"};
  // A repeated option takes its last value, as with getopt and argparse: wrapper scripts and
  // aliases add options after the user's (`sdgen --steps 30 ... --steps 20` runs 20 steps).
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  CliOptions o;
  app.add_option(
      "--model", o.model,
      "SD 1.x, 2.x or SDXL checkpoint (.safetensors, LDM key names), or an SD 1.x diffusers "
      "folder (model_index.json); default: sdgen's own model (models/default/), also as "
      "--model default");
  app.add_option("--tokenizer", o.tokenizer,
                 "CLIP BPE vocabulary: bpe_simple_vocab_16e6.txt.gz, vocab.json (+ merges.txt) "
                 "or a folder holding them, or a SentencePiece .model (default: the model's "
                 "config, tokenizer.model or tokenizer/ beside the model, else the one sdgen "
                 "ships)");
  app.add_option("--vae", o.vae,
                 "VAE weights replacing the checkpoint's (.safetensors, or a diffusers "
                 "AutoencoderKL folder)");
  app.add_option("--model-config", o.model_config,
                 "JSON with hyperparameters the tensor shapes do not show (default: "
                 "<model>.json when present)");
  sdgen::cli::SchemaFlags flags;
  flags.add(app);
  app.add_option("--prompt-file", o.prompt_file,
                 "render every line of this file (- for stdin); command-line options are the "
                 "defaults its lines override");
  app.add_option("--prompt-format", o.prompt_format,
                 "txt | jsonl | a1111 (default: from the extension; .jsonl is jsonl)")
      ->check(CLI::IsMember({"txt", "jsonl", "a1111"}));
  app.add_option("--batch-size", o.batch_size,
                 "latents through the UNet together (an image does not depend on it)")
      ->default_val(1)
      ->check(CLI::Range(1, 1024));
  app.add_option("--device", o.device, "cpu | cuda | cuda:N (default: cuda when present)");
  app.add_option("--devices", o.devices,
                 "cuda:0,cuda:1,...: one worker per device over the shared job list");
  app.add_option("--threads", o.threads,
                 "CPU threads (default: OMP_NUM_THREADS when set, else every core)")
      ->check(CLI::Range(0, 4096));
  app.add_option("--dtype", o.dtype, "fp32 | fp16 | bf16 (default: fp16 on CUDA, fp32 on CPU)");
  app.add_option("--vae-dtype", o.vae_dtype,
                 "fp32 | fp16 | bf16: the VAE's dtype (default: --dtype, except fp32 for SDXL's "
                 "VAE, which overflows in fp16)");
  app.add_option("--shard", o.shard,
                 "K/N: run the jobs whose index i has i % N == K (default: from "
                 "SLURM_ARRAY_TASK_ID/COUNT when set)");
  app.add_flag("--overwrite", o.overwrite,
               "replace existing output PNGs (otherwise their jobs are skipped); other files "
               "are never replaced");
  app.add_flag("--allow-any-output", o.allow_any_output,
               "let prompt-file lines write outside the folder of -o (their \"output\" keys)");
  app.add_option("--lora-dir", o.lora_dirs,
                 "folder of LoRA files for <lora:NAME:M> in prompts (repeatable; then loras/ "
                 "beside the model, then $SDGEN_LORA_DIR)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  app.add_option("--embedding-dir", o.embedding_dirs,
                 "folder of textual-inversion embeddings (.safetensors; a file's name in a "
                 "prompt stands for its vectors) (repeatable; then embeddings/ beside the "
                 "model, then $SDGEN_EMBEDDING_DIR)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  app.add_flag("--vae-tiling", o.vae_tiling,
               "decode and encode large images in overlapping tiles (less memory; default: "
               "only when the whole image would not fit)");
  app.add_flag("--json", o.json,
               "one JSON object per image on stdout (and nothing else there); logs stay on stderr");
  app.add_flag("--quiet,-q", o.quiet, "no log lines or progress on stderr");
  app.add_flag("--list-samplers", o.list_samplers, "print the samplers and schedulers, then exit");
  sdgen::cli::BenchCliOptions bench_options;
  auto* bench = sdgen::cli::add_bench_command(app, bench_options);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  auto fail = [](const std::string& msg, int status) {
    std::cerr << "sdgen: error: " << msg << "\n";
    return status;
  };
  try {
    flags.apply(o.job);
    sdgen::configure_cpu_threads(o.threads, [&](const std::string& w) {
      if (!o.quiet) std::cerr << "sdgen: warning: " << w << "\n";
    });
    if (bench->parsed()) return sdgen::cli::run_bench_command(bench_options);
    return sdgen::cli::run(o);
  } catch (const sdgen::cli::UsageError& e) {
    return fail(e.what(), 2);
  } catch (const std::invalid_argument& e) {
    return fail(e.what(), 2);
  } catch (const sdgen::CheckpointError& e) {
    return fail(e.what(), 2);  // an unusable model file: input error, found before any image
  } catch (const sdgen::SafetensorsError& e) {
    return fail(e.what(), 2);
  } catch (const c10::Error& e) {
    return fail(e.what_without_backtrace(), 1);
  } catch (const std::exception& e) {
    return fail(e.what(), 1);
  }
}
