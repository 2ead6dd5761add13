// sdgen-train: builds sdgen's own small model (issue #6) in four steps:
//   data       write sample images, captions and a grid of the procedural data set
//   tokenizer  train a SentencePiece model on the caption corpus (through libsdgen_spm.so)
//   vae        train the AutoencoderKL (8x down, 4 latent channels) on the images
//   unet       train the text encoder and UNet together on the VAE's latents
//   eval       generate held-out scenes' captions with a model and score the images
// Every step is seeded; checkpoints are safetensors with LDM names plus a config JSON beside
// them, so `sdgen --model` loads the result. scripts/train-default-model.sh runs the recipe.
#include <sys/stat.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <CLI/CLI.hpp>

#include "evaluate.h"
#include "sdgen/io/png.h"
#include "sdgen/loading/model_loader.h"
#include "sdgen/pipeline/pipeline.h"
#include "sdgen/pipeline/runtime.h"
#include "sdgen/text/sentencepiece_tokenizer.h"
#include "train.h"

namespace fs = std::filesystem;
using namespace sdgen;

namespace {

struct Common {
  uint64_t seed = 0;
  int image_size = 64;
  int threads = 0;
  double two_objects = 0.25;
  data::DatasetOptions data() const {
    data::DatasetOptions d;
    d.seed = seed;
    d.image_size = image_size;
    d.two_object_fraction = two_objects;
    return d;
  }
};

void write_png(const std::string& path, const uint8_t* rgb, int w, int h) {
  const auto png = encode_png(rgb, w, h, {});
  write_file_atomic(path, png.data(), png.size(), /*overwrite=*/true);
}

void make_parent(const std::string& path) {
  const auto parent = fs::path(path).parent_path();
  if (!parent.empty()) fs::create_directories(parent);
}

std::string fmt(double v, int precision = 4) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", precision, v);
  return buf;
}

int cmd_data(const Common& c, const std::string& out, int count, int columns,
             const std::string& split_name) {
  const auto split = split_name == "heldout" ? data::Split::kHeldOut : data::Split::kTrain;
  fs::create_directories(out);
  const auto d = c.data();
  const int s = d.image_size, cols = std::max(1, std::min(columns, count));
  const int rows = (count + cols - 1) / cols;
  std::vector<uint8_t> grid(static_cast<size_t>(rows * s) * cols * s * 3, 255);
  std::ofstream captions(out + "/captions.txt");
  for (int i = 0; i < count; ++i) {
    const auto sample = data::make_sample(d, split, static_cast<uint64_t>(i));
    char name[32];
    std::snprintf(name, sizeof(name), "%05d.png", i);
    write_png(out + "/" + name, sample.rgb.data(), s, s);
    captions << name << "\t" << sample.caption << "\n";
    const int gx = (i % cols) * s, gy = (i / cols) * s;
    for (int y = 0; y < s; ++y)
      std::copy_n(&sample.rgb[static_cast<size_t>(y) * s * 3], s * 3,
                  &grid[(static_cast<size_t>(gy + y) * cols * s + gx) * 3]);
  }
  write_png(out + "/grid.png", grid.data(), cols * s, rows * s);
  std::cerr << "sdgen-train: wrote " << count << " images, captions.txt and grid.png to " << out
            << "\n";
  return 0;
}

int cmd_tokenizer(const Common& c, const std::string& prefix, int vocab, int count,
                  const std::string& extra) {
  make_parent(prefix);
  std::vector<std::string> corpus;
  data::DatasetOptions d = c.data();
  for (int i = 0; i < count; ++i) {
    // the training split's captions; the scenes are drawn, the images not rendered
    auto rng = data::sample_rng(d, data::Split::kTrain, static_cast<uint64_t>(i));
    const auto scene = data::sample_scene(rng, data::Split::kTrain, d);
    corpus.push_back(data::caption(scene, rng));
  }
  SentencePieceTokenizer::train(corpus, prefix, vocab, extra);
  auto tok = SentencePieceTokenizer::from_file(prefix + ".model");
  std::cerr << "sdgen-train: wrote " << prefix << ".model (" << tok->vocab_size()
            << " pieces) from " << count << " captions\n";
  return 0;
}

