// A1111's extra-network tags (modules/extra_networks.py, extra_networks_lora.py).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sdgen/job/params.h"
#include "sdgen/text/extra_networks.h"

namespace sdgen {
namespace {

TEST(ExtraNetworks, TagsAreCutOutAndNothingElseChanges) {
  const auto p = parse_extra_networks("a harbor town at dusk, <lora:inkwash:0.5>, fishing boats");
  EXPECT_EQ(p.text, "a harbor town at dusk, , fishing boats");
  ASSERT_EQ(p.tags.size(), 1u);
  EXPECT_EQ(p.tags[0].type, "lora");
  EXPECT_EQ(p.tags[0].positional, (std::vector<std::string>{"inkwash", "0.5"}));
  // unknown types are removed too; text that is no tag stays
  EXPECT_EQ(parse_extra_networks("x <hypernet:y:1> <not a tag> <:a> <lora:> z").text,
            "x  <not a tag> <:a> <lora:> z");
  // [^>]+ takes everything up to the first '>'
  EXPECT_EQ(parse_extra_networks("<lora:a:1 <b>").tags.at(0).positional,
            (std::vector<std::string>{"a", "1 <b"}));
}

TEST(ExtraNetworks, LoraMultipliersAsA1111) {
  auto one = [](const std::string& prompt) { return lora_tags(prompt).at(0); };
  EXPECT_EQ(one("<lora:a>"), (LoraTag{"a", 1.0, 1.0}));
  EXPECT_EQ(one("<lora:a:0.5>"), (LoraTag{"a", 0.5, 0.5}));
  EXPECT_EQ(one("<lora:a:-0.7>"), (LoraTag{"a", -0.7, -0.7}));
  EXPECT_EQ(one("<lora:a:1.2:0>"), (LoraTag{"a", 1.2, 0.0}));
  EXPECT_EQ(one("<lora:a:te=0.4:unet=0.9>"), (LoraTag{"a", 0.4, 0.9}));
  EXPECT_EQ(one("<lora:a:te=0.3>"), (LoraTag{"a", 0.3, 0.3})) << "unet follows the named te";
  EXPECT_EQ(one("<lora:a:1:unet=0.2>"), (LoraTag{"a", 1.0, 0.2}));
  EXPECT_EQ(lora_tags("<lora:a:1> and <lora:b:0.5> <hypernet:c:1>").size(), 2u);
  EXPECT_THROW(lora_tags("<lora:a:lots>"), std::invalid_argument);
  EXPECT_THROW(lora_tags("<lora:a:inf>"), std::invalid_argument);
}

TEST(ExtraNetworks, ImageLorasJoinTagsAndJsonl) {
  GenerationParams p;
  p.prompt = "a cat <lora:ink:0.5>";
  p.loras.push_back({"film", 1.0, 0.5});
  const auto all = image_loras(p);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].name, "ink");
  EXPECT_EQ(all[1].name, "film");
  // the infotext writes the jsonl LoRAs as tags, so the webuis reproduce the image
  const auto text = format_infotext(make_infotext(p, {}));
  EXPECT_EQ(text.rfind("a cat <lora:ink:0.5> <lora:film:1:0.5>\n", 0), 0u) << text;
  // images with other LoRAs do not share a UNet batch
  GenerationParams q = p;
  EXPECT_TRUE(batchable(p, q));
  q.loras.clear();
  EXPECT_FALSE(batchable(p, q));
  // a bad tag is a parameter error
  q.prompt = "<lora:x:much>";
  EXPECT_THROW(validate_params(q, {}), std::invalid_argument);
}

}  // namespace
}  // namespace sdgen
