// buildfs resolve [NAME], buildfs build [NAME]: the builder (builder/build.h),
// run in the build's directory, which they mount when it is not.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "builder/build.h"
#include "fs/lifecycle/build_lock.h"
#include "fs/lifecycle/mounter.h"
#include "tools/commands.h"

namespace buildfs {
namespace {

// Mounts the build when it is not, then takes its lock for the run.
BuildLock Prepare(Context& ctx, const std::string& name, const char* what) {
  const Workspace& ws = ctx.workspace();
  Check(ws.LoadBuild(name).status());
  if (!IsMounted(ws, name)) {
    MountRequest request;
    request.name = name;
    Check(MountBuild(ws, request, ctx.Launcher()));
  }
  return Check(BuildLock::Acquire(ws, name, what));
}

// Lines of progress: on a terminal with the time since the start.
std::function<void(const std::string&)> Sayer(bool to_stderr) {
  auto start = std::chrono::steady_clock::now();
  const bool tty = isatty(to_stderr ? 2 : 1);
  return [start, tty, to_stderr](const std::string& line) {
    FILE* out = to_stderr ? stderr : stdout;
    if (tty) {
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::fprintf(out, "[%6.1fs] %s\n", s, line.c_str());
    } else {
      std::fprintf(out, "%s\n", line.c_str());
    }
    std::fflush(out);
  };
}

// The last `n` lines of a file, each indented.
std::string Tail(const std::string& path, size_t n) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    lines.push_back(line);
    if (lines.size() > n) lines.erase(lines.begin());
  }
  std::string out;
  for (const auto& l : lines) out += "  | " + l + "\n";
  return out;
}

}  // namespace

void RegisterBuild(CLI::App& app, Context& ctx) {
  {
    auto name = std::make_shared<std::string>();
    auto* cmd = app.add_subcommand(
        "resolve", "Fetch every source of the build's manifest.json into WS/src, pin it, write snapshot.json");
    cmd->add_option("NAME", *name, "Build (default: the build you are in)");
    cmd->callback([name, &ctx] {
      const std::string build = ctx.BuildName(*name);
      const Workspace& ws = ctx.workspace();
      BuildLock lock = Prepare(ctx, build, "resolve");
      BuildOptions options;
      options.dir = ws.mountpoint(build);
      options.say = Sayer(false);
      options.progress = ctx.LongWork("resolving");
      auto r = ResolveBuild(ws, build, options);
      ctx.Done();
      ResolveReport report = Check(std::move(r));
      std::printf(report.changed ? "build %s: a new snapshot\n" : "build %s: no changes since the last resolve\n",
                  report.number.c_str());
    });
  }
  struct Options {
    std::string name;
    int jobs = 0;
    bool json = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "build", "Resolve, then build every component in dependency order inside the build directory");
  cmd->add_option("NAME", o->name, "Build (default: the build you are in)");
  cmd->add_option("-j,--jobs", o->jobs, "Jobs at once, components and their make jobs together (default: the number of cores)")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--json", o->json, "Print one JSON object: number, built, reused, result");
  cmd->callback([o, &ctx] {
    const std::string build = ctx.BuildName(o->name);
    const Workspace& ws = ctx.workspace();
    BuildLock lock = Prepare(ctx, build, "build");
    BuildOptions options;
    options.dir = ws.mountpoint(build);
    options.jobs = o->jobs;
    options.say = Sayer(o->json);
    options.progress = ctx.LongWork("building");
    auto r = RunBuild(ws, build, options);
    ctx.Done();
    if (!r.ok() && r.code() == ECHILD) {
      const std::string& m = r.status().message();
      const size_t at = m.rfind("(log: ");
      if (at != std::string::npos) {
        std::fprintf(stderr, "%s", Tail(m.substr(at + 6, m.size() - at - 7), 15).c_str());
      }
    }
    BuildReport report = Check(std::move(r));
    if (o->json) {
      nlohmann::json j = {{"number", report.number}, {"built", report.built}, {"reused", report.reused},
                          {"result", report.result}};
      std::printf("%s\n", j.dump().c_str());
      return;
    }
    std::printf("build %s: %zu built, %zu reused; result %s\n", report.number.c_str(), report.built.size(),
                report.reused.size(), report.result.substr(0, 12).c_str());
  });
}

}  // namespace buildfs
