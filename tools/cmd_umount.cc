// buildfs umount [NAME]: unmount a build; its changes stay in its private layer.
#include <cstdio>

#include "fs/lifecycle/mounter.h"
#include "tools/commands.h"

namespace buildfs {

void RegisterUmount(CLI::App& app, Context& ctx) {
  struct Options {
    std::string name;
    bool lazy = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("umount", "Unmount a build (changes are kept)");
  cmd->alias("unmount");
  cmd->add_option("NAME", o->name, "Build to unmount (default: the build you are in)");
  cmd->add_flag("--lazy", o->lazy, "Detach now even if busy; the daemon exits when the last user leaves");
  cmd->callback([o, &ctx] {
    std::string name = ctx.BuildName(o->name);
    Check(UnmountBuild(ctx.workspace(), name, o->lazy));
    std::printf("unmounted %s\n", name.c_str());
  });
}

}  // namespace buildfs