train::LogFn logger(const char* what) {
  return [what](int step, double loss, double seconds) {
    std::cerr << "sdgen-train " << what << ": step " << step << " loss " << fmt(loss, 5) << " "
              << fmt(seconds, 1) << " s (" << fmt(seconds / step, 3) << " s/step)\n";
  };
}

torch::ScalarType save_dtype(const std::string& s) {
  return s == "fp16" ? torch::kHalf : torch::kFloat;
}

int cmd_vae(const Common& c, const std::string& config_path, const std::string& out,
            const std::string& init, const std::string& dtype, const train::TrainOptions& o) {
  auto config = train::read_model_config(config_path);
  torch::manual_seed(o.seed);
  AutoencoderKL vae(config.vae);
  if (init.empty())
    train::init_vae_for_training(vae);
  else
    train::load_weights(*vae, init, inspect_vae(init).keys);
  std::cerr << "sdgen-train vae: " << train::count_parameters(*vae) << " parameters\n";
  const auto r = train::train_vae(vae, c.data(), o, logger("vae"));
  make_parent(out);
  train::save_checkpoint(out, nullptr, nullptr, &vae, save_dtype(dtype),
                         {{"sdgen_train", "vae"}, {"steps", std::to_string(o.steps)}});
  std::cerr << "sdgen-train vae: wrote " << out << " after " << fmt(r.seconds, 1) << " s\n";
  return 0;
}

