#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <stdexcept>

#include "sdgen/io/tensor_io.h"
#include "sdgen/loading/family.h"
#include "sdgen/loading/load_module.h"
#include "sdgen/models/layers.h"
#include "sdgen/sampling/schedule.h"
#include "train.h"

namespace sdgen::train {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Training images as uint8 [N, S, S, 3] (4x less memory than float), their background
// colours [N, 3] uint8 and their captions.
struct Pool {
  torch::Tensor rgb, background;
  std::vector<std::string> captions;
};

// Samples 0 .. count-1 of the training split; a fraction `partial_captions` of the one-object
// scenes get a caption that leaves out the object's colour, shape or both (data::Mention).
Pool make_pool(const data::DatasetOptions& d, int count, double partial_captions = 0) {
  if (count <= 0) throw std::invalid_argument("the training pool must hold at least one image");
  const int64_t s = d.image_size;
  Pool p;
  p.rgb = torch::empty({count, s, s, 3}, torch::kUInt8);
  p.background = torch::empty({count, 3}, torch::kUInt8);
  auto* out = p.rgb.data_ptr<uint8_t>();
  auto* bg = p.background.data_ptr<uint8_t>();
  for (int i = 0; i < count; ++i) {
    auto sample = data::make_sample(d, data::Split::kTrain, static_cast<uint64_t>(i));
    std::copy(sample.rgb.begin(), sample.rgb.end(), out + static_cast<int64_t>(i) * s * s * 3);
    const auto c = data::background_colours()[static_cast<size_t>(sample.scene.background)].rgb;
    bg[i * 3] = c.r;
    bg[i * 3 + 1] = c.g;
    bg[i * 3 + 2] = c.b;
    if (partial_captions > 0 && sample.scene.objects.size() == 1) {
      data::Rng rng(data::sample_rng(d, data::Split::kTrain, static_cast<uint64_t>(i)).next() ^
                    0x7061727469616CULL);
      if (rng.uniform01() < partial_captions)
        sample.caption = data::caption(sample.scene, rng, nullptr,
                                       static_cast<data::Mention>(1 + rng.uniform(3)));
    }
    p.captions.push_back(std::move(sample.caption));
  }
  return p;
}

torch::Tensor to_float_images(const torch::Tensor& rgb) {  // [N,S,S,3] u8 -> [N,3,S,S] [-1,1]
  return rgb.permute({0, 3, 1, 2}).to(torch::kFloat).div(127.5).sub(1.0).contiguous();
}

std::vector<int64_t> draw_indices(data::Rng& rng, int pool, int batch) {
  std::vector<int64_t> idx(static_cast<size_t>(batch));
  for (auto& i : idx) i = rng.uniform(pool);
  return idx;
}

void set_lr(torch::optim::AdamW& opt, double lr) {
  for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
}

// One optimiser step with warm-up and clipping; records the loss and logs.
void finish_step(torch::optim::AdamW& opt, std::vector<torch::Tensor>& params,
                 const torch::Tensor& loss, const TrainOptions& o, int step, TrainResult& r,
                 double& running, Clock::time_point t0, const LogFn& log) {
  set_lr(opt, learning_rate(o, step));
  opt.zero_grad();
  loss.backward();
  if (o.grad_clip > 0) torch::nn::utils::clip_grad_norm_(params, o.grad_clip);
  opt.step();
  const double v = loss.item<double>();
  if (!std::isfinite(v))
    throw std::runtime_error("training diverged at step " + std::to_string(step) + " (loss " +
                             std::to_string(v) + "); lower the learning rate");
  r.losses.push_back(v);
  running += v;
  if (log && o.log_every > 0 && ((step + 1) % o.log_every == 0 || step + 1 == o.steps)) {
    const int n = (step + 1) % o.log_every == 0 ? o.log_every : (step + 1) % o.log_every;
    log(step + 1, running / n, seconds_since(t0));
    running = 0;
  }
}

}  // namespace

double learning_rate(const TrainOptions& o, int step) {
  if (o.warmup > 0 && step < o.warmup) return o.lr * (step + 1) / o.warmup;
  if (std::isnan(o.final_lr) || o.steps - 1 <= o.warmup) return o.lr;
  const double progress = static_cast<double>(step - o.warmup) / (o.steps - 1 - o.warmup);
  return o.final_lr + 0.5 * (o.lr - o.final_lr) * (1.0 + std::cos(M_PI * progress));
}

