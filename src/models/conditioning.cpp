#include "sdgen/models/conditioning.h"

#include <stdexcept>
#include <string>

namespace sdgen {
namespace {

torch::Tensor moved(const torch::Tensor& t, torch::Device device, torch::ScalarType dtype) {
  if (!t.defined()) return t;
  return t.is_floating_point() ? t.to(device, dtype) : t.to(device);
}

torch::Tensor maybe(const torch::Tensor& t,
                    const std::function<torch::Tensor(const torch::Tensor&)>& f) {
  return t.defined() ? f(t) : t;
}

}  // namespace

Conditioning Conditioning::to(torch::Device device, torch::ScalarType dtype) const {
  return Conditioning(moved(context, device, dtype), moved(vector, device, dtype),
                      moved(concat, device, dtype));
}

Conditioning Conditioning::index_select(const torch::Tensor& index) const {
  auto f = [&](const torch::Tensor& t) { return t.index_select(0, index.to(t.device())); };
  return Conditioning(f(context), maybe(vector, f), maybe(concat, f));
}

Conditioning Conditioning::repeat_interleave(int64_t times) const {
  auto f = [&](const torch::Tensor& t) { return t.repeat_interleave(times, 0); };
  return Conditioning(f(context), maybe(vector, f), maybe(concat, f));
}

Conditioning cat_rows(const std::vector<Conditioning>& parts) {
  if (parts.empty()) throw std::invalid_argument("cat_rows: no conditioning to concatenate");
  if (parts.size() == 1) return parts.front();
  std::vector<torch::Tensor> contexts, vectors, concats;
  const auto& first = parts.front();
  for (const auto& p : parts) {
    if (p.vector.defined() != first.vector.defined() ||
        p.concat.defined() != first.concat.defined())
      throw std::invalid_argument("cat_rows: conditionings with different parts");
    if (p.tokens() != first.tokens())
      throw std::invalid_argument("cat_rows: contexts of " + std::to_string(p.tokens()) + " and " +
                                  std::to_string(first.tokens()) + " tokens (pad_tokens first)");
    contexts.push_back(p.context);
    if (p.vector.defined()) vectors.push_back(p.vector);
    if (p.concat.defined()) concats.push_back(p.concat);
  }
  return Conditioning(torch::cat(contexts), vectors.empty() ? torch::Tensor() : torch::cat(vectors),
                      concats.empty() ? torch::Tensor() : torch::cat(concats));
}

Conditioning pad_tokens(const Conditioning& c, int64_t tokens, const Conditioning& empty) {
  const auto& context = c.context;
  const int64_t missing = tokens - context.size(1);
  if (missing <= 0) return c;
  const auto& e = empty.context;
  if (missing % e.size(1) != 0)
    throw std::invalid_argument("pad_tokens: " + std::to_string(missing) +
                                " tokens to add is not a multiple of " + std::to_string(e.size(1)));
  auto fill = e.to(context.device(), context.scalar_type())
                  .expand({context.size(0), e.size(1), e.size(2)})
                  .repeat({1, missing / e.size(1), 1});
  return Conditioning(torch::cat({context, fill}, 1), c.vector, c.concat);
}

}  // namespace sdgen
