// The run's textual-inversion embeddings: the folders searched, the files read once and checked
// against the model's text encoders before any weight loads.
#include <cstdlib>
#include <filesystem>

#include "cli.h"
#include "sdgen/text/embeddings.h"

namespace sdgen::cli {

std::shared_ptr<const EmbeddingDatabase> load_run_embeddings(
    const CliOptions& o, const ModelInfo& info, const Tokenizer& tokenizer,
    const std::function<void(const std::string&)>& log) {
  namespace fs = std::filesystem;
  std::error_code ec;
  // The folders given must be there; the default ones are searched when they are.
  std::vector<std::string> dirs = o.embedding_dirs;
  for (const auto& dir : dirs)
    if (!fs::is_directory(dir, ec))
      throw UsageError("--embedding-dir " + dir + ": " +
                       (fs::exists(dir, ec) ? "not a folder" : "no such folder"));
  const fs::path beside = fs::path(o.model).parent_path() / "embeddings";
  if (!o.model.empty() && fs::is_directory(beside, ec)) dirs.push_back(beside.string());
  if (const char* env = std::getenv("SDGEN_EMBEDDING_DIR"); env && *env) {
    if (fs::is_directory(env, ec))
      dirs.push_back(env);
    else
      log(std::string("warning: $SDGEN_EMBEDDING_DIR ") + env + " is not a folder; not searched");
  }
  if (dirs.empty()) return nullptr;

  // What the text encoders take: SDXL embeddings carry a vector for each of its two encoders.
  EmbeddingTarget target;
  const auto& c = info.config;
  if (info.family && info.family->conditioning == ModelFamily::Conditioning::kSdxl)
    target.widths = {{kSdxlEmbeddingKeys[0], c.text.width},
                     {kSdxlEmbeddingKeys[1], c.text_2.width}};
  else
    target.widths = {{"", c.text.width}};
  target.max_slots = c.text.max_positions - 2;  // one chunk: BOS + 75 + EOS
  auto warn = [&](const std::string& m) { log("warning: " + m); };
  EmbeddingDatabase db;
  try {
    db = EmbeddingDatabase::load(dirs, target, warn);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  static_cast<void>(EmbeddingMatcher(db, tokenizer, warn));  // warns once of names without tokens
  if (db.empty()) return nullptr;
  std::string names;
  for (const auto& e : db.all()) names += (names.empty() ? "" : ", ") + e->name;
  log("textual-inversion embeddings (" + std::to_string(db.size()) + "): " + names);
  return std::make_shared<const EmbeddingDatabase>(std::move(db));
}

}  // namespace sdgen::cli
