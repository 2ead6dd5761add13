// `sdgen bench` (issue #7): the random-weight architectures, the record it writes, the CPU side
// of the CUDA fast paths (channels_last, the CUDA graph guard).
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli_test_util.h"
#include "sdgen/models/blocks.h"
#include "sdgen/models/flops.h"
#include "sdgen/models/fused.h"
#include "sdgen/pipeline/cuda_graph.h"
#include "sdgen/pipeline/pipeline.h"
#include "sdgen/text/clip_tokenizer.h"
#include "tools/bench.h"
#include "tools/random_model.h"
#include "torch_test_util.h"

namespace sdgen {
namespace {

namespace fs = std::filesystem;
using test::ref;

const std::string kVocab = ref("clip_vocab/bpe_simple_vocab_16e6.txt.gz");

int64_t numel(torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

TEST(BenchArch, TinyHasTheReferenceShapes) {
  auto m = random_model(bench_architecture("tiny"), torch::kCPU, torch::kFloat);
  // ../shared/reference/tiny-sd1.json element_counts (the UNet and VAE hold no buffers)
  EXPECT_EQ(numel(*m.unet), 2480260);
  EXPECT_EQ(numel(*m.vae), 1250759);
  // the reference checkpoint loads into the same modules, so the shapes agree name by name
  auto& loaded = test::tiny_sd1();
  auto mine = m.unet->named_parameters();
  for (const auto& p : loaded.unet->named_parameters()) {
    ASSERT_TRUE(mine.contains(p.key())) << p.key();
    EXPECT_EQ(mine[p.key()].sizes(), p.value().sizes()) << p.key();
  }
}

TEST(BenchArch, Sd15AndSd21Configs) {
  const auto sd15 = bench_architecture("sd15");
  EXPECT_NEAR(unet_flops(sd15.unet, 2, 64, 64) / 1e12, 1.607, 0.001);  // sd-facts.md
  EXPECT_EQ(sd15.native_size, 512);
  const auto sd21 = bench_architecture("sd21");
  EXPECT_EQ(sd21.family, "sd2");
  EXPECT_EQ(sd21.unet.context_dim, 1024);
  EXPECT_EQ(sd21.unet.num_head_channels, 64);
  EXPECT_TRUE(sd21.unet.use_linear_proj);
  EXPECT_EQ(sd21.text.width, 1024);
  EXPECT_EQ(sd21.text.layers, 24);
  EXPECT_EQ(sd21.native_size, 768);
  EXPECT_THROW(bench_architecture("sd3"), std::invalid_argument);
}

TEST(BenchArch, RandomWeightsHaveFanInScale) {
  torch::nn::Linear lin(512, 256);
  init_random_weights(*lin, 3);
  const double s = lin->weight.std().item<double>();
  EXPECT_NEAR(s, 1.0 / std::sqrt(512.0), 0.05 / std::sqrt(512.0));
  EXPECT_EQ(lin->bias.abs().max().item<double>(), 0.0);
  torch::nn::LayerNorm ln(torch::nn::LayerNormOptions({64}));
  ln->weight.data().zero_();
  init_random_weights(*ln, 3);
  EXPECT_EQ(ln->weight.min().item<double>(), 1.0);
  // deterministic in the seed
  torch::nn::Linear other(512, 256);
  init_random_weights(*other, 3);
  EXPECT_TRUE(torch::equal(lin->weight, other->weight));
}

TEST(BenchArch, RandomTinyUNetOutputIsFiniteAndOrderOne) {
  torch::NoGradGuard no_grad;
  for (auto dtype : {torch::kFloat, torch::kBFloat16}) {
    auto m = random_model(bench_architecture("tiny"), torch::kCPU, dtype, 1);
    auto x = torch::randn({2, 4, 8, 8}).to(dtype);
    auto ctx = torch::randn({2, 77, 32}).to(dtype);
    auto out = m.unet->forward(x, torch::full({2}, 500.0), Conditioning(ctx)).to(torch::kFloat);
    ASSERT_TRUE(torch::isfinite(out).all().item<bool>()) << c10::toString(dtype);
    const double rms = out.pow(2).mean().sqrt().item<double>();
    EXPECT_GT(rms, 1e-3) << c10::toString(dtype);
    EXPECT_LT(rms, 1e3) << c10::toString(dtype);
    auto image = m.vae->decode(torch::randn({1, 4, 8, 8}).to(dtype));
    EXPECT_TRUE(torch::isfinite(image).all().item<bool>());
  }
}

TEST(BenchArch, ChannelsLastGivesTheSameOutput) {
  torch::NoGradGuard no_grad;
  auto m = random_model(bench_architecture("tiny"), torch::kCPU, torch::kFloat, 2);
  auto x = torch::randn({2, 4, 8, 8});
  auto t = torch::full({2}, 321.0);
  auto ctx = torch::randn({2, 77, 32});
  auto ref_out = m.unet->forward(x, t, Conditioning(ctx));
  auto z = torch::randn({1, 4, 8, 8});
  auto ref_image = m.vae->decode(z);
  to_channels_last(*m.unet);
  to_channels_last(*m.vae);
  EXPECT_TRUE(
      m.unet->input_blocks->ptr(0)->parameters()[0].is_contiguous(at::MemoryFormat::ChannelsLast));
  auto out = m.unet->forward(x.contiguous(at::MemoryFormat::ChannelsLast), t, Conditioning(ctx));
  EXPECT_LT(test::max_abs_diff(out, ref_out), 1e-4);
  auto image = m.vae->decode(z.contiguous(at::MemoryFormat::ChannelsLast));
  EXPECT_LT(test::max_abs_diff(image, ref_image), 1e-4);
}

TEST(BenchPipeline, UNetRunnerReplacesTheStep) {
  auto m = random_model(bench_architecture("tiny"), torch::kCPU, torch::kFloat, 4);
  std::shared_ptr<const Tokenizer> tok = ClipTokenizer::from_path(kVocab);
  Pipeline p(m, tok, torch::kCPU, torch::kFloat);
  GenerationParams g;
  g.prompt = "a red house";
  g.steps = 3;
  g.width = g.height = 64;
  g.seed = 5;
  const auto plain = p.generate(g);
  int calls = 0;
  p.set_unet_runner([&](const torch::Tensor& x, const torch::Tensor& t, const Conditioning& c) {
    ++calls;
    EXPECT_EQ(x.size(0), 2);  // cond + uncond
    return m.unet->forward(x, t, c);
  });
  const auto hooked = p.generate(g);
  EXPECT_EQ(calls, 3);  // one UNet call per Euler step
  EXPECT_EQ(plain.rgb, hooked.rgb);
  p.set_unet_runner({});
  calls = 0;
  EXPECT_EQ(p.generate(g).rgb, plain.rgb);
  EXPECT_EQ(calls, 0);
}

TEST(BenchGraph, GuardedWithoutCuda) {
#ifdef SDGEN_TORCH_CUDA
  GTEST_SKIP() << "built with CUDA";
#else
  EXPECT_FALSE(UNetGraph::available());
  auto m = random_model(bench_architecture("tiny"), torch::kCPU, torch::kFloat);
  auto x = torch::zeros({2, 4, 8, 8});
  EXPECT_THROW(UNetGraph(m.unet, x, torch::zeros({2}), Conditioning(torch::zeros({2, 77, 32}))),
               std::runtime_error);
#endif
}

TEST(Fused, GroupNormSiluMatchesTheOps) {
  torch::NoGradGuard no_grad;
  nn::GroupNorm norm(32, 128, 1e-5);
  norm->weight.uniform_(0.5, 1.5);
  norm->bias.uniform_(-0.5, 0.5);
  auto x = torch::randn({2, 128, 12, 10}) * 3 + 1;
  const auto want = torch::silu(group_norm_f32(norm, x));
  EXPECT_TRUE(torch::equal(group_norm_silu(norm, x), want));  // the CPU takes the ops
  if (!torch::cuda::is_available() || !fused_kernels_available()) return;
  // the CUDA kernel against the float32 ops on the CPU, on the same (rounded) input
  nn::GroupNorm gpu(32, 128, 1e-5);
  gpu->weight.copy_(norm->weight);
  gpu->bias.copy_(norm->bias);
  gpu->to(torch::kCUDA);
  set_fused_kernels(true);
  for (auto dtype : {torch::kFloat, torch::kHalf, torch::kBFloat16}) {
    auto xd = x.to(torch::kCUDA, dtype);
    auto got = group_norm_silu(gpu, xd).to(torch::kCPU, torch::kFloat);
    auto ref = torch::silu(group_norm_f32(norm, xd.to(torch::kCPU, torch::kFloat)));
    const double tol = dtype == torch::kFloat ? 1e-4 : dtype == torch::kHalf ? 1e-2 : 5e-2;
    EXPECT_LT(test::max_abs_diff(got, ref), tol) << c10::toString(dtype);
  }
  set_fused_kernels(false);
}

// Every field of a record, with sane values, for the settings of `o` on the tiny architecture.
void check_record(const nlohmann::json& r, int steps, int iters) {
  for (const char* key : {"tool",
                          "arch",
                          "model",
                          "device",
                          "dtype",
                          "card",
                          "date",
                          "commit",
                          "libtorch",
                          "threads",
                          "settings",
                          "params",
                          "setup_s",
                          "unet_step_ms",
                          "unet_step_ms_all",
                          "text_encoder_ms",
                          "vae_decode_ms",
                          "e2e_ms",
                          "e2e_ms_all",
                          "e2e_png_bytes",
                          "it_per_s",
                          "unet_flops",
                          "text_encoder_flops",
                          "vae_decode_flops",
                          "unet_tflops",
                          "text_encoder_tflops",
                          "vae_decode_tflops",
                          "peak_gpu_alloc_gib",
                          "peak_gpu_reserved_gib",
                          "unet_output_finite",
                          "vae_output_finite",
                          "cuda_graph"})
    EXPECT_TRUE(r.contains(key)) << key;
  EXPECT_EQ(r["arch"], "tiny");
  EXPECT_EQ(r["device"], "cpu");
  EXPECT_EQ(r["dtype"], "fp32");
  EXPECT_FALSE(r["card"].get<std::string>().empty());
  EXPECT_FALSE(r["commit"].get<std::string>().empty());
  EXPECT_EQ(r["libtorch"].get<std::string>(), TORCH_VERSION);
  EXPECT_EQ(r["date"].get<std::string>().size(), 20u);  // 2026-11-27T12:00:00Z
  EXPECT_EQ(r["settings"]["width"], 64);
  EXPECT_EQ(r["settings"]["steps"], steps);
  EXPECT_EQ(r["settings"]["unet_batch"], 2);
  EXPECT_EQ(r["params"]["unet"], 2480260);
  EXPECT_EQ(r["unet_step_ms_all"].size(), static_cast<size_t>(iters));
  for (const char* key : {"unet_step_ms", "text_encoder_ms", "vae_decode_ms", "e2e_ms", "it_per_s",
                          "unet_tflops", "text_encoder_tflops", "vae_decode_tflops"}) {
    EXPECT_GT(r[key].get<double>(), 0.0) << key;
    EXPECT_TRUE(std::isfinite(r[key].get<double>())) << key;
  }
  // the end-to-end run holds `steps` UNet steps plus text and decode
  EXPECT_GT(r["e2e_ms"].get<double>(), 0.5 * steps * r["unet_step_ms"].get<double>());
  EXPECT_GT(r["e2e_png_bytes"].get<int64_t>(), 64 * 64);
  const auto c = bench_architecture("tiny");
  EXPECT_DOUBLE_EQ(r["unet_flops"].get<double>(), unet_flops(c.unet, 2, 8, 8, 77));
  EXPECT_DOUBLE_EQ(r["text_encoder_flops"].get<double>(), text_encoder_flops(c.text, 2, 77));
  EXPECT_DOUBLE_EQ(r["vae_decode_flops"].get<double>(), vae_decoder_flops(c.vae, 1, 8, 8));
  EXPECT_NEAR(r["unet_tflops"].get<double>(),
              r["unet_flops"].get<double>() / (r["unet_step_ms"].get<double>() * 1e-3) / 1e12,
              1e-9 * r["unet_tflops"].get<double>());
  EXPECT_NEAR(r["it_per_s"].get<double>(), 1000.0 / r["unet_step_ms"].get<double>(), 1e-9);
  EXPECT_TRUE(r["peak_gpu_alloc_gib"].is_null());  // CPU
  EXPECT_TRUE(r["cuda_graph"].is_null());
  EXPECT_FALSE(r["fused_kernels"].get<bool>());
  EXPECT_TRUE(r["unet_output_finite"].get<bool>());
  EXPECT_TRUE(r["vae_output_finite"].get<bool>());
}

TEST(Bench, TinyRecordThroughTheLibrary) {
  BenchOptions o;
  o.arch = "tiny";
  o.tokenizer = kVocab;
  o.steps = 2;
  o.iters = 2;
  o.warmup = 1;
  const auto r = run_bench(o);
  check_record(r, 2, 2);
  EXPECT_EQ(bench_result_path("bench/results", r),
            "bench/results/" + r["date"].get<std::string>().substr(0, 10) + "-tiny-cpu-fp32.json");
  o.cuda_graph = true;
  EXPECT_THROW(run_bench(o), std::invalid_argument);  // CUDA only
}

TEST(BenchGpu, TinyOnCudaWithGraphAndPeakMemory) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  BenchOptions o;
  o.arch = "tiny";
  o.tokenizer = kVocab;
  o.device = "cuda";
  o.dtype = "fp16";
  o.steps = 2;
  o.iters = 3;
  o.warmup = 1;
  o.cuda_graph = UNetGraph::available();
  for (bool channels_last : {false, true}) {
    o.channels_last = channels_last;
    const auto r = run_bench(o);
    EXPECT_EQ(r["device"], "cuda:0");
    EXPECT_TRUE(r["unet_output_finite"].get<bool>());
    EXPECT_TRUE(r["vae_output_finite"].get<bool>());
    EXPECT_GT(r["unet_step_ms"].get<double>(), 0.0);
#ifdef SDGEN_TORCH_CUDA
    EXPECT_GT(r["peak_gpu_alloc_gib"].get<double>(), 0.0);
    EXPECT_NE(r["card"], "cuda:0");  // the device's name
    ASSERT_FALSE(r["cuda_graph"].is_null());
    // the graph replays the same kernels on the same inputs
    EXPECT_LT(r["cuda_graph"]["max_abs_diff_vs_eager"].get<double>(), 1e-2);
    EXPECT_GT(r["cuda_graph"]["unet_step_ms"].get<double>(), 0.0);
    EXPECT_GT(r["cuda_graph"]["e2e_ms"].get<double>(), 0.0);  // the sampler loop through it
#endif
  }
  if (fused_kernels_available()) {
    o.fused = true;
    const auto r = run_bench(o);
    EXPECT_TRUE(r["fused_kernels"].get<bool>());
    EXPECT_TRUE(r["unet_output_finite"].get<bool>());
    set_fused_kernels(false);
  }
}

class BenchCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = fs::temp_directory_path() /
          ("sdgen-bench-" + std::to_string(::getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  void TearDown() override { fs::remove_all(dir); }
  fs::path dir;
};

TEST_F(BenchCli, JsonOnStdoutAndInOut) {
  const auto out = dir / "results";
  auto r = test::run_sdgen(
      {"bench", "--arch", "tiny", "--steps", "2", "--iters", "2", "--warmup", "1", "--device",
       "cpu", "--json", "--quiet", "--tokenizer", kVocab, "--out", out.string()},
      dir);
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  check_record(j, 2, 2);
  const fs::path file = bench_result_path(out.string(), j);
  ASSERT_TRUE(fs::exists(file)) << file;
  EXPECT_EQ(nlohmann::json::parse(test::slurp(file)), j);
}

TEST_F(BenchCli, UsageErrors) {
  EXPECT_EQ(test::run_sdgen({"bench", "--arch", "sd3", "--quiet"}, dir).status, 2);
  EXPECT_EQ(test::run_sdgen({"bench", "--arch", "tiny", "--device", "cpu", "--dtype", "fp16"}, dir)
                .status,
            2);
  EXPECT_EQ(test::run_sdgen({"bench", "--arch", "tiny", "--device", "cpu", "--cuda-graph",
                             "--tokenizer", kVocab, "--quiet"},
                            dir)
                .status,
            2);
}

}  // namespace
}  // namespace sdgen
