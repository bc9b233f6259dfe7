// The markdown report of vgpu_bench: what a run measured (CaseDef, Report) and its rendering, with the machine
// description (CPU and memory from /proc, kernel, compiler, source revision, load and other heavy processes),
// the method, the results table (ratios against the other backends and the floors) and the notes.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "backends.h"
#include "stats.h"

namespace vgpu::bench {

class BenchRun;  // one backend, started, connected and negotiated (vgpu_bench.cc)

// One case of the table: how --cases and the report name it, its floor, and how it runs.
struct CaseDef {
  std::string group;  // small, frame, partial, churn (for --cases)
  std::string id;     // e.g. frame1080 (for --cases too)
  std::string title;
  std::string unit;  // what the rate counts
  Floor floor;
  // Runs the case on a backend's BenchRun and returns its summary.
  std::function<Summary(BenchRun&, const Config&)> run;
};

// Everything the document shows of one vgpu_bench run.
struct Report {
  std::vector<BackendSpec> backends;  // in table order; skipped ones included
  std::vector<CaseDef> cases;
  std::map<std::pair<size_t, std::string>, Summary> results;  // (case, backend) -> summary
  std::map<std::string, std::string> backend_errors;
  Floors floors;
  std::string command;
  std::string busy_before, busy_after;
  std::set<std::string> busy_during;  // heavy processes seen at the start of a case
  std::string load_before, load_after;
  Config config;
  bool quick = false;
};

// Latencies (ns) and rates as the report shows them.
std::string fmt_us(double ns);
std::string fmt_rate(double r);

// `s` quoted for a POSIX shell where it needs to be (the report's command line).
std::string shell_quote(const std::string& s);

// Other heavy work on the machine while we measure (builds, tests, guests), as "ninja, cc1plus×3".
std::string busy_processes();

// /proc/loadavg.
std::string loadavg();

// The whole markdown document: title, command, machine, method, results and notes.
std::string render_document(const Report& r);

}  // namespace vgpu::bench
