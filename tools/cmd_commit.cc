// buildfs commit [NAME] -m MSG: record the build's state as a new commit.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "fs/lifecycle/commit.h"
#include "tools/commands.h"

namespace buildfs {

void RegisterCommit(CLI::App& app, Context& ctx) {
  struct Options {
    std::string name, message;
    bool json = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("commit", "Record the build's merged state as a new OSTree commit (parent: its base)");
  cmd->add_option("NAME", o->name, "Build to commit (default: the build you are in)");
  cmd->add_option("-m,--message", o->message, "Commit message (its first line is the subject)")->required();
  cmd->add_flag("--json", o->json, "Print the result as JSON");
  cmd->callback([o, &ctx] {
    std::string name = ctx.BuildName(o->name);
    auto committed = CommitBuild(ctx.workspace(), name, o->message, ctx.LongWork("committing"));
    ctx.Done();
    CommitResult r = Check(std::move(committed));
    if (o->json) {
      nlohmann::json j = {{"commit", r.commit},           {"changed", r.changed},
                          {"entries_written", r.entries_written}, {"dirs_walked", r.dirs_walked},
                          {"kept_cache_changes", r.kept_cache_changes}};
      std::printf("%s\n", j.dump().c_str());
    } else if (!r.changed) {
      std::printf("nothing to commit; %s stays at %s\n", name.c_str(), r.commit.substr(0, 12).c_str());
    } else {
      std::printf("committed %s as %s (%llu files written)\n", name.c_str(), r.commit.substr(0, 12).c_str(),
                  static_cast<unsigned long long>(r.entries_written));
    }
    if (r.kept_cache_changes) {
      std::fprintf(stderr,
                   "buildfs: note: the build's changes under cache/ are private to it: never committed, kept\n");
    }
  });
}

}  // namespace buildfs
