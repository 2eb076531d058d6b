// Overlay: the merged tree of a build: the inode table and the merge rules.
//
// A stack of layers, topmost first: [0] the build's writable upper, then
// frozen layers, the shared cache/ and the base commit. Lookup walks the
// stack top down; whiteouts hide lower entries; an opaque directory hides
// everything below it; a redirected directory continues below at another
// path (upper_format.h). Copy-up happens on first modification and is atomic
// (built in work/, renamed into the upper). Inode numbers are derived from
// an entry's identity (its origin layer and path, or its upper inode, or the
// number recorded at copy-up), so they are stable for the mount's life and
// unchanged by copy-up; nodes are released on Forget.
//
// Nothing here knows FUSE: operations take inode numbers and return values or
// errno Statuses, so the overlay is tested without mounting (overlay_test.cc).
//
// Thread-safety. Three kinds of lock, taken in this order:
//   1. tree_mu_, the tree lock: shared by every operation for its whole run
//      (but the data copy of a file's copy-up), exclusive for the changes
//      that move many paths at once: stack switches and renames of
//      directories (as the kernel's own per-filesystem rename lock). While
//      it is held shared, every directory's path is fixed.
//   2. directory locks (dir_locks_, one per directory, made while in use):
//      exclusive to change the names in a directory (create,
//      unlink, rename, link) or to copy up an entry into it; shared to use a
//      path through it (a lookup, the attributes, xattrs or open of an entry
//      in it). An operation takes all it needs at once, in inode order, and
//      never another while it holds them; a copy-up, which needs its
//      parent's, runs with none held (the operation lets go, copies up, and
//      starts over).
//   3. mu_, the table lock: guards nodes_ and every Node field, held for the
//      map and fields only, never across a syscall. A node an operation
//      works on without it is pinned (Pin), so Forget does not erase it.
// Layers have their own locks, innermost. Stack switches are the exception
// to "no syscall under a mount-wide lock": they hold the tree lock
// exclusive and mu_ through their on-disk part (a rename and a state file).
// Reads and writes of open files go straight to the handle's fd without the
// table lock; a write holds the tree lock shared, so a stack switch never
// splits one; a handle whose node has moved (copy-up, stack switch) reopens
// (FileHandle::generation).
#pragma once

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "fs/common/fd.h"
#include "fs/common/path.h"
#include "fs/common/status.h"
#include "fs/layers/chunked_file.h"
#include "fs/layers/dir_layer.h"
#include "fs/layers/layer.h"
#include "fs/layers/upper_layer.h"

namespace buildfs {

inline constexpr uint64_t kRootIno = 1;

// One layer of the stack and what the overlay needs to know of it.
struct StackLayer {
  std::shared_ptr<Layer> layer;
  bool overlay_format = false;  // upper and frozen layers
};

// The stack a build is mounted with. upper and work are directories on one
// filesystem; lowers are read-only, topmost first.
struct LayerStack {
  std::shared_ptr<DirLayer> upper;
  std::shared_ptr<DirLayer> work;
  std::vector<StackLayer> lowers;
  // Regular files of at least this size copy up chunked (chunked_file.h);
  // `chunk_shift`: their chunk size's log2 (0: by size). Tests use small ones.
  uint64_t chunked_copy_min = kChunkedCopyMin;
  uint8_t chunk_shift = 0;
};

// Who is asking (for owners of new entries).
struct Caller {
  uid_t uid = 0;
  gid_t gid = 0;
};

struct EntryOut {
  uint64_t ino = 0;          // 0: a negative entry (the name does not exist)
  struct stat st {};
  bool immutable = false;    // attributes may be cached for long
};

struct SetAttrIn {
  bool set_mode = false, set_uid = false, set_gid = false, set_size = false;
  bool set_atime = false, set_mtime = false, atime_now = false, mtime_now = false;
  bool set_ctime = false;  // only the ctime changes (chown to the same owner)
  mode_t mode = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  off_t size = 0;
  struct timespec atime {}, mtime {};
};

struct DirEntryOut {
  std::string name;
  uint64_t ino;
  mode_t type;
  // Where the listing goes on after this entry: a hash of the name (1 and 2
  // after "." and ".."), so that a position stays good in a later listing of
  // the same directory: the kernel resumes a listing it kept on a new handle.
  uint64_t next = 0;
};

// An open file. `fd` is the file the node was in when the handle last
// (re)opened it; every fd ever opened for the handle stays open in `fds` until
// release, so a reader racing with a reopen never uses a closed fd.
struct FileHandle {
  std::atomic<int> fd{-1};
  std::vector<UniqueFd> fds;             // REQUIRES: Overlay::mu_ to change
  uint64_t ino = 0;
  uint64_t generation = 0;               // node generation at (re)open
  const std::atomic<uint64_t>* moved = nullptr;  // the node's generation
  // The node's file as a chunked file (shared by its handles) when the
  // file `fd` is in is chunked, else null; each one stays alive in
  // `chunked_files` until release, as fds do.
  std::atomic<ChunkedFile*> chunked{nullptr};
  std::vector<std::shared_ptr<ChunkedFile>> chunked_files;  // REQUIRES: Overlay::mu_ to change
  int flags = 0;
  bool writable = false;
  bool keep_cache = false;
};

// An open directory: its merged listing, taken at opendir.
struct DirHandle {
  uint64_t ino = 0;
  std::vector<DirEntryOut> entries;  // "." and "..", then by `next`
  bool listed = false;               // entries holds the names too
  // Only this overlay changes the listing (no source of the directory is
  // changed by others), so the kernel may keep it until told otherwise.
  bool cacheable = false;

