#include "sdgen/pipeline/pipeline.h"

#include <algorithm>
#include <stdexcept>

namespace sdgen {

Pipeline::Pipeline(LoadedModel model, std::shared_ptr<const Tokenizer> tokenizer,
                   torch::Device device, torch::ScalarType dtype)
    : model_(std::move(model)),
      device_(device),
      dtype_(dtype),
      prompts_(make_conditioner(model_, std::move(tokenizer), device)) {}

torch::ScalarType Pipeline::vae_dtype() const {
  return model_.vae->post_quant_conv->weight.scalar_type();
}

GenerationParams Pipeline::resolve(GenerationParams p, const PipelineEvents& events) const {
  p = resolve_params(std::move(p), model_.limits(), events.warn);
  if (p.prediction.empty() && model_.family->prediction_open) p.prediction = config().prediction;
  return p;
}

GuidedDenoiser Pipeline::guided(const Conditioning& cond, const Conditioning& uncond,
                                double cfg_scale, const std::string& prediction) {
  auto sampling = prediction.empty()
                      ? model_.sampling
                      : model_.sampling.with_prediction(parse_prediction(prediction));
  ModelCall call = [this](const torch::Tensor& x_in, const torch::Tensor& t, const Conditioning& c,
                          int64_t images) {
    return run_unet(x_in.to(device_, dtype_), t.to(device_), c, images).to(torch::kFloat);
  };
  return GuidedDenoiser(std::move(sampling), std::move(call), cond, uncond, cfg_scale);
}

torch::Tensor Pipeline::run_unet(const torch::Tensor& x, const torch::Tensor& t,
                                 const Conditioning& c, int64_t images) {
  if (unet_runner_) return unet_runner_(x, t, c);
  if (!device_.is_cpu() || images <= 1) return model_.unet->forward(x, t, c);
  // On the CPU the kernels' blocking depends on the batch size, so a batched image could
  // differ from the same image made alone in the last bits. Each image's passes (rows i,
  // i + images, ...) run as their own batch instead: the CPU gains little from batching,
  // and an image stays bit-identical whatever --batch-size made it.
  const int64_t passes = x.size(0) / images;
  auto out = torch::empty_like(x);
  for (int64_t i = 0; i < images; ++i) {
    auto rows = torch::arange(passes, torch::kLong) * images + i;
    auto eps = model_.unet->forward(x.index_select(0, rows), t.index_select(0, rows),
                                    c.index_select(rows));
    out.index_copy_(0, rows, eps);
  }
  return out;
}

torch::Tensor decode_finite(const std::function<torch::Tensor(torch::ScalarType)>& decode,
                            torch::ScalarType dtype,
                            const std::function<void(const std::string&)>& warn) {
  auto image = decode(dtype);
  if (torch::isfinite(image).all().item<bool>()) return image;
  // Half-precision VAEs overflow (SDXL's original VAE in fp16): A1111's "automatically revert
  // VAE to 32-bit floats" (processing.py decode_latent_batch).
  if (dtype == torch::kFloat)
    throw std::runtime_error(
        "the VAE decoded NaN or infinite values in float32: the latent or the VAE weights are "
        "broken (try another --vae); no image written");
  if (warn)
    warn(std::string("the VAE decoded NaN or infinite values in ") + c10::toString(dtype) +
         "; decoding again in float32 (--vae-dtype fp32 avoids the retry)");
  image = decode(torch::kFloat);
  if (!torch::isfinite(image).all().item<bool>())
    throw std::runtime_error(
        "the VAE decoded NaN or infinite values also in float32: the latent or the VAE weights "
        "are broken (try another --vae); no image written");
  return image;
}

torch::Tensor Pipeline::decode_latent(const torch::Tensor& latent, const PipelineEvents& events) {
  torch::NoGradGuard no_grad;
  auto decode = [&](torch::ScalarType dtype) {
    if (vae_dtype() != dtype) model_.vae->to(dtype);  // float32 stays for the rest of the run
    auto z = model_.sampling.latent_to_vae(latent).to(device_, dtype);
    if (device_.is_cpu() && z.size(0) > 1) {
      std::vector<torch::Tensor> parts;  // image by image, as run_unet explains
      for (int64_t i = 0; i < z.size(0); ++i)
        parts.push_back(model_.vae->decode(z.narrow(0, i, 1)));
      return torch::cat(parts).to(torch::kFloat);
    }
    return model_.vae->decode(z).to(torch::kFloat).to(torch::kCPU);
  };
  const auto image = decode_finite(decode, vae_dtype(), events.warn);  // [B, 3, H, W]
  auto u8 = (((image + 1) / 2).clamp(0, 1) * 255).round().to(torch::kUInt8);
  return u8.permute({0, 2, 3, 1}).contiguous();
}

Image Pipeline::generate(const GenerationParams& params, const PipelineEvents& events) {
  return generate_batch({params}, events).front();
}

std::vector<Image> Pipeline::generate_batch(const std::vector<GenerationParams>& batch,
                                            const PipelineEvents& events) {
  torch::NoGradGuard no_grad;
  if (batch.empty()) return {};
  std::vector<GenerationParams> ps;
  for (const auto& params : batch) {
    ps.push_back(resolve(params, ps.empty() ? events : PipelineEvents{}));
    if (!batchable(ps.front(), ps.back()))
      throw std::invalid_argument(
          "generate_batch: images of one batch must share size, steps, "
          "sampler, scheduler, guidance and prediction");
  }
  const GenerationParams& p = ps.front();
  const int64_t n = static_cast<int64_t>(ps.size());
  const int factor = config().vae.downsample_factor();

  // 1. conditioning; conds and unconds of different lengths are padded with chunks of the
  // empty prompt so that they batch together (A1111's pad_cond_uncond)
  std::vector<Conditioning> conds, unconds;
  int64_t tokens = 0;
  for (const auto& q : ps) {
    conds.push_back(prompts_->cached(q.prompt, condition_request(q, false)));
    unconds.push_back(prompts_->cached(q.negative_prompt, condition_request(q, true)));
    tokens = std::max({tokens, conds.back().tokens(), unconds.back().tokens()});
  }
  for (int64_t i = 0; i < n; ++i) {
    if (conds[i].tokens() == tokens && unconds[i].tokens() == tokens) continue;
    // (the empty prompt encoded as a prompt, as A1111's cond_stage_model_empty_prompt)
    const auto empty = prompts_->cached("", condition_request(ps[i], false));
    conds[i] = pad_tokens(conds[i], tokens, empty);
    unconds[i] = pad_tokens(unconds[i], tokens, empty);
  }
  const auto cond = cat_rows(conds), uncond = cat_rows(unconds);

  // 2. noise, from a CPU generator per image so that one seed gives one image on every device
  // and in every batch; ancestral / SDE noise from the same generators, image by image
  const auto guidance = guided(cond, uncond, p.cfg_scale, p.prediction);
  const auto& schedule = guidance.sampling().schedule();
  auto sigmas = make_sigmas(p.scheduler, schedule, p.steps);
  const SamplerInfo& sampler = sampler_info(p.sampler);
  std::vector<torch::Tensor> noises;
  std::vector<NoiseSource> sources;
  for (const auto& q : ps) {
    auto gen = at::detail::createCPUGenerator(q.seed);
    noises.push_back(torch::randn({1, config().vae.z_channels, p.height / factor, p.width / factor},
                                  gen, torch::TensorOptions().dtype(torch::kFloat)));
    sources.push_back(make_noise_source(sampler, gen, sigmas));
  }
  auto noise = torch::cat(noises);
  NoiseSource sampler_noise = sources.front();
  if (n > 1) {
    sampler_noise = [sources](const torch::Tensor& like, double sigma, double next) {
      std::vector<torch::Tensor> parts;
      for (size_t i = 0; i < sources.size(); ++i)
        parts.push_back(sources[i](like.narrow(0, static_cast<int64_t>(i), 1), sigma, next));
      return torch::cat(parts);
    };
  }

  // 3. denoise: k-diffusion samplers from noise * sigmas[0] over the sigma schedule; CompVis
  // DDIM / PLMS from the unit noise itself over their own timesteps, guided in eps space
  torch::Tensor latent;
  if (sampler.unit_noise_timesteps) {
    latent = run_timestep_sampler(p.sampler, guidance.eps_model(), noise.to(device_),
                                  schedule.alphas_cumprod(), p.steps, sampler_noise,
                                  p.sampler_options, events.step);
  } else {
    auto x = (noise * sigmas[0]).to(device_);
    latent = run_sampler(p.sampler, guidance.denoiser(), x, sigmas.to(device_), sampler_noise,
                         p.sampler_options, events.step);
  }

  // A NaN or infinity in the latent would decode to a black or noisy image: never written.
  if (!torch::isfinite(latent).all().item<bool>())
    throw std::runtime_error(
        std::string("the sampler produced NaN or infinite values in the latent (") +
        c10::toString(latent.scalar_type()) + " on " + device_.str() + ")" +
        (dtype_ == torch::kHalf
             ? "; float16 overflows in some models' UNets: try --dtype bf16 or fp32"
         : p.cfg_scale > 50 ? "; the guidance scale " + format_number(p.cfg_scale) +
                                  " is far beyond what models tolerate (usually 1 to 30)"
                            : std::string("; the model weights may be broken")) +
        "; no image written");

  // 4. decode
  auto pixels = decode_latent(latent, events);  // [B, H, W, 3]
  std::vector<Image> out(n);
  for (int64_t i = 0; i < n; ++i) {
    auto px = pixels[i].contiguous();
    out[i].width = p.width;
    out[i].height = p.height;
    out[i].params = ps[i];
    out[i].rgb.assign(px.data_ptr<uint8_t>(), px.data_ptr<uint8_t>() + px.numel());
  }
  return out;
}

}  // namespace sdgen
