// buildfs log [NAME]: the build's commits, newest first.
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

#include "fs/lifecycle/commit.h"
#include "tools/commands.h"

namespace buildfs {

void RegisterLog(CLI::App& app, Context& ctx) {
  struct Options {
    std::string name;
    bool json = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("log", "Show the build's commits, newest first");
  cmd->add_option("NAME", o->name, "Build (default: the build you are in)");
  cmd->add_flag("--json", o->json, "Print a JSON array");
  cmd->callback([o, &ctx] {
    auto log = Check(BuildLog(ctx.workspace(), ctx.BuildName(o->name)));
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