  // The index of the entry at position `pos` (0: the first).
  size_t IndexAt(uint64_t pos) const;
};

class Overlay {
 public:
  explicit Overlay(LayerStack stack);
  ~Overlay();
  Overlay(const Overlay&) = delete;
  Overlay& operator=(const Overlay&) = delete;

  // Clears leftovers of an earlier run from work/. Call once before use.
  Status Prepare();

  // Each successful call that returns an EntryOut with ino != 0 counts one
  // lookup of that inode, to be given back through Forget.
  Result<EntryOut> Lookup(uint64_t parent, const std::string& name);
  void Forget(uint64_t ino, uint64_t nlookup);
  Result<EntryOut> GetAttr(uint64_t ino);
  Result<EntryOut> SetAttr(uint64_t ino, const SetAttrIn& in, FileHandle* fh);
  Result<std::string> ReadLink(uint64_t ino);

  Result<EntryOut> MakeNode(uint64_t parent, const std::string& name, mode_t mode, dev_t rdev,
                            const Caller& caller);
  Result<EntryOut> MakeDir(uint64_t parent, const std::string& name, mode_t mode,
                           const Caller& caller);
  Result<EntryOut> Symlink(uint64_t parent, const std::string& name, const std::string& target,
                           const Caller& caller);
  Result<EntryOut> Link(uint64_t ino, uint64_t new_parent, const std::string& new_name);
  Status Unlink(uint64_t parent, const std::string& name);
  Status RmDir(uint64_t parent, const std::string& name);
  // flags: 0, RENAME_NOREPLACE or RENAME_EXCHANGE.
  Status Rename(uint64_t parent, const std::string& name, uint64_t new_parent,
                const std::string& new_name, unsigned flags);

  Result<std::unique_ptr<FileHandle>> Open(uint64_t ino, int flags);
  Result<std::unique_ptr<FileHandle>> Create(uint64_t parent, const std::string& name, mode_t mode,
                                             int flags, const Caller& caller, EntryOut* entry);
  void Release(std::unique_ptr<FileHandle> fh);

  // --- file data (file_data.cc): the overlay decides where an open file's
  // bytes come from and go to (a lower layer's file, the upper's copy), the
  // channel only moves them. Writes never overlap a stack switch; reads of a
  // file that did not move since it was opened take no lock. ---

