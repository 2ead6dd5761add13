// What img2img, inpainting and the hires fix add to the pipeline (pipeline.h): init images and
// masks read, resized and encoded as A1111 does (../shared/reference/inpaint/README.md is the
// spec), the inpainting UNet's conditioning, the VAE with tiling, and the hires fix's second
// pass.
#include <algorithm>
#include <cmath>

#include "sdgen/io/image_ops.h"
#include "sdgen/io/resample.h"
#include "sdgen/models/blocks.h"
#include "sdgen/models/memory.h"
#include "sdgen/pipeline/pipeline.h"
#include "sdgen/pipeline/runtime.h"
#include "sdgen/pipeline/vae_tiling.h"

namespace sdgen {
namespace {

namespace F = torch::nn::functional;

std::string size_key(int w, int h) { return std::to_string(w) + "x" + std::to_string(h); }

// 8-bit RGB -> [1, 3, H, W] float32 in [-1, 1]: x = (u8 / 255 as float32) * 2 - 1.
torch::Tensor rgb_to_tensor(const Image8& rgb) {
  auto t = torch::from_blob(const_cast<uint8_t*>(rgb.pixels.data()), {rgb.height, rgb.width, 3},
                            torch::kUInt8)
               .to(torch::kFloat);
  return (t / 255.0f * 2 - 1).permute({2, 0, 1}).unsqueeze(0).contiguous();
}

// A1111 images.resize_image(0, ...) ("Just resize"): Pillow LANCZOS to the job's size.
Image8 fit(Image8 image, int width, int height) {
  if (image.width == width && image.height == height) return image;
  return resize(image, width, height, ResampleFilter::kLanczos);
}

}  // namespace

bool Pipeline::tile_vae(int64_t latent_h, int64_t latent_w, bool encode) const {
  if (vae_tiling_ == VaeTilingMode::kOff) return false;
  if (!vae_tiles_needed(latent_h, latent_w, VaeTiling{})) return false;
  if (vae_tiling_ == VaeTilingMode::kOn) return true;
  // automatic: tile when the untiled pass would not fit in what the device has free (the
  // UNet's activations are gone by then)
  const double available = available_memory_bytes(device_);
  if (available <= 0) return false;
  const int f = config().vae.downsample_factor();
  const double need = estimate_vae_memory(
      config().vae, encode ? VaePass::encode : VaePass::decode, static_cast<int>(latent_w * f),
      static_cast<int>(latent_h * f), c10::elementSize(vae_dtype()), attention_is_quadratic());
  return need > available * 0.9;
}

torch::Tensor Pipeline::vae_decode(const torch::Tensor& z) {
  if (tile_vae(z.size(2), z.size(3), false)) return decode_tiled(*model_.vae, z, VaeTiling{});
  return model_.vae->decode(z);
}

torch::Tensor Pipeline::encode_image(const torch::Tensor& image) {
  torch::NoGradGuard no_grad;
  const int f = config().vae.downsample_factor();
  auto x = image.to(device_, vae_dtype());
  const LatentDistribution posterior = tile_vae(image.size(2) / f, image.size(3) / f, true)
                                           ? encode_tiled(*model_.vae, x, VaeTiling{})
                                           : model_.vae->encode(x);
  // the posterior mean (deterministic), in the sampler's scale
  return model_.sampling.vae_to_latent(posterior.mean.to(torch::kFloat).to(torch::kCPU));
}

torch::Tensor Pipeline::gray_image_concat(int width, int height) {
  const auto key = std::make_pair(width, height);
  if (auto it = gray_concat_.find(key); it != gray_concat_.end()) return it->second;
  // A1111 txt2img_image_conditioning: mask of ones, the latent of the all-0.5 image (zeros
  // in [-1, 1])
  const int f = config().vae.downsample_factor();
  auto latent = encode_image(torch::zeros({1, 3, height, width}));
  auto concat = torch::cat({torch::ones({1, 1, height / f, width / f}), latent}, 1);
  return gray_concat_[key] = concat;
}

Pipeline::ImageInput Pipeline::image_input(const GenerationParams& p, int width, int height) {
  const int f = config().vae.downsample_factor();
  ImageInput in;
  const std::string init_key = p.init_image + "\n" + size_key(width, height);
  auto cached = encoded_.find(init_key);
  if (cached == encoded_.end()) {
    if (encoded_.size() >= 16) encoded_.clear();  // a batch over many images: keep it bounded
    Image8 rgb = fit(read_image_rgb(p.init_image), width, height);
    auto latent = encode_image(rgb_to_tensor(rgb));
    cached = encoded_.emplace(init_key, std::make_pair(std::move(rgb), latent)).first;
  }
  in.init_rgb = cached->second.first;
  in.init = cached->second.second;
  if (p.mask.empty()) {
    if (model_.family->inpainting) in.concat = gray_image_concat(width, height);
    return in;
  }

  // the mask: A1111's binary mask rule, blurred at its own size, resized as the image
  const std::string mask_key =
      p.mask + "\n" + size_key(width, height) + "\n" + std::to_string(p.mask_blur);
  auto mask_it = masks_.find(mask_key);
  if (mask_it == masks_.end()) {
    if (masks_.size() >= 16) masks_.clear();
    mask_it =
        masks_.emplace(mask_key, fit(blur_mask(read_mask(p.mask), p.mask_blur), width, height))
            .first;
  }
  in.mask = mask_it->second;
  // latent mask: Pillow BICUBIC to the latent size (mask.convert('RGB').resize(...), channel
  // 0), then rounded: 1 where the value is >= 128
  const int64_t h = height / f, w = width / f;
  const Image8 small =
      resize(in.mask, static_cast<int>(w), static_cast<int>(h), ResampleFilter::kBicubic);
  auto small_t =
      torch::from_blob(const_cast<uint8_t*>(small.pixels.data()), {1, 1, h, w}, torch::kUInt8);
  in.latent_mask = small_t.ge(128).to(torch::kFloat);

  if (model_.family->inpainting) {
    // A1111 inpainting_image_conditioning: cm = round(mask / 255) at full size; the masked
    // image x * (1 - cm) encoded; cm downsampled by torch nearest (each block's top-left)
    auto full = torch::from_blob(const_cast<uint8_t*>(in.mask.pixels.data()), {1, 1, height, width},
                                 torch::kUInt8)
                    .ge(128)
                    .to(torch::kFloat);
    auto masked = rgb_to_tensor(in.init_rgb) * (1 - full);
    auto c_latent = encode_image(masked);
    auto c_mask = F::interpolate(
        full, F::InterpolateFuncOptions().size(std::vector<int64_t>{h, w}).mode(torch::kNearest));
    in.concat = torch::cat({c_mask, c_latent}, 1);
  }
  return in;
}

torch::Tensor Pipeline::hires_pass(const std::vector<GenerationParams>& ps,
                                   const torch::Tensor& latent, const PipelineEvents& events) {
  const GenerationParams& p = ps.front();
  const HiresSize size = hires_size(p);
  const int f = config().vae.downsample_factor();
  const HiresUpscaler& upscaler = hires_upscaler(p.hires_upscaler);
  const int64_t uh = size.upscale_height / f, uw = size.upscale_width / f;
  torch::Tensor up;
  if (upscaler.interpolate_mode[0] != '\0') {
    // A1111 sample_hr_pass: interpolate(samples, size=(target_h // 8, target_w // 8), mode,
    // antialias) on the latent
    const std::string mode = upscaler.interpolate_mode;
    auto options = F::InterpolateFuncOptions().size(std::vector<int64_t>{uh, uw});
    if (mode == "bilinear")
      options.mode(torch::kBilinear).align_corners(false);
    else if (mode == "bicubic")
      options.mode(torch::kBicubic).align_corners(false);
    else if (mode == "nearest")
      options.mode(torch::kNearest);
    else
      options.mode(torch::kNearestExact);
    options.antialias(upscaler.antialias);
    up = F::interpolate(latent.to(torch::kFloat), options).to(torch::kCPU);
  } else {
    // a pixel upscaler: decode, 8 bits as A1111 (x.astype(np.uint8) truncates), Pillow
    // LANCZOS to the target size, encode again
    auto image =
        ((vae_decode(model_.sampling.latent_to_vae(latent).to(device_, vae_dtype())) + 1) / 2)
            .clamp(0, 1)
            .mul(255)
            .to(torch::kFloat)
            .to(torch::kCPU)
            .floor()
            .to(torch::kUInt8)
            .permute({0, 2, 3, 1})
            .contiguous();
    std::vector<torch::Tensor> parts;
    for (int64_t i = 0; i < image.size(0); ++i) {
      Image8 rgb{static_cast<int>(image.size(2)), static_cast<int>(image.size(1)), 3, {}};
      rgb.pixels.assign(image[i].data_ptr<uint8_t>(),
                        image[i].data_ptr<uint8_t>() + image[i].numel());
      parts.push_back(encode_image(rgb_to_tensor(resize(
          rgb, static_cast<int>(uw * f), static_cast<int>(uh * f), ResampleFilter::kLanczos))));
    }
    up = torch::cat(parts);
  }
  // both hires sides given: crop to their aspect (A1111's truncate_x / _y)
  const int64_t out_h = size.height / f, out_w = size.width / f;
  up = up.narrow(2, size.crop_top, out_h).narrow(3, size.crop_left, out_w).contiguous();

  // the second pass: img2img over the upscaled latent with "fix steps" arithmetic: `requested`
  // sampler steps out of a schedule of int(requested / min(strength, 0.999)), a NEW generator
  // per image at the new shape
  auto [cond, uncond] = batch_conditioning(ps, true);
  if (model_.family->inpainting) {
    const auto concat = gray_image_concat(size.width, size.height);
    cond.concat = uncond.concat = concat.expand({static_cast<int64_t>(ps.size()), -1, -1, -1});
  }
  const auto guidance = guided(cond, uncond, p.cfg_scale, p.prediction);
  const int requested = p.hires_steps > 0 ? p.hires_steps : p.steps;
  const int total = static_cast<int>(requested / std::min(p.hires_strength, 0.999));
  SamplerRun run;
  run.sampler = p.hires_sampler.empty() ? p.sampler : p.hires_sampler;
  run.options = p.sampler_options;
  for (const auto& q : ps) run.seeds.push_back(q.seed);
  run.height = out_h;
  run.width = out_w;
  run.steps = total;
  run.t_enc = requested - 1;
  run.sigmas = make_sigmas(p.scheduler, guidance.sampling().schedule(), total)
                   .slice(0, total - run.t_enc - 1);
  run.init = up;
  return denoise(guidance, run, events);
}

}  // namespace sdgen
