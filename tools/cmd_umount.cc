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
    std::string name = IsViewName(o->name) ? o->name : ctx.BuildName(o->name);
    ctx.LeaveBuildDirectory();  // this process must not keep the mount busy itself
    Status st = UnmountBuild(ctx.workspace(), name, o->lazy);
    if (st.code() == EBUSY && st.message().find("your shell") != std::string::npos) {
      Fail(st, "cd out of it first (cd " + ctx.workspace().root() + "), or use --lazy");
    }
    if (st.code() == EBUSY && st.message().find("leaves it alone") == std::string::npos) {
      Fail(st, "close what uses it, or use --lazy");
    }
    Check(st);
    std::printf("unmounted %s\n", name.c_str());
  });
}

}  // namespace buildfs