  // Where the `size` bytes at `off` of an open file are (appended to `out`).
  Status ReadAt(FileHandle* fh, off_t off, size_t size, std::vector<Segment>* out);
  // The bytes of an open file, for readers in this process (commit, status,
  // diff, export). Lives as long as the handle. REQUIRES: nothing writes meanwhile.
  Result<std::shared_ptr<const FileContent>> Content(FileHandle* fh);
  // Stores the `len` bytes at `off`: `copy(fd, offset)` moves them from the
  // request into `fd` (a splice where it can) and returns their count or -errno.
  using CopyInto = std::function<ssize_t(int fd, off_t offset)>;
  Result<size_t> WriteAt(FileHandle* fh, off_t off, size_t len, const CopyInto& copy);
  Status Fallocate(FileHandle* fh, int mode, off_t off, off_t len);
  Status Fsync(FileHandle* fh, bool datasync);
  // copy_file_range between two open files (the second open for writing).
  Result<size_t> CopyRange(FileHandle* in, off_t in_off, FileHandle* out, off_t out_off, size_t len);
  // The fd of the file the handle's node is in now (for a chunked file,
  // the upper's: read through ReadAt or Content instead).
  Result<int> ReadFd(FileHandle* fh);

  // The directory's merged listing; its entries' numbers and types (but
  // for directories) are 0 until read with ReadDirEntry or looked up.
  // Without `list`, only "." and ".." (the listing is taken later, when it
  // is read: see the FUSE adapter's readdir).
  Result<std::unique_ptr<DirHandle>> OpenDir(uint64_t ino, bool list = true);
  // Takes the directory's listing (again) into an open handle.
  Status List(DirHandle* h);
  // The number and type of `name` in directory `dir_ino` (no lookup counted).
  Result<DirEntryOut> ReadDirEntry(uint64_t dir_ino, const std::string& name);

  Result<std::string> GetXattr(uint64_t ino, const std::string& name);
  Result<std::vector<std::string>> ListXattr(uint64_t ino);
  Status SetXattr(uint64_t ino, const std::string& name, const std::string& value, int flags);
  Status RemoveXattr(uint64_t ino, const std::string& name);
  Result<struct statvfs> StatFs();

  // --- stack changes (branch, commit), see stack_switch.cc ---

  // The upper becomes the topmost frozen layer. `move` does the on-disk part
  // (rename of the upper directory, build.json) while writes are paused, and
  // opens the new, empty upper and the frozen layer. Open handles reopen on
  // their next use: a writer copies up again into the new upper, so the
  // frozen layer never changes.
  using FreezeFn = std::function<Status(std::shared_ptr<DirLayer>* new_upper, StackLayer* frozen)>;
  Status FreezeUpper(const FreezeFn& move);
  // The reverse of FreezeUpper, after a failed commit: the topmost frozen
  // layer becomes the upper again. `move` does the on-disk part and opens
  // it. ENOTEMPTY (and nothing changes) when the upper was written to since.
  using UnfreezeFn = std::function<Status(std::shared_ptr<DirLayer>* upper)>;
  Status UnfreezeUpper(const UnfreezeFn& move);
  // Replaces every lower layer with `lowers`, which must show the same tree
  // (after a commit folded the frozen layers into a new base). Live inodes
  // keep their numbers.
  Status ReplaceLowers(std::vector<StackLayer> lowers);
  // What the kernel must forget when a stack switch changes what it may have
  // cached (a commit splits hard links: OSTree keeps none). Set by the FUSE
  // adapter; called after the switch, with no lock held.
  struct KernelCache {
    std::function<void(uint64_t parent, const std::string& name)> forget_entry;
    std::function<void(uint64_t ino)> forget_attrs;
    std::function<void(uint64_t dir)> forget_listing;  // the directory's kept listing
  };
  void SetKernelCache(KernelCache cache) { kernel_cache_ = std::move(cache); }
  // Tells the kernel to forget `names`, the attributes of `inodes` and the
  // listings of `dirs` and of the directories of `names`.
  // REQUIRES: no lock held (the kernel may wait for a request that needs one).
  void NotifyKernel(const std::vector<std::pair<uint64_t, std::string>>& names,
                    const std::vector<uint64_t>& inodes, const std::vector<uint64_t>& dirs = {});
  // The repository object behind `path` when the tree there comes unchanged
  // from a commit layer (no private layer holds any of it), for commit.
  std::optional<RepoObject> RepoObjectAt(uint64_t ino);

  // The inode number of the entry at `path` of a layer whose key is
  // `layer_key`, when nothing else (a recorded number) decides it.
  static uint64_t PathIdentity(const std::string& layer_key, const std::string& path);

