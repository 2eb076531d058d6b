// The overlay's locks: a slow directory stops no other, a directory rename
// waits for what uses paths below it, and threads working at once leave the
// tree a fresh overlay over the same layers reads back the same.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "fs/layers/dir_layer.h"
#include "fs/overlay/overlay.h"
#include "fs/testing/gated_layer.h"
#include "fs/testing/status_testing.h"
#include "fs/testing/temp_dir.h"

namespace buildfs {
namespace {

using namespace std::chrono_literals;

const Caller kRoot{0, 0};

class OverlayLocksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::MakeTree(lower_, {{"d1/slow", "slow\n"},
                               {"d2/x", "x\n"},
                               {"d3/", ""},
                               {"a/f1", "1"},
                               {"a/f2", "22"},
                               {"a/s1/g", "g"},
                               {"b/f3", "333"},
                               {"b/s2/", ""},
                               {"c/f4", "4444"}});
    testing::MakeDirs(upper_);
    testing::MakeDirs(work_);
  }
  void TearDown() override {
    if (gate_) gate_->gate.Release();
    if (slow_.joinable()) slow_.join();
  }

  // An overlay over the lower tree; with `gated`, the first lookup of that path waits.
  std::unique_ptr<Overlay> MakeOverlay(const std::string& gated = "") {
    LayerStack stack;
    stack.upper = DirLayer::Open(upper_, {"", true, false}).value();
    stack.work = DirLayer::Open(work_, {"", false, false}).value();
    auto lower = DirLayer::Open(lower_, {"", false, true});
    EXPECT_OK(lower);
    if (gated.empty()) {
      stack.lowers.push_back({std::shared_ptr<Layer>(std::move(lower.value())), false});
    } else {
      gate_ = std::make_shared<testing::GatedLayer>(std::move(lower.value()), gated,
                                                    testing::GatedLayer::At::kLookup);
      stack.lowers.push_back({gate_, false});
    }
    auto overlay = std::make_unique<Overlay>(std::move(stack));
    EXPECT_OK(overlay->Prepare());
    return overlay;
  }

  // The inode of `path` (looked up from the root), 0 when absent.
  static uint64_t Walk(Overlay& o, const std::string& path) {
    uint64_t ino = kRootIno;
    size_t pos = 0;
    while (pos < path.size()) {
      size_t slash = path.find('/', pos);
      std::string name =
          path.substr(pos, slash == std::string::npos ? std::string::npos : slash - pos);
      pos = slash == std::string::npos ? path.size() : slash + 1;
      auto e = o.Lookup(ino, name);
      if (!e.ok() || e->ino == 0) return 0;
      ino = e->ino;
    }
    return ino;
  }

  // path -> "type size content" of everything the overlay shows.
  static void Scan(Overlay& o, uint64_t dir, const std::string& path,
                   std::map<std::string, std::string>* out) {
    auto h = o.OpenDir(dir);
    ASSERT_OK(h);
    for (const auto& e : (*h)->entries) {
      if (e.name == "." || e.name == "..") continue;
      auto entry = o.Lookup(dir, e.name);
      ASSERT_OK(entry);
      ASSERT_NE(entry->ino, 0u) << path << "/" << e.name << " is listed but does not resolve";
      const std::string child = path.empty() ? e.name : path + "/" + e.name;
      std::string what =
          std::to_string(entry->st.st_mode & S_IFMT) + " " + std::to_string(entry->st.st_size);
      if (S_ISREG(entry->st.st_mode)) {
        auto fh = o.Open(entry->ino, O_RDONLY);
        ASSERT_OK(fh);
        auto fd = o.ReadFd(fh->get());
        ASSERT_OK(fd);
        std::string data(static_cast<size_t>(entry->st.st_size), '\0');
        ASSERT_EQ(pread(fd.value(), data.data(), data.size(), 0),
                  static_cast<ssize_t>(data.size()));
        what += " " + data;
        o.Release(std::move(fh.value()));
      }
      (*out)[child] = what;
      if (S_ISDIR(entry->st.st_mode)) Scan(o, entry->ino, child, out);
    }
  }

