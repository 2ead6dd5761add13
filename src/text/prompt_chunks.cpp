// Prompt chunking. The reference is AUTOMATIC1111/stable-diffusion-webui
// modules/sd_hijack_clip.py (tokenize_line, next_chunk, process_tokens' padding for SD2).
#include "sdgen/text/prompt_chunks.h"

#include <algorithm>
#include <set>
#include <stdexcept>
#include <utility>

namespace sdgen {
namespace {

// BOS + tokens + EOS, the gap up to `length` filled with EOS, all padding weighted 1.0; then,
// when the model pads with another id, everything after the first EOS becomes that id (as
// A1111's process_tokens does for SD2).
PromptChunk frame_chunk(const std::vector<int64_t>& tokens, const std::vector<double>& weights,
                        const ChunkOptions& o) {
  PromptChunk c;
  c.prompt_tokens = tokens.size();
  c.ids.reserve(o.length + 2);
  c.weights.reserve(o.length + 2);
  c.ids.push_back(o.bos);
  c.weights.push_back(1.0);
  c.ids.insert(c.ids.end(), tokens.begin(), tokens.end());
  c.weights.insert(c.weights.end(), weights.begin(), weights.end());
  c.ids.resize(o.length + 2, o.eos);
  c.weights.resize(o.length + 2, 1.0);
  if (o.pad != o.eos) {
    auto first_eos = std::find(c.ids.begin(), c.ids.end(), o.eos);
    if (first_eos != c.ids.end()) std::fill(first_eos + 1, c.ids.end(), o.pad);
  }
  return c;
}

}  // namespace

std::vector<PromptChunk> chunk_tokens(const std::vector<TokenRun>& runs, const ChunkOptions& o,
                                      const EmbeddingMatcher* embeddings) {
  if (o.length == 0) throw std::invalid_argument("chunk length must be at least 1");
  std::vector<PromptChunk> chunks;
  std::vector<int64_t> tokens;
  std::vector<double> weights;
  std::vector<EmbeddingFix> fixes;
  tokens.reserve(o.length);
  weights.reserve(o.length);
  // Index in `tokens` of the current chunk's last comma, or -1.
  std::ptrdiff_t last_comma = -1;

  auto close_chunk = [&]() {
    chunks.push_back(frame_chunk(tokens, weights, o));
    chunks.back().fixes = std::move(fixes);
    fixes.clear();
    tokens.clear();
    weights.clear();
    last_comma = -1;
  };

  for (const auto& run : runs) {
    if (run.is_break) {
      close_chunk();
      continue;
    }
    size_t position = 0;
    while (position < run.ids.size()) {
      const int64_t token = run.ids[position];
      const size_t size = tokens.size();
      if (token == o.comma) {
        last_comma = static_cast<std::ptrdiff_t>(size);
      } else if (o.comma_backoff != 0 && size == o.length && last_comma != -1 &&
                 size - static_cast<size_t>(last_comma) <= o.comma_backoff) {
        // Full, and a comma close to the end: what follows that comma moves on (an embedding's
        // fix stays behind, as in A1111, which moves only tokens and multipliers).
        const size_t split = static_cast<size_t>(last_comma) + 1;
        std::vector<int64_t> moved_tokens(tokens.begin() + split, tokens.end());
        std::vector<double> moved_weights(weights.begin() + split, weights.end());
        tokens.resize(split);
        weights.resize(split);
        close_chunk();
        tokens = std::move(moved_tokens);
        weights = std::move(moved_weights);
      }
      if (tokens.size() == o.length) close_chunk();
      const auto match = embeddings ? embeddings->at(run.ids, position) : EmbeddingMatcher::Match{};
      if (!match.embedding) {
        tokens.push_back(token);
        weights.push_back(run.weight);
        ++position;
        continue;
      }
      // n slots for the embedding's n vectors, in a fresh chunk when they do not fit
      const auto n = static_cast<size_t>(match.embedding->slots());
      if (n > o.length)
        throw std::invalid_argument("the embedding " + match.embedding->name + " has " +
                                    std::to_string(n) + " vectors; a prompt chunk holds " +
                                    std::to_string(o.length) + " tokens");
      if (tokens.size() + n > o.length) close_chunk();
      fixes.push_back({tokens.size(), match.embedding});
      tokens.insert(tokens.end(), n, 0);
      weights.insert(weights.end(), n, run.weight);
      position += match.tokens;
    }
  }
  if (!tokens.empty() || chunks.empty()) close_chunk();
  return chunks;
}

int64_t comma_token(const Tokenizer& tokenizer) {
  const auto ids = tokenizer.encode(",");
  return ids.size() == 1 ? ids[0] : -1;
}

std::vector<PromptChunk> tokenize_prompt(const std::string& prompt, const Tokenizer& tokenizer,
                                         Emphasis mode, ChunkOptions o,
                                         const EmbeddingMatcher* embeddings) {
  o.bos = tokenizer.bos_id();
  o.eos = tokenizer.eos_id();
  o.comma = comma_token(tokenizer);
  const auto parsed = parse_prompt(prompt, mode);
  std::vector<TokenRun> runs;
  runs.reserve(parsed.size());
  for (const auto& p : parsed) {
    TokenRun r;
    r.weight = p.weight;
    r.is_break = is_break(p);
    if (!r.is_break) r.ids = tokenizer.encode(p.text);
    runs.push_back(std::move(r));
  }
  return chunk_tokens(runs, o, embeddings && !embeddings->empty() ? embeddings : nullptr);
}

EmbeddingHashes used_embeddings(const std::vector<PromptChunk>& chunks) {
  // A1111's used_embeddings: a dict filled chunk by chunk, keyed by the embedding's name
  EmbeddingHashes used;
  std::set<std::string> seen;
  for (const auto& chunk : chunks)
    for (const auto& fix : chunk.fixes)
      if (seen.insert(fix.embedding->name).second)
        used.emplace_back(ti_hash_name(fix.embedding->name), fix.embedding->hash);
  return used;
}

bool has_emphasis_brackets(const std::string& prompt) {
  return prompt.find_first_of("([") != std::string::npos;
}

}  // namespace sdgen
