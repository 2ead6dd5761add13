// Prompt files, output templates and shards.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <sstream>

#include "sdgen/io/output_template.h"
#include "sdgen/job/prompt_file.h"

namespace sdgen {
namespace {

using ::testing::HasSubstr;

// Lines over the parameters' defaults (the command line of these tests gives none).
std::vector<JobLine> parse(const std::string& text, PromptFormat f, const JobParams& cli = {}) {
  std::istringstream in(text);
  return parse_prompt_file(in, f, "p.txt", cli);
}

std::string error_of(const std::string& text, PromptFormat f) {
  try {
    parse(text, f);
  } catch (const PromptFileError& e) {
    return e.what();
  }
  return "";
}

TEST(PromptFile, TxtSkipsBlankAndCommentLines) {
  auto jobs =
      parse("# a comment\n\na red fox  \n   \n  # indented comment\nblue sky\n", PromptFormat::Txt);
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs[0].params.image.prompt, "a red fox");
  EXPECT_EQ(jobs[0].line, 3);
  EXPECT_EQ(jobs[1].params.image.prompt, "blue sky");
  EXPECT_EQ(jobs[1].line, 6);
  EXPECT_TRUE(jobs[1].params.random_seed);
}

TEST(PromptFile, EmptyFileIsAnError) {
  EXPECT_THAT(error_of("\n# nothing\n", PromptFormat::Txt), HasSubstr("no prompts"));
}

TEST(PromptFile, JsonlFieldsAndTypes) {
  auto jobs = parse(
      R"({"prompt": "a fox", "negative_prompt": "blur", "seed": 7, "steps": 12, "cfg_scale": 5.5, "size": "96x64", "sampler": "euler_a", "scheduler": "karras", "batch_count": 3, "clip_skip": 2, "output": "x/{seed}.png"})"
      "\n\n{\"prompt\": \"only\"}\n",
      PromptFormat::Jsonl);
  ASSERT_EQ(jobs.size(), 2u);
  const auto& j = jobs[0].params;
  EXPECT_EQ(j.image.prompt, "a fox");
  EXPECT_EQ(j.image.negative_prompt, "blur");
  EXPECT_EQ(j.image.seed, 7u);
  EXPECT_FALSE(j.random_seed);
  EXPECT_EQ(j.image.steps, 12);
  EXPECT_DOUBLE_EQ(j.image.cfg_scale, 5.5);
  EXPECT_EQ(j.image.width, 96);
  EXPECT_EQ(j.image.height, 64);
  EXPECT_EQ(j.image.sampler, "euler_a");
  EXPECT_EQ(j.image.scheduler, "karras");
  EXPECT_EQ(j.batch_count, 3);
  EXPECT_EQ(j.image.clip_skip, 2);
  EXPECT_EQ(j.output, "x/{seed}.png");
  EXPECT_EQ(jobs[1].line, 3);
  EXPECT_EQ(jobs[1].params.image.steps, 30);  // the default (no command-line value here)
  EXPECT_EQ(jobs[1].params.image.prompt, "only");
}

TEST(PromptFile, JsonlErrorsNameTheLine) {
  EXPECT_THAT(error_of("{\"prompt\": \"a\"}\n{\"promt\": \"b\"}\n", PromptFormat::Jsonl),
              HasSubstr("p.txt:2: unknown key 'promt'"));
  EXPECT_THAT(error_of("{\"prompt\": \"a\", \"steps\": \"20\"}\n", PromptFormat::Jsonl),
              HasSubstr("p.txt:1: 'steps' must be an integer, got string \"20\""));
  EXPECT_THAT(error_of("\n\n{\"prompt\": \"a\",}\n", PromptFormat::Jsonl),
              HasSubstr("p.txt:3: not valid JSON"));
  EXPECT_THAT(error_of("[1, 2]\n", PromptFormat::Jsonl),
              HasSubstr("p.txt:1: expected a JSON object"));
  EXPECT_THAT(error_of("{\"size\": \"512\"}\n", PromptFormat::Jsonl),
              HasSubstr("p.txt:1: size must be WIDTHxHEIGHT"));
  EXPECT_THAT(error_of("{\"steps\": 0}\n", PromptFormat::Jsonl),
              HasSubstr("p.txt:1: steps must be between 1 and 10000, got 0"));
  EXPECT_THAT(error_of("{\"seed\": -5}\n", PromptFormat::Jsonl),
              HasSubstr("p.txt:1: seed must be -1"));
}

TEST(PromptFile, A1111OptionLines) {
  auto jobs = parse(
      "--prompt \"a castle, (sunset:1.2)\" --negative_prompt blurry low quality --steps 20 "
      "--cfg_scale 7.5 --seed 5 --width 96 --height 64 --sampler_name \"DPM++ 2M Karras\" "
      "--n_iter 2 --batch_size 3\n"
      "just a plain prompt\n"
      "--prompt 'single quoted' --tiling true\n",
      PromptFormat::A1111);
  ASSERT_EQ(jobs.size(), 3u);
  const auto& j = jobs[0].params;
  EXPECT_EQ(j.image.prompt, "a castle, (sunset:1.2)");
  EXPECT_EQ(j.image.negative_prompt, "blurry low quality");
  EXPECT_EQ(j.image.steps, 20);
  EXPECT_DOUBLE_EQ(j.image.cfg_scale, 7.5);
  EXPECT_EQ(j.image.seed, 5u);
  EXPECT_EQ(j.image.width, 96);
  EXPECT_EQ(j.image.height, 64);
  EXPECT_EQ(j.image.sampler, "DPM++ 2M Karras");
  EXPECT_EQ(j.batch_count, 6);
  EXPECT_EQ(jobs[1].params.image.prompt, "just a plain prompt");
  EXPECT_EQ(jobs[2].params.image.prompt, "single quoted");
  ASSERT_EQ(jobs[2].warnings.size(), 1u);
  EXPECT_THAT(jobs[2].warnings[0], HasSubstr("--tiling ignored"));
}

TEST(PromptFile, A1111LinesThatAreNotOptionLinesArePrompts) {
  // As A1111's prompts_from_file: a line its cmdargs() cannot read as options (an unknown
  // option, no value after one, a word without "--", unbalanced quotes) is the prompt, whole,
  // and the reason is logged with the line.
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--prompt x --colour red", "unknown option --colour"},
      {"--prompt \"unterminated", "no closing quotation"},
      {"--steps", "no value after --steps"},
      {"--prompt a cat --tiling", "no value after --tiling"},
      {"--steps 20 cat", "'cat' does not start with \"--\""}};
  for (const auto& [line, why] : cases) {
    auto jobs = parse("ok\n" + line + "\n", PromptFormat::A1111);
    ASSERT_EQ(jobs.size(), 2u) << line;
    EXPECT_EQ(jobs[1].params.image.prompt, line);
    EXPECT_EQ(jobs[1].params.image.steps, JobParams().image.steps) << line;
    ASSERT_EQ(jobs[1].warnings.size(), 1u) << line;
    EXPECT_THAT(jobs[1].warnings[0], HasSubstr("not an option line (" + why)) << line;
  }
  // A1111's boolean options take a value ("true" or anything else); sdgen has no tiling
  auto jobs = parse("--prompt a cat --tiling true --steps 7\n", PromptFormat::A1111);
  EXPECT_EQ(jobs[0].params.image.prompt, "a cat");
  EXPECT_EQ(jobs[0].params.image.steps, 7);
  ASSERT_EQ(jobs[0].warnings.size(), 1u);
  EXPECT_THAT(jobs[0].warnings[0], HasSubstr("--tiling ignored"));
}

