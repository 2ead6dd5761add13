#include "sdgen/data/scene_score.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace sdgen::data {
namespace {

// A pixel this far (RGB Euclidean) from the background is foreground. The closest object and
// background colours of the data set are ~94 apart (purple on gray); half an anti-aliased edge
// pixel is below it.
constexpr double kForegroundDistance = 60.0;
// Matching cost per pixel between a component's centroid and the expected object's grid
// centre: decides between two objects of the same colour, never against a colour difference
// (palette colours are >= 50 apart, 0.1 x the image diagonal is at most ~9).
constexpr double kPlaceWeight = 0.1;
// Components smaller than this are noise (the smallest star covers ~70 pixels at 64x64).
constexpr int kMinComponentArea = 8;

using Colour = std::array<double, 3>;

double distance(const Colour& a, const Rgb& b) {
  const double dr = a[0] - b.r, dg = a[1] - b.g, db = a[2] - b.b;
  return std::sqrt(dr * dr + dg * dg + db * db);
}

int nearest(const Colour& c, const std::vector<NamedColour>& palette) {
  int best = 0;
  for (size_t i = 1; i < palette.size(); ++i)
    if (distance(c, palette[i].rgb) < distance(c, palette[static_cast<size_t>(best)].rgb))
      best = static_cast<int>(i);
  return best;
}

Colour median_colour(const std::vector<uint8_t>& rgb, const std::vector<int>& pixels) {
  Colour out{};
  std::vector<uint8_t> v(pixels.size());
  for (int ch = 0; ch < 3; ++ch) {
    for (size_t i = 0; i < pixels.size(); ++i) v[i] = rgb[static_cast<size_t>(pixels[i]) * 3 + ch];
    auto mid = v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2);
    std::nth_element(v.begin(), mid, v.end());
    out[static_cast<size_t>(ch)] = *mid;
  }
  return out;
}

// The median of the outer two-pixel frame: robust to an object touching the border.
Colour border_colour(const std::vector<uint8_t>& rgb, int size) {
  std::vector<int> frame;
  for (int y = 0; y < size; ++y)
    for (int x = 0; x < size; ++x)
      if (x < 2 || y < 2 || x >= size - 2 || y >= size - 2) frame.push_back(y * size + x);
  return median_colour(rgb, frame);
}

struct Component {
  std::vector<int> pixels;
  Colour colour{};
  double cx = 0, cy = 0;  // centroid in pixel coordinates (pixel centres at +0.5)
};

std::vector<Component> components(const std::vector<uint8_t>& fg, int size) {
  std::vector<int> label(fg.size(), -1);
  std::vector<Component> out;
  std::vector<int> stack;
  for (int start = 0; start < size * size; ++start) {
    if (!fg[static_cast<size_t>(start)] || label[static_cast<size_t>(start)] >= 0) continue;
    Component c;
    stack.assign(1, start);
    label[static_cast<size_t>(start)] = static_cast<int>(out.size());
    while (!stack.empty()) {
      const int p = stack.back();
      stack.pop_back();
      c.pixels.push_back(p);
      const int px = p % size, py = p / size;
      for (int dy = -1; dy <= 1; ++dy)
        for (int dx = -1; dx <= 1; ++dx) {
          const int x = px + dx, y = py + dy;
          if (x < 0 || y < 0 || x >= size || y >= size) continue;
          const auto q = static_cast<size_t>(y * size + x);
          if (fg[q] && label[q] < 0) {
            label[q] = static_cast<int>(out.size());
            stack.push_back(static_cast<int>(q));
          }
        }
    }
    out.push_back(std::move(c));
  }
  return out;
}

// Area of each shape for radius 1 (see inside() in scenes.cpp).
double unit_area(Shape s) {
  switch (s) {
    case Shape::kCircle:
      return M_PI;
    case Shape::kSquare:
      return 1.6 * 1.6;
    case Shape::kTriangle:  // regular, circumradius 1.15
      return 3.0 * std::sqrt(3.0) / 4.0 * 1.15 * 1.15;
    case Shape::kDiamond:  // diagonals 1.8 and 2
      return 1.8;
    case Shape::kStar:  // ten triangles between radii 1.15 and 0.5, 36 degrees apart
      return 5.0 * 1.15 * 0.5 * std::sin(M_PI / 5);
  }
  return 1.0;
}

// Best intersection over union of the component with `shape` centred near its centroid, at
// the radius whose area equals the component's (and 10% either side).
double shape_iou(const Component& c, const std::vector<uint8_t>& mask_of_c, int size, Shape shape) {
  const double area = static_cast<double>(c.pixels.size());
  const double r0 = std::sqrt(area / unit_area(shape));
  const int reach = static_cast<int>(std::ceil(1.3 * r0 * 1.1)) + 3;
  const int x0 = std::max(0, static_cast<int>(c.cx) - reach);
  const int x1 = std::min(size, static_cast<int>(c.cx) + reach + 1);
  const int y0 = std::max(0, static_cast<int>(c.cy) - reach);
  const int y1 = std::min(size, static_cast<int>(c.cy) + reach + 1);
  double best = 0;
  for (double scale : {0.9, 1.0, 1.1})
    for (int oy = -1; oy <= 1; ++oy)
      for (int ox = -1; ox <= 1; ++ox) {
        SceneObject t;
        t.shape = shape;
        t.cx = c.cx + ox;
        t.cy = c.cy + oy;
        t.radius = r0 * scale;
        int inter = 0, uni = 0;
        for (int y = y0; y < y1; ++y)
          for (int x = x0; x < x1; ++x) {
            const bool in_t = inside(t, x + 0.5, y + 0.5);
            const bool in_c = mask_of_c[static_cast<size_t>(y * size + x)] != 0;
            inter += in_t && in_c;
            uni += in_t || in_c;
          }
        if (uni > 0) best = std::max(best, static_cast<double>(inter) / uni);
      }
  return best;
}

