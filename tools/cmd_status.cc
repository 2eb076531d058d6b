// buildfs status [NAME]: what changed against the base, like `git status --short`.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "fs/lifecycle/changes.h"
#include "tools/commands.h"

namespace buildfs {

void RegisterStatus(CLI::App& app, Context& ctx) {
  struct Options {
    std::string name;
    bool json = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("status", "Show what changed against the base: A/M/D per path");
  cmd->add_option("NAME", o->name, "Build (default: the build you are in)");
  cmd->add_flag("--json", o->json, "Print a JSON array of {status, path}");
  cmd->callback([o, &ctx] {
    auto changes = Check(BuildStatus(ctx.workspace(), ctx.BuildName(o->name)));
    if (o->json) {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& c : changes) {
        out.push_back({{"status", std::string(1, c.kind)}, {"path", c.path}, {"dir", c.is_dir}});
      }
      std::printf("%s\n", out.dump(2).c_str());
      return;
    }
    for (const auto& c : changes) std::printf("%c %s%s\n", c.kind, c.path.c_str(), c.is_dir ? "/" : "");
  });
}

}  // namespace buildfs
