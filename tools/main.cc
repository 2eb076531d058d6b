// buildfs: every build of a project is a directory that costs nothing to make.
// main() parses the command line and turns errors into one line and an exit code.
#include <cstdio>

#include "tools/commands.h"

int main(int argc, char** argv) {
  using namespace buildfs;
  CLI::App app{
      "buildfs: each build is a copy-on-write directory over a shared OSTree repository.\n"
      "Commands find the workspace from the current directory upward, or from -C DIR."};
  app.name("buildfs");
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Print help for every command");
  GlobalOptions options;
  app.add_option("-C", options.directory, "Run as if started in DIR")->option_text("DIR");
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
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "buildfs: %s; hint: buildfs --help\n", e.what());
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
