// libFuzzer target: the model config JSON beside a checkpoint. Any JSON must either be rejected
// with std::invalid_argument naming the key, or give a configuration that validates, and a
// validated one must give finite memory estimates.
#include <cmath>

#include <nlohmann/json.hpp>

#include "fuzz_util.h"
#include "sdgen/models/config.h"
#include "sdgen/models/memory.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const nlohmann::json j = nlohmann::json::parse(data, data + size, nullptr, false);
  if (j.is_discarded()) return 0;
  sdgen::ModelConfig c;
  try {
    sdgen::apply_json(j, c);
    sdgen::validate_config(c);
  } catch (const std::invalid_argument& e) {
    SDGEN_FUZZ_CHECK(e.what()[0] != '\0');
    return 0;
  }
  const int f = c.vae.downsample_factor();
  SDGEN_FUZZ_CHECK(f >= 1);
  for (int side : {f, 64 * f}) {
    const auto m = sdgen::estimate_memory(c, side, side, 2, 2, 1e9, true);
    SDGEN_FUZZ_CHECK(std::isfinite(m.total()) && m.total() >= 1e9);
  }
  for (size_t level = 0; level < c.unet.channel_mult.size(); ++level) {
    const int channels = c.unet.model_channels * c.unet.channel_mult[level];
    SDGEN_FUZZ_CHECK(c.unet.heads_for(channels) >= 1);
    (void)c.unet.depth_at(level);
  }
  return 0;
}
