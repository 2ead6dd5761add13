// `sdgen bench`: the benchmark subcommand (see tools/bench.h).
#pragma once
#include <string>

#include <CLI/CLI.hpp>

#include "tools/bench.h"

namespace sdgen::cli {

struct BenchCliOptions {
  BenchOptions bench;
  std::string size;  // WIDTHxHEIGHT
  std::string device, dtype, out;
  bool json = false, quiet = false;
};

// Adds the `bench` subcommand to `app`, its options written to `o`.
CLI::App* add_bench_command(CLI::App& app, BenchCliOptions& o);
// Runs it; returns the exit status (throws UsageError for bad options).
int run_bench_command(BenchCliOptions& o);

}  // namespace sdgen::cli
