// buildfs init DIR: make a workspace.
#include <cstdio>

#include "tools/commands.h"

namespace buildfs {

void RegisterInit(CLI::App& app, Context& /*ctx*/) {
  auto* cmd = app.add_subcommand("init", "Make a workspace: DIR/{repo,src,cache,.buildfs}");
  auto dir = std::make_shared<std::string>();
  cmd->add_option("DIR", *dir, "Directory to make the workspace in (created if missing)")->required();
  cmd->callback([dir] {
    Workspace ws = Check(Workspace::Init(*dir));
    std::printf("initialized workspace %s\n", ws.root().c_str());
  });
}

}  // namespace buildfs