int cmd_unet(const Common& c, const std::string& config_path, const std::string& vae_path,
             const std::string& tokenizer_path, const std::string& out, const std::string& init,
             const std::string& dtype, const train::TrainOptions& o) {
  auto config = train::read_model_config(config_path);
  auto tokenizer = SentencePieceTokenizer::from_file(tokenizer_path);
  config.text.vocab_size = static_cast<int>(tokenizer->vocab_size());
  config.native_size = c.image_size;
  config.prediction = "eps";
  config.family = "sd1";
  const auto vae_file = inspect_vae(vae_path);
  config.vae = [&] {
    auto v = vae_file.config;
    v.scale_factor = config.vae.scale_factor;
    v.norm_groups = config.vae.norm_groups;
    return v;
  }();
  AutoencoderKL vae(config.vae);
  train::load_weights(*vae, vae_path, vae_file.keys);
  torch::manual_seed(o.seed);
  ClipTextModel text(config.text);
  UNetModel unet(config.unet);
  train::init_for_training(*text);
  train::init_for_training(*unet);
  // A continued run keeps the latent scale its starting point was trained with (the config
  // JSON beside it) and records that run's settings under "training"."previous".
  train::TrainOptions opts = o;
  nlohmann::json previous;
  if (!init.empty()) {
    auto init_json = fs::path(init).replace_extension(".json");
    if (!fs::exists(init_json))
      throw std::runtime_error(init + ": its config " + init_json.string() +
                               " (with vae.scale_factor) is missing; a continued run needs the "
                               "latent scale the model was trained with");
    const auto j = nlohmann::json::parse(std::ifstream(init_json));
    train::load_text_encoder(text, init);
    train::load_weights(*unet, init, model_family("sd1").unet_keys);
    opts.scale_factor = j.at("vae").at("scale_factor").get<double>();
    if (j.contains("training")) previous = j["training"];
    std::cerr << "sdgen-train unet: continuing " << init << " (latent scale factor "
              << fmt(opts.scale_factor, 5) << ")\n";
  }
  std::cerr << "sdgen-train unet: text encoder " << train::count_parameters(*text)
            << " parameters, UNet " << train::count_parameters(*unet) << ", VAE "
            << train::count_parameters(*vae) << "\n";
  // The checkpoint, its config JSON and the tokenizer it names, for the averaged weights now in
  // the modules after `steps` steps; written at the end and every --save-every steps.
  const fs::path out_path(out);
  auto write_model = [&](int steps, double scale_factor, double final_loss, double seconds) {
    config.vae.scale_factor = scale_factor;
    make_parent(out);
    train::save_checkpoint(out, &text, &unet, &vae, save_dtype(dtype),
                           {{"sdgen_train", "unet"}, {"steps", std::to_string(steps)}});
    const fs::path tok_dest = out_path.parent_path() / "tokenizer.model";
    if (!fs::exists(tok_dest) || !fs::equivalent(tok_dest, tokenizer_path))
      fs::copy_file(tokenizer_path, tok_dest, fs::copy_options::overwrite_existing);
    nlohmann::json extra = {{"tokenizer", "tokenizer.model"},
                            {"training",
                             {{"steps", steps},
                              {"batch", o.batch},
                              {"lr", o.lr},
                              {"final_lr", std::isnan(o.final_lr) ? o.lr : o.final_lr},
                              {"warmup", o.warmup},
                              {"seed", o.seed},
                              {"pool", o.pool},
                              {"image_size", c.image_size},
                              {"two_objects", c.two_objects},
                              {"caption_dropout", o.caption_dropout},
                              {"min_snr_gamma", o.min_snr_gamma},
                              {"partial_captions", o.partial_captions},
                              {"ema", o.ema},
                              {"final_loss", final_loss},
                              {"seconds", seconds}}}};
    if (!init.empty()) extra["training"]["init"] = init;
    if (!previous.is_null()) extra["training"]["previous"] = previous;
    auto json_path = out_path;
    json_path.replace_extension(".json");
    train::save_config(json_path.string(), config, extra);
    return json_path.string();
  };
  std::vector<double> losses;
  const auto t0 = std::chrono::steady_clock::now();
  auto log = logger("unet");
  auto on_log = [&](int step, double loss, double seconds) {
    losses.push_back(loss);
    log(step, loss, seconds);
  };
  auto on_checkpoint = [&](int step, double scale_factor) {
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    write_model(step, scale_factor, losses.empty() ? 0.0 : losses.back(), seconds);
    std::cerr << "sdgen-train unet: checkpoint at step " << step << " in " << out << "\n";
  };
  const auto r =
      train::train_unet(text, unet, vae, *tokenizer, c.data(), opts, on_log, on_checkpoint);
  const auto json_path =
      write_model(o.steps, r.scale_factor, r.losses.empty() ? 0.0 : r.losses.back(), r.seconds);
  std::cerr << "sdgen-train unet: wrote " << out << " and " << json_path << " after "
            << fmt(r.seconds, 1) << " s (latent scale factor " << fmt(r.scale_factor, 5) << ")\n";
  if (r.cut_captions > 0)
    std::cerr << "sdgen-train unet: warning: " << r.cut_captions << " of " << o.pool
              << " training captions were longer than the text encoder's "
              << config.text.max_positions - 2
              << " pieces and were cut (their ends never trained); raise "
                 "text_encoder.max_positions in "
              << config_path << "\n";
  return 0;
}

