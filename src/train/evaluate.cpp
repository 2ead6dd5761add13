#include "evaluate.h"

#include <algorithm>
#include <chrono>

namespace sdgen::train {
namespace {

// The score of one object alone (its image's background too), for the per-size totals.
data::SceneScore only_object(const data::SceneScore& s, size_t k) {
  data::SceneScore one;
  one.background = s.background;
  one.background_scored = s.background_scored;
  one.background_ok = s.background_ok;
  one.objects.push_back(s.objects[k]);
  return one;
}

nlohmann::json totals_json(const data::ScoreTotals& t) {
  return {{"images", t.images},
          {"objects", t.objects},
          {"colour", t.rate(t.colour, t.objects)},
          {"position", t.rate(t.position, t.objects)},
          {"shape", t.rate(t.shape, t.objects)},
          {"background", t.rate(t.background, t.backgrounds)},
          {"found", t.rate(t.found, t.objects)},
          {"all_correct", t.rate(t.all_correct_images, t.images)}};
}

}  // namespace

void EvalReport::add(const data::SceneScore& score, const data::Scene& scene) {
  totals.add(score);
  by_count[scene.objects.size() > 1 ? 1 : 0].add(score);
  for (size_t k = 0; k < scene.objects.size(); ++k)
    by_size[static_cast<size_t>(scene.objects[k].size)].add(only_object(score, k));
}

EvalReport evaluate(Pipeline& pipeline, const data::DatasetOptions& data, const EvalOptions& o,
                    const std::function<void(const EvalItem&)>& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  EvalReport report;
  report.image_size = data.image_size;
  for (int i = 0; i < o.count; ++i) {
    EvalItem item;
    item.index = o.first + static_cast<uint64_t>(i);
    const auto sample = data::make_sample(data, o.split, item.index);
    item.prompt = sample.caption;
    item.scene = data::described_scene(sample);  // a background the prompt leaves out: any
    item.seed = o.seed + static_cast<uint64_t>(i);
    GenerationParams p;
    p.prompt = item.prompt;
    p.steps = o.steps;
    p.cfg_scale = o.cfg_scale;
    p.sampler = o.sampler;
    p.scheduler = o.scheduler;
    p.seed = item.seed;
    p.width = p.height = data.image_size;
    auto image = pipeline.generate(pipeline.resolve(p));
    item.rgb = std::move(image.rgb);
    item.score = data::score_image(item.rgb, data.image_size, item.scene);
    report.add(item.score, item.scene);
    if (progress) progress(item);
    report.items.push_back(std::move(item));
  }
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return report;
}

EvalReport evaluate_vae(AutoencoderKL& vae, const data::DatasetOptions& data, data::Split split,
                        uint64_t first, int count) {
  torch::NoGradGuard no_grad;
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t s = data.image_size;
  EvalReport report;
  report.image_size = data.image_size;
  for (int i = 0; i < count; ++i) {
    EvalItem item;
    item.index = first + static_cast<uint64_t>(i);
    const auto sample = data::make_sample(data, split, item.index);
    item.prompt = sample.caption;
    item.scene = sample.scene;
    // [1,S,S,3] u8 -> [1,3,S,S] in [-1,1] -> latent mean -> decoded -> u8 as the pipeline rounds
    auto x = torch::from_blob(const_cast<uint8_t*>(sample.rgb.data()), {1, s, s, 3}, torch::kUInt8)
                 .permute({0, 3, 1, 2})
                 .to(torch::kFloat)
                 .div(127.5)
                 .sub(1.0);
    auto y = vae->decode(vae->encode(x).mean);
    auto u8 = y.add(1.0)
                  .mul(127.5)
                  .round()
                  .clamp(0, 255)
                  .to(torch::kUInt8)
                  .permute({0, 2, 3, 1})
                  .contiguous();
    item.rgb.assign(u8.data_ptr<uint8_t>(), u8.data_ptr<uint8_t>() + s * s * 3);
    item.score = data::score_image(item.rgb, data.image_size, item.scene);
    report.add(item.score, item.scene);
    report.items.push_back(std::move(item));
  }
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return report;
}

nlohmann::json EvalReport::to_json(const EvalOptions& o) const {
  nlohmann::json j;
  j["settings"] = {{"split", o.split == data::Split::kHeldOut ? "heldout" : "train"},
                   {"first", o.first},
                   {"count", o.count},
                   {"steps", o.steps},
                   {"cfg_scale", o.cfg_scale},
                   {"sampler", o.sampler},
                   {"scheduler", o.scheduler},
                   {"seed", o.seed},
                   {"image_size", image_size}};
  j["all"] = totals_json(totals);
  for (int s = 0; s < 3; ++s)
    j["by_size"][data::size_name(static_cast<data::Size>(s))] = totals_json(by_size[s]);
  j["by_objects"]["one"] = totals_json(by_count[0]);
  j["by_objects"]["two"] = totals_json(by_count[1]);
  j["seconds"] = seconds;
  return j;
}

std::vector<uint8_t> image_grid(const std::vector<EvalItem>& items, int count, int columns,
                                int size, int* width, int* height) {
  count = std::min<int>(count, static_cast<int>(items.size()));
  const int cols = std::max(1, std::min(columns, count));
  const int rows = (count + cols - 1) / cols;
  *width = cols * size;
  *height = rows * size;
  std::vector<uint8_t> grid(static_cast<size_t>(*width) * *height * 3, 255);
  for (int i = 0; i < count; ++i) {
    const int gx = (i % cols) * size, gy = (i / cols) * size;
    for (int y = 0; y < size; ++y)
      std::copy_n(&items[static_cast<size_t>(i)].rgb[static_cast<size_t>(y) * size * 3], size * 3,
                  &grid[(static_cast<size_t>(gy + y) * *width + gx) * 3]);
  }
  return grid;
}

}  // namespace sdgen::train
