// buildfs: every build of a project is a directory that costs nothing to make.
// main() parses the command line and turns errors into one line and an exit code.
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "tools/commands.h"

#ifndef BUILDFS_VERSION
#define BUILDFS_VERSION "unknown"
#endif

namespace buildfs {
namespace {

// `buildfs help [COMMAND]`.
void RegisterHelp(CLI::App& app) {
  auto command = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("help", "Show help for buildfs or for one command");
  cmd->add_option("COMMAND", *command, "Command to show help for");
  cmd->callback([&app, command] {
    if (command->empty()) {
      // (app.help() would show the help of the command being run: `help`.)
      std::printf("%s", app.get_formatter()->make_help(&app, app.get_name(), CLI::AppFormatMode::Normal).c_str());
      return;
    }
    for (auto* sub : app.get_subcommands({})) {
      if (sub->check_name(*command) && !sub->get_group().empty()) {
        std::printf("%s", sub->help().c_str());
        return;
      }
    }
    Fail(Status::Error(EINVAL, "'" + *command + "' is not a buildfs command"), "buildfs --help");
  });
}

// The first word that is not an option (nor -C's argument) must name a
// command: CLI11 would report a missing subcommand instead.
const char* UnknownCommand(CLI::App& app, int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "-C") == 0) {
      ++i;
      continue;
    }
    if (argv[i][0] == '-') continue;
    for (auto* sub : app.get_subcommands({})) {
      if (sub->check_name(argv[i])) return nullptr;
    }
    return argv[i];
  }
  return nullptr;
}

}  // namespace
}  // namespace buildfs

int main(int argc, char** argv) {
  using namespace buildfs;
  CLI::App app{
      "buildfs: each build is a copy-on-write directory over a shared OSTree repository.\n"
      "Commands find the workspace from the current directory upward, or from -C DIR;\n"
      "inside a build directory, that build is the default."};
  app.name("buildfs");
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Print help for every command");
  app.set_version_flag("--version", "buildfs " BUILDFS_VERSION);
  GlobalOptions options;
  app.add_option("-C", options.directory, "Run as if started in DIR")
      ->option_text("DIR")
      ->each([](const std::string& dir) {
        if (chdir(dir.c_str()) != 0) {
          throw CommandError{errno == ENOENT ? kExitNotFound : kExitUsage,
                             "-C " + dir + ": " + (errno == ENOENT ? "no such directory" : std::strerror(errno))};
        }
      });
  Context ctx(options);
  RegisterInit(app, ctx);
  RegisterNew(app, ctx);
  RegisterMount(app, ctx);
  RegisterUmount(app, ctx);
  RegisterList(app, ctx);
  RegisterStatus(app, ctx);
  RegisterDiff(app, ctx);
  RegisterCommit(app, ctx);
  RegisterLog(app, ctx);
  RegisterBranch(app, ctx);
  RegisterReset(app, ctx);
  RegisterRm(app, ctx);
  RegisterExport(app, ctx);
  RegisterPrune(app, ctx);
  RegisterDisk(app, ctx);
  RegisterBuild(app, ctx);
  RegisterHelp(app);
  try {
    if (const char* word = UnknownCommand(app, argc, argv)) {
      std::fprintf(stderr, "buildfs: '%s' is not a buildfs command; hint: buildfs --help\n", word);
      return kExitUsage;
    }
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ExtrasError& e) {
    std::fprintf(stderr, "buildfs: %s; hint: buildfs help COMMAND\n", e.what());
    return kExitUsage;
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "buildfs: %s; hint: buildfs help COMMAND\n", e.what());
    return kExitUsage;
  } catch (const CommandError& e) {
    std::fprintf(stderr, "buildfs: %s\n", e.message.c_str());
    return e.exit_code;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "buildfs: internal error: %s\n", e.what());
    return kExitFailed;
  }
  return kExitOk;
}
