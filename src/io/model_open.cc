// OpenModel: picks a reader by looking at the path.
//   directory                 -> its safetensors index (model.safetensors.index.json, or the one
//                                *.safetensors.index.json), else its single *.safetensors file;
//                                config.json, when present, goes into metadata()["config"]
//   *.safetensors.index.json  -> OpenSafetensorsIndex
//   "GGUF" magic              -> OpenGguf
//   .npy or "\x93NUMPY" magic -> one fp32 tensor named after the file stem
//   anything else             -> OpenSafetensors
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string_view>
#include <system_error>
#include <vector>

#include "owf/io/file.h"
#include "owf/io/model.h"
#include "owf/io/npy.h"

namespace owf {
namespace {

namespace fs = std::filesystem;

constexpr char kIndexName[] = "model.safetensors.index.json";
constexpr std::string_view kIndexSuffix = ".safetensors.index.json";
constexpr uint64_t kMaxConfigSize = 64u << 20;

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// One fp32 tensor read from a .npy file.
class NpyReader : public ModelReader {
 public:
  NpyReader(const std::string& path, Tensor tensor) : tensor_(std::move(tensor)) {
    TensorInfo t;
    t.name = fs::path(path).stem().string();
    t.shape = tensor_.shape;
    t.dtype = DType::kF32;
    t.dtype_name = "F32";
    t.nbytes = static_cast<uint64_t>(tensor_.data.size()) * sizeof(float);
    tensors_.push_back(std::move(t));
    files_.push_back(path);
  }
  const char* format() const override { return "npy"; }
  std::span<const uint8_t> RawBytes(const TensorInfo& t) const override {
    const size_t n = tensor_.data.size() * sizeof(float);
    if (t.shard != 0 || t.offset != 0 || t.nbytes != n) return {};
    return {reinterpret_cast<const uint8_t*>(tensor_.data.data()), n};
  }

 private:
  Tensor tensor_;
};

// A model directory: the tensors of an inner reader, plus config.json in metadata()["config"].
class DirectoryReader : public ModelReader {
 public:
  DirectoryReader(std::unique_ptr<ModelReader> inner, nlohmann::json config)
      : inner_(std::move(inner)) {
    tensors_ = inner_->tensors();
    files_ = inner_->files();
    metadata_ = inner_->metadata();
    metadata_["config"] = std::move(config);
  }
  const char* format() const override { return inner_->format(); }
  void Release(const TensorInfo& t) const override { inner_->Release(t); }
  std::span<const uint8_t> RawBytes(const TensorInfo& t) const override {
    return inner_->RawBytes(t);
  }

 private:
  std::unique_ptr<ModelReader> inner_;
};

std::string JoinNames(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

Result<nlohmann::json> ReadConfig(const std::string& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) return IoError("cannot read '" + path + "': " + ec.message());
  if (size > kMaxConfigSize) {
    return InvalidData(path + ": " + std::to_string(size) + " bytes, over the " +
                       std::to_string(kMaxConfigSize) + "-byte limit for config.json");
  }
  OWF_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, ReadFileBytes(path));
  try {
    nlohmann::json config = nlohmann::json::parse(bytes.begin(), bytes.end());
    if (!config.is_object()) return InvalidData(path + ": config is not a JSON object");
    return config;
  } catch (const nlohmann::json::parse_error& e) {
    return InvalidData(path + ": not valid JSON (error at byte " +
                       std::to_string(e.byte > 0 ? e.byte - 1 : 0) + "): " + e.what());
  } catch (const nlohmann::json::exception& e) {
    return InvalidData(path + ": not valid JSON: " + e.what());
  } catch (const std::bad_alloc&) {
    return InvalidData(path + ": out of memory parsing JSON");
  }
}

Result<std::unique_ptr<ModelReader>> OpenDirectory(const std::string& dir) {
  std::vector<std::string> indexes, files;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) return IoError("cannot list directory '" + dir + "': " + ec.message());
  for (const fs::directory_iterator end; it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    std::error_code type_ec;
    if (!it->is_regular_file(type_ec)) continue;  // follows symlinks (hub caches use them)
    if (EndsWith(name, kIndexSuffix)) indexes.push_back(name);
    if (EndsWith(name, ".safetensors")) files.push_back(name);
  }
  if (ec) return IoError("cannot list directory '" + dir + "': " + ec.message());
  std::sort(indexes.begin(), indexes.end());
  std::sort(files.begin(), files.end());

  const fs::path base(dir);
  std::string chosen;
  bool sharded = false;
  if (std::find(indexes.begin(), indexes.end(), kIndexName) != indexes.end()) {
    chosen = kIndexName;
    sharded = true;
  } else if (indexes.size() == 1) {
    chosen = indexes[0];
    sharded = true;
  } else if (indexes.size() > 1) {
    return InvalidArgument("directory '" + dir + "' has several safetensors indexes and no " +
                           kIndexName + ": " + JoinNames(indexes));
  } else if (files.size() == 1) {
    chosen = files[0];
  } else if (files.empty()) {
    return InvalidArgument("directory '" + dir + "' has no " + kIndexName +
                           " and no *.safetensors file");
  } else {
    return InvalidArgument("directory '" + dir + "' has several *.safetensors files and no " +
                           kIndexName + ": " + JoinNames(files));
  }
  const std::string path = (base / chosen).string();
  OWF_ASSIGN_OR_RETURN(std::unique_ptr<ModelReader> inner,
                       sharded ? OpenSafetensorsIndex(path) : OpenSafetensors(path));

  const fs::path config_path = base / "config.json";
  if (!fs::exists(config_path, ec)) return inner;
  OWF_ASSIGN_OR_RETURN(nlohmann::json config, ReadConfig(config_path.string()));
  try {
    return std::unique_ptr<ModelReader>(
        std::make_unique<DirectoryReader>(std::move(inner), std::move(config)));
  } catch (const std::bad_alloc&) {
    return Internal("out of memory opening '" + dir + "'");
  }
}

// Reads up to 8 leading bytes of a file; fewer when the file is shorter.
Result<std::string> ReadMagic(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    return IoError("cannot open '" + path + "': " + std::system_category().message(err));
  }
  char buf[8];
  size_t got = 0;
  while (got < sizeof(buf)) {
    const ssize_t n = ::read(fd, buf + got, sizeof(buf) - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  return std::string(buf, got);
}

}  // namespace

Result<std::unique_ptr<ModelReader>> OpenModel(const std::string& path) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) {
    return IoError("cannot open '" + path +
                   "': " + (ec ? ec.message() : std::string("no such file or directory")));
  }
  if (fs::is_directory(st)) return OpenDirectory(path);
  if (EndsWith(path, kIndexSuffix)) return OpenSafetensorsIndex(path);
  OWF_ASSIGN_OR_RETURN(std::string magic, ReadMagic(path));
  if (magic.rfind("GGUF", 0) == 0) return OpenGguf(path);
  if (EndsWith(path, ".npy") || magic.rfind("\x93NUMPY", 0) == 0) {
    OWF_ASSIGN_OR_RETURN(Tensor t, ReadNpy(path));
    try {
      return std::unique_ptr<ModelReader>(std::make_unique<NpyReader>(path, std::move(t)));
    } catch (const std::bad_alloc&) {
      return Internal("out of memory opening '" + path + "'");
    }
  }
  return OpenSafetensors(path);
}

}  // namespace owf
