// Streaming safetensors writer. Tensor bytes are appended to a temporary data file created beside
// the target and unlinked at once (so a crash or an abandoned writer leaves nothing behind); the
// open descriptor keeps it alive. Finish() writes the 8-byte header size, the JSON header (tensors
// in insertion order with contiguous offsets, "__metadata__" first, padded with spaces so the
// data starts at a multiple of 8) and the data into "<path>.tmp-<pid>", then renames it over
// <path>.
#include "owf/io/safetensors_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <new>
#include <nlohmann/json.hpp>
#include <system_error>
#include <unordered_set>

#include "safetensors_internal.h"

namespace owf {
namespace {

using safetensors_internal::ByteSize;
using safetensors_internal::FindDType;
using safetensors_internal::kMaxHeaderSize;
using safetensors_internal::ShapeText;

std::string ErrnoText(int err) { return std::system_category().message(err); }

// Writes all of `size` bytes, retrying on EINTR and short writes. Returns errno or 0.
int WriteAll(int fd, const uint8_t* p, size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EIO;
    p += n;
    size -= static_cast<size_t>(n);
  }
  return 0;
}

// Copies `size` bytes from `in` (starting at offset 0) to the current position of `out`.
int CopyData(int in, int out, uint64_t size) {
  loff_t in_off = 0;
  // Fast path: in-kernel copy (reflink where the filesystem supports it).
  while (static_cast<uint64_t>(in_off) < size) {
    const ssize_t n = ::copy_file_range(
        in, &in_off, out, nullptr, static_cast<size_t>(size - static_cast<uint64_t>(in_off)), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOSYS || errno == EXDEV || errno == EINVAL || errno == EOPNOTSUPP) break;
      return errno;
    }
    if (n == 0) return EIO;  // The data file is shorter than what we wrote to it.
  }
  std::vector<uint8_t> buffer;
  try {
    buffer.resize(static_cast<size_t>(std::min<uint64_t>(size, 4u << 20)));
  } catch (const std::bad_alloc&) {
    return ENOMEM;
  }
  while (static_cast<uint64_t>(in_off) < size) {
    const size_t want = static_cast<size_t>(
        std::min<uint64_t>(buffer.size(), size - static_cast<uint64_t>(in_off)));
    const ssize_t n = ::pread(in, buffer.data(), want, in_off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EIO;
    if (int err = WriteAll(out, buffer.data(), static_cast<size_t>(n)); err != 0) return err;
    in_off += n;
  }
  return 0;
}

// True when `s` can go into a JSON header (valid UTF-8).
bool JsonEncodable(const std::string& s) {
  try {
    (void)nlohmann::json(s).dump();
    return true;
  } catch (const nlohmann::json::exception&) {
    return false;
  }
}

std::atomic<uint64_t> g_writer_counter{0};

}  // namespace

struct SafetensorsWriter::Impl {
  struct Entry {
    std::string name;
    std::string dtype;
    std::vector<int64_t> shape;
    uint64_t begin = 0;
    uint64_t end = 0;
  };

  std::string path;
  int data_fd = -1;
  uint64_t data_size = 0;
  std::vector<Entry> entries;
  std::unordered_set<std::string> names;
  std::map<std::string, std::string> metadata;
  bool failed = false;    // an I/O error left the data file in an unknown state
  bool finished = false;  // Finish() ran (successfully or not)

  ~Impl() {
    if (data_fd >= 0) ::close(data_fd);
  }

  Status Unusable() const {
    return InvalidArgument("safetensors writer for '" + path + "' is " +
                           (finished ? "already finished" : "unusable after an earlier error"));
  }
};

SafetensorsWriter::SafetensorsWriter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SafetensorsWriter::~SafetensorsWriter() = default;

Result<std::unique_ptr<SafetensorsWriter>> SafetensorsWriter::Create(const std::string& path) {
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  const std::string tmp = path + ".data-tmp-" + std::to_string(::getpid()) + "-" +
                          std::to_string(g_writer_counter.fetch_add(1));
  impl->data_fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (impl->data_fd < 0) {
    const int err = errno;
    return IoError("cannot write '" + path + "': cannot create temporary data file '" + tmp +
                   "': " + ErrnoText(err));
  }
  if (::unlink(tmp.c_str()) != 0) {
    const int err = errno;
    return IoError("cannot write '" + path + "': cannot unlink temporary data file '" + tmp +
                   "': " + ErrnoText(err));  // ~Impl closes the descriptor
  }
  return std::unique_ptr<SafetensorsWriter>(new SafetensorsWriter(std::move(impl)));
}

