// Textual-inversion embeddings as AUTOMATIC1111's webui reads and matches them
// (modules/textual_inversion/textual_inversion.py: EmbeddingDatabase.load_from_file,
// register_embedding_by_name, find_embedding_at_position): files in folders, the name the file
// stem, the vectors float32; a prompt's tokens are matched against each name's tokens, longest
// name first. Torch-free: the text encoder takes the vectors from here (conditioner.h).
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "sdgen/text/tokenizer.h"

namespace sdgen {

// One text encoder's vectors of an embedding: [rows, width] float32, row-major.
struct EmbeddingVectors {
  int64_t rows = 0, width = 0;
  std::vector<float> values;
};

struct Embedding {
  std::string name;  // the file stem: what a prompt writes
  std::string path;
  std::string hash;  // A1111's short hash: the first 12 hex digits of the whole file's sha256
  // The vectors by text encoder: "" for SD 1.x / 2.x files (one tensor), "clip_l" and "clip_g"
  // for SDXL files (kSdxlEmbeddingKeys).
  std::map<std::string, EmbeddingVectors> vectors;
  // The token slots it takes in a prompt (A1111's `vectors`: the rows; clip_g's for SDXL).
  int64_t slots() const;
};

// The keys of an SDXL embedding's two tensors (CLIP ViT-L and OpenCLIP bigG).
inline const char* const kSdxlEmbeddingKeys[] = {"clip_l", "clip_g"};

// What the model's text encoders take: the width per key ({{"", 768}} for SD 1.x,
// {{"clip_l", 768}, {"clip_g", 1280}} for SDXL) and the most vectors one 75-token chunk holds.
struct EmbeddingTarget {
  std::map<std::string, int64_t> widths;
  int64_t max_slots = 75;
};

// Reads an embedding file (.safetensors) without checking it against a model: one tensor
// (A1111's "diffuser concepts" branch: `emb_params` or any single name; [n, width] or [width])
// or an SDXL pair `clip_l` + `clip_g`; F32, F16 and BF16 widened to float32 exactly (F64
// rounded). Name = the file stem, hash = the short sha256. Throws std::runtime_error (including
// SafetensorsError) saying why the file is not an embedding.
Embedding read_embedding_file(const std::string& path);

// Why `e` does not fit `target` ("" when it does): its widths against the text encoders'.
std::string embedding_mismatch(const Embedding& e, const EmbeddingTarget& target);

// The embeddings of a run, by name.
class EmbeddingDatabase {
 public:
  using Warn = std::function<void(const std::string&)>;
  // The .safetensors files in `dirs` and their subfolders (each folder's files in path order;
  // empty files skipped, as A1111 does; other extensions ignored). A file that cannot be read,
  // does not fit `target` (a warning naming it and both widths) or whose name an earlier file
  // took (the first folder given wins, as in a search path) is skipped with a warning; legacy
  // pickled .pt / .bin embeddings are not read (a warning says how to convert them). Throws
  // std::invalid_argument naming a folder that does not exist or cannot be listed.
  static EmbeddingDatabase load(const std::vector<std::string>& dirs, const EmbeddingTarget& target,
                                const Warn& warn);

  // Adds `e` (tests, programs); false, and nothing added, when its name is taken.
  bool add(Embedding e);
  const std::vector<std::shared_ptr<const Embedding>>& all() const { return all_; }
  const Embedding* find(const std::string& name) const;
  bool empty() const { return all_.empty(); }
  size_t size() const { return all_.size(); }

 private:
  std::vector<std::shared_ptr<const Embedding>> all_;  // in load order
  std::map<std::string, size_t> by_name_;
};

// A1111's ids_lookup: each name tokenised without BOS / EOS, grouped by its first token, the
// longest token sequence first (ties in load order, as Python's stable sort leaves them).
class EmbeddingMatcher {
 public:
  EmbeddingMatcher() = default;
  // Names that tokenise to nothing are left out (with a warning through `warn`).
  EmbeddingMatcher(const EmbeddingDatabase& db, const Tokenizer& tokenizer,
                   const EmbeddingDatabase::Warn& warn = {});
  struct Match {
    std::shared_ptr<const Embedding> embedding;  // null: no embedding starts here
    size_t tokens = 0;                           // prompt tokens the name covers
  };
  // find_embedding_at_position: the embedding whose name's tokens start at tokens[position].
  Match at(const std::vector<int64_t>& tokens, size_t position) const;
  bool empty() const { return lookup_.empty(); }

 private:
  using Entry = std::pair<std::vector<int64_t>, std::shared_ptr<const Embedding>>;
  std::map<int64_t, std::vector<Entry>> lookup_;
};

// (name, short hash) pairs, as Image::embeddings and the infotext's "TI hashes" list them.
using EmbeddingHashes = std::vector<std::pair<std::string, std::string>>;

// The name as A1111 writes it in "TI hashes": without ':' and ','.
std::string ti_hash_name(const std::string& name);

// A1111's "TI hashes" of one image: each encoding call writes its own list and puts it in front
// of what is there, and the negative prompt is encoded first; so the prompt's list, then the
// negative prompt's (a name used in both is listed twice, as A1111 does).
EmbeddingHashes ti_hashes(const EmbeddingHashes& prompt, const EmbeddingHashes& negative);

}  // namespace sdgen
