// Generation parameters and their one schema. Every parameter a user can set is described once
// (name, type, default, validation, CLI flag, jsonl key, A1111 option, --json record key,
// infotext label); the command line, the three prompt-file formats, the --json records, the
// infotext and the validation all read this table, so a new parameter is one entry here plus
// the field it sets. Torch-free: jobs are read and checked before any model is loaded.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "sdgen/io/infotext.h"
#include "sdgen/sampling/sampler_registry.h"
#include "sdgen/text/extra_networks.h"

namespace sdgen {

// What a job makes from what: text-to-image (with the hires fix as its second pass), img2img
// (an init image), inpainting (an init image and a mask). Follows from the parameters
// (GenerationParams::mode).
enum class Mode { kTxt2Img, kImg2Img, kInpaint };
const char* mode_name(Mode m);

// SDXL's size conditioning (sgm's ConcatTimestepEmbedderND inputs; A1111 passes the image size
// for both sizes and crop 0). 0: the image's own size.
struct SizeConditioning {
  int original_width = 0, original_height = 0;
  int crop_top = 0, crop_left = 0;
  int target_width = 0, target_height = 0;
  bool operator==(const SizeConditioning& o) const {
    return original_width == o.original_width && original_height == o.original_height &&
           crop_top == o.crop_top && crop_left == o.crop_left && target_width == o.target_width &&
           target_height == o.target_height;
  }
};

// The parameters of one image.
struct GenerationParams {
  std::string prompt;
  std::string negative_prompt;
  int steps = 30;
  int width = 0, height = 0;  // 0: the model's native size
  double cfg_scale = 7.0;
  std::string sampler = "euler";
  std::string scheduler = "discrete";
  uint64_t seed = 0;
  // A1111 numbering: 1 = the layer the model was trained with (SD 1.x the last, SD 2.x the
  // penultimate); each step above 1 skips one more layer.
  int clip_skip = 1;
  // "eps" or "v"; empty: the model's. Pipeline::resolve fills it for models whose prediction
  // is not fixed by the family (SD 2.x), where the infotext records it as "Prediction".
  std::string prediction;
  // How brackets in the prompts are read: "a1111" (A1111's emphasis syntax, its "Original")
  // or "none" (plain text, A1111's "None"); long prompts are chunked either way.
  std::string emphasis = "a1111";
  SamplerOptions sampler_options;
  SizeConditioning sdxl;  // models with size conditioning only (ModelLimits)

  // img2img and inpainting (A1111's img2img tab)
  std::string init_image;                 // PNG / JPEG path; empty: text-to-image
  std::string mask;                       // PNG / JPEG path, white = repaint; needs init_image
  double strength = 0.75;                 // denoising strength: how much of the schedule is run
  int mask_blur = 4;                      // Gaussian blur of the mask, pixels (A1111's sigma)
  std::string inpaint_fill = "original";  // original | latent-noise | latent-nothing
  // the hires fix (text-to-image): a second img2img pass at a larger size
  bool hires = false;
  double hires_scale = 2.0;               // A1111's hr_scale; unused when hires_width is set
  int hires_width = 0, hires_height = 0;  // A1111's hr_resize_x / _y (0: from the scale)
  int hires_steps = 0;                    // 0: as steps
  double hires_strength = 0.7;
  std::string hires_upscaler = "latent";  // hires_upscalers() (sampling/...: params_image.cpp)
  std::string hires_sampler;              // empty: the first pass's
  std::string hires_prompt, hires_negative_prompt;  // empty: the first pass's
  // LoRAs besides the prompt's <lora:...> tags (jsonl "loras": {"name": multiplier}); the
  // infotext writes them as tags after the prompt, so the webuis reproduce the image
  std::vector<LoraTag> loras;

