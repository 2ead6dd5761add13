// `sdgen bench` (a tool over the library, not part of it): time the parts of text-to-image on a
// named architecture with random weights (no checkpoint needed) or on a real checkpoint, and report
// the numbers as JSON.
#pragma once
#include <cstdint>
#include <string>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "sdgen/loading/model_loader.h"
#include "sdgen/models/config.h"

namespace sdgen {

// The shapes of a named architecture: "sd15" (ModelConfig defaults, SD 1.5), "sd21" (SD 2.1:
// OpenCLIP ViT-H text, linear projections, 64-wide heads, 768 native, v-prediction), "sdxl"
// (SDXL base: CLIP-L and bigG, UNet depths 0/2/10, label_emb 2816, 1024 native) or "tiny"
// (the shapes of the tiny reference checkpoint, for fast CPU runs). Throws
// std::invalid_argument for other names.
ModelConfig bench_architecture(const std::string& arch);

struct BenchOptions {
  std::string arch = "sd15";  // ignored when model_path is set
  std::string model_path;     // bench this checkpoint instead of random weights
  std::string tokenizer;      // CLIP vocabulary (required)
  std::string device = "cpu";
  std::string dtype = "fp32";  // fp32 | fp16 | bf16
  int width = 0, height = 0;   // 0: the architecture's native size
  int steps = 30;
  // The end-to-end prompt; empty: a photographic prompt of one chunk for CLIP models, a scene
  // of the data set for sdgen's own (SentencePiece) model.
  std::string prompt;
  int batch = 1;  // images; the UNet step runs 2 * batch latents (CFG)
  int warmup = 2, iters = 10;
  int e2e_iters = 0;  // 0: min(iters, 3)
  bool channels_last = false;
  bool cuda_graph = false;  // UNet step as a captured CUDA graph (CUDA builds only)
  bool fused = false;       // the fused CUDA kernels (models/fused.h; CUDA builds with nvcc)
  uint64_t seed = 0;
};

// Runs the benchmark and returns its record: settings, card, date, commit, libtorch version,
// median times in ms (unet_step, text_encoder, vae_decode, e2e), it/s, FLOP counts, achieved
// TFLOP/s and, on CUDA, peak memory. `log` (may be empty) receives progress lines.
nlohmann::json run_bench(const BenchOptions& o,
                         const std::function<void(const std::string&)>& log = {});

// Where `record` goes under `dir`: "<dir>/<YYYY-MM-DD>-<arch>-<device>-<dtype><variant>.json",
// the device without its ':' (cuda0); the variant names what differs from the defaults:
// "-b4" (batch), "-512x768" (--size given), "-cl" (channels_last), "-graph" (CUDA graph),
// "-fused" (fused kernels).
std::string bench_result_path(const std::string& dir, const nlohmann::json& record);

// The git commit the library was configured from ("unknown" outside a checkout), the CPU model
// (/proc/cpuinfo) and the name of CUDA device `index` (empty without CUDA support).
std::string build_commit();
std::string cpu_model_name();
std::string cuda_device_name(int index);

}  // namespace sdgen
