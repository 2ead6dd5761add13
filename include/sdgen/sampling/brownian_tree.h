// A Brownian motion W on [t0, t1] that can be queried at any time in any order and always gives
// the same values for the same seed: the noise source of SDE samplers (k-diffusion's
// BrownianTreeNoiseSampler over torchsde.BrownianTree plays this role there).
//
// Construction: W(t0) = 0 and W(t1) = sqrt(t1 - t0) z; the value at the midpoint of a known
// interval [a, b] is the Brownian bridge sample
//   W(m) = (W(a) + W(b)) / 2 + sqrt((b - a) / 4) z_node,
// where z_node is a standard-normal tensor generated from (seed, node) alone (splitmix64 +
// Box-Muller, in double precision). A query descends this dyadic tree until the interval is
// shorter than `tol`, then bridges from the leaf's ends to the query time with normals keyed by
// (seed, leaf, time). So W at every queried time has exactly the law of Brownian motion, values
// do not depend on the order of queries, and increments over the disjoint intervals of a sigma
// schedule are independent normals with variance equal to the interval length — the same law
// torchsde's tree gives; the numbers themselves differ from torchsde's (which depend on numpy's
// SeedSequence and PyTorch's generator internals).
#pragma once
#include <cstdint>
#include <map>
#include <vector>

#include <torch/torch.h>

#include "sdgen/sampling/samplers.h"

namespace sdgen {

class BrownianTree {
 public:
  // shape: of one noise tensor; tol: leaf width as a fraction of t1 - t0.
  BrownianTree(uint64_t seed, std::vector<int64_t> shape, double t0, double t1, double tol = 1e-7);
  // W(t) (float64, on the CPU); t is clamped into [t0, t1].
  torch::Tensor w(double t) const;
  // k-diffusion's BrownianTreeNoiseSampler(sigma, sigma_next):
  // (W(sigma_next) - W(sigma)) / sqrt(|sigma_next - sigma|), a standard normal for one step.
  torch::Tensor normalized_increment(double from, double to) const;

  double t0() const { return t0_; }
  double t1() const { return t1_; }

 private:
  torch::Tensor normal(uint64_t key) const;

  uint64_t seed_;
  std::vector<int64_t> shape_;
  double t0_, t1_, tol_;
  torch::Tensor w1_;                               // W(t1)
  mutable std::map<double, torch::Tensor> cache_;  // recent queries
};

// A NoiseSource over a BrownianTree on [sigma_min, sigma_max] for tensors shaped like `shape`;
// results have the dtype and device of the tensor that asks.
NoiseSource brownian_noise_source(uint64_t seed, const std::vector<int64_t>& shape,
                                  double sigma_min, double sigma_max);

}  // namespace sdgen
