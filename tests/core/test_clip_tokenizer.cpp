// CLIP tokenizer against openai/CLIP SimpleTokenizer (reference/clip_tokens.json), plus
// loading from a diffusers vocab.json + merges.txt, html.unescape and robustness checks.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "sdgen/text/clip_tokenizer.h"
#include "sdgen/text/tokenizer.h"
#include "sdgen/util/gzip.h"

#ifndef SDGEN_REFERENCE_DIR
#error "SDGEN_REFERENCE_DIR must be defined"
#endif

namespace fs = std::filesystem;
using sdgen::ClipTokenizer;

namespace {

const std::string kRef = SDGEN_REFERENCE_DIR;
const std::string kVocabGz = kRef + "/clip_vocab/bpe_simple_vocab_16e6.txt.gz";

nlohmann::json load_cases() {
  std::ifstream f(kRef + "/clip_tokens.json");
  EXPECT_TRUE(f.good()) << "cannot open " << kRef << "/clip_tokens.json";
  return nlohmann::json::parse(f);
}

const nlohmann::json& cases() {
  static const nlohmann::json j = load_cases();
  return j.at("cases");
}

const ClipTokenizer& gz_tokenizer() {
  static const std::unique_ptr<ClipTokenizer> tok = ClipTokenizer::from_path(kVocabGz);
  return *tok;
}

void write_file(const fs::path& p, const std::string& data) {
  std::ofstream f(p, std::ios::binary);
  f << data;
  ASSERT_TRUE(f.good()) << p;
}

// A fresh folder under the system temp dir, removed at destruction.
struct TempDir {
  fs::path path;
  TempDir() {
    static std::atomic<int> counter{0};
    std::random_device rd;
    path = fs::temp_directory_path() /
           ("sdgen_tok_" + std::to_string(rd()) + "_" + std::to_string(counter++));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// Writes vocab.json + merges.txt (diffusers layout) generated from the .gz vocabulary.
void write_diffusers_files(const fs::path& dir) {
  const ClipTokenizer& tok = gz_tokenizer();
  nlohmann::json vocab = nlohmann::json::object();
  for (size_t id = 0; id < tok.vocab_size(); ++id) {
    vocab[tok.id_to_token(static_cast<int64_t>(id))] = id;
  }
  write_file(dir / "vocab.json", vocab.dump());
  const std::string text = sdgen::gunzip_file(kVocabGz);
  std::istringstream in(text);
  std::string line, merges = "#version: 0.2\n";
  std::getline(in, line);  // the version comment of the openai file
  for (int i = 0; i < 48894 && std::getline(in, line); ++i) merges += line + "\n";
  write_file(dir / "merges.txt", merges);
}

void expect_reference_cases(const ClipTokenizer& tok) {
  for (const auto& c : cases()) {
    const std::string name = c.at("name");
    SCOPED_TRACE("case " + name);
    const std::string prompt = c.at("prompt");
    const auto want_ids = c.at("ids").get<std::vector<int64_t>>();
    const std::vector<int64_t> ids = tok.encode(prompt);
    EXPECT_EQ(ids, want_ids);
    EXPECT_EQ(ids.size(), c.at("n_ids").get<size_t>());
    EXPECT_EQ(ids.size() > 75, c.at("truncated").get<bool>());
    EXPECT_EQ(sdgen::frame_ids(ids, tok.bos_id(), tok.eos_id(), 49407, 77),
              c.at("input_ids").get<std::vector<int64_t>>());
    std::vector<std::string> tokens;
    for (int64_t id : ids) tokens.push_back(tok.id_to_token(id));
    EXPECT_EQ(tokens, c.at("bpe_tokens").get<std::vector<std::string>>());
  }
}

std::string from_hex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

std::string expect_error(const std::string& path) {
  try {
    ClipTokenizer::from_path(path);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error for " << path;
  return "";
}

}  // namespace

TEST(ClipTokenizer, ReferenceFileShape) {
  ASSERT_EQ(cases().size(), 41u);
  const ClipTokenizer& tok = gz_tokenizer();
  EXPECT_EQ(tok.vocab_size(), 49408u);
  EXPECT_EQ(tok.bos_id(), 49406);
  EXPECT_EQ(tok.eos_id(), 49407);
  EXPECT_EQ(tok.id_to_token(0), "!");
  EXPECT_EQ(tok.id_to_token(256), "!</w>");
  EXPECT_EQ(tok.id_to_token(512), "in");  // the first merge, "i n"
  EXPECT_EQ(tok.id_to_token(49405), "jekyll</w>");
  EXPECT_EQ(tok.id_to_token(49406), "<|startoftext|>");
  EXPECT_EQ(tok.id_to_token(49407), "<|endoftext|>");
  EXPECT_THROW(tok.id_to_token(49408), std::out_of_range);
  EXPECT_THROW(tok.id_to_token(-1), std::out_of_range);
}

TEST(ClipTokenizer, AllReferenceCasesFromGz) { expect_reference_cases(gz_tokenizer()); }

TEST(ClipTokenizer, CleanedTextMatchesReference) {
  for (const auto& c : cases()) {
    SCOPED_TRACE("case " + c.at("name").get<std::string>());
    EXPECT_EQ(ClipTokenizer::clean_text(c.at("prompt")), c.at("cleaned_text").get<std::string>());
  }
}

TEST(ClipTokenizer, AllReferenceCasesFromVocabJsonAndMerges) {
  TempDir tmp;
  write_diffusers_files(tmp.path);
  auto tok = ClipTokenizer::from_path((tmp.path / "vocab.json").string());
  EXPECT_EQ(tok->vocab_size(), 49408u);
  EXPECT_EQ(tok->bos_id(), 49406);
  EXPECT_EQ(tok->eos_id(), 49407);
  expect_reference_cases(*tok);
  // the same folder, and a diffusers model folder with a tokenizer/ subfolder
  expect_reference_cases(*ClipTokenizer::from_path(tmp.path.string()));
  const fs::path model = tmp.path / "model";
  fs::create_directories(model / "tokenizer");
  fs::copy_file(tmp.path / "vocab.json", model / "tokenizer" / "vocab.json");
  fs::copy_file(tmp.path / "merges.txt", model / "tokenizer" / "merges.txt");
  expect_reference_cases(*ClipTokenizer::from_path(model.string()));
}

TEST(ClipTokenizer, LoadsFromFolderAndUnzippedText) {
  expect_reference_cases(*ClipTokenizer::from_path(kRef + "/clip_vocab"));
  TempDir tmp;
  write_file(tmp.path / "bpe_simple_vocab_16e6.txt", sdgen::gunzip_file(kVocabGz));
  expect_reference_cases(
      *ClipTokenizer::from_path((tmp.path / "bpe_simple_vocab_16e6.txt").string()));
  expect_reference_cases(*ClipTokenizer::from_path(tmp.path.string()));
}

TEST(ClipTokenizer, LoadErrorsNameTheFile) {
  TempDir tmp;
  const std::string missing = (tmp.path / "nope.txt.gz").string();
  EXPECT_NE(expect_error(missing).find(missing), std::string::npos);

  // an empty folder
  EXPECT_NE(expect_error(tmp.path.string()).find(tmp.path.string()), std::string::npos);

  // vocab.json without merges.txt
  const fs::path lone = tmp.path / "lone";
  fs::create_directories(lone);
  write_file(lone / "vocab.json", "{\"a\": 0}");
  const std::string msg = expect_error((lone / "vocab.json").string());
  EXPECT_NE(msg.find("merges.txt"), std::string::npos) << msg;

  // malformed vocab.json
  const fs::path badjson = tmp.path / "badjson";
  fs::create_directories(badjson);
  write_file(badjson / "vocab.json", "{\"a\": ");
  write_file(badjson / "merges.txt", "#version: 0.2\na b\n");
  const std::string bj = expect_error((badjson / "vocab.json").string());
  EXPECT_NE(bj.find("vocab.json"), std::string::npos) << bj;

  // merges that do not belong to the vocabulary
  const fs::path mismatch = tmp.path / "mismatch";
  fs::create_directories(mismatch);
  write_diffusers_files(mismatch);
  write_file(mismatch / "merges.txt", "#version: 0.2\ni n\nq\xC3\xA9 zz\n");
  const std::string mm = expect_error((mismatch / "vocab.json").string());
  EXPECT_NE(mm.find("line 3"), std::string::npos) << mm;

  // a corrupted .gz: one flipped byte in the middle
  std::string gz;
  {
    std::ifstream f(kVocabGz, std::ios::binary);
    std::ostringstream ss;
    ss << f.rdbuf();
    gz = ss.str();
  }
  gz[gz.size() / 2] = static_cast<char>(gz[gz.size() / 2] ^ 0x10);
  const std::string corrupt = (tmp.path / "corrupt.txt.gz").string();
  write_file(corrupt, gz);
  EXPECT_NE(expect_error(corrupt).find(corrupt), std::string::npos);

  // a text file that is not a merges file
  const std::string junk = (tmp.path / "junk.txt").string();
  write_file(junk, "header\nthis line has three\n");
  const std::string jm = expect_error(junk);
  EXPECT_NE(jm.find(junk), std::string::npos) << jm;
  EXPECT_NE(jm.find("line 2"), std::string::npos) << jm;

  // a merges file that is not UTF-8
  const std::string latin1 = (tmp.path / "latin1.txt").string();
  write_file(latin1, "#version\ncaf\xE9 x\n");
  EXPECT_NE(expect_error(latin1).find("UTF-8"), std::string::npos);
}

// Cases beyond the reference file; expected values from Python 3.11 with the `regex` module
// running SimpleTokenizer's steps (without ftfy) on bytes.decode("utf-8", "replace").
struct ExtraCase {
  const char* name;
  const char* prompt_hex;
  const char* clean_hex;
  std::vector<int64_t> ids;
};

TEST(ClipTokenizer, ExtraCasesMatchPython) {
  const std::vector<ExtraCase> extra = {
      {"invalid_utf8",
       "fffe61626320c320636166c3a920e282207820eda08020f09f9020c0af20656e64f4",
       "efbfbdefbfbd61626320efbfbd20636166c3a920efbfbd207820efbfbdefbfbdefbfbd20efbfbd20efbfbdefbfb"
       "d20656e64efbfbd",
       {47356, 39802, 5334, 39802, 15304, 39802, 343, 47356, 47356, 39802, 39802, 47356, 39802, 806,
        39802}},
      {"greek_final_sigma",
       "ce9fce94cea5cea3cea3ce95cea5cea320cea3ce91cea32e20cea32061cea36220ce91cea327cea3",
       "cebfceb4cf85cf83cf83ceb5cf85cf8220cf83ceb1cf822e20cf832061cf836220ceb1cf8327cf82",
       {138, 123, 138, 112, 139, 227, 139, 225, 139, 225, 138, 113, 139, 227, 139, 480, 139, 225,
        138, 109, 139, 480, 269, 139, 481, 64,  139, 225, 321, 138, 109, 139, 481, 262, 139, 480}},
      {"dotted_capital_i",
       "c4b05354414e42554c20c4b169",
       "69cc877374616e62756c20c4b169",
       {328, 16384, 11231, 18562, 328}},
      {"long_s_contractions",
       "697427c5bf206120c5bf746172203c7cc5bf746172746f66746578747c3e2027277320212773",
       "697427c5bf206120c5bf746172203c7cc5bf746172746f66746578747c3e2027277320212773",
       {585, 6,    129,  379,   320, 129, 123,  6977, 27,    91, 129,
        123, 2002, 6659, 18169, 91,  285, 8445, 338,  13222, 338}},
      {"ypogegrammeni_dropped", "61cd856220cd85", "61cd856220cd85", {320, 321}},
      {"info_separators_not_regex_space", "611c62201c201f", "611c62", {320, 472, 321}},
      {"info_separators_stripped", "1c2061201f", "61", {320}},
      {"special_tokens",
       "3c7c73746172746f66746578747c3e68656c6c6f3c7c656e646f66746578747c3e203c7c53544152544f4654455"
       "8547c3e20783c3c7c656e646f66746578747c3e",
       "3c7c73746172746f66746578747c3e68656c6c6f3c7c656e646f66746578747c3e203c7c73746172746f6674657"
       "8747c3e20783c3c7c656e646f66746578747c3e",
       {49406, 3306, 49407, 49406, 343, 24588, 347, 40786, 4160, 91, 285}},
      {"html_numeric_and_prefix",
       "266c74332026616d703b616d703b2026237834313b202623303b2026233132383b20262378443830303b2026233"
       "9393939393939393939393b20266e6f7469743b2026636f7079202623313b782026232026235836613b",
       "3c332026206120efbfbd20e282ac20efbfbd20efbfbd20c2ac69743b20c2a92078202623206a",
       {283, 274, 261, 320, 39802, 6309, 39802, 39802, 126, 361, 585, 282, 5811, 343, 5, 258, 329}},
      {"html_long_name",
       "26616161616161616161616161616161616161616161616161616161616161616161616161616161613b2026616"
       "d7078797a2026414d5020266c743b26677420266e6273703b78",
       "26616161616161616161616161616161616161616161616161616161616161616161616161616161613b2026787"
       "97a2026203c3e2078",
       {261, 23126, 23126, 23126, 23126, 6727, 19336, 282, 261, 20023, 345, 261, 27, 285, 343}},
      {"unicode_whitespace",
       "61e3808062c2a063e280a864c28565e2808b6609670d0a68",
       "612062206320642065e2808b6620672068",
       {320, 321, 322, 323, 324, 9844, 325, 326, 327}},
      {"unicode_numbers",
       "d9a320c2bd20e285ab20e291a020efbc93",
       "d9a320c2bd20e285bb20e291a020efbc93",
       {149, 352, 33613, 158, 227, 375, 158, 239, 510, 171, 120, 497}},
      {"case_mapping",
       "53747261c39f6520c78520efac8120c78420e1ba9e",
       "73747261c39f6520c78620efac8120c78620c39f",
       {1894, 127, 253, 324, 131, 484, 171, 105, 479, 131, 484, 127, 509}},
      {"emoji_zwj_flags",
       "f09f91a9e2808df09f91a9e2808df09f91a720f09f87aff09f87b5",
       "f09f91a9e2808df09f91a9e2808df09f91a720f09f87aff09f87b5",
       {26304, 26304, 964, 356, 26527}},
      {"upper_contractions",
       "49274d20594f55274c4c2057452744202754",
       "69276d20796f75276c6c2077652764202774",
       {328, 880, 592, 1342, 649, 1896, 713}},
      {"digits_split",
       "332e31346531302030783146",
       "332e31346531302030783166",
       {274, 269, 272, 275, 324, 272, 271, 271, 343, 272, 325}},
      {"empty", "", "", {}},
      {"control_chars", "0001207f", "0001207f", {188, 445, 477}},
  };
  const ClipTokenizer& tok = gz_tokenizer();
  for (const ExtraCase& c : extra) {
    SCOPED_TRACE(c.name);
    const std::string prompt = from_hex(c.prompt_hex);
    EXPECT_EQ(ClipTokenizer::clean_text(prompt), from_hex(c.clean_hex));
    EXPECT_EQ(tok.encode(prompt), c.ids);
  }
}

TEST(ClipTokenizer, SpecialTokensInText) {
  const ClipTokenizer& tok = gz_tokenizer();
  EXPECT_EQ(tok.encode("<|startoftext|>a<|endoftext|>"), (std::vector<int64_t>{49406, 320, 49407}));
}

TEST(ClipTokenizer, CacheGivesSameResults) {
  const ClipTokenizer& tok = gz_tokenizer();
  const std::string p = "a photograph of an astronaut riding a horse, astronaut astronaut";
  const auto first = tok.encode(p);
  EXPECT_EQ(tok.encode(p), first);
  ASSERT_EQ(first.size(), 11u);  // 8 words, ",", 2 words
  EXPECT_EQ(first[4], 18376);    // astronaut</w>
  EXPECT_EQ(first[9], 18376);
  EXPECT_EQ(first[10], 18376);
}

TEST(ClipTokenizer, RandomBytesNeverCrash) {
  const ClipTokenizer& tok = gz_tokenizer();
  std::mt19937 rng(1234);
  for (int iter = 0; iter < 300; ++iter) {
    std::string s(rng() % 64, '\0');
    for (char& ch : s) ch = static_cast<char>(rng() & 0xFF);
    std::vector<int64_t> ids;
    ASSERT_NO_THROW(ids = tok.encode(s));
    for (int64_t id : ids) {
      ASSERT_GE(id, 0);
      ASSERT_LT(id, 49408);
    }
  }
}

TEST(ClipTokenizer, FrameIds) {
  using sdgen::frame_ids;
  EXPECT_EQ(frame_ids({}, 1, 2, 0, 4), (std::vector<int64_t>{1, 2, 0, 0}));
  EXPECT_EQ(frame_ids({7, 8}, 1, 2, 0, 4), (std::vector<int64_t>{1, 7, 8, 2}));
  EXPECT_EQ(frame_ids({7, 8, 9}, 1, 2, 0, 4), (std::vector<int64_t>{1, 7, 8, 2}));
  EXPECT_EQ(frame_ids({7}, 1, 2, 2, 5), (std::vector<int64_t>{1, 7, 2, 2, 2}));
  EXPECT_THROW(frame_ids({7}, 1, 2, 0, 1), std::invalid_argument);
}

TEST(HtmlUnescape, PythonSemantics) {
  auto twice = [](const std::string& s) {
    return ClipTokenizer::html_unescape(ClipTokenizer::html_unescape(s));
  };
  EXPECT_EQ(ClipTokenizer::html_unescape("&amp;amp;"), "&amp;");
  EXPECT_EQ(twice("&amp;amp;"), "&");
  EXPECT_EQ(ClipTokenizer::html_unescape("&lt3"), "<3");  // longest-prefix match
  EXPECT_EQ(ClipTokenizer::html_unescape("&#x41;"), "A");
  EXPECT_EQ(ClipTokenizer::html_unescape("&#X41"), "A");
  EXPECT_EQ(ClipTokenizer::html_unescape("&#65;&#065"), "AA");
  EXPECT_EQ(ClipTokenizer::html_unescape("&#0;"), "\xEF\xBF\xBD");
  EXPECT_EQ(ClipTokenizer::html_unescape("&#128;"), "\xE2\x82\xAC");    // windows-1252
  EXPECT_EQ(ClipTokenizer::html_unescape("&#x81;"), "\xC2\x81");        // kept as is
  EXPECT_EQ(ClipTokenizer::html_unescape("&#xD800;"), "\xEF\xBF\xBD");  // surrogate
  EXPECT_EQ(ClipTokenizer::html_unescape("&#1114112;"), "\xEF\xBF\xBD");
  EXPECT_EQ(ClipTokenizer::html_unescape("&#99999999999999999999;"), "\xEF\xBF\xBD");
  EXPECT_EQ(ClipTokenizer::html_unescape("a&#1;b&#xFFFF;c"), "abc");  // dropped code points
  EXPECT_EQ(ClipTokenizer::html_unescape("&#13;"), "\r");
  EXPECT_EQ(ClipTokenizer::html_unescape("&#x1F431;"), "\xF0\x9F\x90\xB1");
  EXPECT_EQ(ClipTokenizer::html_unescape("&notit; &notin; &copy &COPY;"),
            "\xC2\xAC"
            "it; \xE2\x88\x89 \xC2\xA9 \xC2\xA9");
  EXPECT_EQ(ClipTokenizer::html_unescape("&nosuch; & &; &# &#x; a&b"), "&nosuch; & &; &# &#x; a&b");
  EXPECT_EQ(ClipTokenizer::html_unescape("&NotNestedGreaterGreater;"), "\xE2\xAA\xA2\xCC\xB8");
  EXPECT_EQ(ClipTokenizer::html_unescape("no entities"), "no entities");
}
