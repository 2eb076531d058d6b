// buildfs status [NAME] [PATH...]: what changed against the base, like `git status --short`.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "fs/lifecycle/changes.h"
#include "tools/commands.h"

namespace buildfs {

// Outside a build directory the first word names the build; inside one, as
// in git, every word is a path relative to where the command runs.
void BuildAndPaths(Context& ctx, std::vector<std::string> words, std::string* name,
                   std::vector<std::string>* paths) {
  *name = ctx.BuildHere();
  if (name->empty()) {
    if (words.empty()) *name = ctx.BuildName("");  // fails with a hint
    *name = ctx.BuildName(words.front());
    words.erase(words.begin());
    // Paths after the name are relative to the build's root.
    for (auto& w : words) {
      if (w.empty() || w[0] != '/') w = ctx.workspace().mountpoint(*name) + "/" + w;
    }
  }
  *paths = ctx.PathsInBuild(*name, words);
}

void RegisterStatus(CLI::App& app, Context& ctx) {
  struct Options {
    std::vector<std::string> words;
    bool json = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("status", "Show what changed against the base: A/M/D per path (C: private cache/)");
  cmd->add_option("NAME_OR_PATH", o->words,
                  "Build and paths (NAME [PATH...]); inside a build directory, only paths");
  cmd->add_flag("--json", o->json, "Print a JSON array of {status, path, dir}");
  cmd->callback([o, &ctx] {
    std::string name;
    std::vector<std::string> paths;
    BuildAndPaths(ctx, o->words, &name, &paths);
    auto changes = BuildStatus(ctx.workspace(), name, paths, ctx.LongWork("status"));
    ctx.Done();
    auto list = Check(std::move(changes));
    if (o->json) {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& c : list) {
        out.push_back({{"status", std::string(1, c.kind)}, {"path", c.path}, {"dir", c.is_dir}});
      }
      std::printf("%s\n", out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
      return;
    }
    for (const auto& c : list) {
      std::printf("%c %s\n", c.kind, QuotePath(c.path + (c.is_dir ? "/" : "")).c_str());
    }
  });
}

}  // namespace buildfs
