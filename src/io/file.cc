#include "owf/io/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <new>
#include <system_error>

namespace owf {
namespace {

std::string ErrnoText(int err) { return std::system_category().message(err); }

// Closes a descriptor on scope exit unless released.
class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  ~FdCloser() {
    if (fd_ >= 0) ::close(fd_);
  }
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;
  // Closes now and returns close()'s errno (0 on success).
  int Close() {
    int err = 0;
    if (fd_ >= 0 && ::close(fd_) != 0) err = errno;
    fd_ = -1;
    return err;
  }

 private:
  int fd_;
};

// Writes all of `data`, retrying on EINTR and short writes. Returns errno or 0.
int WriteAll(int fd, std::string_view data) {
  const char* p = data.data();
  size_t left = data.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EIO;  // Should not happen for regular files; avoid spinning.
    p += n;
    left -= static_cast<size_t>(n);
  }
  return 0;
}

}  // namespace

Result<std::vector<uint8_t>> ReadFileBytes(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    return IoError("cannot open '" + path + "' for reading: " + ErrnoText(err));
  }
  FdCloser closer(fd);

  // st_size is only a hint (the file may change, or be a pipe): read until EOF.
  size_t capacity = 64 * 1024;
  struct stat st;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= 0) {
    capacity = static_cast<size_t>(st.st_size) + 1;  // +1 so EOF is seen without a regrow.
  }
  std::vector<uint8_t> bytes;
  try {
    bytes.resize(capacity);
    size_t used = 0;
    while (true) {
      if (used == bytes.size()) bytes.resize(bytes.size() * 2);
      const ssize_t n = ::read(fd, bytes.data() + used, bytes.size() - used);
      if (n < 0) {
        if (errno == EINTR) continue;
        const int err = errno;
        return IoError("cannot read '" + path + "': " + ErrnoText(err));
      }
      if (n == 0) break;
      used += static_cast<size_t>(n);
    }
    bytes.resize(used);
  } catch (const std::bad_alloc&) {
    return IoError("cannot read '" + path + "': out of memory (file is " +
                   std::to_string(capacity - 1) + " bytes)");
  } catch (const std::length_error&) {
    return IoError("cannot read '" + path + "': file too large");
  }
  return bytes;
}

Status WriteFileAtomic(const std::string& path, std::string_view contents) {
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    const int err = errno;
    return IoError("cannot write '" + path + "': cannot create temporary file '" + tmp +
                   "': " + ErrnoText(err));
  }
  FdCloser closer(fd);
  auto fail = [&](const std::string& what, int err) {
    closer.Close();
    ::unlink(tmp.c_str());
    return IoError("cannot write '" + path + "': " + what + " '" + tmp +
                   "' failed: " + ErrnoText(err));
  };
  if (int err = WriteAll(fd, contents); err != 0) return fail("write to", err);
  if (::fsync(fd) != 0) {
    const int err = errno;
    // Filesystems without fsync support (some pseudo/network filesystems) are not an error.
    if (err != EINVAL && err != ENOTSUP) return fail("fsync of", err);
  }
  if (int err = closer.Close(); err != 0) {
    ::unlink(tmp.c_str());
    return IoError("cannot write '" + path + "': close of '" + tmp + "' failed: " + ErrnoText(err));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return IoError("cannot write '" + path + "': rename from '" + tmp +
                   "' failed: " + ErrnoText(err));
  }
  return Status::Ok();
}

}  // namespace owf
