#include "bench.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <fstream>
#include <stdexcept>

#include <torch/cuda.h>

#include "random_model.h"
#include "sdgen/io/png.h"
#include "sdgen/models/flops.h"
#include "sdgen/models/fused.h"
#include "sdgen/pipeline/cuda_graph.h"
#include "sdgen/pipeline/pipeline.h"
#include "sdgen/pipeline/runtime.h"
#include "sdgen/text/tokenizer.h"
#include "sdgen/util/fs.h"

#ifdef SDGEN_TORCH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include "sdgen_commit.h"  // SDGEN_GIT_COMMIT, written at build time

namespace sdgen {
namespace {

using Clock = std::chrono::steady_clock;

const char* kPrompt = "a photograph of an astronaut riding a horse";
const char* kScenePrompt = "a small red circle in the top left corner on a white background";

void sync(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

// Milliseconds of each of `iters` calls of fn after `warmup` untimed ones; the device is
// synchronised before each clock read, so queued kernels are counted.
std::vector<double> time_ms(const torch::Device& device, int warmup, int iters,
                            const std::function<void()>& fn) {
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> out;
  for (int i = 0; i < iters; ++i) {
    sync(device);
    const auto t0 = Clock::now();
    fn();
    sync(device);
    out.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  return out;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int64_t count_params(torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

bool finite(const torch::Tensor& t) { return torch::isfinite(t).all().item<bool>(); }

}  // namespace

ModelConfig bench_architecture(const std::string& arch) {
  ModelConfig c;  // SD 1.5
  if (arch == "sd15") return c;
  if (arch == "sd21") {
    c.family = "sd2";
    c.text.width = 1024;
    c.text.layers = 24;
    c.text.heads = 16;
    c.text.intermediate = 4096;
    c.text.activation = "gelu";
    c.unet.num_head_channels = 64;
    c.unet.context_dim = 1024;
    c.unet.use_linear_proj = true;
    c.native_size = 768;
    c.prediction = "v";
    return c;
  }
  if (arch == "sdxl") {  // Stability's sd_xl_base.yaml
    c.family = "sdxl";
    c.text.heads = 12;
    c.text_2.width = 1280;
    c.text_2.layers = 32;
    c.text_2.heads = 20;
    c.text_2.intermediate = 5120;
    c.text_2.activation = "gelu";
    c.text_2.projection_dim = 1280;
    c.unet.channel_mult = {1, 2, 4};
    c.unet.attention_resolutions = {4, 2};
    c.unet.num_head_channels = 64;
    c.unet.transformer_depth = {0, 2, 10};
    c.unet.context_dim = 2048;
    c.unet.use_linear_proj = true;
    c.unet.adm_in_channels = 2816;
    c.vae.scale_factor = 0.13025;
    c.native_size = 1024;
    return c;
  }
  if (arch == "tiny") {  // ../shared/reference/tiny-sd1.json
    c.text.width = 32;
    c.text.layers = 2;
    c.text.heads = 2;
    c.text.intermediate = 128;
    c.unet.model_channels = 64;
    c.unet.channel_mult = {1, 1};
    c.unet.attention_resolutions = {1, 2};
    c.unet.num_heads = 2;
    c.unet.context_dim = 32;
    c.vae.ch = 32;
    c.vae.ch_mult = {1, 2, 2, 2};
    c.vae.num_res_blocks = 1;
    c.native_size = 64;
    return c;
  }
  throw std::invalid_argument("--arch must be sd15, sd21, sdxl or tiny, not '" + arch + "'");
}

std::string build_commit() { return SDGEN_GIT_COMMIT; }

std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) != 0) continue;
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    auto v = line.substr(colon + 1);
    v.erase(0, v.find_first_not_of(" \t"));
    return v;
  }
  return "unknown CPU";
}

std::string cuda_device_name(int index) {
#ifdef SDGEN_TORCH_CUDA
  if (torch::cuda::is_available()) return at::cuda::getDeviceProperties(index)->name;
#endif
  (void)index;
  return "";
}

std::string bench_result_path(const std::string& dir, const nlohmann::json& r) {
  std::string device = r.at("device").get<std::string>();
  device.erase(std::remove(device.begin(), device.end(), ':'), device.end());
  // variants of one architecture, device and dtype get their own files
  std::string variant;
  const auto& st = r.at("settings");
  if (st.value("batch", 1) != 1) variant += "-b" + std::to_string(st.value("batch", 1));
  if (st.contains("size_given") && st["size_given"].get<bool>())
    variant +=
        "-" + std::to_string(st.value("width", 0)) + "x" + std::to_string(st.value("height", 0));
  if (st.value("channels_last", false)) variant += "-cl";
  if (st.value("cuda_graph", false)) variant += "-graph";
  if (st.value("fused", false)) variant += "-fused";
  return dir + "/" + r.at("date").get<std::string>().substr(0, 10) + "-" +
         r.at("arch").get<std::string>() + "-" + device + "-" + r.at("dtype").get<std::string>() +
         variant + ".json";
}

nlohmann::json run_bench(const BenchOptions& o,
                         const std::function<void(const std::string&)>& log_fn) {
  auto log = [&](const std::string& m) {
    if (log_fn) log_fn(m);
  };
  if (o.steps < 1 || o.batch < 1 || o.iters < 1 || o.warmup < 0)
    throw std::invalid_argument("bench: steps, batch and iters must be >= 1, warmup >= 0");
  if (o.tokenizer.empty()) throw std::invalid_argument("bench: a tokenizer path is required");
  torch::Device device(o.device);
  if (device.is_cuda() && !device.has_index()) device = torch::Device(torch::kCUDA, 0);
  if (device.is_cuda() && !torch::cuda::is_available())
    throw std::invalid_argument("device " + o.device + ": no CUDA GPU is available to this build");
  const torch::ScalarType dtype = parse_compute_dtype(o.dtype, device);
  if (o.cuda_graph && !device.is_cuda())
    throw std::invalid_argument("--cuda-graph needs a CUDA device");
  if (o.cuda_graph && !UNetGraph::available())
    throw std::invalid_argument(
        "--cuda-graph: this build has no CUDA graph support (needs libtorch >= 2.0 with CUDA)");
  if (o.fused && !fused_kernels_available())
    throw std::invalid_argument(
        "--fused: this build has no fused CUDA kernels (needs nvcc and a "
        "CUDA libtorch)");
  set_fused_kernels(o.fused);
  torch::NoGradGuard no_grad;

  // 1. the model
  const auto t_setup = Clock::now();
  LoadedModel model;
  std::string arch = o.arch;
  if (o.model_path.empty()) {
    log("building " + o.arch + " with random weights on " + device.str());
    model = random_model(bench_architecture(o.arch), device, dtype, o.seed);
  } else {
    LoadOptions lo;
    lo.model_path = o.model_path;
    lo.device = device;
    lo.dtype = dtype;
    model = load_model(lo);
    arch = file_stem(o.model_path);
  }
  if (o.channels_last) {
    to_channels_last(*model.unet);
    to_channels_last(*model.vae);
  }
  sync(device);
  const double setup_s = std::chrono::duration<double>(Clock::now() - t_setup).count();
  const ModelConfig& c = model.config;
  const int width = o.width ? o.width : c.native_size, height = o.height ? o.height : c.native_size;
  const int f = c.vae.downsample_factor();
  if (width % f || height % f || width <= 0 || height <= 0)
    throw std::invalid_argument("--size must be a multiple of " + std::to_string(f));
  const int64_t h = height / f, w = width / f, b2 = 2 * o.batch;
  std::shared_ptr<const Tokenizer> tokenizer = load_tokenizer(o.tokenizer);
  Pipeline pipeline(model, tokenizer, device, dtype);
  const std::string prompt =
      !o.prompt.empty() ? o.prompt
      : o.tokenizer.size() > 6 && o.tokenizer.compare(o.tokenizer.size() - 6, 6, ".model") == 0
          ? kScenePrompt
          : kPrompt;
  // one chunk of the text encoder's positions (77 for CLIP, 32 for sdgen's own model)
  const int64_t tokens = c.text.max_positions;

  // 2. UNet step: CFG batch of 2 * batch latents, one chunk of context tokens
  const auto opts = torch::TensorOptions().device(device).dtype(dtype);
  auto gen = at::detail::createCPUGenerator(o.seed);
  auto x = torch::randn({b2, c.unet.in_channels, h, w}, gen).to(opts);
  if (o.channels_last) x = x.contiguous(at::MemoryFormat::ChannelsLast);
  auto t = torch::full({b2}, 500.0, torch::TensorOptions().device(device));
  const Conditioning ctx(torch::randn({b2, tokens, c.unet.context_dim}, gen).to(opts),
                         c.unet.adm_in_channels > 0
                             ? torch::randn({b2, c.unet.adm_in_channels}, gen).to(opts)
                             : torch::Tensor());
  log("UNet step: " + std::to_string(o.warmup) + " warm-up, " + std::to_string(o.iters) + " timed");
  torch::Tensor eps;
  auto unet_times =
      time_ms(device, o.warmup, o.iters, [&] { eps = model.unet->forward(x, t, ctx); });
  const bool unet_finite = finite(eps);
  nlohmann::json graph_info = nullptr;
  std::vector<double> graph_times;
  std::unique_ptr<UNetGraph> graph;
  if (o.cuda_graph) {
    const auto t0 = Clock::now();
    graph = std::make_unique<UNetGraph>(model.unet, x, t, ctx);
    const double capture_s = std::chrono::duration<double>(Clock::now() - t0).count();
    torch::Tensor out;
    graph_times = time_ms(device, o.warmup, o.iters, [&] { out = graph->run(x, t, ctx); });
    const double diff = (out.to(torch::kFloat) - eps.to(torch::kFloat)).abs().max().item<double>();
    graph_info = {{"capture_s", capture_s},
                  {"unet_step_ms", median(graph_times)},
                  {"max_abs_diff_vs_eager", diff}};
  }

  // 3. text encoder, batch 2 (prompt and empty negative prompt)
  // (the first chunk of each: a long prompt would have more)
  auto ids_cond = pipeline.prompts().token_ids(prompt);
  auto ids_uncond = pipeline.prompts().token_ids("");
  ids_cond.resize(static_cast<size_t>(tokens));
  ids_uncond.resize(static_cast<size_t>(tokens));
  auto ids =
      torch::stack({torch::tensor(ids_cond, torch::kLong), torch::tensor(ids_uncond, torch::kLong)})
          .to(device);
  // (both encoders of two-encoder models, the second with its pooled output)
  TextEncodeOptions pooled;
  pooled.pooled = true;
  auto text_times = time_ms(device, o.warmup, o.iters, [&] {
    (void)model.text->forward(ids, 1);
    if (model.text_2) (void)model.text_2->encode(ids, pooled);
  });

  // 4. VAE decode of `batch` latents
  auto z = torch::randn({o.batch, c.vae.z_channels, h, w}, gen)
               .to(device, model.vae->post_quant_conv->weight.scalar_type());
  if (o.channels_last) z = z.contiguous(at::MemoryFormat::ChannelsLast);
  torch::Tensor image;
  auto vae_times = time_ms(device, o.warmup, o.iters, [&] { image = model.vae->decode(z); });
  const bool vae_finite = finite(image);

  // 5. end to end: prompt -> PNG bytes, a fresh Pipeline each time (no cached prompt)
  std::vector<GenerationParams> params(o.batch);
  for (int i = 0; i < o.batch; ++i) {
    params[i].prompt = prompt;
    params[i].steps = o.steps;
    params[i].width = width;
    params[i].height = height;
    params[i].seed = o.seed + i;
  }
  size_t png_bytes = 0;
  bool use_graph = false;
  auto e2e = [&] {
    Pipeline p(model, tokenizer, device, dtype);
    if (use_graph)  // the captured step where the shapes match (a prompt of one chunk)
      p.set_unet_runner(
          [&](const torch::Tensor& xi, const torch::Tensor& ti, const Conditioning& ci) {
            if (graph->accepts(xi, ci)) return graph->run(xi, ti, ci).clone();
            return model.unet->forward(xi, ti, ci);
          });
    auto images = p.generate_batch(params);
    png_bytes = 0;
    for (const auto& im : images)
      png_bytes += encode_png(im.rgb.data(), im.width, im.height, {}).size();
  };
  const int e2e_iters = o.e2e_iters > 0 ? o.e2e_iters : std::min(o.iters, 3);
  // peak GPU memory (allocated, reserved) in GiB over what runs between reset and read
  auto reset_peak = [&] {
#ifdef SDGEN_TORCH_CUDA
    if (device.is_cuda()) {
      sync(device);
      c10::cuda::CUDACachingAllocator::resetPeakStats(device.index());
    }
#endif
  };
  auto read_peak = [&]() -> std::pair<nlohmann::json, nlohmann::json> {
#ifdef SDGEN_TORCH_CUDA
    if (device.is_cuda()) {
      const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
      return {static_cast<double>(stats.allocated_bytes[0].peak) / (1 << 30),
              static_cast<double>(stats.reserved_bytes[0].peak) / (1 << 30)};
    }
#endif
    return {nullptr, nullptr};
  };
  log("end to end: " + std::to_string(o.steps) + " steps, " + std::to_string(e2e_iters) + " timed");
  reset_peak();
  auto e2e_times = time_ms(device, std::min(o.warmup, 1), e2e_iters, e2e);
  const auto [peak_alloc, peak_reserved] = read_peak();
  std::vector<double> e2e_graph_times;
  if (graph) {  // the same with the captured UNet step
    use_graph = true;
    reset_peak();
    e2e_graph_times = time_ms(device, std::min(o.warmup, 1), e2e_iters, e2e);
    graph_info["e2e_ms"] = median(e2e_graph_times);
    graph_info["e2e_ms_all"] = e2e_graph_times;
    graph_info["peak_gpu_alloc_gib"] = read_peak().first;
  }

  const double unet_ms = median(unet_times), text_ms = median(text_times),
               vae_ms = median(vae_times), e2e_ms = median(e2e_times);
  const double uf = unet_flops(c.unet, b2, h, w, tokens);
  const double tf = text_encoder_flops(c.text, 2, tokens) +
                    (c.has_text_2() ? text_encoder_flops(c.text_2, 2, tokens) : 0.0);
  const double vf = vae_decoder_flops(c.vae, o.batch, h, w);
  auto tflops = [](double flops, double ms) { return ms > 0 ? flops / (ms * 1e-3) / 1e12 : 0.0; };
  const std::string card = device.is_cuda() ? cuda_device_name(device.index()) : cpu_model_name();
  nlohmann::json r;
  r["tool"] = "sdgen bench";
  r["arch"] = arch;
  r["model"] = o.model_path;
  r["device"] = device.str();
  r["dtype"] = o.dtype;
  r["card"] = card.empty() ? device.str() : card;
  r["date"] = utc_now();
  r["commit"] = build_commit();
  r["libtorch"] = TORCH_VERSION;
  r["threads"] = at::get_num_threads();
  r["fused_kernels"] = fused_kernels_enabled();
  r["settings"] = {{"width", width},
                   {"height", height},
                   {"size_given", o.width != 0 || o.height != 0},
                   {"steps", o.steps},
                   {"batch", o.batch},
                   {"unet_batch", b2},
                   {"warmup", o.warmup},
                   {"iters", o.iters},
                   {"e2e_iters", e2e_iters},
                   {"channels_last", o.channels_last},
                   {"cuda_graph", o.cuda_graph},
                   {"fused", o.fused},
                   {"seed", o.seed},
                   {"cfg_scale", params[0].cfg_scale},
                   {"sampler", params[0].sampler},
                   {"prompt", prompt}};
  r["params"] = {{"unet", count_params(*model.unet)},
                 {"text_encoder", count_params(model.text->module()) +
                                      (model.text_2 ? count_params(model.text_2->module()) : 0)},
                 {"vae", count_params(*model.vae)}};
  r["setup_s"] = setup_s;
  r["unet_step_ms"] = unet_ms;
  r["unet_step_ms_all"] = unet_times;
  r["text_encoder_ms"] = text_ms;
  r["vae_decode_ms"] = vae_ms;
  r["e2e_ms"] = e2e_ms;
  r["e2e_ms_all"] = e2e_times;
  r["e2e_png_bytes"] = png_bytes;
  r["it_per_s"] = unet_ms > 0 ? 1000.0 / unet_ms : 0.0;
  r["unet_flops"] = uf;
  r["text_encoder_flops"] = tf;
  r["vae_decode_flops"] = vf;
  r["unet_tflops"] = tflops(uf, unet_ms);
  r["text_encoder_tflops"] = tflops(tf, text_ms);
  r["vae_decode_tflops"] = tflops(vf, vae_ms);
  r["peak_gpu_alloc_gib"] = peak_alloc;
  r["peak_gpu_reserved_gib"] = peak_reserved;
  r["unet_output_finite"] = unet_finite;
  r["vae_output_finite"] = vae_finite;
  r["cuda_graph"] = graph_info;
  if (!graph_times.empty()) r["cuda_graph"]["unet_step_ms_all"] = graph_times;
  return r;
}

}  // namespace sdgen