ModelConfig read_model_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot open the model config");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": not valid JSON (" + e.what() + ")");
  }
  ModelConfig c;
  apply_json(j, c);
  return c;
}

Batch make_batch(const data::DatasetOptions& d, data::Split split, uint64_t first, int64_t count) {
  const int64_t s = d.image_size;
  auto rgb = torch::empty({count, s, s, 3}, torch::kUInt8);
  Batch b;
  for (int64_t i = 0; i < count; ++i) {
    auto sample = data::make_sample(d, split, first + static_cast<uint64_t>(i));
    std::copy(sample.rgb.begin(), sample.rgb.end(), rgb.data_ptr<uint8_t>() + i * s * s * 3);
    b.captions.push_back(std::move(sample.caption));
  }
  b.images = to_float_images(rgb);
  return b;
}

std::vector<int64_t> caption_ids(const Tokenizer& tokenizer, const std::string& caption,
                                 int max_positions, bool* cut) {
  const auto pieces = tokenizer.encode(caption);
  if (cut) *cut = pieces.size() + 2 > static_cast<size_t>(max_positions);
  return frame_ids(pieces, tokenizer.bos_id(), tokenizer.eos_id(), tokenizer.eos_id(),
                   static_cast<size_t>(max_positions));
}

torch::Tensor eps_loss(const torch::Tensor& pred, const torch::Tensor& noise,
                       const torch::Tensor& alphas_cumprod, double min_snr_gamma) {
  if (min_snr_gamma <= 0) return torch::mse_loss(pred, noise);
  // eps prediction: weight min(SNR, gamma) / SNR with SNR = acp / (1 - acp)
  auto snr = alphas_cumprod / (1.0 - alphas_cumprod);
  auto w = torch::clamp_max(snr, min_snr_gamma) / snr;
  return ((pred - noise).pow(2).flatten(1).mean(1) * w).mean();
}

