// The evaluation's scorer (include/sdgen/data/scene_score.h): it must find every attribute of
// the data set's own renders, and it must notice a wrong colour, position, shape, background
// or a missing object.
#include <gtest/gtest.h>

#include <stdexcept>

#include "sdgen/data/scene_score.h"

namespace sdgen::data {
namespace {

ScoreTotals score_split(Split split, int count, int size) {
  DatasetOptions o;
  o.seed = 5;
  o.image_size = size;
  o.two_object_fraction = 0.5;
  ScoreTotals t;
  for (int i = 0; i < count; ++i) {
    const auto s = make_sample(o, split, static_cast<uint64_t>(i));
    const auto score = score_image(s.rgb, size, s.scene);
    t.add(score);
    EXPECT_EQ(score.extra_components, 0) << "sample " << i << ": " << s.caption;
  }
  return t;
}

TEST(SceneScore, RendersOfTheDataSetScorePerfectly) {
  for (auto split : {Split::kTrain, Split::kHeldOut}) {
    const auto t = score_split(split, 300, 64);
    SCOPED_TRACE(t.summary());
    EXPECT_GT(t.objects, 300);  // some scenes have two objects
    EXPECT_EQ(t.found, t.objects);
    EXPECT_EQ(t.colour, t.objects);
    EXPECT_EQ(t.position, t.objects);
    EXPECT_EQ(t.shape, t.objects);
    EXPECT_EQ(t.background, t.images);
  }
}

TEST(SceneScore, LargerImagesToo) {
  const auto t = score_split(Split::kHeldOut, 60, 128);
  SCOPED_TRACE(t.summary());
  EXPECT_EQ(t.all_correct_images, t.images);
}

// A one-object scene and its render.
Sample one_object(Shape shape, int colour, Position position, int background) {
  Scene scene;
  scene.background = background;
  SceneObject ob;
  ob.shape = shape;
  ob.colour = colour;
  ob.size = Size::kMedium;
  ob.position = position;
  position_centre(position, 64, &ob.cx, &ob.cy);
  ob.radius = size_radius(Size::kMedium, 64);
  scene.objects.push_back(ob);
  Sample s;
  s.scene = scene;
  s.rgb = render(scene, 64);
  return s;
}

// A prompt that names no background (expected background -1): any background is right, and
// the image counts towards neither the background rate nor against "all right".
TEST(SceneScore, UnnamedBackgroundIsNotScored) {
  const auto s = one_object(Shape::kCircle, 0, Position::kLeft, 2);  // red circle on gray
  auto expect = s.scene;
  expect.background = -1;
  const auto r = score_image(s.rgb, 64, expect);
  EXPECT_FALSE(r.background_scored);
  EXPECT_EQ(r.background, 2);  // still detected
  ScoreTotals t;
  t.add(r);
  t.add(score_image(s.rgb, 64, s.scene));
  EXPECT_EQ(t.images, 2);
  EXPECT_EQ(t.backgrounds, 1);
  EXPECT_EQ(t.background, 1);
  EXPECT_EQ(t.all_correct_images, 2);
}

TEST(SceneScore, NoticesEachWrongAttribute) {
  const auto s = one_object(Shape::kStar, 4, Position::kTopRight, 0);  // blue star, white
  auto expect = s.scene;
  auto r = score_image(s.rgb, 64, expect);
  ASSERT_EQ(r.objects.size(), 1u);
  EXPECT_TRUE(r.background_ok && r.objects[0].colour && r.objects[0].position &&
              r.objects[0].shape);

  expect.objects[0].colour = 0;  // red
  r = score_image(s.rgb, 64, expect);
  EXPECT_FALSE(r.objects[0].colour);
  EXPECT_EQ(r.objects[0].detected.colour, 4);
  EXPECT_TRUE(r.objects[0].position && r.objects[0].shape);

  expect = s.scene;
  expect.objects[0].position = Position::kBottomLeft;
  r = score_image(s.rgb, 64, expect);
  EXPECT_FALSE(r.objects[0].position);
  EXPECT_EQ(r.objects[0].detected.position, Position::kTopRight);

  expect = s.scene;
  expect.objects[0].shape = Shape::kCircle;
  r = score_image(s.rgb, 64, expect);
  EXPECT_FALSE(r.objects[0].shape);
  EXPECT_EQ(r.objects[0].detected.shape, Shape::kStar);

  expect = s.scene;
  expect.background = 1;
  r = score_image(s.rgb, 64, expect);
  EXPECT_FALSE(r.background_ok);
  EXPECT_EQ(r.background, 0);
}

TEST(SceneScore, EachShapeIsToldFromTheOthers) {
  for (int sh = 0; sh < kNumShapes; ++sh)
    for (auto pos : {Position::kCentre, Position::kBottomLeft}) {
      const auto s = one_object(static_cast<Shape>(sh), 3, pos, 2);
      const auto r = score_image(s.rgb, 64, s.scene);
      EXPECT_EQ(r.objects[0].detected.shape, static_cast<Shape>(sh))
          << shape_name(s.scene.objects[0].shape);
      EXPECT_GT(r.objects[0].detected.shape_iou, 0.85);
    }
}

TEST(SceneScore, MissingObjectsScoreNothing) {
  auto s = one_object(Shape::kSquare, 1, Position::kLeft, 3);
  Scene blank = s.scene;
  blank.objects.clear();
  const auto empty = render(blank, 64);
  auto r = score_image(empty, 64, s.scene);
  ASSERT_EQ(r.objects.size(), 1u);
  EXPECT_FALSE(r.objects[0].found);
  EXPECT_FALSE(r.objects[0].colour || r.objects[0].position || r.objects[0].shape);
  EXPECT_TRUE(r.background_ok);

  // two expected, one drawn: the drawn one is matched by colour, the other is missing
  Scene two = s.scene;
  SceneObject other = two.objects[0];
  other.colour = 6;
  other.position = Position::kRight;
  two.objects.insert(two.objects.begin(), other);
  r = score_image(s.rgb, 64, two);
  EXPECT_FALSE(r.objects[0].found);
  EXPECT_TRUE(r.objects[1].found && r.objects[1].colour && r.objects[1].position);
  ScoreTotals t;
  t.add(r);
  EXPECT_EQ(t.objects, 2);
  EXPECT_EQ(t.colour, 1);
  EXPECT_EQ(t.all_correct_images, 0);
}

TEST(SceneScore, RejectsAWrongBufferSize) {
  const std::vector<uint8_t> rgb(10);
  EXPECT_THROW(score_image(rgb, 64, Scene{}), std::invalid_argument);
}

}  // namespace
}  // namespace sdgen::data
