#include "sdgen/pipeline/pipeline.h"

#include <stdexcept>

namespace sdgen {

Pipeline::Pipeline(LoadedModel model, std::shared_ptr<const Tokenizer> tokenizer,
                   torch::Device device, torch::ScalarType dtype)
    : model_(std::move(model)),
      tokenizer_(std::move(tokenizer)),
      device_(device),
      dtype_(dtype),
      schedule_(DiscreteSchedule::scaled_linear()) {}

GenerationParams Pipeline::resolve(GenerationParams p, const PipelineEvents& events) const {
  const int native = model_.config.native_size;
  const int factor = model_.config.vae.downsample_factor();
  if (p.width == 0) p.width = native;
  if (p.height == 0) p.height = native;
  if (p.width <= 0 || p.height <= 0 || p.width % factor || p.height % factor)
    throw std::invalid_argument("size " + std::to_string(p.width) + "x" + std::to_string(p.height) +
                                " is not a multiple of " + std::to_string(factor) +
                                " on both sides; try " +
                                std::to_string(std::max(factor, p.width / factor * factor)) + "x" +
                                std::to_string(std::max(factor, p.height / factor * factor)));
  if (p.steps < 1) throw std::invalid_argument("steps must be at least 1");
  sampler_info(p.sampler);
  make_sigmas(p.scheduler, schedule_, 1);  // validates the name
  if (p.clip_skip < 1 || p.clip_skip > model_.config.text.layers)
    throw std::invalid_argument("clip skip must be between 1 and " +
                                std::to_string(model_.config.text.layers));
  if (events.warn && (p.width > 2 * native || p.height > 2 * native ||
                      int64_t{p.width} * p.height > int64_t{2} * native * native))
    events.warn("size " + std::to_string(p.width) + "x" + std::to_string(p.height) +
                " is far above the model's native " + std::to_string(native) + "x" +
                std::to_string(native) + ": expect duplicated objects and repeated patterns");
  return p;
}

std::vector<int64_t> Pipeline::token_ids(const std::string& prompt,
                                         const PipelineEvents& events) const {
  const size_t length = static_cast<size_t>(model_.config.text.max_positions);
  auto ids = tokenizer_->encode(prompt);
  if (ids.size() > length - 2 && events.warn)
    events.warn("prompt has " + std::to_string(ids.size()) + " tokens; only the first " +
                std::to_string(length - 2) + " are used");
  // SD 1.x pads with the end-of-text token.
  return frame_ids(ids, tokenizer_->bos_id(), tokenizer_->eos_id(), tokenizer_->eos_id(), length);
}

torch::Tensor Pipeline::encode_prompt(const std::string& prompt, int clip_skip,
                                      const PipelineEvents& events) {
  torch::NoGradGuard no_grad;
  auto ids = token_ids(prompt, events);
  auto t = torch::tensor(ids, torch::kLong).unsqueeze(0).to(device_);
  return model_.text->forward(t, clip_skip);
}

Denoiser Pipeline::guided_denoiser(const torch::Tensor& cond, const torch::Tensor& uncond,
                                   double cfg_scale) {
  // Batch [uncond, cond] through CompVisDenoiser: x = x0 + sigma * eps, UNet input
  // x / sqrt(sigma^2 + 1) at t(sigma), denoised = x - sigma * eps.
  auto context = torch::cat({uncond, cond});
  return [this, context, cfg_scale](const torch::Tensor& x, const torch::Tensor& sigma) {
    torch::NoGradGuard no_grad;
    auto x_in = torch::cat({x, x});
    auto sigma_in = torch::cat({sigma, sigma});
    auto c_out = (-sigma_in).view({-1, 1, 1, 1});
    auto c_in = (sigma_in.pow(2) + 1.0).pow(0.5).reciprocal().view({-1, 1, 1, 1});
    auto t = schedule_.sigma_to_t(sigma_in);
    auto ctx = context.size(0) == x_in.size(0) ? context : context.repeat_interleave(x.size(0), 0);
    auto eps = model_.unet->forward((x_in * c_in).to(device_, dtype_), t.to(device_), ctx)
                   .to(torch::kFloat);
    auto denoised = x_in + eps * c_out.to(eps.device());
    auto parts = denoised.chunk(2);
    return parts[0] + (parts[1] - parts[0]) * cfg_scale;
  };
}

torch::Tensor Pipeline::decode_latent(const torch::Tensor& latent) {
  torch::NoGradGuard no_grad;
  auto z = (latent * (1.0 / model_.config.vae.scale_factor)).to(device_, dtype_);
  auto image = model_.vae->decode(z).to(torch::kFloat).to(torch::kCPU);  // [B, 3, H, W]
  auto u8 = (((image + 1) / 2).clamp(0, 1) * 255).round().to(torch::kUInt8);
  return u8.permute({0, 2, 3, 1}).contiguous();
}

Image Pipeline::generate(const GenerationParams& params, const PipelineEvents& events) {
  torch::NoGradGuard no_grad;
  const GenerationParams p = resolve(params, events);
  const int factor = model_.config.vae.downsample_factor();

  // 1. text
  auto cond = encode_prompt(p.prompt, p.clip_skip, events);
  auto uncond = encode_prompt(p.negative_prompt, p.clip_skip, events);

  // 2. noise, from a CPU generator so that one seed gives one image on every device
  auto gen = at::detail::createCPUGenerator(p.seed);
  auto f32 = torch::TensorOptions().dtype(torch::kFloat);
  auto noise = torch::randn({1, model_.config.vae.z_channels, p.height / factor, p.width / factor},
                            gen, f32);
  auto sigmas = make_sigmas(p.scheduler, schedule_, p.steps);
  auto x = (noise * sigmas[0]).to(device_);
  NoiseSource ancestral_noise = [gen](const torch::Tensor& like, double, double) mutable {
    return torch::randn(like.sizes(), gen, torch::TensorOptions().dtype(torch::kFloat))
        .to(like.device());
  };

  // 3. denoise
  auto model = guided_denoiser(cond, uncond, p.cfg_scale);
  auto latent = run_sampler(p.sampler, model, x, sigmas.to(device_), ancestral_noise,
                            p.sampler_options, events.step);

  // 4. decode
  auto pixels = decode_latent(latent);
  Image out;
  out.width = p.width;
  out.height = p.height;
  out.rgb.assign(pixels.data_ptr<uint8_t>(), pixels.data_ptr<uint8_t>() + pixels.numel());
  return out;
}

InfoText make_infotext(const GenerationParams& p, const std::string& model_name,
                       const std::string& model_hash, const std::string& vae_name) {
  InfoText info;
  info.prompt = p.prompt;
  info.negative_prompt = p.negative_prompt;
  auto& f = info.fields;
  f.emplace_back("Steps", std::to_string(p.steps));
  f.emplace_back("Sampler", sampler_info(p.sampler).a1111_label);
  for (const auto& s : schedulers())
    if (s.name == p.scheduler && s.a1111_label != "Automatic")
      f.emplace_back("Schedule type", s.a1111_label);
  f.emplace_back("CFG scale", format_number(p.cfg_scale));
  f.emplace_back("Seed", std::to_string(p.seed));
  f.emplace_back("Size", std::to_string(p.width) + "x" + std::to_string(p.height));
  if (!model_hash.empty()) f.emplace_back("Model hash", model_hash);
  if (!model_name.empty()) f.emplace_back("Model", model_name);
  if (!vae_name.empty()) f.emplace_back("VAE", vae_name);
  if (p.sampler_options.eta != 1.0 && sampler_info(p.sampler).ancestral)
    f.emplace_back("Eta", format_number(p.sampler_options.eta));
  if (p.clip_skip != 1) f.emplace_back("Clip skip", std::to_string(p.clip_skip));
  f.emplace_back("Version", "sdgen 0.1.0");
  return info;
}

}  // namespace sdgen
