#include "sdgen/sampling/brownian_tree.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <stdexcept>

namespace sdgen {
namespace {

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

uint64_t mix(uint64_t a, uint64_t b) {
  uint64_t s = a ^ (b * 0xD6E8FEB86659FD93ULL);
  return splitmix64(s);
}

uint64_t node_key(uint64_t seed, int depth, uint64_t index) {
  return mix(mix(seed, static_cast<uint64_t>(depth) + 1), index);
}

uint64_t leaf_key(uint64_t seed, int depth, uint64_t index, double t) {
  uint64_t bits;
  std::memcpy(&bits, &t, sizeof bits);
  return mix(mix(node_key(seed, depth, index), 0x6C656166ULL /* "leaf" */), bits);
}

}  // namespace

BrownianTree::BrownianTree(uint64_t seed, std::vector<int64_t> shape, double t0, double t1,
                           double tol)
    : seed_(seed), shape_(std::move(shape)), t0_(t0), t1_(t1) {
  if (!(t1_ > t0_)) throw std::invalid_argument("BrownianTree needs t0 < t1");
  tol_ = tol * (t1_ - t0_);
  w1_ = normal(mix(seed_, 0)) * std::sqrt(t1_ - t0_);
}

// numel standard normals from the key alone: splitmix64 uniforms through Box-Muller.
torch::Tensor BrownianTree::normal(uint64_t key) const {
  auto out = torch::empty(shape_, torch::TensorOptions().dtype(torch::kDouble));
  double* p = out.data_ptr<double>();
  const int64_t n = out.numel();
  uint64_t state = key;
  constexpr double two_pi = 6.283185307179586476925286766559;
  for (int64_t i = 0; i < n; i += 2) {
    const double u1 = (static_cast<double>(splitmix64(state) >> 11) + 1.0) * 0x1.0p-53;  // (0, 1]
    const double u2 = static_cast<double>(splitmix64(state) >> 11) * 0x1.0p-53;          // [0, 1)
    const double r = std::sqrt(-2.0 * std::log(u1));
    p[i] = r * std::cos(two_pi * u2);
    if (i + 1 < n) p[i + 1] = r * std::sin(two_pi * u2);
  }
  return out;
}

torch::Tensor BrownianTree::w(double t) const {
  t = std::min(std::max(t, t0_), t1_);
  if (t == t0_) return torch::zeros(shape_, torch::TensorOptions().dtype(torch::kDouble));
  if (t == t1_) return w1_;
  if (auto it = cache_.find(t); it != cache_.end()) return it->second;

  double a = t0_, b = t1_;
  torch::Tensor wa = torch::zeros(shape_, torch::TensorOptions().dtype(torch::kDouble)), wb = w1_;
  int depth = 0;
  uint64_t index = 0;
  torch::Tensor result;
  while (b - a > tol_ && depth < 60) {
    const double m = 0.5 * (a + b);
    auto wm = 0.5 * (wa + wb) + normal(node_key(seed_, depth, index)) * std::sqrt(0.25 * (b - a));
    ++depth;
    if (t == m) {
      result = wm;
      break;
    }
    if (t < m) {
      b = m;
      wb = wm;
      index = 2 * index;
    } else {
      a = m;
      wa = wm;
      index = 2 * index + 1;
    }
  }
  if (!result.defined()) {
    // bridge from the leaf's ends to t
    const double f = (t - a) / (b - a);
    const double sd = std::sqrt((t - a) * (b - t) / (b - a));
    result = wa + (wb - wa) * f + normal(leaf_key(seed_, depth, index, t)) * sd;
  }
  if (cache_.size() >= 16) cache_.clear();
  cache_.emplace(t, result);
  return result;
}

torch::Tensor BrownianTree::normalized_increment(double from, double to) const {
  const double dt = std::abs(to - from);
  if (dt == 0) throw std::invalid_argument("Brownian increment over an empty interval");
  return (w(to) - w(from)) / std::sqrt(dt);
}

NoiseSource brownian_noise_source(uint64_t seed, const std::vector<int64_t>& shape,
                                  double sigma_min, double sigma_max) {
  auto tree = std::make_shared<BrownianTree>(seed, shape, sigma_min, sigma_max);
  return [tree](const torch::Tensor& like, double sigma, double sigma_next) {
    auto n = tree->normalized_increment(sigma, sigma_next);
    if (n.sizes() != like.sizes())
      throw std::invalid_argument("Brownian noise asked for a tensor of another shape");
    return n.to(like.device(), like.scalar_type());
  };
}

}  // namespace sdgen
