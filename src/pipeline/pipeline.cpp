#include "sdgen/pipeline/pipeline.h"

#include <algorithm>
#include <cmath>
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
  validate_sampler(p.sampler, p.steps, p.sampler_options);
  make_sigmas(p.scheduler, schedule_, 1);  // validates the name
  if (sampler_info(p.sampler).unit_noise_timesteps && p.scheduler != "discrete" && events.warn)
    events.warn("sampler " + p.sampler + " uses its own timesteps; scheduler " + p.scheduler +
                " does not apply");
  parse_emphasis(p.emphasis);  // validates the name
  if (p.clip_skip < 1 || p.clip_skip > model_.text->max_clip_skip())
    throw std::invalid_argument("clip skip must be between 1 and " +
                                std::to_string(model_.text->max_clip_skip()));
  const bool sd2 = model_.config.family == "sd2";
  if (sd2 && p.clip_skip > 1 && events.warn)
    events.warn("clip skip " + std::to_string(p.clip_skip) +
                " on an SD 2.x model skips layers before the penultimate one it was trained "
                "with; A1111 ignores clip skip for SD 2.x");
  if (!p.prediction.empty() && p.prediction != "eps" && p.prediction != "v")
    throw std::invalid_argument("prediction must be eps or v, not '" + p.prediction + "'");
  if (p.prediction.empty() && sd2) p.prediction = model_.config.prediction;
  if (events.warn && (p.width > 2 * native || p.height > 2 * native ||
                      int64_t{p.width} * p.height > int64_t{2} * native * native))
    events.warn("size " + std::to_string(p.width) + "x" + std::to_string(p.height) +
                " is far above the model's native " + std::to_string(native) + "x" +
                std::to_string(native) + ": expect duplicated objects and repeated patterns");
  return p;
}

std::vector<PromptChunk> Pipeline::prompt_chunks(const std::string& prompt,
                                                 Emphasis emphasis) const {
  ChunkOptions o;  // bos, eos and comma come from the tokenizer
  o.length = static_cast<size_t>(model_.config.text.max_positions) - 2;
  // SD 1.x pads with the end-of-text token, SD 2.x with 0.
  o.pad = model_.text->pad_id(tokenizer_->eos_id());
  return tokenize_prompt(prompt, *tokenizer_, emphasis, o);
}

std::vector<int64_t> Pipeline::token_ids(const std::string& prompt, const PipelineEvents&,
                                         Emphasis emphasis) const {
  std::vector<int64_t> ids;
  for (const auto& chunk : prompt_chunks(prompt, emphasis))
    ids.insert(ids.end(), chunk.ids.begin(), chunk.ids.end());
  return ids;
}

torch::Tensor Pipeline::encode_prompt(const std::string& prompt, int clip_skip,
                                      const PipelineEvents&, Emphasis emphasis) {
  // A1111 FrozenCLIPEmbedderWithCustomWordsBase.forward for one prompt: every chunk through
  // the encoder on its own, weighted, then concatenated along the tokens.
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> zs;
  for (const auto& chunk : prompt_chunks(prompt, emphasis)) {
    auto ids = torch::tensor(chunk.ids, torch::kLong).unsqueeze(0).to(device_);
    zs.push_back(apply_emphasis(model_.text->forward(ids, clip_skip), chunk.weights));
  }
  return zs.size() == 1 ? zs[0] : torch::cat(zs, 1);
}