Status SafetensorsWriter::Add(const std::string& name, const std::string& dtype,
                              const std::vector<int64_t>& shape, std::span<const uint8_t> bytes) {
  Impl& w = *impl_;
  if (w.failed || w.finished) return w.Unusable();
  const std::string where = "'" + w.path + "': tensor '" + name + "'";
  if (name.empty() || name == "__metadata__") {
    return InvalidArgument("'" + w.path + "': invalid tensor name '" + name + "'");
  }
  if (!JsonEncodable(name)) return InvalidArgument(where + ": name is not valid UTF-8");
  if (w.names.count(name)) return InvalidArgument(where + " was already added");
  const auto* dt = FindDType(dtype);
  if (dt == nullptr) return InvalidArgument(where + ": unknown safetensors dtype '" + dtype + "'");
  uint64_t need = 0;
  std::string why;
  if (!ByteSize(shape, dt->bits, &need, &why)) return InvalidArgument(where + ": " + why);
  if (bytes.size() != need) {
    return InvalidArgument(where + ": shape " + ShapeText(shape) + " " + dtype + " needs " +
                           std::to_string(need) + " bytes, got " + std::to_string(bytes.size()));
  }
  if (int err = WriteAll(w.data_fd, bytes.data(), bytes.size()); err != 0) {
    w.failed = true;
    return IoError("cannot write '" + w.path + "': writing tensor '" + name +
                   "' to the temporary data file failed: " + ErrnoText(err));
  }
  try {
    w.entries.push_back({name, dt->name, shape, w.data_size, w.data_size + need});
    w.names.insert(name);
  } catch (const std::bad_alloc&) {
    w.failed = true;
    return Internal("out of memory adding tensor '" + name + "'");
  }
  w.data_size += need;
  return Status::Ok();
}

void SafetensorsWriter::SetMetadata(std::map<std::string, std::string> metadata) {
  impl_->metadata = std::move(metadata);
}

Status SafetensorsWriter::Finish() {
  Impl& w = *impl_;
  if (w.failed || w.finished) return w.Unusable();
  w.finished = true;

  std::string header;
  try {
    nlohmann::ordered_json h = nlohmann::ordered_json::object();
    if (!w.metadata.empty()) {
      nlohmann::ordered_json m = nlohmann::ordered_json::object();
      for (const auto& [k, v] : w.metadata) m[k] = v;
      h["__metadata__"] = std::move(m);
    }
    for (const Impl::Entry& e : w.entries) {
      h[e.name] = {{"dtype", e.dtype}, {"shape", e.shape}, {"data_offsets", {e.begin, e.end}}};
    }
    header = h.dump();
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgument("cannot write '" + w.path +
                           "': metadata is not valid UTF-8: " + e.what());
  } catch (const std::bad_alloc&) {
    return Internal("cannot write '" + w.path + "': out of memory building the header");
  }
  header.append((8 - header.size() % 8) % 8, ' ');
  if (header.size() > kMaxHeaderSize) {
    return InvalidArgument("cannot write '" + w.path + "': header of " +
                           std::to_string(header.size()) + " bytes exceeds the limit of " +
                           std::to_string(kMaxHeaderSize));
  }

  const std::string tmp = w.path + ".tmp-" + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    const int err = errno;
    return IoError("cannot write '" + w.path + "': cannot create temporary file '" + tmp +
                   "': " + ErrnoText(err));
  }
  auto fail = [&](const std::string& what, int err) {
    ::close(fd);
    ::unlink(tmp.c_str());
    return IoError("cannot write '" + w.path + "': " + what + " '" + tmp +
                   "' failed: " + ErrnoText(err));
  };
  uint8_t size_field[8];
  for (int i = 0; i < 8; ++i) {
    size_field[i] = static_cast<uint8_t>((static_cast<uint64_t>(header.size()) >> (8 * i)) & 0xFF);
  }
  if (int err = WriteAll(fd, size_field, 8); err != 0) return fail("write to", err);
  if (int err = WriteAll(fd, reinterpret_cast<const uint8_t*>(header.data()), header.size());
      err != 0) {
    return fail("write to", err);
  }
  if (int err = CopyData(w.data_fd, fd, w.data_size); err != 0) return fail("copying data to", err);
  if (::fsync(fd) != 0) {
    const int err = errno;
    if (err != EINVAL && err != ENOTSUP) return fail("fsync of", err);
  }
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return IoError("cannot write '" + w.path + "': close of '" + tmp +
                   "' failed: " + ErrnoText(err));
  }
  if (::rename(tmp.c_str(), w.path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return IoError("cannot write '" + w.path + "': rename from '" + tmp +
                   "' failed: " + ErrnoText(err));
  }
  ::close(w.data_fd);
  w.data_fd = -1;
  return Status::Ok();
}

}  // namespace owf