  // Inspection for tests and the control path.
  size_t node_count();
  const LayerStack& stack() const { return stack_; }

 private:
  struct Source {
    int layer;  // index into layers_ (0 = upper)
    std::string path;
    // The path is the node's own path in the merged tree (the common case:
    // no directory on the way was renamed), so it is not kept: a walk of a
    // big tree keeps one source per entry the kernel holds.
    bool at_node = false;
  };
  // `src` with its path, given the path of the node it belongs to.
  static Source Materialize(const Source& src, const std::string& node_path) {
    return src.at_node ? Source{src.layer, node_path, false} : src;
  }
  // `src` without its path when that is `node_path`.
  static Source Elide(Source src, const std::string& node_path) {
    if (!src.at_node && src.path == node_path) return Source{src.layer, "", true};
    return src;
  }

  // What stat shows of an entry of an immutable layer, kept compactly (a
  // walk of a big tree keeps one per entry the kernel holds).
  struct CachedAttr {
    uint32_t mode = 0, uid = 0, gid = 0, nlink = 0;
    int64_t size = 0, blocks = 0;
    uint64_t rdev = 0;
    struct timespec atime {}, mtime {}, ctime {};
    static CachedAttr From(const struct stat& st);
    struct stat ToStat() const;
  };
  using Listing = std::vector<std::pair<std::string, bool>>;  // (name, is_dir)
  // What only directories learn.
  struct DirState {
    // The nodes of names looked up in it (hash of the name -> ino): a cache
    // of the aliases naming it as parent (which a hit is checked against),
    // used while no source of the directory changes behind this overlay's
    // back. Keyed by hash to stay small: one per entry the kernel holds.
    std::unordered_map<size_t, uint64_t> children;
    // The merged listing, while only immutable layers provide the directory.
    std::optional<Listing> listing;
  };
  // Every field: REQUIRES mu_ (generation is also read without it).
  struct Node {
    uint64_t ino = 0;
    uint64_t nlookup = 0;
    mode_t type = 0;
    bool in_upper = false;
    bool orphan = false;      // unlinked while open; kept in work/ until released
    bool removed = false;     // no longer in the tree
    int open_count = 0;
    uint32_t pins = 0;        // operations working on it without mu_ (Pin)
    int32_t subdirs = -1;     // merged directories: cached count of subdirectories
    // Bumped by every change to the node's sources, names (a directory's)
    // or xattrs: what an operation learned without mu_ is kept only if
    // nothing changed meanwhile.
    uint64_t changes = 0;
    std::vector<Source> lower;  // dirs: every lower source; others: the one, when !in_upper
    std::vector<std::pair<uint64_t, std::string>> aliases;  // (parent ino, name)
    uint64_t child_refs = 0;  // aliases of other nodes naming this one as parent
    std::atomic<uint64_t> generation{0};  // bumped when the node's file moves (copy-up)
    // A removed file that is still open, whose data a read-only layer holds:
    // its attributes when it was removed (nlink 0), so no layer is needed.
    std::unique_ptr<struct stat> removed_attr;
    // What is learned once and kept while the node lives (an entry is
    // resolved once per mount, not once per request); reset when its
    // sources change (copy-up, stack switches): the attributes of its
    // topmost source when that layer is immutable, its visible xattrs, and
    // what a directory learns.
    std::unique_ptr<CachedAttr> attr;
    std::unique_ptr<Xattrs> xattrs;
    std::unique_ptr<DirState> dir;
    // Its file as a chunked file, while a handle uses it, and the
    // generation it belongs to.
    std::weak_ptr<ChunkedFile> chunked;
    uint64_t chunked_generation = 0;

    DirState& Dir() {
      if (!dir) dir = std::make_unique<DirState>();
      return *dir;
    }
  };
  // A node as one operation sees it: copied under mu_, used without it. The
  // locks the operation holds keep it true (see the class comment).
  struct View {
    uint64_t ino = 0;
    mode_t type = 0;
    bool in_upper = false, orphan = false, removed = false;
    std::string path;           // in the merged tree (unset for orphans and removed nodes)
    std::vector<Source> lower;  // with their paths
    uint64_t changes = 0;
    uint64_t generation = 0;
    int open_count = 0;
    size_t aliases = 0;
    std::optional<CachedAttr> attr;
    std::optional<struct stat> removed_attr;
  };
  // REQUIRES: mu_. `path`: the node's path, when the caller knows it.
  Result<View> ViewOf(const Node& node, const std::string* path = nullptr) const;
  // ViewOf under mu_. REQUIRES: the node pinned.
  Result<View> ViewNow(const Node* node, const std::string* path = nullptr);

