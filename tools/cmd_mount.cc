// buildfs mount [NAME]: mount a build at WS/NAME.
#include <cstdio>

#include "fs/lifecycle/mounter.h"
#include "tools/commands.h"

namespace buildfs {

void RegisterMount(CLI::App& app, Context& ctx) {
  auto o = std::make_shared<MountRequest>();
  auto* cmd = app.add_subcommand("mount", "Mount a build at WORKSPACE/NAME; returns once it answers");
  cmd->add_option("NAME", o->name, "Build to mount (default: the build you are in)");
  cmd->add_flag("--foreground", o->foreground, "Serve in this process until unmounted or Ctrl-C");
  cmd->add_flag("--debug", o->debug, "Log every FUSE request (implies nothing else)");
  cmd->callback([o, &ctx] {
    MountRequest request = *o;
    request.name = ctx.BuildName(o->name);
    const Workspace& ws = ctx.workspace();
    if (request.foreground) std::printf("serving %s (Ctrl-C to unmount)\n", ws.mountpoint(request.name).c_str());
    std::fflush(stdout);
    Check(MountBuild(ws, request));
    if (!request.foreground) std::printf("mounted %s at %s\n", request.name.c_str(), ws.mountpoint(request.name).c_str());
  });
}

}  // namespace buildfs
