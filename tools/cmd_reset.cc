// buildfs reset [NAME] [--yes]: throw away uncommitted changes.
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "fs/lifecycle/builds.h"
#include "fs/lifecycle/changes.h"
#include "tools/commands.h"

namespace buildfs {

void RegisterReset(CLI::App& app, Context& ctx) {
  struct Options {
    std::string name;
    bool yes = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("reset", "Throw away the build's uncommitted changes (asks unless --yes)");
  cmd->add_option("NAME", o->name, "Build (default: the build you are in)");
  cmd->add_flag("-y,--yes", o->yes, "Do not ask");
  cmd->callback([o, &ctx] {
    std::string name = ctx.BuildName(o->name);
    const Workspace& ws = ctx.workspace();
    if (!o->yes) {
      if (!isatty(0)) Fail(Status::Error(EINVAL, "reset asks for confirmation"), "--yes");
      auto changes = Check(BuildStatus(ws, name));
      std::printf("throw away %zu change(s) of build %s? [y/N] ", changes.size(), name.c_str());
      std::fflush(stdout);
      std::string answer;
      std::getline(std::cin, answer);
      if (answer != "y" && answer != "Y" && answer != "yes") {
        std::printf("nothing done\n");
        return;
      }
    }
    ctx.LeaveBuildDirectory();
    Status st = ResetBuild(ws, name, ctx.Launcher());
    if (st.code() == EBUSY && st.message().find("busy: ") != std::string::npos &&
        st.message().find("leaves it alone") == std::string::npos) {
      Fail(st, "a mounted build is remounted by reset: close what uses it first");
    }
    Check(st);
    std::printf("reset %s to its base\n", name.c_str());
  });
}

}  // namespace buildfs
