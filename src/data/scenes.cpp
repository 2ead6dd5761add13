#include "sdgen/data/scenes.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace sdgen::data {

uint64_t Rng::next() {
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

int Rng::uniform(int n) {
  if (n <= 0) throw std::invalid_argument("Rng::uniform: n must be positive");
  return static_cast<int>(next() % static_cast<uint64_t>(n));
}

double Rng::uniform01() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

const std::vector<NamedColour>& object_colours() {
  static const std::vector<NamedColour> c = {{"red", {220, 30, 30}},     {"orange", {245, 130, 20}},
                                             {"yellow", {245, 215, 30}}, {"green", {30, 160, 50}},
                                             {"blue", {30, 70, 220}},    {"purple", {130, 50, 180}},
                                             {"pink", {245, 120, 190}},  {"brown", {120, 70, 30}}};
  return c;
}

const std::vector<NamedColour>& background_colours() {
  static const std::vector<NamedColour> c = {{"white", {255, 255, 255}},
                                             {"black", {0, 0, 0}},
                                             {"gray", {128, 128, 128}},
                                             {"beige", {235, 220, 190}}};
  return c;
}

const char* shape_name(Shape s) {
  static const char* n[] = {"circle", "square", "triangle", "diamond", "star"};
  return n[static_cast<int>(s)];
}

const char* size_name(Size s) {
  static const char* n[] = {"small", "medium", "large"};
  return n[static_cast<int>(s)];
}

const char* position_name(Position p) {
  static const char* n[] = {"top left", "top",         "top right", "left",        "centre",
                            "right",    "bottom left", "bottom",    "bottom right"};
  return n[static_cast<int>(p)];
}

void position_centre(Position p, int image_size, double* cx, double* cy) {
  static const double at[] = {0.23, 0.5, 0.77};
  const int i = static_cast<int>(p);
  *cx = at[i % 3] * image_size;
  *cy = at[i / 3] * image_size;
}

double size_radius(Size s, int image_size) {
  // Small objects are ~14 pixels across at 64x64 (under two latent pixels of the 8x-down VAE):
  // smaller ones lose their corners in the autoencoder and cannot be told apart by shape.
  static const double r[] = {0.11, 0.15, 0.2};
  return r[static_cast<int>(s)] * image_size;
}

bool is_held_out(int colour, Shape shape, Position position) {
  // For a fixed colour and shape, position * 5 mod 8 visits every residue: one or two of the
  // nine positions are held out, the rest are seen in training.
  return (colour * 7 + static_cast<int>(shape) * 3 + static_cast<int>(position) * 5) % 8 == 3;
}

bool is_held_out(const Scene& scene) {
  return std::any_of(scene.objects.begin(), scene.objects.end(), [](const SceneObject& o) {
    return is_held_out(o.colour, o.shape, o.position);
  });
}

namespace {

// Point-in-polygon (even-odd rule); v holds x0, y0, x1, y1, ...
bool in_polygon(const double* v, int n, double x, double y) {
  bool in = false;
  for (int i = 0, j = n - 1; i < n; j = i++) {
    const double xi = v[2 * i], yi = v[2 * i + 1], xj = v[2 * j], yj = v[2 * j + 1];
    if ((yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi) in = !in;
  }
  return in;
}

void regular_polygon(int n, double r, double start, double* v) {
  for (int i = 0; i < n; ++i) {
    const double a = start + 2 * M_PI * i / n;
    v[2 * i] = r * std::cos(a);
    v[2 * i + 1] = r * std::sin(a);
  }
}

SceneObject random_object(Rng& rng, const DatasetOptions& o, bool two) {
  SceneObject ob;
  ob.shape = static_cast<Shape>(rng.uniform(std::clamp(o.num_shapes, 1, kNumShapes)));
  ob.colour = rng.uniform(static_cast<int>(object_colours().size()));
  ob.size = static_cast<Size>(rng.uniform(two ? 2 : kNumSizes));
  ob.position = static_cast<Position>(rng.uniform(kNumPositions));
  return ob;
}

void place(SceneObject& ob, Rng& rng, int image_size) {
  position_centre(ob.position, image_size, &ob.cx, &ob.cy);
  const double jitter = 0.03 * image_size;
  ob.cx += (rng.uniform01() * 2 - 1) * jitter;
  ob.cy += (rng.uniform01() * 2 - 1) * jitter;
  ob.radius = size_radius(ob.size, image_size) * (0.92 + 0.16 * rng.uniform01());
  ob.angle = 0;
}

// Grid positions two cells apart in a row or a column: the objects cannot overlap.
bool far_apart(Position a, Position b) {
  const int ia = static_cast<int>(a), ib = static_cast<int>(b);
  return std::abs(ia % 3 - ib % 3) == 2 || std::abs(ia / 3 - ib / 3) == 2;
}

std::string article(const std::string& word) {
  return std::string("aeiou").find(word[0]) != std::string::npos ? "an " : "a ";
}

// The object as a noun phrase; `mention` may leave out its colour or shape ("a small shape").
// Draws the same numbers from `rng` whatever it leaves out.
std::string object_phrase(const SceneObject& ob, Rng& rng, Mention mention = Mention::kAll) {
  static const std::vector<std::vector<std::string>> sizes = {
      {"small", "little", "tiny"},
      {"medium", "medium-sized", "mid-sized"},
      {"large", "big", "huge"}};
  static const std::vector<std::vector<std::string>> shapes = {{"circle", "circle", "disk"},
                                                               {"square"},
                                                               {"triangle"},
                                                               {"diamond", "diamond", "rhombus"},
                                                               {"star"}};
  const std::string size = rng.pick(sizes[static_cast<size_t>(ob.size)]);
  const std::string shape = rng.pick(shapes[static_cast<size_t>(ob.shape)]);
  const bool with_colour = mention == Mention::kAll || mention == Mention::kNoShape;
  const bool with_shape = mention == Mention::kAll || mention == Mention::kNoColour;
  const std::string noun =
      (with_colour ? std::string(object_colours()[static_cast<size_t>(ob.colour)].name) + " "
                   : "") +
      (with_shape ? shape : "shape");
  // "a small red circle"; now and then "a red circle of small size", "a red circle" (no
  // size: the model picks one) or "red circle" (no article, as prompts are often written)
  switch (rng.uniform(12)) {
    case 0:
    case 1:
      if (ob.size != Size::kMedium)
        return article(noun) + noun + " of " + sizes[static_cast<size_t>(ob.size)][0] + " size";
      break;
    case 2:
    case 3:
      return article(noun) + noun;
    case 4:
      return noun;
    default:
      break;
  }
  return article(size) + size + " " + noun;
}

std::string position_phrase(Position p, Rng& rng) {
  static const std::vector<std::vector<std::string>> phrases = {
      {"in the top left corner", "in the upper left corner", "at the top left",
       "in the top-left corner"},
      {"at the top", "near the top", "at the top centre", "in the upper middle"},
      {"in the top right corner", "in the upper right corner", "at the top right",
       "in the top-right corner"},
      {"on the left", "on the left side", "at the left", "to the left"},
      {"in the centre", "in the center", "in the middle", "at the centre"},
      {"on the right", "on the right side", "at the right", "to the right"},
      {"in the bottom left corner", "in the lower left corner", "at the bottom left",
       "in the bottom-left corner"},
      {"at the bottom", "near the bottom", "at the bottom centre", "in the lower middle"},
      {"in the bottom right corner", "in the lower right corner", "at the bottom right",
       "in the bottom-right corner"}};
  return rng.pick(phrases[static_cast<size_t>(p)]);
}

std::string colour_word(int background, Rng& rng) {
  const std::string name = background_colours()[static_cast<size_t>(background)].name;
  if (name == "gray" && rng.uniform(2)) return "grey";
  return name;
}

}  // namespace

bool inside(const SceneObject& o, double x, double y) {
  const double dx = x - o.cx, dy = y - o.cy, r = o.radius;
  double v[20];
  switch (o.shape) {
    case Shape::kCircle:
      return dx * dx + dy * dy <= r * r;
    case Shape::kSquare:
      return std::abs(dx) <= 0.8 * r && std::abs(dy) <= 0.8 * r;
    case Shape::kTriangle:  // pointing up, centroid at the centre
      regular_polygon(3, 1.15 * r, -M_PI / 2 + o.angle, v);
      return in_polygon(v, 3, dx, dy);
    case Shape::kDiamond:
      return std::abs(dx) / (0.9 * r) + std::abs(dy) / r <= 1.0;
    case Shape::kStar: {
      for (int i = 0; i < 10; ++i) {
        const double a = -M_PI / 2 + o.angle + M_PI * i / 5;
        const double rr = (i % 2 ? 0.5 : 1.15) * r;
        v[2 * i] = rr * std::cos(a);
        v[2 * i + 1] = rr * std::sin(a);
      }
      return in_polygon(v, 10, dx, dy);
    }
  }
  return false;
}

Scene sample_scene(Rng& rng, Split split, const DatasetOptions& o) {
  Scene s;
  const bool two = rng.uniform01() < o.two_object_fraction;
  const int n_bg = static_cast<int>(background_colours().size());
  s.background = rng.uniform(n_bg);
  for (int attempt = 0;; ++attempt) {
    if (attempt > 10000) throw std::runtime_error("sample_scene: no scene fits the split");
    s.objects.clear();
    SceneObject a = random_object(rng, o, two);
    const bool a_held = is_held_out(a.colour, a.shape, a.position);
    if ((split == Split::kTrain) == a_held) continue;
    s.objects.push_back(a);
    if (two) {
      SceneObject b = random_object(rng, o, true);
      if (!far_apart(a.position, b.position) || is_held_out(b.colour, b.shape, b.position) ||
          (b.colour == a.colour && b.shape == a.shape))
        continue;
      s.objects.push_back(b);
    }
    break;
  }
  for (auto& ob : s.objects) place(ob, rng, o.image_size);
  return s;
}

std::string caption(const Scene& scene, Rng& rng, bool* names_background, Mention mention) {
  const std::string bg = colour_word(scene.background, rng);
  static const std::vector<std::string> bg_forms = {
      "on a {} background",   "against a {} background",  "on {}",
      "with a {} background", "on a plain {} background", "in front of a {} background"};
  std::string bg_phrase = rng.pick(bg_forms);
  bg_phrase.replace(bg_phrase.find("{}"), 2, bg);
  const std::string bg_noun = article(bg) + bg + " background";
  // about one caption in eight leaves the background out ("a red circle on the left")
  const bool with_bg = rng.uniform(8) != 0;
  if (names_background) *names_background = with_bg;
  const std::string tail = with_bg ? " " + bg_phrase : "";
  if (scene.objects.size() == 1) {
    // the object phrase is followed by its position; some forms lead with the position
    const std::string obj = object_phrase(scene.objects[0], rng, mention);
    const std::string pos = position_phrase(scene.objects[0].position, rng);
    switch (rng.uniform(7)) {
      case 0:
        return obj + " " + pos + tail;
      case 1:
        return pos + ", " + obj + tail;
      case 2:
        if (with_bg) return bg_noun + " with " + obj + " " + pos;
        return obj + " " + pos;
      case 3:
        return "there is " + obj + " " + pos + tail;
      case 4: {
        static const std::vector<std::string> leads = {"a picture of ", "an image of ",
                                                       "a drawing of ", "a simple drawing of "};
        return rng.pick(leads) + obj + " " + pos + tail;
      }
      case 5:
        return obj + ", " + pos + (with_bg ? ", " + bg_noun : "");
      default:
        return obj + ", " + pos + (with_bg ? ", " + bg_phrase : "");
    }
  }
  std::vector<std::string> parts;
  for (const auto& ob : scene.objects)
    parts.push_back(object_phrase(ob, rng) + " " + position_phrase(ob.position, rng));
  switch (rng.uniform(3)) {
    case 0:
      return parts[0] + " and " + parts[1] + tail;
    case 1:
      if (with_bg) return bg_noun + " with " + parts[0] + " and " + parts[1];
      return parts[0] + " and " + parts[1];
    default:
      return "two shapes: " + parts[0] + ", " + parts[1] + (with_bg ? ", " + bg_phrase : "");
  }
}

Scene described_scene(const Sample& sample) {
  Scene s = sample.scene;
  if (!sample.background_named) s.background = -1;
  return s;
}

std::vector<uint8_t> render(const Scene& scene, int image_size) {
  if (image_size <= 0) throw std::invalid_argument("render: image size must be positive");
  const Rgb bg = background_colours()[static_cast<size_t>(scene.background)].rgb;
  std::vector<uint8_t> out(static_cast<size_t>(image_size) * image_size * 3);
  constexpr int kSub = 4;  // 4x4 samples per pixel
  for (int y = 0; y < image_size; ++y) {
    for (int x = 0; x < image_size; ++x) {
      double acc[3] = {0, 0, 0};
      for (int sy = 0; sy < kSub; ++sy) {
        for (int sx = 0; sx < kSub; ++sx) {
          const double px = x + (sx + 0.5) / kSub, py = y + (sy + 0.5) / kSub;
          Rgb c = bg;
          for (const auto& ob : scene.objects)  // later objects on top
            if (inside(ob, px, py)) c = object_colours()[static_cast<size_t>(ob.colour)].rgb;
          acc[0] += c.r;
          acc[1] += c.g;
          acc[2] += c.b;
        }
      }
      uint8_t* p = &out[(static_cast<size_t>(y) * image_size + x) * 3];
      for (int k = 0; k < 3; ++k) p[k] = static_cast<uint8_t>(std::lround(acc[k] / (kSub * kSub)));
    }
  }
  return out;
}

Rng sample_rng(const DatasetOptions& o, Split split, uint64_t index) {
  Rng seeder(o.seed ^ (split == Split::kTrain ? 0x5452414EULL : 0x48454C44ULL));
  const uint64_t base = seeder.next();
  // The sample's stream starts at a hashed state: seeding with base + index * step (the
  // generator's own increment) would make sample i+1's stream sample i's shifted by one draw,
  // and rejection sampling then synchronises neighbours into identical scenes.
  Rng mixer(base ^ (index * 0xD1B54A32D192ED03ULL));
  return Rng(mixer.next());
}

Sample make_sample(const DatasetOptions& o, Split split, uint64_t index) {
  Rng rng = sample_rng(o, split, index);
  Sample s;
  s.scene = sample_scene(rng, split, o);
  s.caption = caption(s.scene, rng, &s.background_named);
  s.rgb = render(s.scene, o.image_size);
  return s;
}

}  // namespace sdgen::data