TEST(PromptFile, A1111ValueErrorsNameTheLine) {
  // (A1111 would draw the line's text as a prompt; a typo in a value is caught here instead)
  EXPECT_THAT(error_of("ok\n--steps many\n", PromptFormat::A1111),
              HasSubstr("p.txt:2: --steps must be a whole number, got 'many'"));
  EXPECT_THAT(error_of("--prompt x --seed 18446744073709551616\n", PromptFormat::A1111),
              HasSubstr("p.txt:1: --seed must be -1 (random) or a whole number from 0 to "
                        "18446744073709551615"));
  EXPECT_THAT(error_of("--prompt x --cfg_scale nan\n", PromptFormat::A1111),
              HasSubstr("p.txt:1: --cfg_scale must be a number, got 'nan'"));
  EXPECT_THAT(error_of("--prompt x --n_iter 1000000 --batch_size 1000000\n", PromptFormat::A1111),
              HasSubstr("p.txt:1: --n_iter x --batch_size is 1000000000000 images"));
  // the seed range is the command line's: all of 64 bits
  auto jobs = parse("--prompt x --seed 18446744073709551615\n", PromptFormat::A1111);
  EXPECT_EQ(jobs[0].params.image.seed, 18446744073709551615ULL);
}

TEST(PromptFile, JsonlNumbersAndNullsGetPlainMessages) {
  EXPECT_EQ(error_of("{\"prompt\": \"a\", \"cfg_scale\": 1e400}\n", PromptFormat::Jsonl),
            "p.txt:1: not valid JSON: number overflow parsing '1e400'; numbers must fit in a "
            "64-bit float");
  EXPECT_EQ(error_of("{\"prompt\": \"a\", \"cfg_scale\": null}\n", PromptFormat::Jsonl),
            "p.txt:1: 'cfg_scale' must be a number, got null");
  EXPECT_EQ(error_of("{\"prompt\": \"a\", \"steps\": \"20\"}\n", PromptFormat::Jsonl),
            "p.txt:1: 'steps' must be an integer, got string \"20\"");
  EXPECT_THAT(error_of("{\"prompt\": \"a\\u0000b\"}\n", PromptFormat::Jsonl),
              HasSubstr("p.txt:1: prompt must not contain a NUL byte"));
  EXPECT_THAT(
      error_of("{\"prompt\": \"a\", \"seed\": 18446744073709551616}\n", PromptFormat::Jsonl),
      HasSubstr("p.txt:1: 'seed' must be an integer"));
  auto jobs = parse("{\"prompt\": \"a\", \"seed\": 18446744073709551615}\n", PromptFormat::Jsonl);
  EXPECT_EQ(jobs[0].params.image.seed, 18446744073709551615ULL);
}