DetectedObject describe(const Component& c, int size) {
  DetectedObject d;
  d.colour = nearest(c.colour, object_colours());
  d.cx = c.cx;
  d.cy = c.cy;
  d.area = static_cast<int>(c.pixels.size());
  auto cell = [size](double v) { return v < size / 3.0 ? 0 : v < 2.0 * size / 3.0 ? 1 : 2; };
  d.position = static_cast<Position>(cell(c.cy) * 3 + cell(c.cx));
  std::vector<uint8_t> mask(static_cast<size_t>(size) * size, 0);
  for (int p : c.pixels) mask[static_cast<size_t>(p)] = 1;
  for (int s = 0; s < kNumShapes; ++s) {
    const double iou = shape_iou(c, mask, size, static_cast<Shape>(s));
    if (iou > d.shape_iou) {
      d.shape_iou = iou;
      d.shape = static_cast<Shape>(s);
    }
  }
  return d;
}

}  // namespace

SceneScore score_image(const std::vector<uint8_t>& rgb, int size, const Scene& expected) {
  if (size <= 0 || rgb.size() != static_cast<size_t>(size) * size * 3)
    throw std::invalid_argument("score_image: expected " + std::to_string(size) + "x" +
                                std::to_string(size) + " RGB pixels, got " +
                                std::to_string(rgb.size()) + " bytes");
  SceneScore score;
  const Colour bg = border_colour(rgb, size);
  score.background = nearest(bg, background_colours());
  score.background_scored = expected.background >= 0;
  score.background_ok = score.background_scored && score.background == expected.background;

  std::vector<uint8_t> fg(static_cast<size_t>(size) * size, 0);
  for (size_t p = 0; p < fg.size(); ++p) {
    const Rgb px{rgb[p * 3], rgb[p * 3 + 1], rgb[p * 3 + 2]};
    fg[p] = distance(bg, px) > kForegroundDistance;
  }
  auto comps = components(fg, size);
  comps.erase(std::remove_if(comps.begin(), comps.end(),
                             [](const Component& c) {
                               return static_cast<int>(c.pixels.size()) < kMinComponentArea;
                             }),
              comps.end());
  std::stable_sort(comps.begin(), comps.end(), [](const Component& a, const Component& b) {
    return a.pixels.size() > b.pixels.size();
  });
  for (auto& c : comps) {
    c.colour = median_colour(rgb, c.pixels);
    for (int p : c.pixels) {
      c.cx += p % size + 0.5;
      c.cy += p / size + 0.5;
    }
    c.cx /= static_cast<double>(c.pixels.size());
    c.cy /= static_cast<double>(c.pixels.size());
  }

  // Match the largest components to the expected objects: of all assignments (at most two
  // objects, so at most two ways), the one with the smallest total colour distance; where both
  // objects have one colour, the one that puts each nearer its expected place.
  const size_t n_obj = expected.objects.size();
  const size_t n_use = std::min(n_obj, comps.size());
  score.objects.resize(n_obj);
  score.extra_components = static_cast<int>(comps.size() - n_use);
  std::vector<size_t> order(n_obj);  // order[k]: the object matched to component k
  for (size_t i = 0; i < n_obj; ++i) order[i] = i;
  std::vector<size_t> best_order = order;
  double best_cost = 1e300;
  do {
    double cost = 0;
    for (size_t k = 0; k < n_use; ++k) {
      const auto& want = expected.objects[order[k]];
      double px, py;
      position_centre(want.position, size, &px, &py);
      cost += distance(comps[k].colour, object_colours()[static_cast<size_t>(want.colour)].rgb) +
              kPlaceWeight * std::hypot(comps[k].cx - px, comps[k].cy - py);
    }
    if (cost < best_cost) {
      best_cost = cost;
      best_order = order;
    }
  } while (std::next_permutation(order.begin(), order.end()));

  for (size_t k = 0; k < n_use; ++k) {
    const auto& want = expected.objects[best_order[k]];
    auto& s = score.objects[best_order[k]];
    s.found = true;
    s.detected = describe(comps[k], size);
    s.colour = s.detected.colour == want.colour;
    s.position = s.detected.position == want.position;
    s.shape = s.detected.shape == want.shape;
  }
  return score;
}

void ScoreTotals::add(const SceneScore& s) {
  ++images;
  backgrounds += s.background_scored;
  background += s.background_ok;
  bool all = s.background_ok || !s.background_scored;
  for (const auto& o : s.objects) {
    ++objects;
    found += o.found;
    colour += o.colour;
    position += o.position;
    shape += o.shape;
    all = all && o.colour && o.position && o.shape;
  }
  all_correct_images += all;
}

std::string ScoreTotals::summary() const {
  char buf[256];
  std::snprintf(buf, sizeof(buf),
                "%d images, %d objects: colour %.1f%%, position %.1f%%, shape %.1f%%, "
                "background %.1f%%, found %.1f%%, all right %.1f%% of images",
                images, objects, 100 * rate(colour, objects), 100 * rate(position, objects),
                100 * rate(shape, objects), 100 * rate(background, backgrounds),
                100 * rate(found, objects), 100 * rate(all_correct_images, images));
  return buf;
}

}  // namespace sdgen::data
