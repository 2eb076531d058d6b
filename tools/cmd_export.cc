// buildfs export NAME DIR: a plain copy of the build's current tree.
#include <cstdio>

#include "fs/lifecycle/changes.h"
#include "tools/commands.h"

namespace buildfs {

void RegisterExport(CLI::App& app, Context& ctx) {
  struct Options {
    std::string name, dir;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("export", "Copy the build's current tree to DIR (which must not exist)");
  cmd->add_option("NAME", o->name, "Build to export")->required();
  cmd->add_option("DIR", o->dir, "Destination")->required();
  cmd->callback([o, &ctx] {
    std::string name = ctx.BuildName(o->name);
    Status st = ExportBuild(ctx.workspace(), name, o->dir, ctx.LongWork("exporting"));
    ctx.Done();
    Check(st);
    std::printf("exported %s to %s\n", name.c_str(), o->dir.c_str());
  });
}

}  // namespace buildfs
