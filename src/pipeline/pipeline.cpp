#include "sdgen/pipeline/pipeline.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "sdgen/io/image_ops.h"
#include "sdgen/text/extra_networks.h"

namespace sdgen {

Pipeline::Pipeline(LoadedModel model, std::shared_ptr<const Tokenizer> tokenizer,
                   torch::Device device, torch::ScalarType dtype)
    : model_(std::move(model)),
      device_(device),
      dtype_(dtype),
      prompts_(make_conditioner(model_, std::move(tokenizer), device)) {}

InfoText image_infotext(const Image& image, const ModelStamp& model) {
  InfoText info = make_infotext(image.params, model);
  auto hashes = [](const std::vector<std::pair<std::string, std::string>>& used) {
    std::string text;
    for (const auto& [name, hash] : used) text += (text.empty() ? "" : ", ") + name + ": " + hash;
    return text;
  };
  std::vector<std::pair<std::string, std::string>> extra;
  if (!image.embeddings.empty()) extra.emplace_back("TI hashes", hashes(image.embeddings));
  if (!image.loras.empty()) extra.emplace_back("Lora hashes", hashes(image.loras));
  // before "Version", the last field
  auto at = info.fields.end();
  if (!info.fields.empty() && info.fields.back().first == "Version") --at;
  info.fields.insert(at, extra.begin(), extra.end());
  return info;
}

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
      for (int64_t i = 0; i < z.size(0); ++i) parts.push_back(vae_decode(z.narrow(0, i, 1)));
      return torch::cat(parts).to(torch::kFloat);
    }
    return vae_decode(z).to(torch::kFloat).to(torch::kCPU);
  };
  const auto image = decode_finite(decode, vae_dtype(), events.warn);  // [B, 3, H, W]
  auto u8 = (((image + 1) / 2).clamp(0, 1) * 255).round().to(torch::kUInt8);
  return u8.permute({0, 2, 3, 1}).contiguous();
}

Image Pipeline::generate(const GenerationParams& params, const PipelineEvents& events) {
  return generate_batch({params}, events).front();
}

std::pair<Conditioning, Conditioning> Pipeline::batch_conditioning(
    const std::vector<GenerationParams>& ps, bool hires, std::vector<EmbeddingHashes>* embeddings) {
  // conds and unconds of different lengths are padded with chunks of the empty prompt so that
  // they batch together (A1111's pad_cond_uncond)
  std::vector<Conditioning> conds, unconds;
  int64_t tokens = 0;
  for (const auto& q : ps) {
    // the hires pass's own prompts, when given (A1111: empty = the first pass's)
    // the text without its <lora:...> tags (A1111's extra_networks.parse_prompt); only
    // positive prompts carry tags
    const std::string prompt =
        parse_extra_networks(hires && !q.hires_prompt.empty() ? q.hires_prompt : q.prompt).text;
    const std::string& negative =
        hires && !q.hires_negative_prompt.empty() ? q.hires_negative_prompt : q.negative_prompt;
    GenerationParams at_size = q;
    if (hires) {
      const HiresSize s = hires_size(q);
      at_size.width = s.width;  // (SDXL's size conditioning tells the second pass's size)
      at_size.height = s.height;
    }
    EmbeddingHashes used_c, used_u;
    conds.push_back(prompts_->cached(prompt, condition_request(at_size, false), &used_c));
    unconds.push_back(prompts_->cached(negative, condition_request(at_size, true), &used_u));
    if (embeddings) embeddings->push_back(ti_hashes(used_c, used_u));
    tokens = std::max({tokens, conds.back().tokens(), unconds.back().tokens()});
  }
  for (size_t i = 0; i < ps.size(); ++i) {
    if (conds[i].tokens() == tokens && unconds[i].tokens() == tokens) continue;
    // (the empty prompt encoded as a prompt, as A1111's cond_stage_model_empty_prompt)
    const auto empty = prompts_->cached("", condition_request(ps[i], false));
    conds[i] = pad_tokens(conds[i], tokens, empty);
    unconds[i] = pad_tokens(unconds[i], tokens, empty);
  }
  return {cat_rows(conds), cat_rows(unconds)};
}

