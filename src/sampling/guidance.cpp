#include "sdgen/sampling/guidance.h"

namespace sdgen {

GuidedDenoiser::GuidedDenoiser(ModelSampling sampling, ModelCall call, Conditioning cond,
                               Conditioning uncond, double cfg_scale)
    : sampling_(std::move(sampling)),
      call_(std::move(call)),
      both_(cfg_scale != 1.0 ? cat_rows({uncond, cond}) : Conditioning()),
      cond_(std::move(cond)),
      cfg_scale_(cfg_scale) {}

Conditioning GuidedDenoiser::rows(int64_t images, int64_t batch_rows) const {
  const Conditioning& c = guided() ? both_ : cond_;
  return c.rows() == batch_rows ? c : c.repeat_interleave(images);
}

torch::Tensor GuidedDenoiser::operator()(const torch::Tensor& x, const torch::Tensor& sigma) const {
  torch::NoGradGuard no_grad;
  const int64_t images = x.size(0);
  auto x_in = guided() ? torch::cat({x, x}) : x;
  auto sigma_in = guided() ? torch::cat({sigma, sigma}) : sigma;
  auto t = sampling_.sigma_to_t(sigma_in);
  auto out = call_(x_in * sampling_.input_scale(sigma_in), t, rows(images, x_in.size(0)), images);
  auto denoised = sampling_.denoised(x_in, sigma_in, out);
  if (!guided()) return denoised;
  auto parts = denoised.chunk(2);
  return parts[0] + (parts[1] - parts[0]) * cfg_scale_;
}

torch::Tensor GuidedDenoiser::eps(const torch::Tensor& x, const torch::Tensor& t) const {
  torch::NoGradGuard no_grad;
  const int64_t images = x.size(0);
  auto x_in = guided() ? torch::cat({x, x}) : x;
  auto t_in = guided() ? torch::cat({t, t}) : t;
  auto out = call_(x_in, t_in, rows(images, x_in.size(0)), images);
  if (guided()) {
    auto parts = out.chunk(2);
    out = parts[0] + cfg_scale_ * (parts[1] - parts[0]);
  }
  return sampling_.eps_from_output(x, t, out);
}

Denoiser GuidedDenoiser::denoiser() const {
  auto self = std::make_shared<GuidedDenoiser>(*this);
  return [self](const torch::Tensor& x, const torch::Tensor& sigma) { return (*self)(x, sigma); };
}

EpsModel GuidedDenoiser::eps_model() const {
  auto self = std::make_shared<GuidedDenoiser>(*this);
  return [self](const torch::Tensor& x, const torch::Tensor& t) { return self->eps(x, t); };
}

}  // namespace sdgen
