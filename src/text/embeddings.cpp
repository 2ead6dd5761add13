// Textual-inversion embeddings. The reference is AUTOMATIC1111/stable-diffusion-webui
// modules/textual_inversion/textual_inversion.py (load_from_file, load_from_dir,
// register_embedding_by_name, find_embedding_at_position) and sd_hijack_clip.py (the hashes).
#include "sdgen/text/embeddings.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <system_error>

#include "sdgen/io/safetensors.h"
#include "sdgen/util/sha256.h"

namespace sdgen {
namespace {

namespace fs = std::filesystem;

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// One tensor as [rows, width] float32 (A1111: emb.to(float32); a 1-D tensor is one vector).
EmbeddingVectors read_vectors(const SafetensorsFile& file, const TensorInfo& t) {
  if (t.shape.size() != 1 && t.shape.size() != 2)
    throw std::runtime_error("the tensor " + t.name + " has shape " + shape_text(t.shape) +
                             "; an embedding is [vectors, width]");
  EmbeddingVectors v;
  v.rows = t.shape.size() == 2 ? t.shape[0] : 1;
  v.width = t.shape.back();
  if (v.rows < 1 || v.width < 1)
    throw std::runtime_error("the tensor " + t.name + " has shape " + shape_text(t.shape) +
                             " and holds no vector");
  const uint8_t* data = file.data(t);
  const size_t n = static_cast<size_t>(t.numel());
  v.values.resize(n);
  // Little-endian bytes read one by one: the mapping need not be aligned for the type.
  auto u16 = [&](size_t i) {
    return static_cast<uint16_t>(data[2 * i] | static_cast<uint16_t>(data[2 * i + 1]) << 8);
  };
  auto u32 = [&](size_t i) {
    uint32_t b = 0;
    for (int k = 3; k >= 0; --k) b = b << 8 | data[4 * i + static_cast<size_t>(k)];
    return b;
  };
  for (size_t i = 0; i < n; ++i) {
    switch (t.dtype) {
      case DType::F32: {
        const uint32_t b = u32(i);
        std::memcpy(&v.values[i], &b, 4);
        break;
      }
      case DType::F16:
        v.values[i] = half_to_float(u16(i));
        break;
      case DType::BF16:
        v.values[i] = bf16_to_float(u16(i));
        break;
      case DType::F64: {
        uint64_t b = 0;
        for (int k = 7; k >= 0; --k) b = b << 8 | data[8 * i + static_cast<size_t>(k)];
        double d;
        std::memcpy(&d, &b, 8);
        v.values[i] = static_cast<float>(d);  // torch's .to(float32): round to nearest
        break;
      }
      default:
        throw std::runtime_error("the tensor " + t.name + " is " + dtype_name(t.dtype) +
                                 "; embeddings are F32, F16 or BF16");
    }
  }
  return v;
}

}  // namespace

int64_t Embedding::slots() const {
  if (auto it = vectors.find(""); it != vectors.end()) return it->second.rows;
  if (auto it = vectors.find("clip_g"); it != vectors.end()) return it->second.rows;
  return 0;
}

Embedding read_embedding_file(const std::string& path) {
  const auto file = SafetensorsFile::open(path);
  Embedding e;
  e.name = fs::path(path).stem().string();
  e.path = path;
  const auto& tensors = file->tensors();
  const TensorInfo* l = file->find("clip_l");
  const TensorInfo* g = file->find("clip_g");
  if (l && g) {
    // A1111's SDXL branch: every tensor kept by name, the slots from clip_g
    if (tensors.size() != 2)
      throw std::runtime_error("an SDXL embedding holds clip_l and clip_g only, this file " +
                               std::to_string(tensors.size()) + " tensors");
    for (const char* key : kSdxlEmbeddingKeys)
      e.vectors[key] = read_vectors(*file, *file->find(key));
    if (e.vectors["clip_l"].rows != e.vectors["clip_g"].rows)
      throw std::runtime_error("its clip_l has " + std::to_string(e.vectors["clip_l"].rows) +
                               " vectors and its clip_g " +
                               std::to_string(e.vectors["clip_g"].rows));
  } else if (tensors.size() == 1) {
    e.vectors[""] = read_vectors(*file, tensors.front());  // "diffuser concepts": the one tensor
  } else {
    throw std::runtime_error(
        tensors.empty() ? std::string("it holds no tensor")
                        : "it holds " + std::to_string(tensors.size()) +
                              " tensors; an embedding file holds one (emb_params) or SDXL's "
                              "clip_l and clip_g");
  }
  e.hash = sha256_file_hex(path).substr(0, 12);  // Embedding.set_hash(hashes.sha256(file))
  return e;
}

std::string embedding_mismatch(const Embedding& e, const EmbeddingTarget& target) {
  auto widths = [](const std::map<std::string, int64_t>& m) {
    std::string s;
    for (const auto& [key, width] : m)
      s += (s.empty() ? "" : " + ") + (key.empty() ? "" : key + " ") + std::to_string(width);
    return s;
  };
  std::map<std::string, int64_t> have;
  for (const auto& [key, v] : e.vectors) have[key] = v.width;
  if (have != target.widths) {
    const bool sdxl_file = have.count("clip_g") > 0, sdxl_model = target.widths.count("clip_g") > 0;
    std::string why =
        "width " + widths(have) + " does not match the text encoder's " + widths(target.widths);
    if (sdxl_file != sdxl_model)
      why += sdxl_file ? " (an SDXL embedding, for SDXL models)"
                       : " (an SD 1.x / 2.x embedding; SDXL takes clip_l and clip_g vectors)";
    return why;
  }
  if (e.slots() > target.max_slots)
    return "its " + std::to_string(e.slots()) + " vectors do not fit in a prompt chunk of " +
           std::to_string(target.max_slots) + " tokens";
  return "";
}

EmbeddingDatabase EmbeddingDatabase::load(const std::vector<std::string>& dirs,
                                          const EmbeddingTarget& target, const Warn& warn) {
  EmbeddingDatabase db;
  auto note = [&](const std::string& m) {
    if (warn) warn(m);
  };
  for (const auto& dir : dirs) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec))
      throw std::invalid_argument("embedding folder " + dir + ": " +
                                  (fs::exists(dir, ec) ? "not a folder" : "no such folder"));
    if (fs::directory_iterator probe(dir, ec); ec)
      throw std::invalid_argument("embedding folder " + dir + ": cannot be read (" + ec.message() +
                                  ")");
    // Subfolders too, through links, as A1111's os.walk(followlinks=True); a subfolder that
    // cannot be read is passed over, and links are followed only so deep (a cycle ends there).
    std::vector<fs::path> files;
    fs::recursive_directory_iterator it(dir,
                                        fs::directory_options::follow_directory_symlink |
                                            fs::directory_options::skip_permission_denied,
                                        ec);
    for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it.depth() >= 8) it.disable_recursion_pending();
      if (it->is_regular_file(ec)) files.push_back(it->path());
    }
    if (ec)
      throw std::invalid_argument("embedding folder " + dir + ": cannot be read (" + ec.message() +
                                  ")");
    std::sort(files.begin(), files.end());
    for (const auto& path : files) {
      const std::string ext = lower(path.extension().string());
      if (fs::file_size(path, ec) == 0 || ec) continue;  // A1111 skips empty files
      if (ext == ".pt" || ext == ".bin") {
        note("embedding " + path.string() +
             " not read: legacy pickled embeddings (.pt, .bin) can run code when loaded; convert "
             "it to .safetensors (python: t = torch.load(f, weights_only=True); "
             "safetensors.torch.save_file({'emb_params': next(iter(t['string_to_param'].values()))"
             "}, 'NAME.safetensors'))");
        continue;
      }
      if (ext != ".safetensors") continue;  // previews, notes: not embeddings
      Embedding e;
      try {
        e = read_embedding_file(path.string());
      } catch (const std::exception& err) {
        note("embedding " + path.string() + " skipped: " + err.what());
        continue;
      }
      if (const std::string why = embedding_mismatch(e, target); !why.empty()) {
        note("embedding " + path.string() + " skipped: " + why);
        continue;
      }
      if (const Embedding* first = db.find(e.name)) {
        note("embedding " + path.string() + " skipped: the name " + e.name + " is taken by " +
             first->path);
        continue;
      }
      db.add(std::move(e));
    }
  }
  return db;
}