// Scores a model on held-out captions; writes report.json, items.tsv and grid.png to `out`.
int cmd_eval(const Common& c, const std::string& model, std::string tokenizer_path,
             const std::string& out, int grid_count, int columns, const train::EvalOptions& o,
             torch::Device device) {
  LoadOptions lo;
  lo.model_path = model;
  lo.device = device;
  auto loaded = load_model(lo);
  if (tokenizer_path.empty()) {
    const auto dir = fs::path(model).parent_path();
    tokenizer_path = (dir.empty() ? fs::path("tokenizer.model") : dir / "tokenizer.model").string();
  }
  auto d = c.data();
  d.image_size = loaded.config.native_size;
  Pipeline pipeline(std::move(loaded), load_tokenizer(tokenizer_path), device, torch::kFloat);
  fs::create_directories(out);
  std::ofstream items(out + "/items.tsv");
  items << "index\tseed\tbackground\tobject\tfound\tcolour\tposition\tshape\tdetected\tprompt\n";
  int done = 0;
  auto progress = [&](const train::EvalItem& item) {
    for (size_t k = 0; k < item.scene.objects.size(); ++k) {
      const auto& s = item.score.objects[k];
      const auto& want = item.scene.objects[k];
      std::string detected = "-";
      if (s.found)
        detected =
            std::string(data::object_colours()[static_cast<size_t>(s.detected.colour)].name) + " " +
            data::shape_name(s.detected.shape) + " @ " + data::position_name(s.detected.position) +
            " (iou " + fmt(s.detected.shape_iou, 2) + ")";
      items << item.index << "\t" << item.seed << "\t" << item.score.background_ok << "\t"
            << data::object_colours()[static_cast<size_t>(want.colour)].name << " "
            << data::shape_name(want.shape) << " @ " << data::position_name(want.position) << "\t"
            << s.found << "\t" << s.colour << "\t" << s.position << "\t" << s.shape << "\t"
            << detected << "\t" << item.prompt << "\n";
    }
    if (++done % 20 == 0) std::cerr << "sdgen-train eval: " << done << "/" << o.count << "\n";
  };
  const auto report = train::evaluate(pipeline, d, o, progress);
  std::ofstream(out + "/report.json") << report.to_json(o).dump(2) << "\n";
  int w = 0, h = 0;
  const auto grid = train::image_grid(report.items, grid_count, columns, d.image_size, &w, &h);
  if (w > 0) write_png(out + "/grid.png", grid.data(), w, h);
  std::cout << report.totals.summary() << " (" << fmt(report.seconds, 1) << " s)\n";
  std::cerr << "sdgen-train eval: wrote report.json, items.tsv and grid.png to " << out << "\n";
  return 0;
}

// Scores a VAE's reconstructions of the split's scenes; report.json and grid.png in `out`.
int cmd_eval_vae(const Common& c, const std::string& vae_path, const std::string& config_path,
                 const std::string& out, int grid_count, int columns, const train::EvalOptions& o) {
  const auto file = inspect_vae(vae_path);
  auto config = file.config;
  // what the shapes do not show (GroupNorm groups) from the config it was trained with
  config.norm_groups = train::read_model_config(config_path).vae.norm_groups;
  AutoencoderKL vae(config);
  train::load_weights(*vae, vae_path, file.keys);
  vae->eval();
  const auto report = train::evaluate_vae(vae, c.data(), o.split, o.first, o.count);
  fs::create_directories(out);
  std::ofstream(out + "/report.json") << report.to_json(o).dump(2) << "\n";
  int w = 0, h = 0;
  const auto grid = train::image_grid(report.items, grid_count, columns, c.image_size, &w, &h);
  if (w > 0) write_png(out + "/grid.png", grid.data(), w, h);
  std::cout << "VAE reconstructions: " << report.totals.summary() << "\n";
  return 0;
}

