// The parameter schema: one entry per parameter, in A1111's infotext order.
#include "sdgen/job/params.h"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "params_builder.h"
#include "sdgen/io/output_template.h"
#include "sdgen/text/prompt_chunks.h"
#include "sdgen/text/prompt_weights.h"

namespace sdgen {
namespace {

using namespace params_detail;

// An SDXL size-conditioning pair "AxB" (sizes WxH, crop TOPxLEFT) into two fields.
void sdxl_pair(std::vector<ParamSpec>& v, const std::string& name, const std::string& cli,
               const std::string& form, const std::string& label, int SizeConditioning::*a,
               int SizeConditioning::*b, const std::string& help) {
  SpecBuilder sb(name, ParamType::kSize, cli, help);
  sb.json_key(name).infotext(label).default_text(form == "TOPxLEFT" ? "0x0" : "the image size");
  const bool crop = form == "TOPxLEFT";
  sb.s.set_text = [=](JobParams& j, const std::string& t) {
    std::pair<int, int> pair;
    if (!parse_number_pair(t, pair))
      bad("must be " + form + ", e.g. " + (crop ? "0x0" : "1024x1024") + ", not '" + t + "'");
    const auto [first, second] = pair;
    if (!crop && (first < 1 || second < 1))
      bad("must be at least 1 pixel on each side, not '" + t + "'");
    j.image.sdxl.*a = first;
    j.image.sdxl.*b = second;
  };
  sb.s.to_json = [=](const GenerationParams& p) {
    const int first = p.sdxl.*a, second = p.sdxl.*b;
    return !crop && first == 0 ? json(nullptr) : json(size_text(first, second));
  };
  // Not an A1111 field (A1111 always passes the image size and crop 0): written when set.
  sb.s.write_infotext = [=](const GenerationParams& p, Fields& f) {
    if (p.sdxl.*a != 0 || p.sdxl.*b != 0) f.emplace_back(label, size_text(p.sdxl.*a, p.sdxl.*b));
  };
  v.push_back(sb.done());
}

std::vector<ParamSpec> build_specs() {
  std::vector<ParamSpec> v;
  {
    SpecBuilder b("prompt", ParamType::kText, "--prompt", "what to draw, in A1111's prompt syntax");
    b.short_flag("-p").a1111({"prompt"}).json_key("prompt").infotext("(first line)");
    b.s.set_text = [](JobParams& j, const std::string& t) { j.image.prompt = text_value(t); };
    b.s.to_json = [](const GenerationParams& p) { return json(p.prompt); };
    v.push_back(b.done());
  }
  {
    SpecBuilder b("negative_prompt", ParamType::kText, "--negative-prompt",
                  "what to steer away from (the unconditional prompt of guidance)");
    b.short_flag("-n").a1111({"negative_prompt"}).json_key("negative").infotext("Negative prompt");
    b.s.set_text = [](JobParams& j, const std::string& t) {
      j.image.negative_prompt = text_value(t);
    };
    b.s.to_json = [](const GenerationParams& p) { return json(p.negative_prompt); };
    v.push_back(b.done());
  }
  {
    SpecBuilder b("steps", ParamType::kInt, "--steps", "sampling steps");
    b.a1111({"steps"}).json_key("steps").infotext("Steps").default_text("30");
    int_field(b, &GenerationParams::steps, 1, 10000);
    b.s.write_infotext = [](const GenerationParams& p, Fields& f) {
      f.emplace_back("Steps", std::to_string(p.steps));
    };
    b.s.same_in_batch = [](const GenerationParams& a, const GenerationParams& c) {
      return a.steps == c.steps;
    };
    v.push_back(b.done());
  }
  {
    SpecBuilder b("sampler", ParamType::kName, "--sampler",
                  "euler | euler_a | heun | dpm2 | dpm2_a | dpm++2s_a | dpm++2m | dpm++2m_sde | "
                  "lms | ddim | plms | unipc | lcm, or an A1111 label such as \"DPM++ 2M "
                  "Karras\" (sets the scheduler too; see --list-samplers)");
    b.a1111({"sampler_name"}).json_key("sampler").infotext("Sampler").default_text("euler");
    b.s.set_text = [](JobParams& j, const std::string& t) {
      if (t.empty()) bad("must name a sampler");
      j.image.sampler = t;  // an A1111 label is resolved in finish_job, with the scheduler
    };
    b.s.to_json = [](const GenerationParams& p) { return json(p.sampler); };
    b.s.write_infotext = [](const GenerationParams& p, Fields& f) {
      f.emplace_back("Sampler", sampler_info(p.sampler).a1111_label);
    };
    b.s.same_in_batch = [](const GenerationParams& a, const GenerationParams& c) {
      return a.sampler == c.sampler;
    };
    v.push_back(b.done());
  }
  {
    SpecBuilder b("scheduler", ParamType::kName, "--scheduler",
                  "discrete | karras | exponential | sgm_uniform | simple");
    b.json_key("scheduler").infotext("Schedule type").default_text("discrete");
    b.s.set_text = [](JobParams& j, const std::string& t) {
      validate_scheduler(t);
      j.image.scheduler = t;
      j.scheduler_explicit = true;
    };
    b.s.to_json = [](const GenerationParams& p) { return json(p.scheduler); };
    b.s.write_infotext = [](const GenerationParams& p, Fields& f) {
      if (auto type = a1111_schedule_type(p.sampler, p.scheduler); !type.empty())
        f.emplace_back("Schedule type", type);
    };
    b.s.same_in_batch = [](const GenerationParams& a, const GenerationParams& c) {
      return a.scheduler == c.scheduler;
    };
    v.push_back(b.done());
  }
  {
    SpecBuilder b("cfg_scale", ParamType::kNumber, "--cfg-scale",
                  "classifier-free guidance scale (1: no unconditional pass)");
    b.a1111({"cfg_scale"}).json_key("cfg").infotext("CFG scale").default_text("7");
    b.s.set_text = [](JobParams& j, const std::string& t) { j.image.cfg_scale = finite_number(t); };
    b.s.check = [](const GenerationParams& p) {
      if (!std::isfinite(p.cfg_scale)) bad("must be a finite number");
    };
    b.s.to_json = [](const GenerationParams& p) { return json(p.cfg_scale); };
    b.s.write_infotext = [](const GenerationParams& p, Fields& f) {
      f.emplace_back("CFG scale", format_number(p.cfg_scale));
    };
    b.s.same_in_batch = [](const GenerationParams& a, const GenerationParams& c) {
      return a.cfg_scale == c.cfg_scale;
    };
    v.push_back(b.done());
  }
  {
    SpecBuilder b("seed", ParamType::kSeed, "--seed",
                  "-1 for a random seed (it is reported); image i of a line uses seed + i; up to "
                  "2^64-1");
    b.short_flag("-s").a1111({"seed"}).json_key("seed").infotext("Seed").default_text("-1");
    b.s.set_text = [](JobParams& j, const std::string& t) {
      if (t == "-1") {
        j.random_seed = true;
        return;
      }
      errno = 0;
      char* end = nullptr;
      const unsigned long long v = std::strtoull(t.c_str(), &end, 10);
      if (t.empty() || t[0] < '0' || t[0] > '9' || end != t.c_str() + t.size() || errno == ERANGE)
        bad("must be -1 (random) or a whole number from 0 to 18446744073709551615, got " + t);
      j.image.seed = v;
      j.random_seed = false;
    };
    b.s.to_json = [](const GenerationParams& p) { return json(p.seed); };
    b.s.write_infotext = [](const GenerationParams& p, Fields& f) {
      f.emplace_back("Seed", std::to_string(p.seed));
    };
    v.push_back(b.done());
  }
  {
    SpecBuilder b("size", ParamType::kSize, "--size",
                  "WIDTHxHEIGHT, multiples of the VAE's factor (8) (default: the model's native "
                  "size)");
    b.a1111({"width", "height"}).json_key("size").infotext("Size");
    b.s.set_text = [](JobParams& j, const std::string& t) {
      std::tie(j.image.width, j.image.height) = parse_size(t);
    };
    b.s.set_a1111 = [](JobParams& j, const std::string& option, const std::string& t) {
      const int side = in_range(whole_number(t), 1, 999999);
      (option == "width" ? j.image.width : j.image.height) = side;
    };
    b.s.check = [](const GenerationParams& p) {
      if (p.width < 0 || p.height < 0 || (p.width == 0) != (p.height == 0))
        bad("must be at least 1 pixel on each side, not " + size_text(p.width, p.height));
    };
    b.s.to_json = [](const GenerationParams& p) {
      return json(p.width ? size_text(p.width, p.height) : "");
    };
    b.s.write_infotext = [](const GenerationParams& p, Fields& f) {
      f.emplace_back("Size", size_text(p.width, p.height));
    };
    b.s.same_in_batch = [](const GenerationParams& a, const GenerationParams& c) {
      return a.width == c.width && a.height == c.height;
    };
    v.push_back(b.done());
  }
  add_image_input_specs(v);
  {
    SpecBuilder b("eta", ParamType::kNumber, "--eta",
                  "noise amount of ancestral and SDE samplers (default 1) and ddim (default 0)");
    b.json_key("eta").infotext("Eta, Eta DDIM");
    b.s.set_text = [](JobParams& j, const std::string& t) {
      const double eta = finite_number(t);
      if (eta < 0 || eta > 100) bad("must be between 0 and 100, got " + t);
      j.image.sampler_options.eta = eta;
    };
    b.s.to_json = [](const GenerationParams& p) {  // null for samplers without noise
      const auto& info = sampler_info(p.sampler);
      return info.takes_eta ? json(effective_eta(info, p.sampler_options)) : json(nullptr);
    };
    b.s.write_infotext = [](const GenerationParams& p, Fields& f) {
      if (auto [key, eta] = a1111_eta_field(p.sampler, p.sampler_options); !key.empty())
        f.emplace_back(key, format_number(eta));
    };
    b.s.same_in_batch = [](const GenerationParams& a, const GenerationParams& c) {
      return same_eta(a.sampler_options.eta, c.sampler_options.eta) &&
             a.sampler_options.s_noise == c.sampler_options.s_noise;
    };
    v.push_back(b.done());
  }
  {
    SpecBuilder b("clip_skip", ParamType::kInt, "--clip-skip",
                  "skip N-1 text-encoder layers (1 = the model's own: SD 1.x last, SD 2.x "
                  "penultimate)");
    b.json_key("clip_skip").infotext("Clip skip").default_text("1");
    int_field(b, &GenerationParams::clip_skip, 1, 1000);
    b.s.write_infotext = [](const GenerationParams& p, Fields& f) {
      if (p.clip_skip != 1) f.emplace_back("Clip skip", std::to_string(p.clip_skip));
    };
    v.push_back(b.done());
  }
  {
    SpecBuilder b("emphasis", ParamType::kName, "--emphasis",
                  "a1111: (word) x1.1, [word] /1.1, (word:1.3), \\( literal, BREAK (A1111 "
                  "syntax); none: brackets and BREAK are plain text");
    b.json_key("emphasis").infotext("Emphasis").default_text("a1111");
    b.s.set_text = [](JobParams& j, const std::string& t) {
      j.image.emphasis = emphasis_name(parse_emphasis(t));
    };
    b.s.check = [](const GenerationParams& p) { parse_emphasis(p.emphasis); };
    b.s.to_json = [](const GenerationParams& p) { return json(p.emphasis); };
    b.s.write_infotext = [](const GenerationParams& p, Fields& f) {
      // As A1111: recorded when it is not the default and a prompt holds '(' or '['.
      const Emphasis e = parse_emphasis(p.emphasis);
      if (e != Emphasis::kA1111 &&
          (has_emphasis_brackets(p.prompt) || has_emphasis_brackets(p.negative_prompt)))
        f.emplace_back("Emphasis", emphasis_a1111_label(e));
    };
    v.push_back(b.done());
  }
  {
    SpecBuilder b("prediction", ParamType::kName, "--prediction",
                  "what the UNet predicts: eps | v (default: from the model; SD 2.x as A1111 "
                  "decides, SD 1.x eps)");
    b.json_key("prediction").infotext("Prediction");
    b.s.set_text = [](JobParams& j, const std::string& t) {
      if (t != "eps" && t != "v") bad("must be eps or v, not '" + t + "'");
      j.image.prediction = t;
    };
    b.s.check = [](const GenerationParams& p) {
      if (!p.prediction.empty() && p.prediction != "eps" && p.prediction != "v")
        bad("must be eps or v, not '" + p.prediction + "'");
    };
    b.s.to_json = [](const GenerationParams& p) {
      return p.prediction.empty() ? json(nullptr) : json(p.prediction);
    };
    // Not an A1111 field (A1111 reads it from the model's config); the webuis keep unknown keys.
    b.s.write_infotext = [](const GenerationParams& p, Fields& f) {
      if (!p.prediction.empty()) f.emplace_back("Prediction", p.prediction);
    };
    b.s.same_in_batch = [](const GenerationParams& a, const GenerationParams& c) {
      return a.prediction == c.prediction;
    };
    v.push_back(b.done());
  }
  sdxl_pair(v, "sdxl_original_size", "--sdxl-original-size", "WxH", "SDXL original size",
            &SizeConditioning::original_width, &SizeConditioning::original_height,
            "SDXL size conditioning: the original image size the model is told (WIDTHxHEIGHT)");
  sdxl_pair(v, "sdxl_crop", "--sdxl-crop", "TOPxLEFT", "SDXL crop", &SizeConditioning::crop_top,
            &SizeConditioning::crop_left,
            "SDXL size conditioning: the crop's top-left corner the model is told (TOPxLEFT)");
  sdxl_pair(v, "sdxl_target_size", "--sdxl-target-size", "WxH", "SDXL target size",
            &SizeConditioning::target_width, &SizeConditioning::target_height,
            "SDXL size conditioning: the target size the model is told (WIDTHxHEIGHT)");
  add_inpaint_and_hires_specs(v);
  {
    // A1111 lines give n_iter x batch_size images (job/prompt_file.cpp).
    SpecBuilder b("batch_count", ParamType::kInt, "--batch-count",
                  "images per prompt, seeds seed..seed+N-1");
    b.default_text("1");
    b.s.set_text = [](JobParams& j, const std::string& t) {
      j.batch_count = in_range(whole_number(t), 1, 1000000);
    };
    v.push_back(b.done());
  }
  {
    SpecBuilder b("output", ParamType::kText, "--output",
                  "PNG path template: {index} {seed} {line} {prompt}, widths like {index:05}; "
                  "folders are created");
    b.short_flag("-o").default_text("outputs/{index:05}-{seed}.png");
    b.s.set_text = [](JobParams& j, const std::string& t) {
      validate_output_template(text_value(t));
      // sdgen writes PNG files (with the infotext in a text chunk); a name promising another
      // format would hold PNG bytes
      std::string lower = t;
      for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (lower.size() < 4 || lower.compare(lower.size() - 4, 4, ".png") != 0) {
        // "-o outputs" most likely means the folder
        const auto slash = t.rfind('/');
        const bool has_extension =
            t.find('.', slash == std::string::npos ? 0 : slash) != std::string::npos;
        bad("must name .png files (sdgen writes PNG, with its parameters inside), not '" + t + "'" +
            (has_extension ? "" : "; for a folder write " + t + "/{index:05}-{seed}.png"));
      }
      j.output = t;
    };
    v.push_back(b.done());
  }
  return v;
}

}  // namespace

const char* mode_name(Mode m) {
  switch (m) {
    case Mode::kImg2Img:
      return "img2img";
    case Mode::kInpaint:
      return "inpaint";
    case Mode::kTxt2Img:
      break;
  }
  return "txt2img";
}

const std::vector<ParamSpec>& param_specs() {
  static const std::vector<ParamSpec> specs = build_specs();
  return specs;
}

const ParamSpec& param_spec(const std::string& name) {
  for (const auto& s : param_specs())
    if (s.name == name) return s;
  throw std::logic_error("no job parameter named '" + name + "'");
}

std::string jsonl_keys() {
  std::string keys;
  for (const auto& s : param_specs()) keys += (keys.empty() ? "" : ", ") + s.name;
  return keys;
}

}  // namespace sdgen