bool EmbeddingDatabase::add(Embedding e) {
  if (by_name_.count(e.name)) return false;
  by_name_[e.name] = all_.size();
  all_.push_back(std::make_shared<const Embedding>(std::move(e)));
  return true;
}

const Embedding* EmbeddingDatabase::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : all_[it->second].get();
}

EmbeddingMatcher::EmbeddingMatcher(const EmbeddingDatabase& db, const Tokenizer& tokenizer,
                                   const EmbeddingDatabase::Warn& warn) {
  for (const auto& e : db.all()) {
    auto ids = tokenizer.encode(e->name);  // cond_stage_model.tokenize([name])[0]: no BOS / EOS
    if (ids.empty()) {
      if (warn) warn("embedding " + e->path + " skipped: its name " + e->name + " has no tokens");
      continue;
    }
    lookup_[ids.front()].emplace_back(std::move(ids), e);
  }
  // sorted(lookup, key=len(ids), reverse=True): stable, so equal lengths keep load order
  for (auto& [first, entries] : lookup_)
    std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
      return a.first.size() > b.first.size();
    });
}

EmbeddingMatcher::Match EmbeddingMatcher::at(const std::vector<int64_t>& tokens,
                                             size_t position) const {
  if (position >= tokens.size()) return {};
  auto it = lookup_.find(tokens[position]);
  if (it == lookup_.end()) return {};
  for (const auto& [ids, embedding] : it->second) {
    if (ids.size() > tokens.size() - position) continue;
    if (std::equal(ids.begin(), ids.end(), tokens.begin() + static_cast<std::ptrdiff_t>(position)))
      return {embedding, ids.size()};
  }
  return {};
}

std::string ti_hash_name(const std::string& name) {
  std::string out;
  for (char c : name)
    if (c != ':' && c != ',') out += c;
  return out;
}

EmbeddingHashes ti_hashes(const EmbeddingHashes& prompt, const EmbeddingHashes& negative) {
  EmbeddingHashes out = prompt;
  out.insert(out.end(), negative.begin(), negative.end());
  return out;
}

}  // namespace sdgen
