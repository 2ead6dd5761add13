// The procedural data set of sdgen's own default model (issue #6): anti-aliased shapes of a
// few colours, sizes and positions on plain backgrounds, each with a natural English caption.
// Torch-free and deterministic: sample i of seed s is the same on every machine (the code uses
// its own random number generator and no std:: distributions). Some colour x shape x position
// combinations never occur in the training split; the held-out split uses only them.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sdgen::data {

enum class Shape { kCircle, kSquare, kTriangle, kDiamond, kStar };
enum class Size { kSmall, kMedium, kLarge };
// Position on a 3x3 grid: index = row * 3 + column (row 0 top, column 0 left).
enum class Position {
  kTopLeft,
  kTop,
  kTopRight,
  kLeft,
  kCentre,
  kRight,
  kBottomLeft,
  kBottom,
  kBottomRight
};

constexpr int kNumShapes = 5;
constexpr int kNumSizes = 3;
constexpr int kNumPositions = 9;

struct Rgb {
  uint8_t r, g, b;
};

// The object palette (8 colours) and the background palette.
struct NamedColour {
  const char* name;
  Rgb rgb;
};
const std::vector<NamedColour>& object_colours();
const std::vector<NamedColour>& background_colours();

const char* shape_name(Shape s);
const char* size_name(Size s);
const char* position_name(Position p);  // "top left", "centre", ...

struct SceneObject {
  Shape shape = Shape::kCircle;
  int colour = 0;  // index into object_colours()
  Size size = Size::kMedium;
  Position position = Position::kCentre;
  // Drawn geometry in pixels of the image (centre, circumradius, rotation in radians).
  double cx = 0, cy = 0, radius = 0, angle = 0;
};

struct Scene {
  // index into background_colours(); -1 in a scene a prompt describes: it names none
  int background = 0;
  std::vector<SceneObject> objects;  // one or two, never overlapping
};

enum class Split { kTrain, kHeldOut };

struct DatasetOptions {
  int image_size = 64;
  uint64_t seed = 0;
  double two_object_fraction = 0.25;
  int num_shapes = kNumShapes;  // the first n shapes of Shape are used
};

struct Sample {
  Scene scene;
  std::string caption;
  bool background_named = true;  // the caption names the background colour
  std::vector<uint8_t> rgb;      // image_size * image_size * 3, row-major
};

// A small deterministic generator (splitmix64).
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next();
  int uniform(int n);  // 0 .. n-1
  double uniform01();  // [0, 1)
  template <typename T>
  const T& pick(const std::vector<T>& v) {
    return v[static_cast<size_t>(uniform(static_cast<int>(v.size())))];
  }

 private:
  uint64_t state_;
};

// Whether the colour x shape x position combination belongs to the held-out split (about one
// in eight combinations; every colour, shape and position still occurs in training).
bool is_held_out(int colour, Shape shape, Position position);
// A scene is held out when any of its objects is.
bool is_held_out(const Scene& scene);

// A random scene of `split`, with drawn geometry for an image of `image_size` pixels.
Scene sample_scene(Rng& rng, Split split, const DatasetOptions& o);
// What a caption says of a one-object scene's object: everything, or (to train each attribute
// from its own words, independent of the others) all but its colour, its shape or both: "a
// small circle ...", "a small red shape ...", "a small shape in the top left corner".
enum class Mention { kAll, kNoColour, kNoShape, kNoColourShape };

// One of many phrasings of the scene in plain English (lower case). Some leave out the size
// words, the articles or the background (then *names_background is set false), as people
// write prompts. `mention` applies to one-object scenes (two objects are always named fully);
// whatever it leaves out, the same numbers are drawn from `rng`.
std::string caption(const Scene& scene, Rng& rng, bool* names_background = nullptr,
                    Mention mention = Mention::kAll);
// The scene as its caption describes it: the background -1 where the caption names none.
Scene described_scene(const Sample& sample);
// The scene anti-aliased (4x4 supersampling per pixel).
std::vector<uint8_t> render(const Scene& scene, int image_size);
// Whether the point (x, y) in pixels lies inside the object.
bool inside(const SceneObject& o, double x, double y);

// The generator of sample `index` of a split: seeded from a hash of (o.seed, split, index), so
// samples' streams are unrelated.
Rng sample_rng(const DatasetOptions& o, Split split, uint64_t index);
// Sample `index` of the split: scene, then caption, from sample_rng(o, split, index).
Sample make_sample(const DatasetOptions& o, Split split, uint64_t index);

// Pixel centre of a grid position for an image of `image_size` pixels.
void position_centre(Position p, int image_size, double* cx, double* cy);
// Circumradius in pixels of a size for an image of `image_size` pixels.
double size_radius(Size s, int image_size);

}  // namespace sdgen::data
