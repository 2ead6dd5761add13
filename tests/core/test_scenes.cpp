// The procedural data set (include/sdgen/data/scenes.h): pixels, captions, determinism, split.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <tuple>

#include "sdgen/data/scenes.h"

namespace sdgen::data {
namespace {

Rgb pixel(const std::vector<uint8_t>& rgb, int size, int x, int y) {
  const uint8_t* p = &rgb[(static_cast<size_t>(y) * size + x) * 3];
  return {p[0], p[1], p[2]};
}

bool same(Rgb a, Rgb b) { return a.r == b.r && a.g == b.g && a.b == b.b; }

TEST(Scenes, RngIsSplitMix64) {
  Rng rng(0);
  EXPECT_EQ(rng.next(), 0xE220A8397B1DCDAFULL);  // splitmix64's first output for seed 0
  Rng a(7), b(7);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.uniform(9), b.uniform(9));
}

TEST(Scenes, Deterministic) {
  DatasetOptions o;
  o.seed = 42;
  for (uint64_t i : {0ULL, 1ULL, 17ULL}) {
    const auto a = make_sample(o, Split::kTrain, i);
    const auto b = make_sample(o, Split::kTrain, i);
    EXPECT_EQ(a.caption, b.caption);
    EXPECT_EQ(a.rgb, b.rgb);
  }
  EXPECT_NE(make_sample(o, Split::kTrain, 0).rgb, make_sample(o, Split::kTrain, 1).rgb);
  DatasetOptions other = o;
  other.seed = 43;
  EXPECT_NE(make_sample(o, Split::kTrain, 3).rgb, make_sample(other, Split::kTrain, 3).rgb);
}

TEST(Scenes, ObjectColourAtCentreBackgroundAtFreeCorner) {
  DatasetOptions o;
  o.two_object_fraction = 0;
  for (uint64_t i = 0; i < 50; ++i) {
    const auto s = make_sample(o, Split::kTrain, i);
    ASSERT_EQ(s.scene.objects.size(), 1u);
    const auto& ob = s.scene.objects[0];
    const Rgb want = object_colours()[static_cast<size_t>(ob.colour)].rgb;
    EXPECT_TRUE(same(pixel(s.rgb, 64, static_cast<int>(ob.cx), static_cast<int>(ob.cy)), want))
        << s.caption;
    // the corner diagonally opposite the object's column/row is always background
    const int col = static_cast<int>(ob.position) % 3, row = static_cast<int>(ob.position) / 3;
    const int x = col == 0 ? 63 : 0, y = row == 0 ? 63 : 0;
    EXPECT_TRUE(same(pixel(s.rgb, 64, x, y),
                     background_colours()[static_cast<size_t>(s.scene.background)].rgb))
        << s.caption;
  }
}

TEST(Scenes, PixelsFollowCoverageAndEdgesAreAntiAliased) {
  DatasetOptions o;
  o.seed = 3;
  o.two_object_fraction = 0.5;
  for (uint64_t i = 0; i < 12; ++i) {
    const auto s = make_sample(o, Split::kTrain, i);
    const Rgb bg = background_colours()[static_cast<size_t>(s.scene.background)].rgb;
    int partial = 0;
    for (int y = 0; y < 64; ++y) {
      for (int x = 0; x < 64; ++x) {
        // which object (if any, the topmost) covers each of the 16 sub-samples
        std::set<int> owners;
        for (int sy = 0; sy < 4; ++sy)
          for (int sx = 0; sx < 4; ++sx) {
            int owner = -1;
            for (size_t k = 0; k < s.scene.objects.size(); ++k)
              if (inside(s.scene.objects[k], x + (sx + 0.5) / 4, y + (sy + 0.5) / 4))
                owner = static_cast<int>(k);
            owners.insert(owner);
          }
        const Rgb p = pixel(s.rgb, 64, x, y);
        if (owners.size() == 1) {
          const int k = *owners.begin();
          const Rgb want =
              k < 0 ? bg : object_colours()[static_cast<size_t>(s.scene.objects[k].colour)].rgb;
          ASSERT_TRUE(same(p, want)) << s.caption << " at " << x << "," << y;
        } else if (owners.size() == 2 && owners.count(-1)) {
          const int k = *owners.rbegin();
          const Rgb c = object_colours()[static_cast<size_t>(s.scene.objects[k].colour)].rgb;
          // an edge pixel: every channel between the background and the object colour, and
          // strictly between in some channel
          auto between = [](int v, int a, int b) {
            return v >= std::min(a, b) && v <= std::max(a, b);
          };
          ASSERT_TRUE(between(p.r, bg.r, c.r) && between(p.g, bg.g, c.g) &&
                      between(p.b, bg.b, c.b));
          if (!same(p, bg) && !same(p, c)) ++partial;
        }
      }
    }
    EXPECT_GT(partial, 8) << "no anti-aliased edge in: " << s.caption;
  }
}

TEST(Scenes, CaptionsNameEveryObject) {
  DatasetOptions o;
  o.two_object_fraction = 0.3;
  std::set<std::string> distinct;
  int unnamed_background = 0, no_size_word = 0;
  for (uint64_t i = 0; i < 400; ++i) {
    const auto s = make_sample(o, Split::kTrain, i);
    distinct.insert(s.caption);
    bool sized = false;
    for (const auto& ob : s.scene.objects) {
      EXPECT_NE(s.caption.find(object_colours()[static_cast<size_t>(ob.colour)].name),
                std::string::npos)
          << s.caption;
      for (const char* w :
           {"small", "little", "tiny", "medium", "mid-sized", "large", "big", "huge"})
        sized = sized || s.caption.find(w) != std::string::npos;
    }
    no_size_word += !sized;
    // the background is named exactly when the sample says so
    const std::string bg = background_colours()[static_cast<size_t>(s.scene.background)].name;
    const bool named = s.caption.find(bg) != std::string::npos ||
                       (bg == "gray" && s.caption.find("grey") != std::string::npos);
    EXPECT_EQ(named, s.background_named) << s.caption;
    unnamed_background += !s.background_named;
    EXPECT_EQ(described_scene(s).background, s.background_named ? s.scene.background : -1);
    EXPECT_EQ(s.caption.find_first_of("()[]"), std::string::npos) << s.caption;
    EXPECT_EQ(s.caption, [&] {
      std::string l = s.caption;
      std::transform(l.begin(), l.end(), l.begin(), ::tolower);
      return l;
    }());
  }
  EXPECT_GT(distinct.size(), 380u);  // varied phrasings
  // one caption in eight leaves the background out; a quarter of the objects have no size word
  EXPECT_GT(unnamed_background, 25);
  EXPECT_LT(unnamed_background, 80);
  EXPECT_GT(no_size_word, 30);
  EXPECT_LT(no_size_word, 120);
}

// Partial captions (training-time attribute dropout) leave out exactly what they say, and draw
// the same random numbers as the full caption, so they do not shift anything drawn after them.
TEST(Scenes, PartialCaptionsLeaveOutColourOrShape) {
  DatasetOptions o;
  o.two_object_fraction = 0;
  const char* shape_words[][3] = {{"circle", "disk", "circle"},
                                  {"square", "square", "square"},
                                  {"triangle", "triangle", "triangle"},
                                  {"diamond", "rhombus", "diamond"},
                                  {"star", "star", "star"}};
  for (uint64_t i = 0; i < 60; ++i) {
    const auto scene = make_sample(o, Split::kTrain, i).scene;
    const auto& ob = scene.objects[0];
    const std::string colour = object_colours()[static_cast<size_t>(ob.colour)].name;
    auto has_shape_word = [&](const std::string& c) {
      for (const char* w : shape_words[static_cast<int>(ob.shape)])
        if (c.find(w) != std::string::npos) return true;
      return false;
    };
    std::vector<uint64_t> next;
    for (auto m : {Mention::kAll, Mention::kNoColour, Mention::kNoShape, Mention::kNoColourShape}) {
      Rng rng(1000 + i);
      const auto c = caption(scene, rng, nullptr, m);
      next.push_back(rng.next());
      const bool colour_named = c.find(colour) != std::string::npos;
      EXPECT_EQ(colour_named, m == Mention::kAll || m == Mention::kNoShape) << c;
      EXPECT_EQ(has_shape_word(c), m == Mention::kAll || m == Mention::kNoColour) << c;
      if (m == Mention::kNoShape || m == Mention::kNoColourShape) {
        EXPECT_NE(c.find("shape"), std::string::npos) << c;
      }
    }
    EXPECT_EQ(next[1], next[0]);
    EXPECT_EQ(next[2], next[0]);
    EXPECT_EQ(next[3], next[0]);
  }
}

TEST(Scenes, HeldOutSplitIsDisjoint) {
  using Combo = std::tuple<int, int, int>;
  std::set<Combo> train, held;
  DatasetOptions o;
  o.two_object_fraction = 0.3;
  std::set<int> colours, shapes, positions;
  for (uint64_t i = 0; i < 2000; ++i) {
    const auto s = make_sample(o, Split::kTrain, i);
    EXPECT_FALSE(is_held_out(s.scene));
    for (const auto& ob : s.scene.objects) {
      train.insert({ob.colour, static_cast<int>(ob.shape), static_cast<int>(ob.position)});
      colours.insert(ob.colour);
      shapes.insert(static_cast<int>(ob.shape));
      positions.insert(static_cast<int>(ob.position));
    }
  }
  for (uint64_t i = 0; i < 300; ++i) {
    const auto s = make_sample(o, Split::kHeldOut, i);
    EXPECT_TRUE(is_held_out(s.scene));
    const auto& ob = s.scene.objects[0];
    held.insert({ob.colour, static_cast<int>(ob.shape), static_cast<int>(ob.position)});
  }
  for (const auto& c : held) EXPECT_EQ(train.count(c), 0u);
  EXPECT_GT(held.size(), 20u);
  // every colour, shape and position is still seen in training
  EXPECT_EQ(colours.size(), object_colours().size());
  EXPECT_EQ(shapes.size(), static_cast<size_t>(kNumShapes));
  EXPECT_EQ(positions.size(), static_cast<size_t>(kNumPositions));
}

}  // namespace
}  // namespace sdgen::data

namespace sdgen::data {
namespace {

// Neighbouring samples must not share a random stream: with seeds base + i * step (the
// generator's increment) sample i+1 replayed sample i's draws shifted by one, and rejection
// sampling made held-out neighbours identical (about 50 distinct scenes in 200).
TEST(Scenes, NeighbouringSamplesAreUnrelated) {
  DatasetOptions o;
  o.seed = 1;
  for (auto split : {Split::kTrain, Split::kHeldOut}) {
    std::set<std::string> captions;
    std::set<std::vector<uint8_t>> images;
    for (uint64_t i = 0; i < 200; ++i) {
      const auto s = make_sample(o, split, i);
      captions.insert(s.caption);
      images.insert(s.rgb);
    }
    EXPECT_GE(captions.size(), 195u);
    EXPECT_GE(images.size(), 195u);
  }
}

}  // namespace
}  // namespace sdgen::data
