// What sdgen finds by itself: its shipped data folder, the default model and tokenizer.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "cli.h"

namespace sdgen::cli {
namespace {

namespace fs = std::filesystem;

bool present(const fs::path& p) {
  std::error_code ec;
  return fs::exists(p, ec);
}

// The shipped data folder (models/): $SDGEN_DATA_DIR, beside the executable, or the source tree.
fs::path data_dir() {
  if (const char* d = std::getenv("SDGEN_DATA_DIR"); d && *d) return d;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec)
    for (const char* rel : {"../share/sdgen/models", "../models", "models"})
      if (present(exe.parent_path() / rel)) return exe.parent_path() / rel;
  return fs::path(SDGEN_SOURCE_DIR) / "models";
}

}  // namespace

std::string default_tokenizer(const std::string& model, const std::string& config) {
  const fs::path dir =
      fs::path(model).parent_path().empty() ? fs::path(".") : fs::path(model).parent_path();
  // the tokenizer the model's config JSON names (sdgen-train writes "tokenizer.model")
  const std::string json_path = model_config_path(model, config);
  if (!json_path.empty() && present(json_path)) {
    try {
      std::ifstream in(json_path);
      const auto j = nlohmann::json::parse(in);
      if (auto t = j.find("tokenizer"); t != j.end() && t->is_string() && !t->empty()) {
        const fs::path name = fs::path(json_path).parent_path() / t->get<std::string>();
        if (present(name)) return name.string();
      }
    } catch (const std::exception&) {
      // an unreadable config is reported when the model loads
    }
  }
  // a diffusers pipeline folder's own tokenizer/ (vocab.json, merges.txt), named even when it is
  // missing so that the error says what the folder lacks
  std::error_code ec;
  if (fs::is_directory(model, ec) && present(fs::path(model) / "model_index.json"))
    return (fs::path(model) / "tokenizer").string();
  // a SentencePiece model or a diffusers-style tokenizer/ beside the checkpoint, else the CLIP
  // vocabulary sdgen ships
  if (present(dir / "tokenizer.model")) return (dir / "tokenizer.model").string();
  if (present(dir / "tokenizer" / "vocab.json")) return (dir / "tokenizer").string();
  return (data_dir() / "clip" / "bpe_simple_vocab_16e6.txt.gz").string();
}

std::string default_model() {
  const fs::path path = data_dir() / "default" / "model.safetensors";
  return present(path) ? path.string() : "";
}

}  // namespace sdgen::cli