  // Keeps a node in the table while an operation works on it without mu_.
  class Pin {
   public:
    Pin() = default;
    Pin(Overlay* overlay, Node* node);  // REQUIRES: mu_
    ~Pin() { reset(); }
    Pin(Pin&& other) noexcept : overlay_(other.overlay_), node_(other.node_) {
      other.node_ = nullptr;
    }
    Pin& operator=(Pin&& other) noexcept;
    Node* get() const { return node_; }
    Node* operator->() const { return node_; }
    void reset();  // REQUIRES: mu_ not held
   private:
    Overlay* overlay_ = nullptr;
    Node* node_ = nullptr;
  };
  // One directory's lock, while some operation holds or waits for it.
  struct DirLock {
    std::shared_mutex mu;
    uint32_t users = 0;  // REQUIRES: dir_locks_mu_
  };
  // Directory locks held by one operation, taken in the order of the
  // directories' inode numbers.
  class DirLocks {
   public:
    DirLocks() = default;
    // (directory inode, exclusive) pairs; a directory named twice is locked once.
    DirLocks(Overlay* overlay, std::vector<std::pair<uint64_t, bool>> dirs);
    ~DirLocks() { Unlock(); }
    DirLocks(DirLocks&& other) noexcept : overlay_(other.overlay_), held_(std::move(other.held_)) {
      other.held_.clear();
    }
    DirLocks& operator=(DirLocks&& other) noexcept;
    void Unlock();

   private:
    struct Held {
      uint64_t ino;
      bool exclusive;
      DirLock* lock;
    };
    Overlay* overlay_ = nullptr;
    std::vector<Held> held_;
  };
  // A node pinned with the lock of the directory its path goes through
  // (its first name's), and `extra` directory locks: its path is fixed
  // while these and the tree lock are held. REQUIRES: tree lock held.
  struct LockedNode {
    Pin pin;
    DirLocks dirs;
    Node* operator->() const { return pin.get(); }
  };
  Result<LockedNode> LockNode(uint64_t ino, bool exclusive,
                              std::vector<std::pair<uint64_t, bool>> extra = {});
  // The live directory `ino`, pinned, and its view.
  Result<Pin> PinDir(uint64_t ino, View* view);
  // Deletes the files of orphans erased from the table. REQUIRES: mu_ not held.
  void DropDeadOrphans();

  // The result of resolving a name in a directory.
  struct Resolved {
    bool found = false;
    mode_t type = 0;
    bool in_upper = false;
    LayerEntry top;            // attributes of the topmost source
    std::vector<Source> lower;
    uint64_t ino = 0;
  };

  // --- resolve.cc: the merge rules. Read the layers, never the table: no
  // lock but the tree lock (the layers and renumbered_ are fixed under it). ---
  static std::vector<Source> SourcesOf(const View& dir);
  Result<Resolved> Resolve(const View& dir, const std::string& name, bool skip_upper = false);
  Status ResolveRedirect(std::string path, size_t from_layer, std::vector<Source>* out);
  uint64_t InoFor(const Resolved& r, const LayerEntry& identity, const Source& identity_source) const;
  // True when the entry at layer `layer` (a lower one) is a file of several
  // names, each a file of its own below the upper (InoFor): in a frozen
  // layer, one given a second name in the upper (marked linked: the other
  // links to a frozen file pin it as a base of chunked files, and name
  // nothing); in any other layer, any file with links.
  bool SplitLink(const LayerEntry& e, size_t layer) const;
  // The number of the entry at `src` when its path is its identity.
  uint64_t PathIno(const Source& src) const;
  struct MergedName {
    std::string name;
    bool is_dir;
  };
  Result<std::vector<MergedName>> MergedNames(const View& dir);
  // What the overlay knows of a live node, learning what it does not (the
  // listing, the count of subdirectories, the attributes, the xattrs) with
  // mu_ released. REQUIRES: the node pinned, its path fixed (LockNode).
  Result<std::vector<MergedName>> ListingOf(Node* dir, const View& view);
  // st_nlink of a merged directory: 2 + the subdirectories the merge shows.
  Result<nlink_t> MergedLinks(Node* dir, const View& view);
  // `path`: the node's path, when the caller knows it (a name just looked up).
  Result<EntryOut> AttrOf(Node* node, const std::string* path = nullptr);
  Result<EntryOut> Entry(Node* node,
                         const std::string* path = nullptr);  // AttrOf + one lookup counted
  // A handle's entries: "." and "..", then (with `names`) the listing in
  // the order of its positions.
  Status FillListing(Node* dir, bool names, DirHandle* h);

