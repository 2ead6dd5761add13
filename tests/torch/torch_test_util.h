// Helpers for the tests that compare against ../shared/reference.
#pragma once
#include <map>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <string>

#include <torch/torch.h>

#include "sdgen/io/tensor_io.h"
#include "sdgen/loading/model_loader.h"
#include "sdgen/pipeline/pipeline.h"

namespace sdgen::test {

inline std::string ref(const std::string& rel) {
  return std::string(SDGEN_REFERENCE_DIR) + "/" + rel;
}

inline double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kCPU).to(torch::kDouble) - b.to(torch::kCPU).to(torch::kDouble))
      .abs()
      .max()
      .item<double>();
}

// The tiny SD1 reference checkpoint, loaded once per test binary (CPU, float32).
inline LoadedModel& tiny_sd1() {
  static LoadedModel m = [] {
    LoadOptions o;
    o.model_path = ref("tiny-sd1.safetensors");
    return load_model(o);
  }();
  return m;
}

// The pipeline's guided denoiser over plain contexts, as a k-diffusion Denoiser and as the
// CompVis EpsModel adapter.
inline Denoiser guided_denoiser(Pipeline& p, const torch::Tensor& cond, const torch::Tensor& uncond,
                                double cfg, const std::string& prediction = "") {
  return p.guided(Conditioning(cond), Conditioning(uncond), cfg, prediction).denoiser();
}
inline EpsModel guided_eps_model(Pipeline& p, const torch::Tensor& cond,
                                 const torch::Tensor& uncond, double cfg,
                                 const std::string& prediction = "") {
  return p.guided(Conditioning(cond), Conditioning(uncond), cfg, prediction).eps_model();
}

inline const std::map<std::string, torch::Tensor>& ref_tensors(const std::string& rel) {
  static std::map<std::string, std::map<std::string, torch::Tensor>> cache;
  auto it = cache.find(rel);
  if (it == cache.end()) it = cache.emplace(rel, load_tensors(ref(rel))).first;
  return it->second;
}

inline const torch::Tensor& rt(const std::string& file, const std::string& name) {
  const auto& m = ref_tensors(file);
  auto it = m.find(name);
  if (it == m.end()) throw std::runtime_error(file + " has no tensor " + name);
  return it->second;
}

// Compares each recorded UNet block output with `<case>.debug.<block>` of the reference file
// when it has one (EXPECT_LT per block); returns how many were compared.
inline int expect_blocks_match(const std::vector<std::pair<std::string, torch::Tensor>>& blocks,
                               const std::string& file, const std::string& c, double tol) {
  const auto& refs = ref_tensors(file);
  int compared = 0;
  for (const auto& [name, t] : blocks) {
    auto it = refs.find(c + ".debug." + name);
    if (it == refs.end()) continue;
    EXPECT_LT(max_abs_diff(t, it->second), tol) << name;
    ++compared;
  }
  return compared;
}

}  // namespace sdgen::test