Denoiser Pipeline::guided_denoiser(const torch::Tensor& cond, const torch::Tensor& uncond,
                                   double cfg_scale, const std::string& prediction) {
  // Batch [uncond, cond] through CompVisDenoiser: x = x0 + sigma * eps, UNet input
  // x / sqrt(sigma^2 + 1) at t(sigma), denoised = x - sigma * eps. For v models
  // CompVisVDenoiser: denoised = x * c_skip + v * c_out with c_skip = 1 / (sigma^2 + 1),
  // c_out = -sigma / sqrt(sigma^2 + 1).
  auto context = torch::cat({uncond, cond});
  const bool v = (prediction.empty() ? model_.config.prediction : prediction) == "v";
  return [this, context, cfg_scale, v](const torch::Tensor& x, const torch::Tensor& sigma) {
    torch::NoGradGuard no_grad;
    auto x_in = torch::cat({x, x});
    auto sigma_in = torch::cat({sigma, sigma});
    auto c_out = (-sigma_in).view({-1, 1, 1, 1});
    auto c_in = (sigma_in.pow(2) + 1.0).pow(0.5).reciprocal().view({-1, 1, 1, 1});
    auto t = schedule_.sigma_to_t(sigma_in);
    auto ctx = context.size(0) == x_in.size(0) ? context : context.repeat_interleave(x.size(0), 0);
    auto eps = run_unet((x_in * c_in).to(device_, dtype_), t.to(device_), ctx, x.size(0))
                   .to(torch::kFloat);
    if (v) {
      auto c_skip = (sigma_in.pow(2) + 1.0).reciprocal().view({-1, 1, 1, 1}).to(eps.device());
      auto v_out = (c_out * c_in).to(eps.device());  // -sigma / sqrt(sigma^2 + 1)
      auto parts = (x_in * c_skip + eps * v_out).chunk(2);
      return parts[0] + (parts[1] - parts[0]) * cfg_scale;
    }
    auto denoised = x_in + eps * c_out.to(eps.device());
    auto parts = denoised.chunk(2);
    return parts[0] + (parts[1] - parts[0]) * cfg_scale;
  };
}

EpsModel Pipeline::guided_eps_model(const torch::Tensor& cond, const torch::Tensor& uncond,
                                    double cfg_scale, const std::string& prediction) {
  // CompVis DDIMSampler / PLMSSampler's model call: the UNet on the unit-variance latent at
  // integer timesteps, batch [uncond, cond], e = e_uncond + cfg * (e_cond - e_uncond); at cfg 1
  // only the cond pass runs. v models (Stability-AI ddim.py): guidance on v, then
  // eps = sqrt(acp[t]) * v + sqrt(1 - acp[t]) * x.
  const bool v = (prediction.empty() ? model_.config.prediction : prediction) == "v";
  const bool guided = cfg_scale != 1.0;
  auto context = guided ? torch::cat({uncond, cond}) : cond;
  return [this, context, cfg_scale, v, guided](const torch::Tensor& x, const torch::Tensor& t) {
    torch::NoGradGuard no_grad;
    auto x_in = guided ? torch::cat({x, x}) : x;
    auto t_in = guided ? torch::cat({t, t}) : t;
    auto ctx = context.size(0) == x_in.size(0) ? context : context.repeat_interleave(x.size(0), 0);
    auto out =
        run_unet(x_in.to(device_, dtype_), t_in.to(device_), ctx, x.size(0)).to(torch::kFloat);
    if (guided) {
      auto parts = out.chunk(2);
      out = parts[0] + cfg_scale * (parts[1] - parts[0]);
    }
    if (v) {
      auto acp = schedule_.alphas_cumprod().index({t.to(torch::kCPU).to(torch::kLong)});
      auto a = acp.to(torch::kDouble).view({-1, 1, 1, 1});
      out = a.sqrt().to(out.options()) * out + (1 - a).sqrt().to(out.options()) * x;
    }
    return out;
  };
}

torch::Tensor Pipeline::run_unet(const torch::Tensor& x, const torch::Tensor& t,
                                 const torch::Tensor& context, int64_t images) {
  if (unet_runner_) return unet_runner_(x, t, context);
  if (!device_.is_cpu() || images <= 1) return model_.unet->forward(x, t, context);
  // On the CPU the kernels' blocking depends on the batch size, so a batched image could
  // differ from the same image made alone in the last bits. Each image's passes (rows i,
  // i + images, ...) run as their own batch instead: the CPU gains little from batching,
  // and an image stays bit-identical whatever --batch-size made it.
  const int64_t passes = x.size(0) / images;
  auto out = torch::empty_like(x);
  for (int64_t i = 0; i < images; ++i) {
    auto rows = torch::arange(passes, torch::kLong) * images + i;
    auto eps = model_.unet->forward(x.index_select(0, rows), t.index_select(0, rows),
                                    context.index_select(0, rows));
    out.index_copy_(0, rows, eps);
  }
  return out;
}

