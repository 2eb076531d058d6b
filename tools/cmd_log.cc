// buildfs log [NAME]: the build's commits, newest first.
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

#include "builder/build.h"
#include "fs/lifecycle/commit.h"
#include "tools/commands.h"

namespace buildfs {

void RegisterLog(CLI::App& app, Context& ctx) {
  struct Options {
    std::string name;
    bool json = false;
    bool builds = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("log", "Show the build's commits, newest first");
  cmd->add_option("NAME", o->name, "Build (default: the build you are in)");
  cmd->add_flag("--json", o->json, "Print a JSON array");
  cmd->add_flag("--builds", o->builds,
                "Only the builder's build numbers (YYYYMMDD.N), their snapshots and results");
  cmd->callback([o, &ctx] {
    const std::string name = ctx.BuildName(o->name);
    auto results = Check(ListBuildResults(ctx.workspace(), name));
    if (o->builds && o->json) {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& r : results) {
        out.push_back({{"number", r.number}, {"result", r.commit}, {"snapshot", r.snapshot},
                       {"timestamp", r.timestamp}});
      }
      std::printf("%s\n", out.dump(2).c_str());
      return;
    }
    if (!o->json && !results.empty()) {
      std::printf("builds (mount one with: buildfs mount %s@NUMBER):\n", name.c_str());
      for (const auto& r : results) {
        char when[64];
        time_t t = static_cast<time_t>(r.timestamp);
        std::strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", std::localtime(&t));
        std::printf("  %-12s %s  result %s  snapshot %s\n", r.number.c_str(), when, r.commit.substr(0, 12).c_str(),
                    r.snapshot.substr(0, 12).c_str());
      }
      if (o->builds) return;
      std::printf("commits:\n");
    }
    if (o->builds) return;
    auto log = Check(BuildLog(ctx.workspace(), name));
    nlohmann::json out = nlohmann::json::array();
    for (const auto& e : log) {
      if (o->json) {
        out.push_back({{"commit", e.commit}, {"subject", e.subject}, {"timestamp", e.timestamp}});
        continue;
      }
      char when[64];
      time_t t = static_cast<time_t>(e.timestamp);
      std::strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", std::localtime(&t));
      std::printf("%s  %s  %s\n", e.commit.substr(0, 12).c_str(), when, e.subject.c_str());
    }
    if (o->json) std::printf("%s\n", out.dump(2).c_str());
  });
}

}  // namespace buildfs