torch::Tensor Pipeline::denoise(const GuidedDenoiser& guidance, const SamplerRun& run,
                                const PipelineEvents& events) {
  const SamplerInfo& sampler = sampler_info(run.sampler);
  const int64_t n = static_cast<int64_t>(run.seeds.size());
  // noise, from a CPU generator per image so that one seed gives one image on every device and
  // in every batch; ancestral / SDE noise from the same generators, image by image
  std::vector<torch::Tensor> noises;
  std::vector<NoiseSource> sources;
  for (const uint64_t seed : run.seeds) {
    auto gen = at::detail::createCPUGenerator(seed);
    noises.push_back(torch::randn({1, config().vae.z_channels, run.height, run.width}, gen,
                                  torch::TensorOptions().dtype(torch::kFloat)));
    sources.push_back(make_noise_source(sampler, gen, run.sigmas));
  }
  const auto noise = torch::cat(noises);
  NoiseSource sampler_noise = sources.front();
  if (n > 1) {
    sampler_noise = [sources](const torch::Tensor& like, double sigma, double next) {
      std::vector<torch::Tensor> parts;
      for (size_t i = 0; i < sources.size(); ++i)
        parts.push_back(sources[i](like.narrow(0, static_cast<int64_t>(i), 1), sigma, next));
      return torch::cat(parts);
    };
  }
  torch::Tensor init = run.init, mask, keep;
  if (run.mask.defined()) {
    mask = run.mask.to(device_);
    keep = 1 - mask;
    // A1111's "latent noise": the masked area starts from the image's own noise (the first
    // draw of its seed, as create_random_tensors with the same seeds)
    if (run.noise_fill) init = run.init * (1 - run.mask) + noise * run.mask;
  }
  const torch::Tensor init_dev = init.defined() ? init.to(device_) : torch::Tensor();

  torch::Tensor latent;
  if (sampler.unit_noise_timesteps) {
    // CompVis DDIM / PLMS in their unit-variance space over integer timesteps; img2img as
    // CompVis' img2img.py and A1111: noised to timesteps[t_enc], then the first t_enc
    // timesteps from the top down
    const auto& acp = guidance.sampling().schedule().alphas_cumprod();
    EpsModel eps = guidance.eps_model();
    torch::Tensor x;
    if (init.defined()) {
      const auto timesteps = compvis_timesteps(run.steps, static_cast<int>(acp.size(0)));
      const double a = acp[timesteps[run.t_enc]].item<double>();
      x = (init * std::sqrt(a) + noise * std::sqrt(1 - a)).to(device_);
      if (mask.defined()) {
        // the blend of the k-diffusion samplers, on the predicted x0 (CompVis' DDIM blends the
        // latent with the re-noised original instead; A1111 blends the noise prediction itself
        // with the latent, which mixes two different quantities)
        eps = [eps, acp, init_dev, mask, keep](const torch::Tensor& x_t, const torch::Tensor& t) {
          auto e = eps(x_t, t);
          auto a_t = acp.index_select(0, t.to(torch::kCPU).to(torch::kLong))
                         .to(x_t.device())
                         .view({-1, 1, 1, 1});
          auto x0 = (x_t - (1 - a_t).sqrt() * e) / a_t.sqrt();
          x0 = x0 * mask + init_dev * keep;
          return (x_t - a_t.sqrt() * x0) / (1 - a_t).sqrt();
        };
      }
    } else {
      x = noise.to(device_);
    }
    latent = run_timestep_sampler(run.sampler, eps, x, acp, run.steps, sampler_noise, run.options,
                                  events.step, init.defined() ? run.t_enc : -1);
  } else {
    Denoiser model = guidance.denoiser();
    if (mask.defined()) {
      // A1111's CFGDenoiser: after each evaluation the prediction keeps the init latent outside
      // the mask (denoised * m + init * (1 - m))
      model = [model, init_dev, mask, keep](const torch::Tensor& x, const torch::Tensor& sigma) {
        return model(x, sigma) * mask + init_dev * keep;
      };
    }
    const auto sigmas = run.sigmas.to(device_);
    auto x = (noise * run.sigmas[0]).to(device_);
    if (init.defined()) x = x + init_dev;
    latent = run_sampler(run.sampler, model, x, sigmas, sampler_noise, run.options, events.step);
  }
  if (mask.defined()) latent = latent * mask + init_dev * keep;
  return latent;
}

