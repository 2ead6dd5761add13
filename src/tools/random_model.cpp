#include "random_model.h"

#include <cmath>
#include <vector>

namespace sdgen {

void init_random_weights(torch::nn::Module& module, uint64_t seed) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(seed);
  for (const auto& item : module.named_parameters(/*recurse=*/true)) {
    auto p = item.value();
    const auto& name = item.key();
    if (p.dim() >= 2) {
      // uniform with the variance of N(0, 1/fan_in): cheaper than normal_, same scale
      const double fan_in = static_cast<double>(p.numel() / p.size(0));
      const double bound = std::sqrt(3.0 / fan_in);
      p.uniform_(-bound, bound);
    } else if (p.dim() == 1 && name.size() >= 6 &&
               name.compare(name.size() - 6, 6, "weight") == 0) {
      p.fill_(1.0);
    } else {
      p.zero_();
    }
  }
}

LoadedModel random_model(const ModelConfig& config, torch::Device device, torch::ScalarType dtype,
                         uint64_t seed) {
  LoadedModel m;
  m.config = config;
  m.family = &model_family(config.family);
  m.sampling = ModelSampling::from_config(config);
  m.text = m.family->make_text_encoder(config.text);
  if (m.family->make_text_encoder_2) m.text_2 = m.family->make_text_encoder_2(config.text_2);
  m.unet = UNetModel(config.unet);
  m.vae = AutoencoderKL(config.vae);
  m.path = "random";
  // float32 on the device first, so that the re-initialisation runs there (fast on CUDA), then
  // the target dtype
  std::vector<torch::nn::Module*> modules = {&m.text->module(), m.unet.get(), m.vae.get()};
  if (m.text_2) modules.push_back(&m.text_2->module());
  uint64_t s = seed;
  for (torch::nn::Module* mod : modules) {
    mod->to(device, torch::kFloat);
    init_random_weights(*mod, s++);
    // the VAE as load_model keeps it: float32 where the family's overflows in fp16 (SDXL)
    const bool upcast = mod == m.vae.get() && m.family->vae_upcast_in_fp16 && dtype == torch::kHalf;
    mod->to(upcast ? torch::kFloat : dtype);
    mod->eval();
  }
  return m;
}

void to_channels_last(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters())
    if (p.dim() == 4) p.set_data(p.contiguous(at::MemoryFormat::ChannelsLast));
}

}  // namespace sdgen
