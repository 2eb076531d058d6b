// buildfs new NAME [--from-dir DIR]: make a build whose base is a tree.
#include <cstdio>

#include "fs/lifecycle/builds.h"
#include "tools/commands.h"

namespace buildfs {

void RegisterNew(CLI::App& app, Context& ctx) {
  struct Options {
    std::string name;
    std::string from_dir;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("new", "Make a build; its base is DIR committed into the repo (or empty)");
  cmd->add_option("NAME", o->name, "Name of the new build")->required();
  cmd->add_option("--from-dir", o->from_dir, "Commit this tree as the build's base")->option_text("DIR");
  cmd->callback([o, &ctx] {
    Check(ValidateBuildName(o->name));
    const Workspace& ws = ctx.workspace();
    auto made = CreateBuild(ws, o->name, o->from_dir, ctx.LongWork("importing"));
    ctx.Done();
    BuildInfo info = Check(std::move(made));
    std::printf("created build %s (base %s)\n", info.name.c_str(), info.base.substr(0, 12).c_str());
  });
}

}  // namespace buildfs
