// What the parameter schema (params.cpp) serves: validation against the model's limits,
// resolution of defaults, batching, the infotext and the --json record of an image.
#include <algorithm>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "sdgen/job/params.h"
#include "sdgen/text/prompt_weights.h"

#ifndef SDGEN_VERSION
#define SDGEN_VERSION "unknown"
#endif

namespace sdgen {
namespace {

using json = nlohmann::json;

[[noreturn]] void bad(const std::string& what) { throw std::invalid_argument(what); }

std::string size_text(int w, int h) { return std::to_string(w) + "x" + std::to_string(h); }

}  // namespace

void validate_params(const GenerationParams& p, const ModelLimits& limits) {
  for (const auto& s : param_specs()) {
    if (!(s.modes & (1u << static_cast<unsigned>(p.mode()))))
      continue;  // (a parameter of another mode keeps its default)
    try {
      s.check(p);
    } catch (const std::invalid_argument& e) {
      bad(s.name + " " + e.what());
    }
  }
  // A1111's emphasis syntax fails on some prompts ("(red:1.2.3)"): found here, not at encoding
  if (parse_emphasis(p.emphasis) == Emphasis::kA1111) {
    for (const auto& [name, text] : {std::pair<const char*, const std::string&>{"prompt", p.prompt},
                                     {"negative prompt", p.negative_prompt}}) {
      try {
        parse_prompt_attention(text);
      } catch (const std::invalid_argument& e) {
        std::string what = e.what();  // "prompt: '...': ..." from the parser
        if (what.rfind("prompt: ", 0) == 0) what.erase(0, 8);
        bad(std::string(name) + ": " + what);
      }
    }
  }
  try {
    image_loras(p);
  } catch (const std::invalid_argument& e) {
    bad(std::string("prompt: ") + e.what());
  }
  validate_sampler(p.sampler, p.steps, p.sampler_options);
  validate_scheduler(p.scheduler);
  const int f = limits.size_multiple;
  if (p.width && (p.width % f || p.height % f))
    bad("size " + size_text(p.width, p.height) + ": width and height must be multiples of " +
        std::to_string(f) + ", the VAE's downsampling factor (" +
        std::to_string(p.width % f ? p.width : p.height) + " is not a multiple of " +
        std::to_string(f) + "); try " +
        size_text(std::max(f, p.width / f * f), std::max(f, p.height / f * f)));
  if (limits.max_clip_skip > 0 && p.clip_skip > limits.max_clip_skip)
    bad("clip skip must be between 1 and " + std::to_string(limits.max_clip_skip) +
        " for this model's text encoder, got " + std::to_string(p.clip_skip));
}

void finish_job(JobParams& job, const ModelLimits& limits) {
  apply_sampler_alias(job.image.sampler, job.image.scheduler, job.scheduler_explicit);
  if (!job.image.hires_sampler.empty()) {
    // the second pass keeps the first pass's scheduler (A1111's "Use same scheduler")
    std::string scheduler = job.image.scheduler;
    apply_sampler_alias(job.image.hires_sampler, scheduler, true);
  }
  validate_params(job.image, limits);
}

GenerationParams resolve_params(GenerationParams p, const ModelLimits& limits,
                                const std::function<void(const std::string&)>& warn) {
  validate_params(p, limits);
  if (p.width == 0) {
    p.width = limits.native_width;
    p.height = limits.native_height;
    validate_params(p, limits);  // (the hires size against the size now known)
  }
  if (!warn) return p;
  if (sampler_info(p.sampler).unit_noise_timesteps && p.scheduler != "discrete")
    warn("sampler " + p.sampler + " uses its own timesteps; scheduler " + p.scheduler +
         " does not apply");
  if (p.clip_skip > 1 && !limits.clip_skip_warning.empty())
    warn("clip skip " + std::to_string(p.clip_skip) + limits.clip_skip_warning);
  if (!limits.size_conditioning && !(p.sdxl == SizeConditioning{}))
    warn("the --sdxl-* size conditioning is ignored: this model is not conditioned on sizes");
  const int nw = limits.native_width, nh = limits.native_height;
  if (p.hires && nw > 0 && (p.width > nw * 3 / 2 || p.height > nh * 3 / 2))
    warn("the hires fix's first pass at " + size_text(p.width, p.height) +
         " is above the model's native " + size_text(nw, nh) +
         ": give --size near the native size and let --hires-scale make it large");
  if (nw > 0 && !p.hires &&
      (p.width > 2 * nw || p.height > 2 * nh || int64_t{p.width} * p.height > int64_t{2} * nw * nh))
    warn("size " + size_text(p.width, p.height) + " is far above the model's native " +
         size_text(nw, nh) + ": expect duplicated objects and repeated patterns" +
         (p.mode() == Mode::kTxt2Img
              ? "; render at the native size with the hires fix (--hires-scale) instead"
              : ""));
  return p;
}

std::vector<LoraTag> image_loras(const GenerationParams& p) {
  auto tags = lora_tags(p.prompt);
  tags.insert(tags.end(), p.loras.begin(), p.loras.end());
  return tags;
}

bool batchable(const GenerationParams& a, const GenerationParams& b) {
  if (a.mode() != b.mode()) return false;
  // one set of LoRAs is patched into the weights at a time
  if (image_loras(a) != image_loras(b)) return false;
  for (const auto& s : param_specs())
    if (s.same_in_batch && !s.same_in_batch(a, b)) return false;
  return true;
}

std::string sdgen_version() { return std::string("sdgen ") + SDGEN_VERSION; }

InfoText make_infotext(const GenerationParams& p, const ModelStamp& model) {
  InfoText info;
  info.prompt = p.prompt;
  for (const auto& l : p.loras) {
    info.prompt += " <lora:" + l.name + ":" + format_number(l.te);
    info.prompt += (l.unet != l.te ? ":" + format_number(l.unet) : std::string()) + ">";
  }
  info.negative_prompt = p.negative_prompt;
  for (const auto& s : param_specs()) {
    if (s.write_infotext) s.write_infotext(p, info.fields);
    if (s.name == "size") {
      // A1111 writes the model's fields right after the size.
      if (!model.hash.empty()) info.fields.emplace_back("Model hash", model.hash);
      if (!model.name.empty()) info.fields.emplace_back("Model", model.name);
      if (!model.vae.empty()) info.fields.emplace_back("VAE", model.vae);
    }
  }
  info.fields.emplace_back("Version", sdgen_version());
  return info;
}

nlohmann::json params_json(const GenerationParams& p) {
  json j = json::object();
  for (const auto& s : param_specs())
    if (!s.json.empty() && s.to_json) j[s.json] = s.to_json(p);
  return j;
}

}  // namespace sdgen
