// AtomicFile: writes a file so that readers see either the old content or the complete new one, never a
// half-written file. Bytes go to a temporary file in the target's folder (same file system, so rename is
// atomic); commit() flushes, fsyncs, renames it over the target and fsyncs the folder. If anything fails,
// or the object dies without commit(), the temporary file is removed and the target is left untouched.
#pragma once

#include "resnet/core/abi.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>

#include "resnet/core/error.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace io {

class AtomicFile {
 public:
  explicit AtomicFile(std::string path) : path_(std::move(path)) {
    RESNET_CHECK(!path_.empty(), "cannot write a file with an empty path");
    static std::atomic<unsigned> counter{0};
    // O_EXCL on a name unique to this process and call: no clash with a concurrent writer of the same target.
    temp_ = path_ + ".tmp." + std::to_string(static_cast<long>(::getpid())) + "." + std::to_string(counter++);
    int fd = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    RESNET_CHECK(fd >= 0, "cannot write '", path_, "': creating temporary file '", temp_,
                 "' failed: ", std::strerror(errno));
    file_ = ::fdopen(fd, "wb");
    if (!file_) {
      int e = errno;
      ::close(fd);
      ::unlink(temp_.c_str());
      RESNET_FAIL("cannot write '", path_, "': fdopen failed: ", std::strerror(e));
    }
  }
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile() { discard(); }

  void write(const void* data, size_t nbytes) {
    RESNET_CHECK(file_ != nullptr, "write to '", path_, "' after it was committed or discarded");
    if (nbytes == 0) return;
    if (std::fwrite(data, 1, nbytes, file_) != nbytes) fail("writing ", nbytes, " bytes");
  }
  void write(const std::string& s) { write(s.data(), s.size()); }
  size_t bytes_written() const { return file_ ? static_cast<size_t>(std::ftell(file_)) : 0; }

  // Makes the new content durable and visible under the target name.
  void commit() {
    RESNET_CHECK(file_ != nullptr, "commit of '", path_, "' after it was committed or discarded");
    if (std::fflush(file_) != 0) fail("flushing");
    if (::fsync(::fileno(file_)) != 0) fail("fsync");
    FILE* f = file_;
    file_ = nullptr;
    if (std::fclose(f) != 0) {
      int e = errno;
      ::unlink(temp_.c_str());
      RESNET_FAIL("cannot write '", path_, "': closing the temporary file failed: ", std::strerror(e),
                  "; the previous file (if any) is unchanged");
    }
    if (::rename(temp_.c_str(), path_.c_str()) != 0) {
      int e = errno;
      ::unlink(temp_.c_str());
      RESNET_FAIL("cannot write '", path_, "': renaming '", temp_, "' over it failed: ", std::strerror(e),
                  "; the previous file (if any) is unchanged");
    }
    sync_folder();
  }

  // Drops the temporary file (the target keeps its previous content).
  void discard() noexcept {
    if (!file_) return;
    std::fclose(file_);
    file_ = nullptr;
    ::unlink(temp_.c_str());
  }

  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return temp_; }

 private:
  template <typename... Args>
  [[noreturn]] void fail(Args&&... what) {
    int e = errno;
    discard();
    RESNET_FAIL("cannot write '", path_, "': ", std::forward<Args>(what)..., " failed: ", std::strerror(e),
                "; the previous file (if any) is unchanged");
  }
  // The rename itself is only durable once the folder entry is on disk; best effort (some file systems
  // refuse fsync on folders, and the data is already safe under the new name).
  void sync_folder() const noexcept {
    auto slash = path_.find_last_of('/');
    std::string folder = slash == std::string::npos ? "." : (slash == 0 ? "/" : path_.substr(0, slash));
    int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
      (void)::fsync(fd);
      ::close(fd);
    }
  }

  std::string path_;
  std::string temp_;
  FILE* file_ = nullptr;
};

}  // namespace io
}  // namespace RESNET_ABI
}  // namespace resnet
