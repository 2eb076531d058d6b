// One Register function per subcommand (cmd_NAME.cc): it adds the subcommand,
// its options and a callback making one library call.
#pragma once

#include <CLI/CLI.hpp>

#include "tools/context.h"

namespace buildfs {

void RegisterInit(CLI::App& app, Context& ctx);
void RegisterNew(CLI::App& app, Context& ctx);
void RegisterMount(CLI::App& app, Context& ctx);
void RegisterUmount(CLI::App& app, Context& ctx);
void RegisterList(CLI::App& app, Context& ctx);
void RegisterStatus(CLI::App& app, Context& ctx);
void RegisterDiff(CLI::App& app, Context& ctx);
void RegisterCommit(CLI::App& app, Context& ctx);
void RegisterLog(CLI::App& app, Context& ctx);
void RegisterBranch(CLI::App& app, Context& ctx);
void RegisterReset(CLI::App& app, Context& ctx);
void RegisterRm(CLI::App& app, Context& ctx);
void RegisterExport(CLI::App& app, Context& ctx);
void RegisterPrune(CLI::App& app, Context& ctx);
void RegisterDisk(CLI::App& app, Context& ctx);
void RegisterBuild(CLI::App& app, Context& ctx);

// The build and paths of `status` and `diff`: outside a build directory the
// first word names the build and the others are paths in it; inside one,
// every word is a path relative to the current directory (cmd_status.cc).
void BuildAndPaths(Context& ctx, std::vector<std::string> words, std::string* name,
                   std::vector<std::string>* paths);

}  // namespace buildfs
