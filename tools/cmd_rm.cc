// buildfs rm NAME [--force]: delete a build.
#include <cstdio>

#include "fs/lifecycle/builds.h"
#include "tools/commands.h"

namespace buildfs {

void RegisterRm(CLI::App& app, Context& ctx) {
  struct Options {
    std::string name;
    bool force = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("rm", "Delete a build (refused while mounted, unless --force)");
  cmd->add_option("NAME", o->name, "Build to delete")->required();
  cmd->add_flag("-f,--force", o->force, "Unmount it first if mounted; also remove a damaged build");
  cmd->callback([o, &ctx] {
    Check(ValidateBuildName(o->name));
    ctx.LeaveBuildDirectory();
    Status st = RemoveBuild(ctx.workspace(), o->name, o->force);
    if (st.code() == EBUSY && !o->force && st.message().find("is mounted") != std::string::npos) {
      Fail(st, "buildfs umount " + o->name + ", or rm --force");
    }
    if (st.code() == EBUSY && st.message().find("busy: ") != std::string::npos &&
        st.message().find("leaves it alone") == std::string::npos) {
      Fail(st, "close what uses it, or buildfs umount --lazy " + o->name + " first");
    }
    if (st.code() == EUCLEAN) Fail(st, "buildfs rm --force " + o->name + " removes it all the same");
    Check(st);
    std::printf("removed build %s\n", o->name.c_str());
  });
}

}  // namespace buildfs
