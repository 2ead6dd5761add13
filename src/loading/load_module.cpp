#include "sdgen/loading/load_module.h"

#include <algorithm>
#include <sstream>

#include "sdgen/io/tensor_io.h"

namespace sdgen {
namespace {

std::string shape_str(at::IntArrayRef s) {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  return o.str() + "]";
}

bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

}  // namespace

std::string LoadReport::message(const std::string& file, const std::string& what) const {
  std::ostringstream o;
  o << file << ": the checkpoint does not fit the model (" << missing.size() << " missing, "
    << unexpected.size() << " unexpected, " << mismatched.size() << " mis-shaped tensors)";
  auto list = [&](const char* title, const std::vector<std::string>& v) {
    if (v.empty()) return;
    o << "\n  " << title << ":";
    const size_t shown = std::min<size_t>(v.size(), 40);
    for (size_t i = 0; i < shown; ++i) o << "\n    " << v[i];
    if (v.size() > shown) o << "\n    ... and " << v.size() - shown << " more";
  };
  list("missing", missing);
  list("unexpected", unexpected);
  list("mis-shaped (file vs model)", mismatched);
  o << "\n  Is this " << what
    << "? A config JSON (--model-config) can describe other hyperparameters.";
  return o.str();
}

void load_module(torch::nn::Module& module, const TensorSource& source, const KeyMap& map,
                 torch::Device device, torch::ScalarType dtype, LoadReport& report,
                 std::set<std::string>* consumed,
                 const std::vector<std::string>& ignored_suffixes) {
  torch::NoGradGuard no_grad;
  std::set<std::string> expected;
  auto load_one = [&](const std::string& name, torch::Tensor& target) {
    const KeyMap::Rule* rule = map.match(name);
    const std::string key = map.to_source(name);
    expected.insert(key);
    const TensorInfo* info = source.find(key);
    if (!info) {
      report.missing.push_back(key);
      return;
    }
    // A 1x1 convolution whose rule says the file keeps it as a Linear weight is read as
    // [out, in]; everything else must have the module's own shape.
    const bool as_linear = rule && rule->conv1x1_stored_as_linear && target.dim() == 4 &&
                           target.size(2) == 1 && target.size(3) == 1;
    const std::vector<int64_t> stored =
        as_linear ? std::vector<int64_t>{target.size(0), target.size(1)} : target.sizes().vec();
    if (info->shape != stored) {
      report.mismatched.push_back(
          key + ": file " + shape_str(info->shape) + ", model " + shape_str(target.sizes()) +
          (as_linear ? " (stored as a Linear weight " + shape_str(stored) + ")" : ""));
      return;
    }
    // Floating weights take the compute dtype; integer buffers keep theirs.
    const auto want = target.is_floating_point() ? dtype : target.scalar_type();
    auto dst = torch::empty(target.sizes(), torch::TensorOptions().dtype(want).device(device));
    auto view = as_linear ? dst.view(stored) : dst;  // the same storage
    copy_stored(*source.file_of(key), *info, view);
    target.set_data(dst);
  };
  for (auto& p : module.named_parameters(/*recurse=*/true)) load_one(p.key(), p.value());
  for (auto& b : module.named_buffers(/*recurse=*/true)) load_one(b.key(), b.value());

  for (const auto& key : source.names()) {
    if (!map.covers(key)) continue;
    const bool used = expected.count(key) > 0;
    const bool ignored =
        !used && std::any_of(ignored_suffixes.begin(), ignored_suffixes.end(),
                             [&](const std::string& s) { return ends_with(key, s); });
    if (used || ignored) {
      if (consumed) consumed->insert(key);
    } else {
      report.unexpected.push_back(key);
    }
  }
}

torch::Tensor read_tensor(const TensorSource& source, const std::string& key, torch::Device device,
                          torch::ScalarType dtype) {
  const TensorInfo* info = source.find(key);
  if (!info) throw CheckpointError(source.path() + ": no tensor '" + key + "'");
  auto dst = torch::empty(info->shape, torch::TensorOptions().dtype(dtype).device(device));
  copy_stored(*source.file_of(key), *info, dst);
  return dst;
}

}  // namespace sdgen
