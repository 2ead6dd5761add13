// `sdgen bench`: times the UNet step, the text encoder, the VAE decoder and prompt -> PNG on a
// named architecture with random weights (or a checkpoint), prints a summary or JSON and writes
// the JSON record under --out.
#include "bench_command.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "cli.h"
#include "sdgen/io/png.h"
#include "sdgen/pipeline/runtime.h"
#include "sdgen/util/fs.h"

namespace sdgen::cli {

CLI::App* add_bench_command(CLI::App& app, BenchCliOptions& o) {
  auto* b = app.add_subcommand(
      "bench",
      "time the UNet step, text encoder, VAE decode and prompt -> PNG on random weights of a "
      "named architecture (or on --model)");
  auto& s = o.bench;
  b->add_option("--arch", s.arch, "sd15 | sd21 | sdxl | tiny (random weights, no checkpoint)")
      ->default_val("sd15")
      ->check(CLI::IsMember({"sd15", "sd21", "sdxl", "tiny"}));
  b->add_option("--model", s.model_path,
                "bench this checkpoint instead of random weights (default: sdgen's own model)");
  b->add_option(
      "--tokenizer", s.tokenizer,
      "tokenizer: a CLIP vocabulary or a SentencePiece .model (default: as for rendering)");
  b->add_option("--size", o.size, "WIDTHxHEIGHT (default: the architecture's native size)");
  b->add_option("--steps", s.steps, "sampler steps of the end-to-end run")
      ->default_val(30)
      ->check(CLI::Range(1, 10000));
  b->add_option("--prompt", s.prompt,
                "end-to-end prompt (default: one chunk; a scene for a SentencePiece model)");
  b->add_option("--batch", s.batch, "images per run (the UNet step runs 2x for CFG)")
      ->default_val(1)
      ->check(CLI::Range(1, 256));
  b->add_option("--device", o.device, "cpu | cuda | cuda:N (default: cuda when present)");
  b->add_option("--dtype", o.dtype, "fp32 | fp16 | bf16 (default: fp16 on CUDA, fp32 on CPU)");
  b->add_option("--warmup", s.warmup, "untimed runs before timing")
      ->default_val(3)
      ->check(CLI::Range(0, 1000));
  b->add_option("--iters", s.iters, "timed runs of each part (the median is reported)")
      ->default_val(20)
      ->check(CLI::Range(1, 100000));
  b->add_option("--e2e-iters", s.e2e_iters, "timed end-to-end runs (default: min(iters, 3))")
      ->check(CLI::Range(1, 1000));
  b->add_option("--seed", s.seed, "seed of the random weights and inputs")->default_val(0);
  b->add_flag("--channels-last", s.channels_last,
              "convolution weights and latents in channels_last (NHWC) memory format");
  b->add_flag("--cuda-graph", s.cuda_graph,
              "also time the UNet step as a captured CUDA graph (CUDA builds, libtorch >= 2)");
  b->add_flag("--fused", s.fused,
              "use the fused CUDA kernels (GroupNorm+SiLU; builds with nvcc and CUDA libtorch)");
  b->add_flag("--json", o.json, "print the JSON record on stdout (logs stay on stderr)");
  b->add_option("--out", o.out,
                "write the record to DIR/<date>-<arch>-<device>-<dtype>[-variant].json (e.g. "
                "bench/results)");
  b->add_flag("--quiet,-q", o.quiet, "no log lines on stderr");
  return b;
}

int run_bench_command(BenchCliOptions& o) {
  auto& s = o.bench;
  const torch::Device device = parse_device(o.device);
  s.device = device.str();
  s.dtype = compute_dtype_name(parse_compute_dtype(o.dtype, device));
  if (!o.size.empty()) {
    JobParams size;  // read as the job parameter --size is
    try {
      param_spec("size").set_text(size, o.size);
    } catch (const std::invalid_argument& e) {
      throw UsageError(std::string("--size ") + e.what());
    }
    s.width = size.image.width;
    s.height = size.image.height;
  }
  if (s.model_path == "default") {
    s.model_path = default_model();
    if (s.model_path.empty())
      throw UsageError("--model default: sdgen's default model (models/default/) is not there");
  }
  std::error_code ec;
  if (!s.model_path.empty() && !std::filesystem::exists(s.model_path, ec))
    throw UsageError("--model " + s.model_path + ": no such file");
  if (s.tokenizer.empty())
    s.tokenizer = default_tokenizer(s.model_path.empty() ? "./x" : s.model_path);
  auto log = [&](const std::string& m) {
    if (!o.quiet) std::cerr << "sdgen bench: " << m << "\n";
  };
  nlohmann::json r;
  try {
    r = run_bench(s, log);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  if (!o.out.empty()) {
    const auto path = bench_result_path(o.out, r);
    make_parent_dirs(path);
    const auto text = r.dump(2) + "\n";
    write_file_atomic(path, reinterpret_cast<const uint8_t*>(text.data()), text.size(), true);
    log("wrote " + path);
  }
  if (o.json) {
    std::cout << r.dump(2) << std::endl;
    return 0;
  }
  char line[512];
  std::snprintf(line, sizeof(line),
                "%s on %s (%s, %s), %dx%d, batch %d:\n"
                "  UNet step      %9.2f ms  (%.1f it/s, %.3g TFLOP/s)\n"
                "  text encoder   %9.2f ms\n"
                "  VAE decode     %9.2f ms\n"
                "  end to end     %9.3f s   (%d steps, prompt -> PNG)\n",
                r["arch"].get<std::string>().c_str(), r["card"].get<std::string>().c_str(),
                r["device"].get<std::string>().c_str(), s.dtype.c_str(),
                r["settings"]["width"].get<int>(), r["settings"]["height"].get<int>(), s.batch,
                r["unet_step_ms"].get<double>(), r["it_per_s"].get<double>(),
                r["unet_tflops"].get<double>(), r["text_encoder_ms"].get<double>(),
                r["vae_decode_ms"].get<double>(), r["e2e_ms"].get<double>() / 1000, s.steps);
  std::cout << line;
  if (!r["peak_gpu_alloc_gib"].is_null())
    std::printf("  peak GPU memory %.2f GiB allocated, %.2f GiB reserved\n",
                r["peak_gpu_alloc_gib"].get<double>(), r["peak_gpu_reserved_gib"].get<double>());
  if (!r["cuda_graph"].is_null())
    std::printf("  UNet step as CUDA graph %.2f ms (max |diff| vs eager %.3g)\n",
                r["cuda_graph"]["unet_step_ms"].get<double>(),
                r["cuda_graph"]["max_abs_diff_vs_eager"].get<double>());
  return 0;
}

}  // namespace sdgen::cli