void add_train_options(CLI::App* app, train::TrainOptions& o) {
  app->add_option("--steps", o.steps, "optimiser steps")->capture_default_str();
  app->add_option("--batch", o.batch, "images per step")->capture_default_str();
  app->add_option("--lr", o.lr, "AdamW learning rate")->capture_default_str();
  app->add_option("--weight-decay", o.weight_decay, "AdamW weight decay")->capture_default_str();
  app->add_option("--warmup", o.warmup, "linear warm-up steps")->capture_default_str();
  app->add_option("--final-lr", o.final_lr,
                  "after warm-up the rate falls along a half cosine to this (default: --lr, "
                  "constant)");
  app->add_option("--grad-clip", o.grad_clip, "max gradient norm (0: off)")->capture_default_str();
  app->add_option("--pool", o.pool, "training images (samples 0..N-1 of the train split)")
      ->capture_default_str();
  app->add_option("--log-every", o.log_every, "log the mean loss every N steps")
      ->capture_default_str();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sdgen-train: data set, tokenizer, VAE and UNet of sdgen's own small model"};
  app.require_subcommand(1);
  Common c;
  app.add_option("--seed", c.seed, "seed of the data set and the training")->capture_default_str();
  app.add_option("--image-size", c.image_size, "image side in pixels")->capture_default_str();
  app.add_option("--threads", c.threads,
                 "CPU threads (0: OMP_NUM_THREADS when set, else every core)");
  std::string device = "cpu";
  app.add_option("--device", device, "cpu | cuda | cuda:N")->capture_default_str();
  app.add_option("--two-objects", c.two_objects, "fraction of scenes with two objects")
      ->capture_default_str();

  auto* data_cmd = app.add_subcommand("data", "write sample images, captions.txt and grid.png");
  std::string data_out = "train-data", split = "train";
  int data_count = 64, columns = 8;
  data_cmd->add_option("--out", data_out, "folder")->capture_default_str();
  data_cmd->add_option("--count", data_count, "images")->capture_default_str();
  data_cmd->add_option("--columns", columns, "grid columns")->capture_default_str();
  data_cmd->add_option("--split", split, "train | heldout")
      ->check(CLI::IsMember({"train", "heldout"}))
      ->capture_default_str();

  auto* tok_cmd = app.add_subcommand("tokenizer", "train the SentencePiece tokenizer");
  std::string tok_prefix = "models/default/tokenizer", tok_extra;
  int vocab = 256, tok_count = 20000;
  tok_cmd->add_option("--out", tok_prefix, "model prefix: writes PREFIX.model and PREFIX.vocab")
      ->capture_default_str();
  tok_cmd->add_option("--vocab-size", vocab, "pieces")->capture_default_str();
  tok_cmd->add_option("--count", tok_count, "captions in the corpus")->capture_default_str();
  tok_cmd->add_option("--spm-args", tok_extra, "more SentencePiece trainer flags");

  std::string config_path, out, init, dtype = "fp32", vae_path, tokenizer_path;
  train::TrainOptions vae_o, unet_o;
  vae_o.lr = 1e-3;
  unet_o.lr = 5e-4;
  auto* vae_cmd = app.add_subcommand("vae", "train the VAE");
  vae_cmd->add_option("--config", config_path, "model config JSON (its vae part)")->required();
  vae_cmd->add_option("--out", out, "VAE checkpoint (.safetensors)")->required();
  vae_cmd->add_option("--init", init, "start from these VAE weights");
  vae_cmd->add_option("--dtype", dtype, "fp32 | fp16 weights in the file")
      ->check(CLI::IsMember({"fp32", "fp16"}));
  vae_cmd->add_option("--kl-weight", vae_o.kl_weight, "weight of the mean KL")
      ->capture_default_str();
  vae_cmd
      ->add_option("--foreground-weight", vae_o.foreground_weight,
                   "extra loss weight of the pixels off the background")
      ->capture_default_str();
  add_train_options(vae_cmd, vae_o);

  auto* unet_cmd = app.add_subcommand("unet", "train text encoder + UNet on VAE latents");
  unet_cmd->add_option("--config", config_path, "model config JSON")->required();
  unet_cmd->add_option("--vae", vae_path, "trained VAE (.safetensors)")->required();
  unet_cmd->add_option("--tokenizer", tokenizer_path, "SentencePiece model")->required();
  unet_cmd->add_option("--out", out, "model checkpoint (.safetensors; <stem>.json beside it)")
      ->required();
  unet_cmd->add_option("--init", init, "start from this model checkpoint");
  unet_cmd->add_option("--dtype", dtype, "fp32 | fp16 weights in the file")
      ->check(CLI::IsMember({"fp32", "fp16"}));
  unet_cmd
      ->add_option("--caption-dropout", unet_o.caption_dropout,
                   "fraction of empty captions (classifier-free guidance)")
      ->capture_default_str();
  unet_cmd
      ->add_option("--partial-captions", unet_o.partial_captions,
                   "fraction of one-object captions without the colour, the shape or both")
      ->capture_default_str();
  unet_cmd
      ->add_option("--min-snr", unet_o.min_snr_gamma,
                   "min-SNR-gamma loss weighting (Hang et al. 2023; 5 is theirs; 0: plain MSE)")
      ->capture_default_str();
  unet_cmd->add_option("--ema", unet_o.ema, "EMA decay of the saved weights (0: off)")
      ->capture_default_str();
  unet_cmd
      ->add_option(
          "--save-every", unet_o.save_every,
          "also write the checkpoint (averaged weights) every N steps (0: only at the end)")
      ->capture_default_str();
  add_train_options(unet_cmd, unet_o);

  auto* eval_cmd = app.add_subcommand("eval", "score a model's images of held-out captions");
  train::EvalOptions eval_o;
  std::string eval_model, eval_tokenizer, eval_out = "build-train/eval", eval_split = "heldout";
  int grid_count = 40, grid_columns = 10;
  std::string eval_vae;
  eval_cmd->add_option("--model", eval_model, "model checkpoint (.safetensors)");
  eval_cmd->add_option("--vae", eval_vae,
                       "score this VAE's reconstructions of the scenes instead (no prompts)");
  eval_cmd->add_option("--config", config_path, "model config JSON (with --vae: its vae part)")
      ->default_str("scripts/default-model.json");
  eval_cmd->add_option("--tokenizer", eval_tokenizer, "default: tokenizer.model beside the model");
  eval_cmd->add_option("--out", eval_out, "folder for report.json, items.tsv, grid.png")
      ->capture_default_str();
  eval_cmd->add_option("--count", eval_o.count, "prompts")->capture_default_str();
  eval_cmd->add_option("--first", eval_o.first, "first sample index")->capture_default_str();
  eval_cmd->add_option("--split", eval_split, "heldout | train")
      ->check(CLI::IsMember({"train", "heldout"}))
      ->capture_default_str();
  eval_cmd->add_option("--steps", eval_o.steps, "sampling steps")->capture_default_str();
  eval_cmd->add_option("--cfg-scale", eval_o.cfg_scale, "guidance scale")->capture_default_str();
  eval_cmd->add_option("--sampler", eval_o.sampler, "sampler")->capture_default_str();
  eval_cmd->add_option("--scheduler", eval_o.scheduler, "schedule")->capture_default_str();
  eval_cmd->add_option("--image-seed", eval_o.seed, "image i gets seed + i")->capture_default_str();
  eval_cmd->add_option("--grid", grid_count, "images in grid.png")->capture_default_str();
  eval_cmd->add_option("--columns", grid_columns, "grid columns")->capture_default_str();

  CLI11_PARSE(app, argc, argv);
  try {
    configure_cpu_threads(c.threads);
    vae_o.seed = unet_o.seed = c.seed;
    vae_o.device = unet_o.device = torch::Device(device);
    if (*data_cmd) return cmd_data(c, data_out, data_count, columns, split);
    if (*tok_cmd) return cmd_tokenizer(c, tok_prefix, vocab, tok_count, tok_extra);
    if (*vae_cmd) return cmd_vae(c, config_path, out, init, dtype, vae_o);
    if (*unet_cmd)
      return cmd_unet(c, config_path, vae_path, tokenizer_path, out, init, dtype, unet_o);
    if (*eval_cmd) {
      eval_o.split = eval_split == "train" ? data::Split::kTrain : data::Split::kHeldOut;
      if (config_path.empty()) config_path = "scripts/default-model.json";
      if (eval_model.empty() == eval_vae.empty())
        throw std::invalid_argument("eval: give --model (images from prompts) or --vae");
      if (!eval_vae.empty())
        return cmd_eval_vae(c, eval_vae, config_path, eval_out, grid_count, grid_columns, eval_o);
      return cmd_eval(c, eval_model, eval_tokenizer, eval_out, grid_count, grid_columns, eval_o,
                      torch::Device(device));
    }
  } catch (const c10::Error& e) {
    std::cerr << "sdgen-train: error: " << e.what_without_backtrace() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "sdgen-train: error: " << e.what() << "\n";
    return 1;
  }
  return 2;
}
