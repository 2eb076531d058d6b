// buildfs new NAME [--from-dir DIR]: make a build whose base is a tree.
#include <unistd.h>

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
    // Progress on a terminal: an import of a big tree takes a while.
    Repo::Progress progress;
    if (isatty(2)) {
      progress = [](uint64_t n) {
        std::fprintf(stderr, "\rimporting: %llu entries", static_cast<unsigned long long>(n));
      };
    }
    auto info_or = CreateBuild(ws, o->name, o->from_dir, progress);
    if (progress) std::fprintf(stderr, "\r\033[K");
    BuildInfo info = Check(std::move(info_or));
    std::printf("created build %s (base %s)\n", info.name.c_str(), info.base.substr(0, 12).c_str());
  });
}

}  // namespace buildfs