  Mode mode() const {
    return init_image.empty() ? Mode::kTxt2Img : mask.empty() ? Mode::kImg2Img : Mode::kInpaint;
  }
};

// The LoRAs of an image: the prompt's <lora:...> tags in order, then `loras`. Throws
// std::invalid_argument for a malformed tag (validate_params reports it first).
std::vector<LoraTag> image_loras(const GenerationParams& p);

// The hires fix's sizes for `p` (A1111 StableDiffusionProcessingTxt2Img.calculate_target_
// resolution): the size the second pass samples at (upscaled first-pass latent) and the final
// image size after the crop that keeps hires_width x hires_height's aspect (both equal unless
// both hires sides are given).
struct HiresSize {
  int upscale_width = 0, upscale_height = 0;  // the latent is upscaled to these / 8
  int crop_left = 0, crop_top = 0;            // then cropped by these latent pixels
  int width = 0, height = 0;                  // the image written (latent size x 8)
};
HiresSize hires_size(const GenerationParams& p);

// The hires upscalers: sdgen name, A1111 label, interpolate mode ("" for pixel upscalers),
// antialias.
struct HiresUpscaler {
  const char* name;
  const char* a1111_label;
  const char* interpolate_mode;
  bool antialias;
};
const std::vector<HiresUpscaler>& hires_upscalers();
const HiresUpscaler& hires_upscaler(const std::string& name);  // std::invalid_argument

// One line of a run (the command line, or a prompt-file line over it): the parameters of its
// images and what expands it into images.
struct JobParams {
  GenerationParams image;   // .seed: the first image's (see random_seed)
  bool random_seed = true;  // no seed given (or -1): one is drawn per line
  int batch_count = 1;      // images, seeds seed .. seed + batch_count - 1
  std::string output = "outputs/{index:05}-{seed}.png";  // name template (io/output_template.h)
  // Whether the scheduler was given at the level that gave the sampler: an A1111 sampler label
  // that names a schedule ("DPM++ 2M Karras") sets it unless the user chose one explicitly.
  bool scheduler_explicit = false;
};

// What validation needs to know of the model (known before its weights load: from the
// checkpoint's shapes and config). Zero means not known yet: that check is left out.
struct ModelLimits {
  int size_multiple = 8;  // the VAE's downsampling factor
  int native_width = 0, native_height = 0;
  int max_clip_skip = 0;
  // Said when clip skip > 1 (SD 2.x: A1111 ignores clip skip there); empty: nothing to say.
  std::string clip_skip_warning;
  // Whether the model is conditioned on image sizes (SDXL); else the --sdxl-* values are
  // ignored with a warning.
  bool size_conditioning = false;
  // Whether the UNet takes a mask and a masked-image latent beside the latent (9-channel
  // inpainting models).
  bool inpainting_model = false;
};

enum class ParamType { kText, kInt, kNumber, kSeed, kSize, kName };

struct ParamSpec {
  std::string name;  // also the jsonl key
  ParamType type;
  std::string cli;                 // "--steps"; "" when the command line has no flag for it
  std::string cli_short;           // "-p"
  std::vector<std::string> a1111;  // options of A1111's "prompts from file" script
  std::string json;                // key in --json records; "" when not recorded
  std::string infotext;            // the infotext label(s) it writes, for documentation
  std::string default_text;        // the default, as the help shows it
  std::string help;
  unsigned modes = ~0u;  // bit (1 << Mode): the modes it applies to
  // Sets the parameter from text (command line, A1111 lines) and checks the value; throws
  // std::invalid_argument with a message to put after the option's name ("must be ...").
  std::function<void(JobParams&, const std::string& text)> set_text;
  // The same from a JSON value (jsonl), type-checked first; the message names the key.
  std::function<void(JobParams&, const nlohmann::json& value)> set_json;
  // A1111's option `option` (one of `a1111`): set_text, except where one parameter has two
  // A1111 options (size: width and height).
  std::function<void(JobParams&, const std::string& option, const std::string& text)> set_a1111;
  // The value's own constraints on an assembled image (steps in range, ...), as set_text
  // checks them; std::invalid_argument.
  std::function<void(const GenerationParams&)> check;
  // The --json record value.
  std::function<nlohmann::json(const GenerationParams&)> to_json;
  // Appends its infotext fields (none at A1111's defaults).
  std::function<void(const GenerationParams&, std::vector<std::pair<std::string, std::string>>&)>
      write_infotext;
  // For file paths (init image, mask): makes a relative path that a prompt-file line set
  // relative to the prompt file's folder `base`; null for other parameters.
  std::function<void(JobParams&, const std::string& base)> rebase_path;
  // Images whose parameters differ here cannot share a UNet batch; null: they can.
  std::function<bool(const GenerationParams&, const GenerationParams&)> same_in_batch;
};

// The schema, in A1111's infotext order.
const std::vector<ParamSpec>& param_specs();
const ParamSpec& param_spec(const std::string& name);  // throws std::logic_error when unknown
// "prompt, negative_prompt, ..." : the jsonl keys, for error messages.
std::string jsonl_keys();

// Resolves an A1111 sampler label in p.sampler ("DPM++ 2M Karras" -> dpm++2m + karras) and
// checks every parameter against itself and `limits`. Throws std::invalid_argument.
void finish_job(JobParams& job, const ModelLimits& limits);
// Every check of an image's parameters: each spec's own, sampler and scheduler names, eta,
// size against the VAE factor, clip skip against the text encoder. std::invalid_argument.
void validate_params(const GenerationParams& p, const ModelLimits& limits);
// validate_params, then the model's native size where none is given; `warn` (may be empty)
// hears about sizes far above native, clip skip on SD 2.x and samplers with own timesteps.
GenerationParams resolve_params(GenerationParams p, const ModelLimits& limits,
                                const std::function<void(const std::string&)>& warn = {});
// Whether two images can share UNet batches: equal in every same_in_batch parameter (size,
// steps, sampler, scheduler, guidance, prediction, eta).
bool batchable(const GenerationParams& a, const GenerationParams& b);

// What the infotext says of the model: file name without extension, the first 10 hex digits
// of its sha256 (may be empty), the VAE file's name when one replaced the checkpoint's.
struct ModelStamp {
  std::string name, hash, vae;
};
// The A1111 infotext of an image made with `p`.
InfoText make_infotext(const GenerationParams& p, const ModelStamp& model);
// The --json record's parameter fields.
nlohmann::json params_json(const GenerationParams& p);

// "Version" in the infotext: "sdgen <project version>".
std::string sdgen_version();

}  // namespace sdgen
