// libFuzzer target: the prompt-file readers (txt, jsonl, A1111 option lines) and the job checks
// over them. Malformed input must be a PromptFileError naming "file:line" or an
// std::invalid_argument from the checks; whatever is accepted must keep the readers' promises.
#include <sstream>

#include "fuzz_util.h"
#include "sdgen/io/output_template.h"
#include "sdgen/job/prompt_file.h"

using sdgen::fuzz::Reader;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Reader in(data, size);
  const uint8_t mode = in.byte();
  const sdgen::PromptFormat format = mode % 3 == 0   ? sdgen::PromptFormat::Txt
                                     : mode % 3 == 1 ? sdgen::PromptFormat::Jsonl
                                                     : sdgen::PromptFormat::A1111;
  const std::string text = in.rest();
  std::istringstream stream(text);
  std::vector<sdgen::JobLine> lines;
  try {
    lines = sdgen::parse_prompt_file(stream, format, "p.txt", sdgen::JobParams{});
  } catch (const sdgen::PromptFileError& e) {
    SDGEN_FUZZ_CHECK(std::string(e.what()).rfind("p.txt:", 0) == 0);
    return 0;
  }
  SDGEN_FUZZ_CHECK(!lines.empty());
  int previous = 0;
  sdgen::ModelLimits limits;
  limits.max_clip_skip = 12;
  for (auto& l : lines) {
    SDGEN_FUZZ_CHECK(l.line > previous);  // file order, one job line per text line
    previous = l.line;
    const auto& p = l.params;
    SDGEN_FUZZ_CHECK(p.image.prompt.find('\0') == std::string::npos);
    SDGEN_FUZZ_CHECK(p.image.negative_prompt.find('\0') == std::string::npos);
    SDGEN_FUZZ_CHECK(p.batch_count >= 1 && p.batch_count <= 1000000);
    SDGEN_FUZZ_CHECK(p.image.cfg_scale == p.image.cfg_scale);  // not NaN
    sdgen::JobParams job = p;
    try {
      sdgen::finish_job(job, limits);
    } catch (const std::invalid_argument&) {
      continue;
    }
    // a checked line names its outputs without error
    const std::string name = sdgen::expand_output_template(
        job.output, sdgen::TemplateValues{7, job.image.seed, l.line, job.image.prompt});
    SDGEN_FUZZ_CHECK(!name.empty() && name.find('\0') == std::string::npos);
  }
  return 0;
}