  // Starts a lookup of d1/slow that waits in the layer; returns once it does.
  void StartSlowLookup(Overlay& o) {
    const uint64_t d1 = Walk(o, "d1");
    ASSERT_NE(d1, 0u);
    slow_ = std::thread([&o, d1, this] { slow_result_ = o.Lookup(d1, "slow"); });
    gate_->gate.WaitEntered();
  }

  testing::TempDir tmp_;
  std::string lower_ = tmp_.Path("lower"), upper_ = tmp_.Path("upper"), work_ = tmp_.Path("work");
  std::shared_ptr<testing::GatedLayer> gate_;
  std::thread slow_;
  Result<EntryOut> slow_result_{Status::Error(EINPROGRESS, "not looked up")};
};

TEST_F(OverlayLocksTest, ASlowLookupInOneDirectoryStopsNoOther) {
  auto o = MakeOverlay("d1/slow");
  const uint64_t d2 = Walk(*o, "d2"), d3 = Walk(*o, "d3");
  ASSERT_NE(d2, 0u);
  ASSERT_NE(d3, 0u);
  StartSlowLookup(*o);
  // Everything else, in other directories, while that lookup waits.
  auto others = std::async(std::launch::async, [&]() -> std::string {
    auto x = o->Lookup(d2, "x");
    if (!x.ok() || x->ino == 0) return "lookup of d2/x";
    if (!o->GetAttr(x->ino).ok()) return "getattr of d2/x";
    if (!o->OpenDir(d2).ok()) return "opendir of d2";
    if (!o->MakeDir(kRootIno, "new", 0755, kRoot).ok()) return "mkdir /new";
    EntryOut made;
    auto fh = o->Create(d2, "made", 0644, O_WRONLY, kRoot, &made);
    if (!fh.ok()) return "create of d2/made";
    o->Release(std::move(fh.value()));
    if (!o->Rename(d2, "made", d3, "moved", 0).ok()) return "rename of d2/made to d3/moved";
    auto w = o->Open(x->ino, O_WRONLY);  // a copy-up in d2
    if (!w.ok()) return "open of d2/x for writing";
    o->Release(std::move(w.value()));
    if (!o->Unlink(d3, "moved").ok()) return "unlink of d3/moved";
    return "";
  });
  const bool done = others.wait_for(10s) == std::future_status::ready;
  gate_->gate.Release();
  slow_.join();
  ASSERT_TRUE(done) << "requests in other directories waited for a lookup in d1";
  EXPECT_EQ(others.get(), "");
  ASSERT_OK(slow_result_);
  EXPECT_NE(slow_result_->ino, 0u);
}

TEST_F(OverlayLocksTest, ADirectoryRenameWaitsForALookupBelowItThenPathsFollow) {
  auto o = MakeOverlay("d1/slow");
  StartSlowLookup(*o);
  auto rename =
      std::async(std::launch::async, [&] { return o->Rename(kRootIno, "d1", kRootIno, "e1", 0); });
  // The lookup uses the path d1/slow: the rename cannot move d1 under it.
  EXPECT_EQ(rename.wait_for(300ms), std::future_status::timeout);
  gate_->gate.Release();
  slow_.join();
  ASSERT_OK(slow_result_);
  ASSERT_NE(slow_result_->ino, 0u);
  ASSERT_EQ(rename.wait_for(10s), std::future_status::ready);
  ASSERT_OK(rename.get());
  // The node found before the rename now lives at e1/slow.
  ASSERT_OK_AND_ASSIGN(auto fh, o->Open(slow_result_->ino, O_WRONLY));
  o->Release(std::move(fh));
  EXPECT_TRUE(testing::Exists(upper_ + "/e1/slow"));
  EXPECT_FALSE(testing::Exists(upper_ + "/d1/slow"));
  EXPECT_EQ(Walk(*o, "e1/slow"), slow_result_->ino);
}