  // --- nodes (REQUIRES: mu_) ---
  Result<Node*> Get(uint64_t ino);
  Result<std::string> PathOf(const Node& node) const;
  // Adds or refreshes the node for a resolved child; does not count a lookup.
  Node* Remember(uint64_t parent, const std::string& name, const Resolved& r);
  void AddAlias(Node* node, uint64_t parent, const std::string& name);
  void DropAlias(Node* node, uint64_t parent, const std::string& name);
  void MaybeErase(Node* node);
  // Before `dir` moves: every live node at or below it stores the paths of
  // its lower sources, which stay where they are while the merged path changes.
  void KeepLowerPathsBelow(const Node& dir);
  // The node's topmost lower source, with its path. REQUIRES: !node.lower.empty().
  Result<Source> TopSource(const Node& node) const;
  // Marks a non-directory that lost its last name as removed; `top`: its
  // attributes (kept while it is open and a read-only layer holds it).
  void MarkRemoved(Node* node, const struct stat& top);
  Result<Node*> GetDir(uint64_t ino);
  // True when only this overlay changes what `name` in `dir` is: none of
  // the directory's sources that others change (the shared cache/) can hold
  // it. Its node may be remembered, its absence cached by the kernel.
  bool StableFor(const std::vector<Source>& dir_lower, const std::string& name) const;
  // True when only this overlay changes what the directory holds: its
  // lower sources are immutable (the upper changes only through here).
  bool Stable(const std::vector<Source>& dir_lower) const;
  // Forgets what the node learned of its sources.
  static void ForgetLearned(Node& node);
  // The live node `name` in `dir` names, when the directory's cache knows it.
  Node* KnownChild(Node& dir, const std::string& name);