torch::Tensor Pipeline::decode_latent(const torch::Tensor& latent) {
  torch::NoGradGuard no_grad;
  auto z = (latent * (1.0 / model_.config.vae.scale_factor)).to(device_, dtype_);
  torch::Tensor image;  // [B, 3, H, W]
  if (device_.is_cpu() && z.size(0) > 1) {
    std::vector<torch::Tensor> parts;  // image by image, as run_unet explains
    for (int64_t i = 0; i < z.size(0); ++i) parts.push_back(model_.vae->decode(z.narrow(0, i, 1)));
    image = torch::cat(parts).to(torch::kFloat);
  } else {
    image = model_.vae->decode(z).to(torch::kFloat).to(torch::kCPU);
  }
  auto u8 = (((image + 1) / 2).clamp(0, 1) * 255).round().to(torch::kUInt8);
  return u8.permute({0, 2, 3, 1}).contiguous();
}

Image Pipeline::generate(const GenerationParams& params, const PipelineEvents& events) {
  return generate_batch({params}, events).front();
}

torch::Tensor Pipeline::cached_context(const std::string& prompt, int clip_skip, Emphasis emphasis,
                                       const PipelineEvents& events) {
  const auto key = std::make_tuple(prompt, clip_skip, static_cast<int>(emphasis));
  auto it = context_cache_.find(key);
  if (it != context_cache_.end()) return it->second;
  if (context_cache_.size() >= 256) context_cache_.clear();  // bounded: prompt files are long
  auto context = encode_prompt(prompt, clip_skip, events, emphasis);
  context_cache_.emplace(key, context);
  return context;
}