// Four threads create, write, rename (files across directories, and sibling
// directories), remove, look up and stat at once; then every entry resolves
// and a fresh overlay over the same layers shows exactly the same tree.
TEST_F(OverlayLocksTest, ThreadsAtOnceLeaveATreeAFreshOverlayReadsTheSame) {
  auto o = MakeOverlay();
  std::atomic<int> unexpected{0};
  std::mutex why_mu;
  std::string why;
  auto check = [&](const Status& st, const std::string& what) {
    switch (st.code()) {
      case 0:
      case ENOENT:
      case EEXIST:
      case ENOTEMPTY:
      case EISDIR:
      case ENOTDIR:
        return;
      default:
        ++unexpected;
        std::lock_guard lock(why_mu);
        why = what + ": " + st.message() + " (errno " + std::to_string(st.code()) + ")";
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(1234 + t);
      auto pick = [&](const std::vector<std::string>& v) { return v[rng() % v.size()]; };
      for (int i = 0; i < 300; ++i) {
        const std::string d = pick({"a", "b", "c"});
        const uint64_t dir = Walk(*o, d);
        if (dir == 0) continue;
        const std::string name = "n" + std::to_string(rng() % 6);
        switch (rng() % 7) {
          case 0: {
            EntryOut made;
            auto fh = o->Create(dir, name, 0644, O_WRONLY, kRoot, &made);
            check(fh.status(), "create " + d + "/" + name);
            if (fh.ok()) {
              std::string data(rng() % 100, 'a' + t);
              auto n = o->WriteAt(fh->get(), 0, data.size(), [&](int fd, off_t off) -> ssize_t {
                ssize_t w = pwrite(fd, data.data(), data.size(), off);
                return w < 0 ? -errno : w;
              });
              check(n.status(), "write " + d + "/" + name);
              o->Release(std::move(fh.value()));
            }
            break;
          }
          case 1: {
            const std::string to = pick({"a", "b", "c"});
            const uint64_t to_dir = Walk(*o, to);
            if (to_dir)
              check(o->Rename(dir, name, to_dir, "n" + std::to_string(rng() % 6), 0),
                    "rename file");
            break;
          }
          case 2:
            check(o->Unlink(dir, name), "unlink " + d + "/" + name);
            break;
          case 3: {  // a lower file or a new one, opened for writing (copy-up)
            const uint64_t f = Walk(*o, d + "/" + pick({"f1", "f2", "f3", "f4", name}));
            if (f == 0) break;
            auto fh = o->Open(f, O_WRONLY | O_APPEND);
            check(fh.status(), "open for writing in " + d);
            if (fh.ok()) o->Release(std::move(fh.value()));
            break;
          }
          case 4: {  // sibling directories trade names
            const std::string sub = pick({"s1", "s2", "s3"});
            const std::string to = pick({"a", "b", "c"});
            const uint64_t to_dir = Walk(*o, to);
            if (to_dir)
              check(o->Rename(dir, sub, to_dir, pick({"s1", "s2", "s3"}), 0), "rename dir");
            break;
          }
          case 5: {
            const uint64_t f = Walk(*o, d + "/" + name);
            if (f) check(o->GetAttr(f).status(), "getattr " + d + "/" + name);
            break;
          }
          default:
            check(o->MakeDir(dir, "s3", 0755, kRoot).status(), "mkdir " + d + "/s3");
            break;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(unexpected.load(), 0) << why;

  std::map<std::string, std::string> live, fresh;
  Scan(*o, kRootIno, "", &live);
  o.reset();
  auto again = MakeOverlay();
  Scan(*again, kRootIno, "", &fresh);
  EXPECT_EQ(live, fresh);
  EXPECT_GT(live.size(), 8u);
}

}  // namespace
}  // namespace buildfs