  // --- copy_up.cc (REQUIRES: the tree lock, no directory lock, mu_ not held) ---
  // `with_data` false: a regular file comes up empty (it is about to be truncated).
  Status CopyUp(uint64_t ino, bool with_data = true);
  // A regular file's copy-up for a writer, with no lock at all held while
  // its data is copied, so that copying a big file stops no other request
  // (not even a stack switch or a directory rename). The copy is installed
  // only if the node still needs it (nothing copied it up, moved or removed
  // it meanwhile). Anything else is CopyUp's. REQUIRES: no lock held.
  Status CopyUpData(uint64_t ino);
  // Builds a copy of `path` of `layer` at `tmp` in work/ with owner, mode,
  // times, xattrs and the inode number; removes it on failure. Touches no
  // overlay state, so it runs without locks.
  // `upper`: the upper the copy goes to (its bases directory pins what a
  // chunked copy reads from).
  Status CopyToWork(Layer& layer, const std::string& path, const UpperLayer::Parent& tmp, uint64_t ino,
                    bool with_data, DirLayer& upper);
  // The data of the regular file at `path` of `layer` into the empty file
  // `to`: chunked (chunked_file.h) when it is big or chunked already and
  // `upper` can pin its base, else whole.
  Status CopyFileUp(Layer& layer, const std::string& path, const struct stat& st, int to,
                    DirLayer& upper);
  // The node's file as a chunked file shared by its handles, when `fd`
  // (its file, as `view` sees it) is chunked; null when it is plain.
  // REQUIRES: the node pinned, mu_ not held.
  Result<std::shared_ptr<ChunkedFile>> ChunkedOf(Node* node, const View& view, int fd);
  // Sets the size of the node's file `fd` (in the upper), through its
  // chunk map when it is chunked. REQUIRES: as ChunkedOf.
  Status Truncate(Node* node, const View& view, int fd, off_t size);
  // Makes `file` (or none) the handle's chunked file. REQUIRES: mu_.
  static void SetChunked(FileHandle* fh, std::shared_ptr<ChunkedFile> file);
  // Moves a finished copy (from CopyToWork) to the node's path in the
  // upper and makes it the node's file. REQUIRES: the parent's lock exclusive.
  Status InstallCopy(Node* node, const UpperLayer::Parent& tmp, const std::string& path);
  bool LowerHas(const View& parent, const std::string& name);
  Result<LayerEntry> UpperEntry(const std::string& path);
  // Where the lower layers, seen merged from the top, hold the directory at
  // `path` of the merged tree: what a redirect to it must name (redirects are
  // resolved from the top of the layers below, so they survive a freeze and
  // the folding of frozen layers into a commit).
  Result<std::string> LowerPathOf(const std::string& path);
  // The layer whose root holds the merged root's metadata: the upper once its
  // root was copied up (marked with an inode number), else the topmost lower
  // whose root is real.
  Result<size_t> RootMetaLayer();
  // Copy-up of the root: its metadata into the upper's root directory.
  Status CopyUpRoot();
  // Keeps the upper file at `path` in work/ while `node` is open.
  // REQUIRES: its parent's lock exclusive.
  Status MakeOrphan(Node* node, const std::string& path, bool last_link);
  // The fd a handle writes to (always in the upper). REQUIRES: tree lock shared.
  Result<int> WriteFd(FileHandle* fh);
  // Opens the handle's node again after it moved. REQUIRES: tree lock shared.
  // EAGAIN: a writer's node is not in the upper (CopyUpData, then again).
  Result<int> Reopen(FileHandle* fh);
  // Opens the node's current file, as `view` sees it.
  Result<UniqueFd> OpenView(const View& view, int flags);
  Result<Xattrs> XattrsOf(Node* node);
  // Copies the node up and runs `change` (lsetxattr, lremovexattr: -1 and
  // errno on failure) on its upper file's /proc path.
  Status ChangeXattr(uint64_t ino, const std::string& name,
                     const std::function<int(const char* path)>& change);
  Result<Xattrs> ReadXattrs(const View& view);  // from the node's layer, uncached
  // (directory fd, name) of a node's entry in the upper (or work/ for orphans).
  Result<DirLayer::Parent> UpperRef(const View& view);
  // Runs `op` on a write fd of `fh`, with the tree lock held shared.
  template <typename Op>
  auto WithWriteFd(FileHandle* fh, Op op) -> decltype(op(0));

  // New entries: built in work/ by `make` then installed at parent/name.
  template <typename Make>
  Result<EntryOut> CreateEntry(uint64_t parent, const std::string& name, const Caller& caller,
                               mode_t mode, Make make, UniqueFd* fd = nullptr);

  LayerStack stack_;                // REQUIRES: tree lock (exclusive to change)
  UpperLayer upper_;                // every change to the upper's files goes here
  std::vector<StackLayer> layers_;  // [0] = upper_.dirs(), then stack_.lowers; as stack_
  KernelCache kernel_cache_;        // constant once serving

  std::shared_mutex tree_mu_;
  std::mutex mu_;
  // The locks of the directories operations hold or wait for, made on
  // demand (a lock per directory, not per stripe: a slow directory stops no
  // other). The mutex guards the map only and is taken with no other held.
  std::mutex dir_locks_mu_;
  std::unordered_map<uint64_t, std::unique_ptr<DirLock>> dir_locks_;
  std::unordered_map<uint64_t, std::unique_ptr<Node>> nodes_;
  // Inode numbers whose identity changed in ReplaceLowers: new -> the number
  // in use. REQUIRES: the tree lock (exclusive to change).
  std::unordered_map<uint64_t, uint64_t> renumbered_;
  std::atomic<bool> root_up_{false};    // the upper's root holds the root's metadata
  std::vector<uint64_t> dead_orphans_;  // erased orphans whose files are still in work/
  size_t peak_nodes_ = 0;  // the table's size when memory was last given back
  std::mt19937_64 ino_source_;  // numbers for entries made in this overlay
};

}  // namespace buildfs
