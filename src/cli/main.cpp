// sdgen: the command line over the library. Parses options, builds and validates the job list
// (a prompt or a prompt file), then runs it with the model loaded once per device.
// Exit status: 0 all written or skipped, 1 some failed, 2 usage or input errors found before
// any work, 130 interrupted.
#include <iostream>

#include <CLI/CLI.hpp>

#include "bench.h"
#include "cli.h"
#include "sdgen/io/checkpoint.h"
#include "sdgen/io/png.h"
#include "sdgen/pipeline/threads.h"

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
          "--model PATH is required (an SD 1.x or 2.x .safetensors file): sdgen's default model "
          "(models/default/model.safetensors) is not there; scripts/train-default-model.sh "
          "builds it");
  }
  if (!path_exists(o.model)) throw UsageError("--model " + o.model + ": no such file");
  if (!o.vae.empty() && !path_exists(o.vae)) throw UsageError("--vae " + o.vae + ": no such file");
  if (!o.device.empty() && !o.devices.empty())
    throw UsageError("give either --device or --devices, not both");
  if (!o.prompt_file.empty() && !o.params.prompt.empty())
    throw UsageError("give either --prompt or --prompt-file; --prompt-file lines carry prompts");
  if (o.seed < -1) throw UsageError("--seed must be -1 (random) or a number >= 0");
  auto log = [&](const std::string& m) {
    if (!o.quiet) std::cerr << "sdgen: " << m << "\n";
  };
  const auto jobs = build_jobs(o, log);
  return run_jobs(o, jobs);
}

}  // namespace
}  // namespace sdgen::cli

int main(int argc, char** argv) {
  using sdgen::cli::CliOptions;
  CLI::App app{"sdgen: Stable Diffusion text-to-image from the command line"};
  CliOptions o;
  auto& p = o.params;
  app.add_option("--model", o.model,
                 "SD 1.x or 2.x checkpoint (.safetensors, LDM key names); default: sdgen's own "
                 "model (models/default/), also as --model default");
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
  app.add_option("--prompt-file", o.prompt_file,
                 "render every line of this file (- for stdin); command-line options are the "
                 "defaults its lines override");
  app.add_option("--prompt-format", o.prompt_format,
                 "txt | jsonl | a1111 (default: from the extension; .jsonl is jsonl)")
      ->check(CLI::IsMember({"txt", "jsonl", "a1111"}));
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
  app.add_option("--seed,-s", o.seed,
                 "-1 for a random seed (it is reported); image i of a prompt uses seed + i")
      ->default_val(-1);
  app.add_option("--batch-count", o.batch_count, "images per prompt, seeds seed..seed+N-1")
      ->default_val(1)
      ->check(CLI::Range(1, 1000000));
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
  app.add_option("--output,-o", o.output,
                 "PNG path template: {index} {seed} {line} {prompt}, widths like {index:05}; "
                 "folders are created")
      ->default_val("outputs/{index:05}-{seed}.png");
  app.add_option("--shard", o.shard,
                 "K/N: run the jobs whose index i has i % N == K (default: from "
                 "SLURM_ARRAY_TASK_ID/COUNT when set)");
  app.add_flag("--overwrite", o.overwrite,
               "replace existing output files (otherwise their jobs are skipped)");
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
  o.scheduler_given = scheduler->count() > 0;
  auto fail = [](const std::string& msg, int status) {
    std::cerr << "sdgen: error: " << msg << "\n";
    return status;
  };
  try {
    sdgen::configure_cpu_threads(o.threads);
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
