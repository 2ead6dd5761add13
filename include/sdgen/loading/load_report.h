// What a strict load found wrong, and the error a model file that cannot be used gives.
#pragma once
#include <stdexcept>
#include <string>
#include <vector>

namespace sdgen {

// A model file that cannot be used: the message names the file, what is wrong and what to do.
class CheckpointError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Everything a strict load found wrong, reported together.
struct LoadReport {
  std::vector<std::string> missing;     // expected by the model, absent from the file
  std::vector<std::string> unexpected;  // in the file, unknown to the model
  std::vector<std::string> mismatched;  // "name: file [a, b], model [c, d]"
  bool ok() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
  // A multi-line message for the user, naming `file`; `what` is what the file was taken for
  // ("an SD 1.x checkpoint").
  std::string message(const std::string& file, const std::string& what) const;
};

}  // namespace sdgen
