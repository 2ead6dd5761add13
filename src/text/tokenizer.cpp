#include "sdgen/text/tokenizer.h"

#include <algorithm>
#include <stdexcept>

#include "sdgen/text/clip_tokenizer.h"
#include "sdgen/text/sentencepiece_tokenizer.h"

namespace sdgen {

std::shared_ptr<const Tokenizer> load_tokenizer(const std::string& path) {
  const std::string ext = ".model";
  if (path.size() > ext.size() && path.compare(path.size() - ext.size(), ext.size(), ext) == 0)
    return SentencePieceTokenizer::from_file(path);
  return ClipTokenizer::from_path(path);
}

std::vector<int64_t> frame_ids(const std::vector<int64_t>& ids, int64_t bos, int64_t eos,
                               int64_t pad_id, size_t length) {
  if (length < 2) {
    throw std::invalid_argument("frame_ids: length " + std::to_string(length) +
                                " leaves no room for BOS and EOS");
  }
  std::vector<int64_t> out;
  out.reserve(length);
  out.push_back(bos);
  const size_t keep = std::min(ids.size(), length - 2);
  out.insert(out.end(), ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(keep));
  out.push_back(eos);
  out.resize(length, pad_id);
  return out;
}

}  // namespace sdgen
