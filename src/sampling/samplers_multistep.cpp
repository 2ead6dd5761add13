// The multistep samplers: linear multistep (LMS), DPM-Solver++(2M), DPM-Solver++(2M) SDE and
// UniPC. LMS and the DPM-Solver++ samplers follow k_diffusion/sampling.py (commit 4601bf0)
// operation for operation; UniPC follows diffusers' UniPCMultistepScheduler (data prediction,
// multistep_uni_p_bh_update / multistep_uni_c_bh_update) restated in k-diffusion's variables.
#include <algorithm>
#include <cmath>
#include <deque>
#include <stdexcept>
#include <string>

#include <torch/torch.h>

#include "sampler_util.h"
#include "sdgen/sampling/samplers.h"

namespace sdgen {

using detail::batch_sigma;
using detail::num_steps;
using detail::sigma_fn;
using detail::t_fn;
using detail::to_d;
using detail::value;

namespace {

// Coefficients of prod_k (u - roots[k]) in increasing powers of u.
std::vector<double> poly_from_roots(const std::vector<double>& roots) {
  std::vector<double> c{1.0};
  for (double r : roots) {
    std::vector<double> next(c.size() + 1, 0.0);
    for (size_t m = 0; m < c.size(); ++m) {
      next[m + 1] += c[m];
      next[m] -= r * c[m];
    }
    c = std::move(next);
  }
  return c;
}

}  // namespace

double linear_multistep_coeff(int order, const std::vector<double>& t, int i, int j,
                              bool float32_nodes) {
  if (order - 1 > i)
    throw std::invalid_argument("LMS order " + std::to_string(order) + " too high for step " +
                                std::to_string(i));
  // The Lagrange basis polynomial l_j(tau) = prod_{k != j} (tau - t[i-k]) / (t[i-j] - t[i-k]),
  // integrated exactly over [t[i], t[i+1]] (k-diffusion uses scipy's quad, which is exact to
  // rounding for these low degrees). In the shifted variable u = tau - t[i] the integral is
  // sum_m c_m H^(m+1) / (m+1) with H = t[i+1] - t[i].
  // k-diffusion's t is a float32 numpy array: the denominators t[i-j] - t[i-k] are float32
  // differences, the rest runs in double.
  std::vector<double> roots;
  double denom = 1.0;
  for (int k = 0; k < order; ++k) {
    if (k == j) continue;
    roots.push_back(t[i - k] - t[i]);
    denom *= float32_nodes
                 ? static_cast<double>(static_cast<float>(t[i - j]) - static_cast<float>(t[i - k]))
                 : t[i - j] - t[i - k];
  }
  const auto c = poly_from_roots(roots);
  const double H = t[i + 1] - t[i];
  double integral = 0.0, hp = H;
  for (size_t m = 0; m < c.size(); ++m, hp *= H) integral += c[m] * hp / static_cast<double>(m + 1);
  return integral / denom;
}

// sample_lms: x += sum_j c_j d_{i-j}, with the last `order` derivatives.
torch::Tensor sample_lms(const Denoiser& model, torch::Tensor x, const torch::Tensor& sigmas,
                         int order, const StepCallback& callback) {
  if (order < 1) throw std::invalid_argument("LMS order must be at least 1");
  const int steps = num_steps(sigmas);
  auto s64 = sigmas.to(torch::kCPU).to(torch::kDouble).contiguous();
  const std::vector<double> t(s64.data_ptr<double>(), s64.data_ptr<double>() + s64.numel());
  const bool f32 = sigmas.scalar_type() == torch::kFloat;
  std::deque<torch::Tensor> ds;
  for (int i = 0; i < steps; ++i) {
    if (callback) callback(i, steps, x);
    auto sigma = sigmas[i];
    auto denoised = model(x, batch_sigma(sigma, x));
    ds.push_back(to_d(x, sigma, denoised));
    if (static_cast<int>(ds.size()) > order) ds.pop_front();
    const int cur_order = std::min(i + 1, order);
    torch::Tensor sum;
    for (int j = 0; j < cur_order; ++j) {
      auto term = ds[ds.size() - 1 - j] * linear_multistep_coeff(cur_order, t, i, j, f32);
      sum = j == 0 ? term : sum + term;
    }
    x = x + sum;
  }
  return x;
}

// sample_dpmpp_2m: DPM-Solver++(2M) in t = -log(sigma); first-order on the first step and on
// the step to sigma 0.
torch::Tensor sample_dpmpp_2m(const Denoiser& model, torch::Tensor x, const torch::Tensor& sigmas,
                              const StepCallback& callback) {
  const int steps = num_steps(sigmas);
  torch::Tensor old_denoised;
  for (int i = 0; i < steps; ++i) {
    if (callback) callback(i, steps, x);
    auto sigma = sigmas[i], next = sigmas[i + 1];
    auto denoised = model(x, batch_sigma(sigma, x));
    auto t = t_fn(sigma), t_next = t_fn(next);
    auto h = t_next - t;
    if (!old_denoised.defined() || value(next) == 0) {
      x = (sigma_fn(t_next) / sigma_fn(t)) * x - (-h).expm1() * denoised;
    } else {
      auto h_last = t - t_fn(sigmas[i - 1]);
      auto r = h_last / h;
      auto inv_2r = (2 * r).reciprocal();
      auto denoised_d = (1 + inv_2r) * denoised - inv_2r * old_denoised;
      x = (sigma_fn(t_next) / sigma_fn(t)) * x - (-h).expm1() * denoised_d;
    }
    old_denoised = denoised;
  }
  return x;
}

// sample_dpmpp_2m_sde (solver_type "midpoint"): the 2M update of the SDE with noise
// sigma_next * sqrt(1 - exp(-2 eta h)); the step to sigma 0 returns the denoised estimate.
torch::Tensor sample_dpmpp_2m_sde(const Denoiser& model, torch::Tensor x,
                                  const torch::Tensor& sigmas, const NoiseSource& noise,
                                  const SamplerOptions& o, const StepCallback& callback) {
  const double eta = detail::eta_or(o, 1.0);
  const int steps = num_steps(sigmas);
  torch::Tensor old_denoised, h_last;
  for (int i = 0; i < steps; ++i) {
    if (callback) callback(i, steps, x);
    auto sigma = sigmas[i], next = sigmas[i + 1];
    auto denoised = model(x, batch_sigma(sigma, x));
    torch::Tensor h;
    if (value(next) == 0) {
      x = denoised;
    } else {
      auto t = -sigma.log(), s = -next.log();
      h = s - t;
      auto eta_h = eta * h;
      x = next / sigma * (-eta_h).exp() * x + (-h - eta_h).expm1().neg() * denoised;
      if (old_denoised.defined()) {
        auto r = h_last / h;
        x = x + 0.5 * (-h - eta_h).expm1().neg() * r.reciprocal() * (denoised - old_denoised);
      }
      if (eta != 0)
        x = x + noise(x, value(sigma), value(next)) * next * (-2 * eta_h).expm1().neg().sqrt() *
                    o.s_noise;
    }
    old_denoised = denoised;
    if (h.defined()) h_last = h;
  }
  return x;
}

// --- UniPC ---------------------------------------------------------------------------------
//
// In k-diffusion's variables (x = x0 + sigma * eps) the data-prediction UniPC update of
// diffusers is the VP one with alpha = 1: lambda = -log(sigma), h = lambda_t - lambda_s0,
//   x_t = sigma_t / sigma_s0 * x - expm1(-h) * m0 - B(h) * sum_k rho_k D1_k,
// with m the denoised estimates and D1_k = (m_k - m0) / r_k the scaled differences to earlier
// points. The coefficients are scalars, computed here in double.
namespace {

double lambda_of(double sigma) { return sigma > 0 ? -std::log(sigma) : INFINITY; }

// Solves A x = b for a small dense system by Gaussian elimination with partial pivoting.
std::vector<double> solve_small(std::vector<std::vector<double>> a, std::vector<double> b) {
  const size_t n = b.size();
  for (size_t c = 0; c < n; ++c) {
    size_t p = c;
    for (size_t r = c + 1; r < n; ++r)
      if (std::abs(a[r][c]) > std::abs(a[p][c])) p = r;
    std::swap(a[c], a[p]);
    std::swap(b[c], b[p]);
    for (size_t r = c + 1; r < n; ++r) {
      const double f = a[r][c] / a[c][c];
      for (size_t k = c; k < n; ++k) a[r][k] -= f * a[c][k];
      b[r] -= f * b[c];
    }
  }
  std::vector<double> x(n);
  for (size_t i = n; i-- > 0;) {
    double s = b[i];
    for (size_t k = i + 1; k < n; ++k) s -= a[i][k] * x[k];
    x[i] = s / a[i][i];
  }
  return x;
}

struct UniCoeffs {
  double h_phi_1 = 0, b_h = 0;
  std::vector<double> rks;             // r_1 .. r_{p-1}, then 1
  std::vector<std::vector<double>> R;  // R[k][m] = rks[m]^k
  std::vector<double> b;               // b_k = h_phi_k * k! / B(h)
};

// The shared part of multistep_uni_p_bh_update / multistep_uni_c_bh_update.
// lambdas_prev: lambda of the earlier points m_1 .. m_{p-1}.
UniCoeffs uni_coeffs(double lambda_s0, double lambda_t, const std::vector<double>& lambdas_prev,
                     int order, bool bh2) {
  UniCoeffs c;
  const double h = lambda_t - lambda_s0;
  for (double l : lambdas_prev) c.rks.push_back((l - lambda_s0) / h);
  c.rks.push_back(1.0);
  const double hh = -h;  // data prediction
  c.h_phi_1 = std::expm1(hh);
  double h_phi_k = c.h_phi_1 / hh - 1;
  double factorial = 1;
  c.b_h = bh2 ? std::expm1(hh) : hh;
  for (int k = 1; k <= order; ++k) {
    std::vector<double> row;
    for (double r : c.rks) row.push_back(std::pow(r, k - 1));
    c.R.push_back(row);
    c.b.push_back(h_phi_k * factorial / c.b_h);
    factorial *= k + 1;
    h_phi_k = h_phi_k / hh - 1 / factorial;
  }
  return c;
}

}  // namespace

torch::Tensor sample_unipc(const Denoiser& model, torch::Tensor x, const torch::Tensor& sigmas,
                           const UniPCOptions& o, const StepCallback& callback) {
  if (o.order < 1 || o.order > 3) throw std::invalid_argument("UniPC order must be 1, 2 or 3");
  const int steps = num_steps(sigmas);
  auto s64 = sigmas.to(torch::kCPU).to(torch::kDouble).contiguous();
  const std::vector<double> sig(s64.data_ptr<double>(), s64.data_ptr<double>() + s64.numel());

  std::deque<torch::Tensor> ms;  // denoised estimates, newest last
  std::deque<double> lambdas;    // their lambdas
  torch::Tensor last_sample;
  int last_order = 0;
  for (int i = 0; i < steps; ++i) {
    if (callback) callback(i, steps, x);
    auto m_t = model(x, batch_sigma(sigmas[i], x));
    const double lambda_i = lambda_of(sig[i]);

    // UniC: correct the previous predictor's result with the model output at it.
    if (last_sample.defined()) {
      std::vector<double> prev;
      for (int k = 1; k < last_order; ++k) prev.push_back(lambdas[lambdas.size() - 1 - k]);
      const auto c = uni_coeffs(lambdas.back(), lambda_i, prev, last_order, o.bh2);
      const auto rhos = last_order == 1 ? std::vector<double>{0.5} : solve_small(c.R, c.b);
      const auto& m0 = ms.back();
      torch::Tensor corr;
      for (int k = 1; k < last_order; ++k) {
        auto d1 = (ms[ms.size() - 1 - k] - m0) / c.rks[k - 1];
        corr = corr.defined() ? corr + d1 * rhos[k - 1] : d1 * rhos[k - 1];
      }
      auto d1_t = (m_t - m0) * rhos.back();
      corr = corr.defined() ? corr + d1_t : d1_t;
      x = last_sample * (sig[i] / sig[i - 1]) - m0 * c.h_phi_1 - corr * c.b_h;
    }

    ms.push_back(m_t);
    lambdas.push_back(lambda_i);
    if (static_cast<int>(ms.size()) > o.order) {
      ms.pop_front();
      lambdas.pop_front();
    }
    int order = o.lower_order_final ? std::min(o.order, steps - i) : o.order;
    order = std::min(order, static_cast<int>(ms.size()));  // warm-up
    if (sig[i + 1] == 0) order = 1;  // lambda = inf: only the first-order step is defined
    last_sample = x;
    last_order = order;

    // UniP: predict x at the next sigma.
    std::vector<double> prev;
    for (int k = 1; k < order; ++k) prev.push_back(lambdas[lambdas.size() - 1 - k]);
    const auto c = uni_coeffs(lambda_i, lambda_of(sig[i + 1]), prev, order, o.bh2);
    torch::Tensor pred;
    if (order > 1) {
      std::vector<std::vector<double>> r(c.R.begin(), c.R.end() - 1);
      for (auto& row : r) row.pop_back();
      const auto rhos =
          order == 2 ? std::vector<double>{0.5} : solve_small(r, {c.b.begin(), c.b.end() - 1});
      for (int k = 1; k < order; ++k) {
        auto d1 = (ms[ms.size() - 1 - k] - m_t) / c.rks[k - 1];
        pred = pred.defined() ? pred + d1 * rhos[k - 1] : d1 * rhos[k - 1];
      }
    }
    x = x * (sig[i + 1] / sig[i]) - m_t * c.h_phi_1;
    if (pred.defined()) x = x - pred * c.b_h;
  }
  return x;
}

}  // namespace sdgen