int64_t count_parameters(torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

void init_for_training(torch::nn::Module& module) { nn::init_default_weights(module); }

void init_vae_for_training(AutoencoderKL& vae, double logvar_bias) {
  init_for_training(*vae);
  torch::NoGradGuard no_grad;
  const int64_t z = vae->config().embed_dim;
  auto w = vae->quant_conv->weight, b = vae->quant_conv->bias;
  w.narrow(0, z, z).mul_(0.1);
  b.narrow(0, z, z).fill_(logvar_bias);
}

TrainResult train_vae(AutoencoderKL& vae, const data::DatasetOptions& d, const TrainOptions& o,
                      const LogFn& log) {
  torch::manual_seed(o.seed);
  const auto t0 = Clock::now();
  const Pool pool = make_pool(d, o.pool);
  vae->to(o.device);
  vae->train();
  auto params = vae->parameters();
  torch::optim::AdamW opt(params, torch::optim::AdamWOptions(o.lr).weight_decay(o.weight_decay));
  data::Rng rng(o.seed ^ 0x7661650000000000ULL);
  TrainResult r;
  double running = 0;
  for (int step = 0; step < o.steps; ++step) {
    const auto idx = torch::tensor(draw_indices(rng, o.pool, o.batch), torch::kLong);
    auto x = to_float_images(pool.rgb.index_select(0, idx)).to(o.device);
    auto dist = vae->encode(x);
    auto z = dist.mean + dist.std * torch::randn_like(dist.std);
    auto rec = vae->decode(z);
    auto diff = rec - x;
    if (o.foreground_weight > 0) {
      // pixels off the background (objects and their edges) weigh 1 + foreground_weight
      auto bg = pool.background.index_select(0, idx).to(torch::kFloat).div(127.5).sub(1.0);
      auto off = (x - bg.view({-1, 3, 1, 1}).to(o.device)).abs().amax(1, true).gt(2.0 / 127.5);
      auto w = 1.0 + o.foreground_weight * off.to(torch::kFloat);
      diff = diff * w / w.mean();
    }
    auto kl = 0.5 * (dist.mean.pow(2) + dist.std.pow(2) - 1.0 - dist.logvar).mean();
    auto loss = diff.abs().mean() + diff.pow(2).mean() + o.kl_weight * kl;
    finish_step(opt, params, loss, o, step, r, running, t0, log);
  }
  vae->eval();
  r.seconds = seconds_since(t0);
  return r;
}

TrainResult train_unet(ClipTextModel& text, UNetModel& unet, AutoencoderKL& vae,
                       const Tokenizer& tokenizer, const data::DatasetOptions& d,
                       const TrainOptions& o, const LogFn& log, const CheckpointFn& checkpoint) {
  torch::manual_seed(o.seed);
  const auto t0 = Clock::now();
  const Pool pool = make_pool(d, o.pool, o.partial_captions);
  const int positions = text->config().max_positions;
  if (static_cast<int64_t>(tokenizer.vocab_size()) > text->config().vocab_size)
    throw std::invalid_argument("the tokenizer has " + std::to_string(tokenizer.vocab_size()) +
                                " ids, the text encoder only " +
                                std::to_string(text->config().vocab_size));

  // Latents of the (frozen) VAE: its means, scaled to unit variance.
  vae->to(o.device);
  vae->eval();
  torch::Tensor latents;
  {
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> parts;
    for (int64_t i = 0; i < o.pool; i += 128) {
      const int64_t n = std::min<int64_t>(128, o.pool - i);
      parts.push_back(vae->encode(to_float_images(pool.rgb.narrow(0, i, n)).to(o.device)).mean);
    }
    latents = torch::cat(parts);
  }
  TrainResult r;
  r.scale_factor = o.scale_factor > 0 ? o.scale_factor : 1.0 / latents.std().item<double>();
  latents = latents * r.scale_factor;

  std::vector<int64_t> all_ids;
  for (const auto& c : pool.captions) {
    bool cut = false;
    const auto ids = caption_ids(tokenizer, c, positions, &cut);
    r.cut_captions += cut;
    all_ids.insert(all_ids.end(), ids.begin(), ids.end());
  }
  const auto ids = torch::tensor(all_ids, torch::kLong).view({o.pool, positions});
  const auto empty = torch::tensor(caption_ids(tokenizer, "", positions), torch::kLong);
  const auto acp = DiscreteSchedule::scaled_linear().alphas_cumprod().to(o.device);
  const int64_t timesteps = acp.size(0);

  text->to(o.device);
  unet->to(o.device);
  text->train();
  unet->train();
  auto params = text->parameters();
  for (const auto& p : unet->parameters()) params.push_back(p);
  torch::optim::AdamW opt(params, torch::optim::AdamWOptions(o.lr).weight_decay(o.weight_decay));
  std::vector<torch::Tensor> ema;
  if (o.ema > 0) {
    torch::NoGradGuard no_grad;
    for (const auto& p : params) ema.push_back(p.detach().clone());
  }
  data::Rng rng(o.seed ^ 0x756E657400000000ULL);
  double running = 0;
  for (int step = 0; step < o.steps; ++step) {
    const auto idx_v = draw_indices(rng, o.pool, o.batch);
    const auto idx = torch::tensor(idx_v, torch::kLong);
    auto x0 = latents.index_select(0, idx.to(o.device));
    auto batch_ids = ids.index_select(0, idx).clone();
    for (int b = 0; b < o.batch; ++b)
      if (rng.uniform01() < o.caption_dropout) batch_ids[b].copy_(empty);
    auto t = torch::randint(0, timesteps, {o.batch}, torch::kLong).to(o.device);
    auto noise = torch::randn_like(x0);
    auto a = acp.index_select(0, t).view({-1, 1, 1, 1});
    auto xt = a.sqrt() * x0 + (1.0 - a).sqrt() * noise;
    auto context = text->forward(batch_ids.to(o.device));
    auto pred = unet->forward(xt, t.to(torch::kFloat), Conditioning(context));
    auto loss = eps_loss(pred, noise, a.view({-1}), o.min_snr_gamma);
    finish_step(opt, params, loss, o, step, r, running, t0, log);
    if (!ema.empty()) {
      torch::NoGradGuard no_grad;
      const double decay = std::min(o.ema, (1.0 + step) / (10.0 + step));
      for (size_t i = 0; i < ema.size(); ++i) ema[i].mul_(decay).add_(params[i], 1.0 - decay);
    }
    if (checkpoint && o.save_every > 0 && (step + 1) % o.save_every == 0 && step + 1 < o.steps) {
      // the averaged weights into the modules for the callback, then the live ones back
      torch::NoGradGuard no_grad;
      std::vector<torch::Tensor> live;
      for (size_t i = 0; i < ema.size(); ++i) {
        live.push_back(params[i].detach().clone());
        params[i].copy_(ema[i]);
      }
      text->eval();
      unet->eval();
      checkpoint(step + 1, r.scale_factor);
      text->train();
      unet->train();
      for (size_t i = 0; i < live.size(); ++i) params[i].copy_(live[i]);
    }
  }
  if (!ema.empty()) {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < ema.size(); ++i) params[i].copy_(ema[i]);
  }
  text->eval();
  unet->eval();
  r.seconds = seconds_since(t0);
  return r;
}

