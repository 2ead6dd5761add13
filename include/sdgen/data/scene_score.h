// Scores an image against the scene its prompt describes (issue #6's evaluation): the
// background colour, and for each object its colour, grid position and shape. Torch-free, so
// it reads any RGB image: a render of the data set (where it must score 100%), or what a
// model made from the scene's caption.
//
// How: the background is the median colour of the image's border; pixels far from it are
// foreground, split into 8-connected components; the largest components are matched to the
// expected objects (the assignment with the smallest total colour distance; between objects
// of one colour, the one nearer their expected places). An object's
// colour is the palette colour nearest the component's per-channel median, its position the
// 3x3 grid cell of its centroid, its shape the one whose rendered template (same centre and
// area, a few offsets and scales tried) overlaps the component best (intersection over union).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "sdgen/data/scenes.h"

namespace sdgen::data {

struct DetectedObject {
  int colour = -1;  // nearest object_colours() index
  Position position = Position::kCentre;
  Shape shape = Shape::kCircle;
  double shape_iou = 0;  // of the best template
  double cx = 0, cy = 0;
  int area = 0;  // pixels
};

struct ObjectScore {
  bool found = false;  // a component was matched to the object
  bool colour = false, position = false, shape = false;
  DetectedObject detected;
};

struct SceneScore {
  int background = -1;             // nearest background_colours() index
  bool background_scored = false;  // the expected scene names a background (not -1)
  bool background_ok = false;
  std::vector<ObjectScore> objects;  // one per expected object, in the scene's order
  int extra_components = 0;          // foreground components beyond the expected objects
};

// rgb: size * size * 3, row-major. expected.background -1: any background (not scored).
SceneScore score_image(const std::vector<uint8_t>& rgb, int size, const Scene& expected);

// Accuracy over many scored images: each object attribute over all expected objects.
struct ScoreTotals {
  int images = 0, objects = 0;
  int backgrounds = 0;  // images whose expected scene names a background
  int background = 0, found = 0, colour = 0, position = 0, shape = 0;
  int all_correct_images = 0;  // the background (where named) and every object attribute right
  void add(const SceneScore& s);
  double rate(int n, int of) const { return of ? static_cast<double>(n) / of : 0.0; }
  std::string summary() const;  // "colour 97.5%, position 93.0%, ..."
};

}  // namespace sdgen::data
