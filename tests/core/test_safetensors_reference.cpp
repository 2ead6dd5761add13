// The safetensors reader on the shared reference files.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "sdgen/io/safetensors.h"

using ::testing::AllOf;
using ::testing::HasSubstr;

namespace sdgen {
namespace {

TEST(SafetensorsReferenceTest, TinySd1) {
  auto f = SafetensorsFile::open(SDGEN_REFERENCE_DIR "/tiny-sd1.safetensors");
  EXPECT_EQ(f->tensors().size(), 663u);
  ASSERT_EQ(f->metadata().count("format"), 1u);
  EXPECT_EQ(f->metadata().at("format"), "pt");
  EXPECT_EQ(f->metadata().count("description"), 1u);

  const TensorInfo* conv = f->find("first_stage_model.decoder.conv_in.weight");
  ASSERT_NE(conv, nullptr);
  EXPECT_EQ(conv->dtype, DType::F32);
  EXPECT_EQ(conv->shape, (std::vector<int64_t>{64, 4, 3, 3}));
  EXPECT_EQ(conv->nbytes(), 64u * 4 * 3 * 3 * 4);

  const TensorInfo* nu = f->find("model_ema.num_updates");
  ASSERT_NE(nu, nullptr);
  EXPECT_EQ(nu->dtype, DType::I32);
  EXPECT_TRUE(nu->shape.empty());
  EXPECT_EQ(nu->numel(), 1u);
  EXPECT_EQ(nu->nbytes(), 4u);

  const TensorInfo* decay = f->find("model_ema.decay");
  ASSERT_NE(decay, nullptr);
  EXPECT_EQ(decay->dtype, DType::F32);
  EXPECT_TRUE(decay->shape.empty());

  const TensorInfo* pos =
      f->find("cond_stage_model.transformer.text_model.embeddings.position_ids");
  ASSERT_NE(pos, nullptr);
  EXPECT_EQ(pos->dtype, DType::I64);
  EXPECT_EQ(pos->shape, (std::vector<int64_t>{1, 77}));
  for (int i = 0; i < 77; ++i) {
    int64_t v;
    std::memcpy(&v, f->data(*pos) + 8 * i, 8);
    EXPECT_EQ(v, i);
  }

  // Sorted by offsets, contiguous, each aligned; names of the three components.
  uint64_t end = 0;
  int unet = 0, vae = 0, clip = 0;
  for (const TensorInfo& t : f->tensors()) {
    EXPECT_EQ(t.begin, end) << t.name;
    end = t.end;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(f->data(t)) % dtype_size(t.dtype), 0u) << t.name;
    unet += t.name.rfind("model.diffusion_model.", 0) == 0;
    vae += t.name.rfind("first_stage_model.", 0) == 0;
    clip += t.name.rfind("cond_stage_model.transformer.text_model.", 0) == 0;
  }
  EXPECT_EQ(unet, 432);
  EXPECT_EQ(vae, 180);
  EXPECT_EQ(clip, 37);
}

TEST(SafetensorsReferenceTest, OtherReferenceFilesOpen) {
  for (const char* n :
       {"clip_io", "vae_io", "unet_io", "samplers_io", "e2e_euler", "torch_randn"}) {
    SCOPED_TRACE(n);
    auto f = SafetensorsFile::open(std::string(SDGEN_REFERENCE_DIR "/") + n + ".safetensors");
    EXPECT_FALSE(f->tensors().empty());
  }
}

TEST(SafetensorsReferenceTest, MissingFile) {
  try {
    SafetensorsFile::open("/nonexistent/dir/model.safetensors");
    ADD_FAILURE() << "no throw";
  } catch (const SafetensorsError& e) {
    EXPECT_THAT(std::string(e.what()),
                AllOf(HasSubstr("/nonexistent/dir/model.safetensors"), HasSubstr("cannot open")));
  }
}

}  // namespace
}  // namespace sdgen
