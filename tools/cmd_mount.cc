// buildfs mount [NAME]: mount a build at WS/NAME.
#include <cstdio>

#include "fs/lifecycle/mounter.h"
#include "tools/commands.h"

namespace buildfs {

void RegisterMount(CLI::App& app, Context& ctx) {
  struct Options {
    MountRequest request;
    bool daemon = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("mount", "Mount a build at WORKSPACE/NAME; returns once it answers");
  cmd->add_option("NAME", o->request.name,
                  "Build to mount (default: the build you are in); NAME@NUMBER or NAME@COMMIT: "
                  "that result of the builder, read-only, at WORKSPACE/NAME@...");
  cmd->add_flag("--foreground", o->request.foreground, "Serve in this process until unmounted or Ctrl-C");
  cmd->add_flag("--debug", o->request.debug, "Log every FUSE request");
  // How `buildfs mount` starts the daemon of a background mount.
  cmd->add_flag("--daemon", o->daemon, "")->group("");
  cmd->callback([o, &ctx] {
    MountRequest request = o->request;
    // NAME@NUMBER (or NAME@COMMIT): that result, read-only.
    request.name = IsViewName(o->request.name) ? o->request.name : ctx.BuildName(o->request.name);
    const Workspace& ws = ctx.workspace();
    if (o->daemon) {
      Check(ServeDaemon(ws, request.name, request.debug));
      return;
    }
    if (request.foreground) std::printf("serving %s (Ctrl-C to unmount)\n", ws.mountpoint(request.name).c_str());
    std::fflush(stdout);
    Check(MountBuild(ws, request, ctx.Launcher()));
    if (!request.foreground) {
      std::printf("mounted %s at %s%s\n", request.name.c_str(), ws.mountpoint(request.name).c_str(),
                  IsViewName(request.name) ? " (read-only)" : "");
    }
  });
}

}  // namespace buildfs
