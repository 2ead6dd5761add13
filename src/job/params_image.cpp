// The parameters of img2img, inpainting and the hires fix (A1111's img2img tab and txt2img's
// "Hires. fix"), with A1111's option names and infotext labels.
#include <algorithm>
#include <filesystem>
#include <tuple>

#include "params_builder.h"
#include "sdgen/io/infotext.h"
#include "sdgen/sampling/sampler_registry.h"

namespace sdgen {

const std::vector<HiresUpscaler>& hires_upscalers() {
  // A1111 shared.latent_upscale_modes (torch interpolate of the latent), then the pixel
  // upscaler sdgen has (decode, Lanczos resize as Pillow, encode: A1111's "Lanczos")
  static const std::vector<HiresUpscaler> v = {
      {"latent", "Latent", "bilinear", false},
      {"latent-antialiased", "Latent (antialiased)", "bilinear", true},
      {"latent-bicubic", "Latent (bicubic)", "bicubic", false},
      {"latent-bicubic-antialiased", "Latent (bicubic antialiased)", "bicubic", true},
      {"latent-nearest", "Latent (nearest)", "nearest", false},
      {"latent-nearest-exact", "Latent (nearest-exact)", "nearest-exact", false},
      {"lanczos", "Lanczos", "", false},
  };
  return v;
}

const HiresUpscaler& hires_upscaler(const std::string& name) {
  for (const auto& u : hires_upscalers())
    if (name == u.name || name == u.a1111_label) return u;
  std::string names;
  for (const auto& u : hires_upscalers())
    names += (names.empty() ? "" : " | ") + std::string(u.name);
  throw std::invalid_argument("must be " + names + ", not '" + name + "'");
}

HiresSize hires_size(const GenerationParams& p) {
  HiresSize s;
  const int w = p.width, h = p.height;
  if (p.hires_width == 0 && p.hires_height == 0) {
    // int(width * hr_scale), in double as Python
    s.upscale_width = static_cast<int>(w * p.hires_scale);
    s.upscale_height = static_cast<int>(h * p.hires_scale);
    s.width = s.upscale_width / 8 * 8;
    s.height = s.upscale_height / 8 * 8;
    return s;
  }
  const int64_t rx = p.hires_width, ry = p.hires_height;
  int64_t ux, uy;
  if (ry == 0) {
    ux = rx;
    uy = rx * h / w;
  } else if (rx == 0) {
    ux = ry * w / h;
    uy = ry;
  } else if (static_cast<double>(w) / h < static_cast<double>(rx) / ry) {
    ux = rx;  // cover the requested size, then crop the latent (truncate_x / _y)
    uy = rx * h / w;
  } else {
    ux = ry * w / h;
    uy = ry;
  }
  s.upscale_width = static_cast<int>(ux);
  s.upscale_height = static_cast<int>(uy);
  const int64_t tx = rx && ry ? (ux - rx) / 8 : 0, ty = rx && ry ? (uy - ry) / 8 : 0;
  s.crop_left = static_cast<int>(tx / 2);
  s.crop_top = static_cast<int>(ty / 2);
  s.width = static_cast<int>((ux / 8 - tx) * 8);
  s.height = static_cast<int>((uy / 8 - ty) * 8);
  return s;
}

namespace params_detail {
namespace {

// A path parameter: any text without NUL; relative paths of prompt-file lines are taken
// relative to the file.
void path_field(SpecBuilder& b, std::string GenerationParams::*field) {
  b.s.set_text = [=](JobParams& j, const std::string& t) {
    if (t.empty()) bad("must name an image file");
    j.image.*field = text_value(t);
  };
  b.s.to_json = [=](const GenerationParams& p) {
    return p.*field == "" ? json(nullptr) : json(p.*field);
  };
  b.s.rebase_path = [=](JobParams& j, const std::string& base) {
    std::string& path = j.image.*field;
    if (!path.empty() && path[0] != '/' && !base.empty())
      path = (std::filesystem::path(base) / path).lexically_normal().string();
  };
}

double unit_fraction(const std::string& t) {
  const double v = finite_number(t);
  if (v < 0 || v > 1) bad("must be between 0 and 1, got " + t);
  return v;
}

}  // namespace

void add_image_input_specs(std::vector<ParamSpec>& v) {
  {
    SpecBuilder b("init_image", ParamType::kText, "--init-image",
                  "img2img: start from this PNG or JPEG (resized to --size with Lanczos when it "
                  "differs; alpha over white) instead of noise");
    b.a1111({"init_image"}).json_key("init_image");
    path_field(b, &GenerationParams::init_image);
    v.push_back(b.done());
  }
  {
    SpecBuilder b("mask", ParamType::kText, "--mask",
                  "inpainting: repaint where this PNG or JPEG mask is white (needs "
                  "--init-image; an alpha channel, when used, is the mask)");
    b.a1111({"mask"}).json_key("mask");
    path_field(b, &GenerationParams::mask);
    b.s.check = [](const GenerationParams& p) {
      if (!p.mask.empty() && p.init_image.empty())
        bad("needs an init image (--init-image): a mask says which part of it to repaint");
    };
    v.push_back(b.done());
  }
  {
    SpecBuilder b("strength", ParamType::kNumber, "--strength",
                  "img2img / inpainting denoising strength, 0..1: how much of the schedule runs "
                  "(A1111 lines: --denoising_strength, also the hires fix's)");
    b.a1111({"denoising_strength"}).json_key("strength").infotext("Denoising strength");
    b.default_text("0.75");
    b.s.set_text = [](JobParams& j, const std::string& t) { j.image.strength = unit_fraction(t); };
    // A1111's denoising_strength is the hires fix's strength in txt2img
    b.s.set_a1111 = [](JobParams& j, const std::string&, const std::string& t) {
      j.image.strength = j.image.hires_strength = unit_fraction(t);
    };
    b.s.check = [](const GenerationParams& p) {
      if (!(p.strength >= 0 && p.strength <= 1)) bad("must be between 0 and 1");
    };
    b.s.to_json = [](const GenerationParams& p) {
      return p.mode() == Mode::kTxt2Img ? json(nullptr) : json(p.strength);
    };
    b.s.write_infotext = [](const GenerationParams& p, Fields& f) {
      if (p.mode() != Mode::kTxt2Img)
        f.emplace_back("Denoising strength", format_number(p.strength));
      else if (p.hires)
        f.emplace_back("Denoising strength", format_number(p.hires_strength));
    };
    b.s.same_in_batch = [](const GenerationParams& a, const GenerationParams& c) {
      return a.strength == c.strength;
    };
    v.push_back(b.done());
  }
}

void add_inpaint_and_hires_specs(std::vector<ParamSpec>& v) {
  {
    SpecBuilder b("mask_blur", ParamType::kInt, "--mask-blur",
                  "inpainting: Gaussian blur of the mask in pixels, as A1111 (0: a hard edge)");
    b.a1111({"mask_blur"}).json_key("mask_blur").infotext("Mask blur").default_text("4");
    int_field(b, &GenerationParams::mask_blur, 0, 64);
    b.s.to_json = [](const GenerationParams& p) {
      return p.mode() == Mode::kInpaint ? json(p.mask_blur) : json(nullptr);
    };
    b.s.write_infotext = [](const GenerationParams& p, Fields& f) {
      if (p.mode() == Mode::kInpaint) f.emplace_back("Mask blur", std::to_string(p.mask_blur));
    };
    v.push_back(b.done());
  }
  {
    SpecBuilder b("inpaint_fill", ParamType::kName, "--inpaint-fill",
                  "inpainting: what the masked area starts from: original (the init image) | "
                  "latent-noise (noise) | latent-nothing (zeros), A1111's \"masked content\"");
    b.a1111({"inpainting_fill"}).json_key("inpaint_fill").default_text("original");
    auto check = [](const std::string& t) {
      if (t != "original" && t != "latent-noise" && t != "latent-nothing")
        bad("must be original, latent-noise or latent-nothing, not '" + t + "'" +
            (t == "fill" ? " (A1111's \"fill\" is not supported)" : ""));
    };
    b.s.set_text = [=](JobParams& j, const std::string& t) {
      check(t);
      j.image.inpaint_fill = t;
    };
    // A1111's inpainting_fill index: 0 fill, 1 original, 2 latent noise, 3 latent nothing
    b.s.set_a1111 = [](JobParams& j, const std::string&, const std::string& t) {
      const int64_t i = whole_number(t);
      if (i < 1 || i > 3)
        bad("must be 1 (original), 2 (latent noise) or 3 (latent nothing), got " + t +
            (i == 0 ? " (0, \"fill\", is not supported)" : ""));
      j.image.inpaint_fill = i == 1 ? "original" : i == 2 ? "latent-noise" : "latent-nothing";
    };
    b.s.check = [=](const GenerationParams& p) { check(p.inpaint_fill); };
    b.s.to_json = [](const GenerationParams& p) {
      return p.mode() == Mode::kInpaint ? json(p.inpaint_fill) : json(nullptr);
    };
    b.s.same_in_batch = [](const GenerationParams& a, const GenerationParams& c) {
      return a.inpaint_fill == c.inpaint_fill;
    };
    v.push_back(b.done());
  }
  {
    SpecBuilder b("hires_scale", ParamType::kNumber, "--hires-scale",
                  "hires fix: render at --size, upscale by this factor, then a second pass "
                  "(A1111 lines: --enable_hr true --hr_scale F)");
    b.a1111({"hr_scale"}).json_key("hires_scale").infotext("Hires upscale");
    auto parse = [](const std::string& t) {
      const double s = finite_number(t);
      if (!(s >= 1 && s <= 8)) bad("must be between 1 and 8, got " + t);
      return s;
    };
    b.s.set_text = [=](JobParams& j, const std::string& t) {
      j.image.hires_scale = parse(t);
      j.image.hires = true;
    };
    b.s.set_a1111 = [=](JobParams& j, const std::string&, const std::string& t) {
      j.image.hires_scale = parse(t);  // --enable_hr turns it on, as in A1111
    };
    b.s.check = [](const GenerationParams& p) {
      if (!p.hires) return;
      if (!(p.hires_scale >= 1 && p.hires_scale <= 8)) bad("must be between 1 and 8");
      if (p.mode() != Mode::kTxt2Img)
        bad("(the hires fix) is a second pass of text-to-image; it does not apply to "
            "--init-image (render img2img at the size you want)");
    };
    b.s.to_json = [](const GenerationParams& p) {
      return p.hires && !p.hires_width && !p.hires_height ? json(p.hires_scale) : json(nullptr);
    };
    b.s.write_infotext = [](const GenerationParams& p, Fields& f) {
      if (!p.hires) return;
      if (!p.hires_width && !p.hires_height)
        f.emplace_back("Hires upscale", format_number(p.hires_scale));
      else
        f.emplace_back("Hires resize", size_text(p.hires_width, p.hires_height));
    };
    b.s.same_in_batch = [](const GenerationParams& a, const GenerationParams& c) {
      return a.hires == c.hires &&
             (!a.hires || (a.hires_scale == c.hires_scale && a.hires_width == c.hires_width &&
                           a.hires_height == c.hires_height));
    };
    v.push_back(b.done());
  }
  {
    SpecBuilder b("hires_size", ParamType::kSize, "--hires-size",
                  "hires fix: the final size WIDTHxHEIGHT instead of a scale (0 for one side "
                  "keeps the aspect; both: upscale to cover, then crop, as A1111)");
    b.a1111({"hr_resize_x", "hr_resize_y"}).json_key("hires_size");
    b.s.set_text = [](JobParams& j, const std::string& t) {
      std::pair<int, int> wh;
      if (!parse_number_pair(t, wh, 5))
        bad("must be WIDTHxHEIGHT, e.g. 1024x1024 (0 for one side), not '" + t + "'");
      std::tie(j.image.hires_width, j.image.hires_height) = wh;
      if (!j.image.hires_width && !j.image.hires_height)
        bad("must give at least one side, not '" + t + "'");
      j.image.hires = true;
    };
    b.s.set_a1111 = [](JobParams& j, const std::string& option, const std::string& t) {
      const int side = in_range(whole_number(t), 0, 65536);
      (option == "hr_resize_x" ? j.image.hires_width : j.image.hires_height) = side;
    };
    b.s.check = [](const GenerationParams& p) {
      if (!p.hires || (!p.hires_width && !p.hires_height) || !p.width) return;
      const HiresSize s = hires_size(p);
      if (s.width < 8 || s.height < 8 || s.width < p.width || s.height < p.height)
        bad(size_text(p.hires_width, p.hires_height) + " gives " + size_text(s.width, s.height) +
            " from " + size_text(p.width, p.height) +
            "; the hires fix upscales: give a size at least as large as --size");
    };
    b.s.to_json = [](const GenerationParams& p) {
      return p.hires && (p.hires_width || p.hires_height)
                 ? json(size_text(p.hires_width, p.hires_height))
                 : json(nullptr);
    };
    v.push_back(b.done());
  }
  {
    // A1111's --enable_hr true|false; the command line and jsonl enable it by a scale or size
    SpecBuilder b("hires", ParamType::kName, "",
                  "A1111 lines: --enable_hr true turns the hires fix on");
    b.a1111({"enable_hr"}).json_key("hires");
    b.s.set_text = [](JobParams& j, const std::string& t) {
      if (t == "true" || t == "True" || t == "1")
        j.image.hires = true;
      else if (t == "false" || t == "False" || t == "0")
        j.image.hires = false;
      else
        bad("must be true or false, got '" + t + "'");
    };
    b.s.set_json = [](JobParams& j, const json& value) {
      if (!value.is_boolean()) bad("'hires' must be true or false, got " + value.dump());
      j.image.hires = value.get<bool>();
    };
    b.s.to_json = [](const GenerationParams& p) { return json(p.hires); };
    v.push_back(b.done());
  }
  {
    SpecBuilder b("hires_steps", ParamType::kInt, "--hires-steps",
                  "hires fix: sampling steps of the second pass (0: as --steps)");
    b.a1111({"hr_second_pass_steps"}).json_key("hires_steps").infotext("Hires steps");
    b.default_text("0");
    int_field(b, &GenerationParams::hires_steps, 0, 10000);
    b.s.write_infotext = [](const GenerationParams& p, Fields& f) {
      if (p.hires && p.hires_steps) f.emplace_back("Hires steps", std::to_string(p.hires_steps));
    };
    b.s.same_in_batch = [](const GenerationParams& a, const GenerationParams& c) {
      return a.hires_steps == c.hires_steps;
    };
    v.push_back(b.done());
  }
  {
    SpecBuilder b("hires_strength", ParamType::kNumber, "--hires-strength",
                  "hires fix: denoising strength of the second pass, 0..1");
    b.json_key("hires_strength").default_text("0.7");
    b.s.set_text = [](JobParams& j, const std::string& t) {
      j.image.hires_strength = unit_fraction(t);
    };
    b.s.check = [](const GenerationParams& p) {
      if (p.hires && !(p.hires_strength > 0 && p.hires_strength <= 1))
        bad("must be above 0 and at most 1 for the hires fix");
    };
    b.s.to_json = [](const GenerationParams& p) {
      return p.hires ? json(p.hires_strength) : json(nullptr);
    };
    b.s.same_in_batch = [](const GenerationParams& a, const GenerationParams& c) {
      return a.hires_strength == c.hires_strength;
    };
    v.push_back(b.done());
  }
  {
    std::string names;
    for (const auto& u : hires_upscalers())
      names += (names.empty() ? "" : " | ") + std::string(u.name);
    SpecBuilder b("hires_upscaler", ParamType::kName, "--hires-upscaler",
                  "hires fix: " + names + " (or A1111's labels, \"Latent (nearest-exact)\")");
    b.a1111({"hr_upscaler"}).json_key("hires_upscaler").infotext("Hires upscaler");
    b.default_text("latent");
    b.s.set_text = [](JobParams& j, const std::string& t) {
      j.image.hires_upscaler = hires_upscaler(t).name;
    };
    b.s.check = [](const GenerationParams& p) { hires_upscaler(p.hires_upscaler); };
    b.s.to_json = [](const GenerationParams& p) {
      return p.hires ? json(p.hires_upscaler) : json(nullptr);
    };
    b.s.write_infotext = [](const GenerationParams& p, Fields& f) {
      if (p.hires) f.emplace_back("Hires upscaler", hires_upscaler(p.hires_upscaler).a1111_label);
    };
    b.s.same_in_batch = [](const GenerationParams& a, const GenerationParams& c) {
      return a.hires_upscaler == c.hires_upscaler;
    };
    v.push_back(b.done());
  }
  {
    SpecBuilder b("hires_sampler", ParamType::kName, "--hires-sampler",
                  "hires fix: the second pass's sampler (default: --sampler)");
    b.a1111({"hr_sampler_name"}).json_key("hires_sampler").infotext("Hires sampler");
    b.s.set_text = [](JobParams& j, const std::string& t) {
      if (t.empty()) bad("must name a sampler");
      j.image.hires_sampler = t;  // an A1111 label is resolved in finish_job
    };
    b.s.check = [](const GenerationParams& p) {
      if (p.hires_sampler.empty()) return;
      if (sampler_info(p.hires_sampler).unit_noise_timesteps)
        bad("'" + p.hires_sampler +
            "' cannot run the hires pass (it keeps its own timesteps); "
            "choose a k-diffusion sampler");
    };
    b.s.to_json = [](const GenerationParams& p) {
      return p.hires && !p.hires_sampler.empty() ? json(p.hires_sampler) : json(nullptr);
    };
    b.s.write_infotext = [](const GenerationParams& p, Fields& f) {
      if (p.hires && !p.hires_sampler.empty() && p.hires_sampler != p.sampler)
        f.emplace_back("Hires sampler", sampler_info(p.hires_sampler).a1111_label);
    };
    b.s.same_in_batch = [](const GenerationParams& a, const GenerationParams& c) {
      return a.hires_sampler == c.hires_sampler;
    };
    v.push_back(b.done());
  }
  for (const bool negative : {false, true}) {
    const std::string name = negative ? "hires_negative_prompt" : "hires_prompt";
    SpecBuilder b(name, ParamType::kText, negative ? "--hires-negative-prompt" : "--hires-prompt",
                  std::string("hires fix: the second pass's ") +
                      (negative ? "negative prompt" : "prompt") + " (default: the first's)");
    b.a1111({negative ? "hr_negative_prompt" : "hr_prompt"})
        .json_key(name)
        .infotext(negative ? "Hires negative prompt" : "Hires prompt");
    std::string GenerationParams::*field =
        negative ? &GenerationParams::hires_negative_prompt : &GenerationParams::hires_prompt;
    b.s.set_text = [=](JobParams& j, const std::string& t) { j.image.*field = text_value(t); };
    b.s.to_json = [=](const GenerationParams& p) {
      return p.hires && !(p.*field).empty() ? json(p.*field) : json(nullptr);
    };
    b.s.write_infotext = [=](const GenerationParams& p, Fields& f) {
      const std::string& first = negative ? p.negative_prompt : p.prompt;
      if (p.hires && !(p.*field).empty() && p.*field != first)
        f.emplace_back(negative ? "Hires negative prompt" : "Hires prompt", p.*field);
    };
    v.push_back(b.done());
  }
  {
    // jsonl only: {"loras": {"name": 0.8, "other": [1.0, 0.5]}} (te and unet multipliers)
    SpecBuilder b("loras", ParamType::kText, "",
                  "jsonl: LoRAs besides the prompt's <lora:...> tags, {\"name\": multiplier} or "
                  "{\"name\": [te, unet]}");
    b.s.set_text = [](JobParams&, const std::string&) {
      bad("is set in jsonl lines as an object, or with <lora:NAME:M> in the prompt");
    };
    b.s.set_json = [](JobParams& j, const json& v) {
      if (!v.is_object())
        bad("'loras' must be an object {\"name\": multiplier}, got " + std::string(v.type_name()));
      j.image.loras.clear();
      for (const auto& [name, m] : v.items()) {
        LoraTag t;
        t.name = name;
        if (name.empty() || name.find_first_of(":<>") != std::string::npos)
          bad("'loras': '" + name + "' is not a LoRA name (a file stem)");
        if (m.is_number()) {
          t.te = t.unet = m.get<double>();
        } else if (m.is_array() && m.size() == 2 && m[0].is_number() && m[1].is_number()) {
          t.te = m[0].get<double>();
          t.unet = m[1].get<double>();
        } else {
          bad("'loras': \"" + name + "\" must be a multiplier or [te, unet], got " + m.dump());
        }
        if (!std::isfinite(t.te) || !std::isfinite(t.unet))
          bad("'loras': \"" + name + "\" must be finite");
        j.image.loras.push_back(t);
      }
    };
    v.push_back(b.done());
  }
}

}  // namespace params_detail
}  // namespace sdgen