void save_checkpoint(const std::string& path, ClipTextModel* text, UNetModel* unet,
                     AutoencoderKL* vae, torch::ScalarType dtype,
                     const std::map<std::string, std::string>& metadata) {
  std::map<std::string, torch::Tensor> tensors;
  auto add = [&](torch::nn::Module& m, const KeyMap& keys) {
    auto put = [&](const std::string& name, const torch::Tensor& t) {
      auto c = t.detach().to(torch::kCPU);
      if (c.is_floating_point()) c = c.to(dtype);
      tensors[keys.to_source(name)] = c.contiguous();
    };
    for (const auto& p : m.named_parameters(true)) put(p.key(), p.value());
    for (const auto& b : m.named_buffers(true)) put(b.key(), b.value());
  };
  const ModelFamily& sd1 = model_family("sd1");
  if (text && *text) add(**text, sd1.text_keys);
  if (unet && *unet) add(**unet, sd1.unet_keys);
  if (vae && *vae) add(**vae, sd1.vae_keys);
  save_tensors(path, tensors, metadata);
}

void save_config(const std::string& path, const ModelConfig& config, const nlohmann::json& extra) {
  nlohmann::json j = config;
  for (auto it = extra.begin(); it != extra.end(); ++it) j[it.key()] = it.value();
  std::ofstream out(path);
  if (!out) throw std::runtime_error(path + ": cannot write");
  out << j.dump(2) << "\n";
  if (!out) throw std::runtime_error(path + ": write failed");
}

namespace {
void load_strict(torch::nn::Module& module, const TensorSource& source, const KeyMap& keys) {
  LoadReport report;
  load_module(module, source, keys, torch::kCPU, torch::kFloat, report);
  if (!report.ok()) throw std::runtime_error(report.message(source.path(), "an sdgen-train file"));
}
}  // namespace

void load_weights(torch::nn::Module& module, const std::string& path, const KeyMap& keys) {
  load_strict(module, TensorSource::open_file(path), keys);
}

void load_text_encoder(ClipTextModel& text, const std::string& path) {
  const auto source = TensorSource::open_file(path);
  const KeyMap& keys = model_family("sd1").text_keys;
  const int positions = text->config().max_positions;
  // the checkpoint's own count; without the tensor, the strict load reports it missing
  const auto* saved_embedding = source.find(keys.to_source("embeddings.position_embedding.weight"));
  if (!saved_embedding || saved_embedding->shape.size() != 2 ||
      saved_embedding->shape[0] == positions)
    return load_strict(*text, source, keys);
  const int saved_positions = static_cast<int>(saved_embedding->shape[0]);
  if (saved_positions > positions)
    throw std::runtime_error(path + ": its text encoder has " + std::to_string(saved_positions) +
                             " positions, more than the " + std::to_string(positions) +
                             " of the config; captions would be cut shorter than it was "
                             "trained on: raise text_encoder.max_positions to at least " +
                             std::to_string(saved_positions));
  // Load strictly into a model of the saved shape, then copy: the new positions keep their
  // fresh initialisation and are learnt from the captions that reach them.
  auto saved_config = text->config();
  saved_config.max_positions = saved_positions;
  ClipTextModel saved(saved_config);
  load_strict(*saved, source, keys);
  torch::NoGradGuard no_grad;
  auto dst = text->named_parameters();
  for (const auto& kv : saved->named_parameters()) {
    auto& d = dst[kv.key()];
    if (d.sizes() == kv.value().sizes())
      d.copy_(kv.value());
    else  // the position embedding: [saved_positions, width] into [positions, width]
      d.narrow(0, 0, kv.value().size(0)).copy_(kv.value());
  }
}

}  // namespace sdgen::train
