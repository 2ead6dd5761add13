// Long prompts as the webuis encode them: the weighted runs of a prompt (prompt_weights.h)
// tokenised into chunks of 75 tokens, each framed BOS + 75 + EOS and encoded on its own.
// Follows AUTOMATIC1111/stable-diffusion-webui modules/sd_hijack_clip.py
// (FrozenCLIPEmbedderWithCustomWordsBase.tokenize_line, option defaults).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "sdgen/text/embeddings.h"
#include "sdgen/text/prompt_weights.h"
#include "sdgen/text/tokenizer.h"

namespace sdgen {

// A1111's PromptChunkFix: the embedding's vectors replace the token embeddings of ids
// offset + 1 .. offset + n of its chunk (offset counts prompt tokens; the 1 is BOS), clipped to
// the chunk.
struct EmbeddingFix {
  size_t offset = 0;
  std::shared_ptr<const Embedding> embedding;
};

// One chunk: length + 2 token ids (BOS, up to `length` prompt tokens, EOS, padding) and the
// weight of each (1.0 on BOS, EOS and padding); an embedding's slots hold id 0 and the weight of
// its emphasis run.
struct PromptChunk {
  std::vector<int64_t> ids;
  std::vector<double> weights;
  size_t prompt_tokens = 0;  // how many of the ids come from the prompt
  std::vector<EmbeddingFix> fixes;
};

struct ChunkOptions {
  int64_t bos = 49406;
  int64_t eos = 49407;
  // Fills the chunk after its first EOS: the EOS id for SD 1.x, 0 for SD 2.x (OpenCLIP).
  int64_t pad = 49407;
  // The id of "," as a word of its own; -1: none (no comma back-off).
  int64_t comma = -1;
  size_t length = 75;         // prompt tokens per chunk
  size_t comma_backoff = 20;  // A1111 comma_padding_backtrack; 0 turns it off
};

// The token ids of one run of text and their weight; or a break.
struct TokenRun {
  std::vector<int64_t> ids;
  double weight = 1.0;
  bool is_break = false;
};

// A1111's tokenize_line over tokenised runs:
// * tokens fill a chunk up to `length`; a break closes the current chunk (even an empty one);
// * when a chunk is full and a token other than a comma comes, and the chunk's last comma is
//   at most `comma_backoff` tokens from its end, the tokens after that comma move on to the
//   next chunk (a comma that comes when the chunk is full opens the next chunk, but does not
//   count as that chunk's last comma);
// * the last chunk is closed when it holds tokens, or when there is no chunk at all (so an
//   empty prompt is one chunk of BOS, EOS and padding).
// With `embeddings`, an embedding name's tokens within one run (the longest name first) become
// its n slots (placeholder id 0, the run's weight) and count as n tokens; when they do not fit
// in the chunk, the chunk is closed first. As in A1111, a comma back-off moves the slots but not
// the fix, which stays with (and is applied to) the closed chunk. Throws
// std::invalid_argument for an embedding of more than `length` vectors.
std::vector<PromptChunk> chunk_tokens(const std::vector<TokenRun>& runs, const ChunkOptions& o,
                                      const EmbeddingMatcher* embeddings = nullptr);

// The id of "," for `tokenizer` (its encoding of "," when that is one token), else -1.
int64_t comma_token(const Tokenizer& tokenizer);

// parse_prompt + tokenizer.encode of each run (runs are tokenised one by one, as A1111 does)
// + chunk_tokens. `o.bos`, `o.eos` and `o.comma` are taken from the tokenizer.
std::vector<PromptChunk> tokenize_prompt(const std::string& prompt, const Tokenizer& tokenizer,
                                         Emphasis mode, ChunkOptions o,
                                         const EmbeddingMatcher* embeddings = nullptr);

// The embeddings `chunks` use, as A1111 lists them for one encoding: in chunk order and, within
// a chunk, in prompt order; each name once, without ':' and ','.
EmbeddingHashes used_embeddings(const std::vector<PromptChunk>& chunks);

// Whether A1111 records its Emphasis option for this prompt: it holds '(' or '['.
bool has_emphasis_brackets(const std::string& prompt);

}  // namespace sdgen