std::vector<std::pair<std::string, std::string>> Pipeline::apply_loras(
    const GenerationParams& p, const PipelineEvents& events) {
  const auto tags = image_loras(p);
  if (tags.empty() && !lora_patcher_) return {};
  std::vector<AppliedLora> applied;
  std::vector<std::pair<std::string, std::string>> used;
  for (const auto& tag : tags) {
    const std::string path = find_lora(tag.name, lora_dirs_);
    if (path.empty()) {
      std::string searched;
      for (const auto& d : lora_dirs_) searched += (searched.empty() ? "" : ", ") + d;
      throw std::invalid_argument(
          "LoRA '" + tag.name + "': no " + tag.name + ".safetensors in " +
          (searched.empty() ? "any LoRA folder (give --lora-dir)" : searched));
    }
    auto& file = lora_files_[path];
    if (!file) file = read_lora(path);
    applied.push_back({tag.name, file, tag.te, tag.unet});
    // the infotext's name: as written, without ':' and ',' (A1111 network alias rule)
    std::string name;
    for (char c : tag.name)
      if (c != ':' && c != ',') name += c;
    if (std::none_of(used.begin(), used.end(), [&](const auto& u) { return u.first == name; }))
      used.emplace_back(name, file->hash);
  }
  if (!lora_patcher_) lora_patcher_ = std::make_unique<LoraPatcher>(model_);
  if (lora_patcher_->apply(applied, events.warn)) prompts_->clear_cache();
  return used;
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
  const bool inpainting_model = model_.family->inpainting;

  // 1. the LoRAs patched in, conditioning, and what img2img / inpainting start from
  const auto loras = apply_loras(p, events);
  std::vector<EmbeddingHashes> embeddings;  // per image, for "TI hashes"
  auto [cond, uncond] = batch_conditioning(ps, false, &embeddings);
  std::vector<ImageInput> inputs;
  if (p.mode() != Mode::kTxt2Img)
    for (const auto& q : ps) inputs.push_back(image_input(q, p.width, p.height));
  if (inpainting_model) {
    std::vector<torch::Tensor> concats;
    for (int64_t i = 0; i < n; ++i)
      concats.push_back(inputs.empty() ? gray_image_concat(p.width, p.height) : inputs[i].concat);
    cond.concat = uncond.concat = torch::cat(concats);
  }

  // 2. the sampler over the schedule, from noise or part-way down from the init image
  const auto guidance = guided(cond, uncond, p.cfg_scale, p.prediction);
  SamplerRun run;
  run.sampler = p.sampler;
  run.options = p.sampler_options;
  for (const auto& q : ps) run.seeds.push_back(q.seed);
  run.height = p.height / factor;
  run.width = p.width / factor;
  run.steps = p.steps;
  run.sigmas = make_sigmas(p.scheduler, guidance.sampling().schedule(), p.steps);
  if (!inputs.empty()) {
    // A1111 (setup_img2img_steps without "fix steps"): t_enc = int(min(strength, 0.999) *
    // steps) sampler steps from sigmas[steps - t_enc - 1]; strength in double as Python
    run.t_enc = static_cast<int>(std::min(p.strength, 0.999) * p.steps);
    run.sigmas = run.sigmas.slice(0, p.steps - run.t_enc - 1);
    std::vector<torch::Tensor> inits, masks;
    for (const auto& in : inputs) {
      inits.push_back(in.init);
      if (in.latent_mask.defined()) masks.push_back(in.latent_mask);
    }
    run.init = torch::cat(inits);
    if (!masks.empty()) run.mask = torch::cat(masks);
    run.noise_fill = p.mode() == Mode::kInpaint && p.inpaint_fill == "latent-noise";
    if (p.mode() == Mode::kInpaint && p.inpaint_fill == "latent-nothing")
      run.init = run.init * (1 - run.mask);  // A1111 "latent nothing": zeros where repainted
  }
  torch::Tensor latent = denoise(guidance, run, events);
  if (p.hires) latent = hires_pass(ps, latent, events);

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

  // 3. decode; inpainting lays the unmasked init pixels back over the result
  auto pixels = decode_latent(latent, events);  // [B, H, W, 3]
  std::vector<Image> out(n);
  for (int64_t i = 0; i < n; ++i) {
    auto px = pixels[i].contiguous();
    out[i].width = static_cast<int>(px.size(1));
    out[i].height = static_cast<int>(px.size(0));
    out[i].params = ps[i];
    out[i].loras = loras;
    out[i].embeddings = embeddings[i];
    out[i].rgb.assign(px.data_ptr<uint8_t>(), px.data_ptr<uint8_t>() + px.numel());
    if (p.mode() == Mode::kInpaint) {
      Image8 decoded{out[i].width, out[i].height, 3, std::move(out[i].rgb)};
      paste_back(decoded, inputs[i].init_rgb, inputs[i].mask);
      out[i].rgb = std::move(decoded.pixels);
    }
  }
  return out;
}

}  // namespace sdgen
