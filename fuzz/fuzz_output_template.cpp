// libFuzzer target: the output-name template ({index:05}, {seed}, {line}, {prompt}). A template
// that validates must expand for any values, to a name with no NUL whose placeholders added no
// folders; a malformed one must be std::invalid_argument.
#include <algorithm>
#include <stdexcept>

#include "fuzz_util.h"
#include "sdgen/io/output_template.h"

using sdgen::fuzz::Reader;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Reader in(data, size);
  const std::string tmpl = in.field();
  sdgen::TemplateValues v;
  v.index = in.u64();
  v.seed = in.u64();
  v.line = static_cast<int>(in.u64() & 0x7fffffff);
  v.prompt = in.rest();
  try {
    sdgen::validate_output_template(tmpl);
  } catch (const std::invalid_argument&) {
    return 0;
  }
  const std::string name = sdgen::expand_output_template(tmpl, v);
  SDGEN_FUZZ_CHECK(name.find('\0') == std::string::npos || tmpl.find('\0') != std::string::npos);
  // placeholder values hold no '/': the folders are the template's own
  SDGEN_FUZZ_CHECK(std::count(name.begin(), name.end(), '/') ==
                   std::count(tmpl.begin(), tmpl.end(), '/'));
  SDGEN_FUZZ_CHECK(sdgen::expand_output_template(tmpl, v) == name);  // deterministic
  return 0;
}
