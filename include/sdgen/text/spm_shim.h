/* The C interface of libsdgen_spm.so, a small shared library around SentencePiece
 * (src/spm/spm_shim.cpp). sdgen never links SentencePiece itself: Debian's libsentencepiece
 * bundles and exports protobuf 3.14, Debian's libtorch links the system protobuf 3.21, and
 * both in one process crash at start-up. The main library dlopen()s this shim with
 * RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND (sentencepiece_tokenizer.h) and calls these functions.
 *
 * Every function catches everything: errors come back as NULL / -1 and a message from
 * sdgen_spm_last_error() (thread-local, valid until the next call on that thread). */
#ifndef SDGEN_TEXT_SPM_SHIM_H_
#define SDGEN_TEXT_SPM_SHIM_H_
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SDGEN_SPM_ABI_VERSION 1

typedef struct sdgen_spm sdgen_spm;

/* SDGEN_SPM_ABI_VERSION of the library. */
int sdgen_spm_abi_version(void);
/* A processor for the model file `path` (a .model written by the trainer); NULL on failure. */
sdgen_spm* sdgen_spm_load(const char* path);
void sdgen_spm_free(sdgen_spm* p);
/* Ids of `text` (`len` bytes of UTF-8) into ids[0..capacity); returns how many there are
 * (possibly more than capacity: call again with a larger buffer), -1 on error. */
int sdgen_spm_encode(const sdgen_spm* p, const char* text, size_t len, int* ids, int capacity);
/* The text of ids[0..n) into out[0..capacity) (NUL-terminated when it fits); returns its
 * length without the NUL (when >= capacity, call again with a larger buffer), -1 on error. */
int sdgen_spm_decode(const sdgen_spm* p, const int* ids, int n, char* out, size_t capacity);
/* The piece of `id` as decode does for text; -1 for an id out of range. */
int sdgen_spm_id_to_piece(const sdgen_spm* p, int id, char* out, size_t capacity);
int sdgen_spm_vocab_size(const sdgen_spm* p);
/* Special ids (-1 when the model has none): which 0 unk, 1 bos, 2 eos, 3 pad. */
int sdgen_spm_special_id(const sdgen_spm* p, int which);
/* Trains a model with SentencePiece's trainer. `args`: its command-line flags
 * ("--model_prefix=out/tok --vocab_size=256 --model_type=unigram ..."), which name the output
 * (<model_prefix>.model and .vocab). When `n_sentences` > 0 the corpus is sentences[0..n)
 * (no --input needed). Returns 0 on success, -1 on error. */
int sdgen_spm_train(const char* args, const char* const* sentences, size_t n_sentences);
const char* sdgen_spm_last_error(void);

#ifdef __cplusplus
}
#endif
#endif /* SDGEN_TEXT_SPM_SHIM_H_ */