bool batchable(const GenerationParams& a, const GenerationParams& b) {
  const auto& ea = a.sampler_options.eta;
  const auto& eb = b.sampler_options.eta;
  return a.width == b.width && a.height == b.height && a.steps == b.steps &&
         a.sampler == b.sampler && a.scheduler == b.scheduler && a.cfg_scale == b.cfg_scale &&
         a.prediction == b.prediction && (ea == eb || (std::isnan(ea) && std::isnan(eb))) &&
         a.sampler_options.s_noise == b.sampler_options.s_noise;
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
  const int factor = model_.config.vae.downsample_factor();

  // 1. text; conds and unconds of different lengths are padded with chunks of the empty
  // prompt so that they batch together (A1111's pad_cond_uncond)
  std::vector<torch::Tensor> conds, unconds;
  int64_t tokens = 0;
  for (const auto& q : ps) {
    const Emphasis emphasis = parse_emphasis(q.emphasis);
    conds.push_back(cached_context(q.prompt, q.clip_skip, emphasis, events));
    unconds.push_back(cached_context(q.negative_prompt, q.clip_skip, emphasis, events));
    tokens = std::max({tokens, conds.back().size(1), unconds.back().size(1)});
  }
  for (int64_t i = 0; i < n; ++i) {
    if (conds[i].size(1) == tokens && unconds[i].size(1) == tokens) continue;
    const auto& q = ps[i];
    const auto empty = cached_context("", q.clip_skip, parse_emphasis(q.emphasis), events);
    conds[i] = pad_context(conds[i], tokens, empty);
    unconds[i] = pad_context(unconds[i], tokens, empty);
  }
  auto cond = torch::cat(conds), uncond = torch::cat(unconds);

  // 2. noise, from a CPU generator per image so that one seed gives one image on every device
  // and in every batch; ancestral / SDE noise from the same generators, image by image
  auto sigmas = make_sigmas(p.scheduler, schedule_, p.steps);
  const SamplerInfo& sampler = sampler_info(p.sampler);
  std::vector<torch::Tensor> noises;
  std::vector<NoiseSource> sources;
  for (const auto& q : ps) {
    auto gen = at::detail::createCPUGenerator(q.seed);
    noises.push_back(
        torch::randn({1, model_.config.vae.z_channels, p.height / factor, p.width / factor}, gen,
                     torch::TensorOptions().dtype(torch::kFloat)));
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
    auto model = guided_eps_model(cond, uncond, p.cfg_scale, p.prediction);
    latent = run_timestep_sampler(p.sampler, model, noise.to(device_), schedule_.alphas_cumprod(),
                                  p.steps, sampler_noise, p.sampler_options, events.step);
  } else {
    auto x = (noise * sigmas[0]).to(device_);
    auto model = guided_denoiser(cond, uncond, p.cfg_scale, p.prediction);
    latent = run_sampler(p.sampler, model, x, sigmas.to(device_), sampler_noise, p.sampler_options,
                         events.step);
  }

  // 4. decode
  auto pixels = decode_latent(latent);  // [B, H, W, 3]
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

torch::Tensor apply_emphasis(const torch::Tensor& z, const std::vector<double>& weights) {
  // A1111 EmphasisOriginal.after_transformers: z *= w; z *= original_mean / new_mean.
  if (static_cast<int64_t>(weights.size()) != z.size(1))
    throw std::invalid_argument("apply_emphasis: " + std::to_string(weights.size()) +
                                " weights for " + std::to_string(z.size(1)) + " tokens");
  if (std::all_of(weights.begin(), weights.end(), [](double w) { return w == 1.0; }))
    return z;  // what the formula gives too (z * 1 * (m / m))
  torch::NoGradGuard no_grad;
  const std::vector<float> w(weights.begin(), weights.end());  // torch.asarray: float32
  auto zf = z.to(torch::kFloat);
  auto original_mean = zf.mean();
  auto multipliers = torch::tensor(w).to(zf.device()).view({1, -1, 1});
  auto weighted = zf * multipliers;
  auto new_mean = weighted.mean();
  return (weighted * (original_mean / new_mean)).to(z.scalar_type());
}

torch::Tensor pad_context(const torch::Tensor& context, int64_t tokens,
                          const torch::Tensor& empty) {
  const int64_t missing = tokens - context.size(1);
  if (missing <= 0) return context;
  if (missing % empty.size(1) != 0)
    throw std::invalid_argument("pad_context: " + std::to_string(missing) +
                                " tokens to add is not a multiple of " +
                                std::to_string(empty.size(1)));
  auto fill = empty.to(context.device(), context.scalar_type())
                  .expand({context.size(0), empty.size(1), empty.size(2)})
                  .repeat({1, missing / empty.size(1), 1});
  return torch::cat({context, fill}, 1);
}

InfoText make_infotext(const GenerationParams& p, const std::string& model_name,
                       const std::string& model_hash, const std::string& vae_name) {
  InfoText info;
  info.prompt = p.prompt;
  info.negative_prompt = p.negative_prompt;
  auto& f = info.fields;
  f.emplace_back("Steps", std::to_string(p.steps));
  f.emplace_back("Sampler", sampler_info(p.sampler).a1111_label);
  if (auto type = a1111_schedule_type(p.sampler, p.scheduler); !type.empty())
    f.emplace_back("Schedule type", type);
  f.emplace_back("CFG scale", format_number(p.cfg_scale));
  f.emplace_back("Seed", std::to_string(p.seed));
  f.emplace_back("Size", std::to_string(p.width) + "x" + std::to_string(p.height));
  if (!model_hash.empty()) f.emplace_back("Model hash", model_hash);
  if (!model_name.empty()) f.emplace_back("Model", model_name);
  if (!vae_name.empty()) f.emplace_back("VAE", vae_name);
  if (auto [key, eta] = a1111_eta_field(p.sampler, p.sampler_options); !key.empty())
    f.emplace_back(key, format_number(eta));
  if (p.clip_skip != 1) f.emplace_back("Clip skip", std::to_string(p.clip_skip));
  // As A1111: recorded when it is not the default and a prompt holds '(' or '['.
  const Emphasis emphasis = parse_emphasis(p.emphasis);
  if (emphasis != Emphasis::kA1111 &&
      (has_emphasis_brackets(p.prompt) || has_emphasis_brackets(p.negative_prompt)))
    f.emplace_back("Emphasis", emphasis_a1111_label(emphasis));
  // Not an A1111 field (A1111 reads it from the model's config); the webuis keep unknown keys.
  if (!p.prediction.empty()) f.emplace_back("Prediction", p.prediction);
  f.emplace_back("Version", "sdgen 0.1.0");
  return info;
}

}  // namespace sdgen
