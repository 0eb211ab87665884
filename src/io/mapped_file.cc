// Read-only whole-file memory mapping. An empty file is a valid mapping of zero bytes (mmap
// refuses length 0, so nothing is mapped). Only regular files are mapped: a directory, pipe or
// device is reported, not mapped.
#include "owf/io/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <limits>
#include <new>
#include <system_error>

namespace owf {
namespace {

std::string ErrnoText(int err) { return std::system_category().message(err); }

}  // namespace

Result<std::shared_ptr<MappedFile>> MappedFile::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    return IoError("cannot open '" + path + "': " + ErrnoText(err));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return IoError("cannot stat '" + path + "': " + ErrnoText(err));
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    return IoError("cannot map '" + path + "': it is a directory");
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return IoError("cannot map '" + path + "': not a regular file");
  }
  if (st.st_size < 0 || static_cast<uint64_t>(st.st_size) > std::numeric_limits<size_t>::max()) {
    ::close(fd);
    return IoError("cannot map '" + path + "': size " + std::to_string(st.st_size) +
                   " is not addressable");
  }
  const size_t size = static_cast<size_t>(st.st_size);
  void* data = nullptr;
  if (size > 0) {
    data = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (data == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      return IoError("cannot map '" + path + "' (" + std::to_string(size) +
                     " bytes): " + ErrnoText(err));
    }
  }
  ::close(fd);  // The mapping keeps the file alive.

  std::shared_ptr<MappedFile> file;
  try {
    file.reset(new MappedFile());
    file->path_ = path;
  } catch (const std::bad_alloc&) {
    if (data != nullptr) ::munmap(data, size);
    return Internal("out of memory mapping '" + path + "'");
  }
  file->data_ = static_cast<const uint8_t*>(data);
  file->size_ = size;
  return file;
}

MappedFile::~MappedFile() {
  if (data_ != nullptr && size_ > 0) {
    ::munmap(const_cast<uint8_t*>(data_), size_);
  }
}

void MappedFile::Release(std::span<const uint8_t> range) const {
  if (range.empty() || range.data() < data_ || range.data() + range.size() > data_ + size_) return;
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(range.data()) + page - 1) / page * page;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(range.data()) + range.size()) / page * page;
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);  // advisory
}

}  // namespace owf