TEST(PromptFile, ShellSplitFollowsShlex) {
  EXPECT_EQ(shell_split(R"(a "b c" 'd e' f\ g "h\"i" 'j\k')"),
            (std::vector<std::string>{"a", "b c", "d e", "f g", "h\"i", "j\\k"}));
  EXPECT_EQ(shell_split("  x\t\ty  "), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(shell_split(R"(""a'')"), (std::vector<std::string>{"a"}));
  EXPECT_THROW(shell_split("trailing\\"), std::invalid_argument);
}

TEST(PromptFile, FormatFromExtension) {
  EXPECT_EQ(prompt_format("jobs.jsonl", ""), PromptFormat::Jsonl);
  EXPECT_EQ(prompt_format("jobs.txt", ""), PromptFormat::Txt);
  EXPECT_EQ(prompt_format("-", "a1111"), PromptFormat::A1111);
  EXPECT_THROW(prompt_format("x", "csv"), std::invalid_argument);
}

TEST(OutputTemplate, ExpandsPlaceholdersAndWidths) {
  TemplateValues v{42, 1234, 7, "A red fox, sitting (in snow)!"};
  EXPECT_EQ(expand_output_template("outputs/{index:05}-{seed}.png", v), "outputs/00042-1234.png");
  EXPECT_EQ(expand_output_template("{line}_{index:4}_{prompt}.png", v),
            "7_  42_A-red-fox-sitting-in-snow.png");
  EXPECT_EQ(expand_output_template("{prompt:9}.png", v), "A-red-fox.png");
  EXPECT_EQ(expand_output_template("{{x}}-{index}", v), "{x}-42");
  EXPECT_THROW(expand_output_template("{name}.png", v), std::invalid_argument);
  EXPECT_THROW(expand_output_template("{index:x5}.png", v), std::invalid_argument);
  EXPECT_THROW(validate_output_template("out/{index"), std::invalid_argument);
  EXPECT_THROW(validate_output_template("out/"), std::invalid_argument);
  EXPECT_NO_THROW(validate_output_template("out/{prompt:20}-{seed}.png"));
}

TEST(OutputTemplate, Slugs) {
  EXPECT_EQ(slugify("  Zoë's -- café/../etc  "), "Zo-s-caf-etc");
  EXPECT_EQ(slugify("!!!"), "untitled");
  EXPECT_EQ(slugify("aaaa bbbb cccc", 11), "aaaa-bbbb");
  EXPECT_EQ(slugify("abcdefghij", 4), "abcd");
  const std::string slug = slugify(std::string(500, 'x') + " y");
  EXPECT_EQ(slug.size(), 60u);
}

TEST(Shards, PartitionIsDisjointCompleteAndIndependentOfCount) {
  for (uint64_t n : {1, 2, 3, 7}) {
    std::map<uint64_t, int> owners;
    for (uint64_t k = 0; k < n; ++k) {
      const Shard s = parse_shard(std::to_string(k) + "/" + std::to_string(n));
      for (uint64_t job = 0; job < 50; ++job)
        if (s.contains(job)) ++owners[job];
    }
    ASSERT_EQ(owners.size(), 50u) << n;                                  // complete
    for (const auto& [job, count] : owners) EXPECT_EQ(count, 1) << job;  // disjoint
  }
  EXPECT_THROW(parse_shard("3/3"), std::invalid_argument);
  EXPECT_THROW(parse_shard("1"), std::invalid_argument);
  EXPECT_THROW(parse_shard("a/b"), std::invalid_argument);
}

TEST(Shards, FromSlurmEnvironment) {
  std::map<std::string, std::string> env;
  auto get = [&](const char* k) -> const char* {
    auto it = env.find(k);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  Shard s = shard_from_environment(get);
  EXPECT_EQ(s.count, 1u);
  env = {{"SLURM_ARRAY_TASK_ID", "2"}, {"SLURM_ARRAY_TASK_COUNT", "3"}};
  s = shard_from_environment(get);
  EXPECT_EQ(s.index, 2u);
  EXPECT_EQ(s.count, 3u);
  env = {
      {"SLURM_ARRAY_TASK_ID", "5"}, {"SLURM_ARRAY_TASK_MIN", "4"}, {"SLURM_ARRAY_TASK_MAX", "7"}};
  s = shard_from_environment(get);
  EXPECT_EQ(s.index, 1u);
  EXPECT_EQ(s.count, 4u);
  env = {{"SLURM_ARRAY_TASK_ID", "9"},
         {"SLURM_ARRAY_TASK_MIN", "1"},
         {"SLURM_ARRAY_TASK_MAX", "9"},
         {"SLURM_ARRAY_TASK_STEP", "4"},
         {"SLURM_ARRAY_TASK_COUNT", "3"}};
  s = shard_from_environment(get);
  EXPECT_EQ(s.index, 2u);
  EXPECT_EQ(s.count, 3u);
  env = {{"SLURM_ARRAY_TASK_ID", "1"}};
  EXPECT_THROW(shard_from_environment(get), std::invalid_argument);
  auto message = [&] {
    try {
      shard_from_environment(get);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  env = {
      {"SLURM_ARRAY_TASK_ID", "5"}, {"SLURM_ARRAY_TASK_MIN", "7"}, {"SLURM_ARRAY_TASK_MAX", "3"}};
  EXPECT_EQ(message(),
            "SLURM_ARRAY_TASK_MIN (7) is above SLURM_ARRAY_TASK_MAX (3): not a Slurm array; pass "
            "--shard K/N");
  env = {{"SLURM_ARRAY_TASK_ID", "99999999999999999999999"}, {"SLURM_ARRAY_TASK_COUNT", "3"}};
  EXPECT_EQ(
      message(),
      "SLURM_ARRAY_TASK_ID is '99999999999999999999999', not a task number; pass --shard K/N");
  env = {{"SLURM_ARRAY_TASK_ID", "1"}, {"SLURM_ARRAY_TASK_COUNT", "x"}};
  EXPECT_EQ(message(), "SLURM_ARRAY_TASK_COUNT is 'x', not a task number; pass --shard K/N");
}

}  // namespace
}  // namespace sdgen
