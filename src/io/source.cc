#include "owf/io/source.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>

#include "owf/io/mapped_file.h"
#include "owf/io/json_integer.h"

namespace owf {
namespace fs = std::filesystem;
namespace {

constexpr uintmax_t kMaxExtraFile = uintmax_t{64} << 20;

bool IsDirectorySource(const std::string& input) {
  return fs::is_directory(input) || input.ends_with(".safetensors.index.json");
}

fs::path SourceDir(const std::string& input) {
  return fs::is_directory(input) ? fs::path(input) : fs::path(input).parent_path();
}

fs::path SourcePath(const SourceLayout& layout, const SourceFile& f, const std::string& input) {
  return layout.directory ? SourceDir(input) / f.name : fs::path(input);
}

std::string Errno() { return std::strerror(errno); }

}  // namespace

nlohmann::json SourceLayout::ToJson() const {
  nlohmann::json j{{"format", format}, {"directory", directory}, {"extra_files", extra_files}};
  j["files"] = nlohmann::json::array();
  for (const auto& f : files) {
    nlohmann::json tensors = nlohmann::json::array();
    for (const auto& t : f.tensors) tensors.push_back({t.name, t.offset, t.nbytes});
    j["files"].push_back({{"name", f.name}, {"size", f.size}, {"tensors", tensors}});
  }
  return j;
}

Result<SourceLayout> SourceLayout::FromJson(const nlohmann::json& j) {
  try {
    SourceLayout l;
    l.format = j.at("format").get<std::string>();
    l.directory = j.at("directory").get<bool>();
    l.extra_files = j.at("extra_files").get<std::vector<std::string>>();
    for (const auto& f : j.at("files")) {
      SourceFile sf{f.at("name").get<std::string>(), JsonInteger<uint64_t>(f.at("size")), {}};
      uint64_t end = 0;
      for (const auto& t : f.at("tensors")) {
        SourceTensor st{t.at(0).get<std::string>(), JsonInteger<uint64_t>(t.at(1)), JsonInteger<uint64_t>(t.at(2))};
        if (st.offset < end || st.nbytes > sf.size || st.offset > sf.size - st.nbytes)
          return InvalidData("source layout: tensor '" + st.name + "' overlaps or lies outside '" + sf.name + "'");
        end = st.offset + st.nbytes;
        sf.tensors.push_back(std::move(st));
      }
      l.files.push_back(std::move(sf));
    }
    for (const auto& name : l.extra_files)
      if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
        return InvalidData("source layout: bad extra file name '" + name + "'");
    for (const auto& f : l.files)
      if (l.directory && (f.name.empty() || f.name.find('/') != std::string::npos || f.name == ".."))
        return InvalidData("source layout: bad file name '" + f.name + "'");
    return l;
  } catch (const nlohmann::json::exception& e) {
    return InvalidData(std::string("source layout: ") + e.what());
  }
}

Result<SourceLayout> DescribeSource(const ModelReader& reader, const std::string& input) {
  SourceLayout l;
  l.format = reader.format();
  if (l.format == "npy") return l;
  l.directory = IsDirectorySource(input);
  std::vector<std::string> shard_names;
  for (size_t i = 0; i < reader.files().size(); ++i) {
    const std::string& path = reader.files()[i];
    std::error_code ec;
    const uintmax_t size = fs::file_size(path, ec);
    if (ec) return IoError("cannot stat '" + path + "': " + ec.message());
    SourceFile f{l.directory ? fs::path(path).filename().string() : std::string(), size, {}};
    for (const auto& t : reader.tensors())
      if (t.shard == static_cast<int>(i)) f.tensors.push_back({t.name, t.offset, t.nbytes});
    std::sort(f.tensors.begin(), f.tensors.end(),
              [](const SourceTensor& a, const SourceTensor& b) { return a.offset < b.offset; });
    uint64_t end = 0;
    for (const auto& t : f.tensors) {
      if (t.offset < end || t.offset + t.nbytes > size)
        return InvalidData("'" + path + "': tensor '" + t.name + "' overlaps another or lies outside the file");
      end = t.offset + t.nbytes;
    }
    shard_names.push_back(fs::path(path).filename().string());
    l.files.push_back(std::move(f));
  }
  if (l.directory) {
    for (const auto& entry : fs::directory_iterator(SourceDir(input))) {
      const std::string name = entry.path().filename().string();
      if (!entry.is_regular_file() || name.starts_with(".")) continue;
      if (std::find(shard_names.begin(), shard_names.end(), name) != shard_names.end()) continue;
      if (entry.file_size() > kMaxExtraFile) continue;  // e.g. other weight formats: not carried
      l.extra_files.push_back(name);
    }
    std::sort(l.extra_files.begin(), l.extra_files.end());
  }
  return l;
}

Result<std::vector<uint8_t>> ReadGapBytes(const SourceLayout& layout, size_t index, const std::string& input) {
  const SourceFile& f = layout.files.at(index);
  OWF_ASSIGN_OR_RETURN(auto map, MappedFile::Open(SourcePath(layout, f, input).string()));
  const auto bytes = map->bytes();
  if (bytes.size() != f.size) return InvalidData("'" + map->path() + "' changed size while owf was reading it");
  std::vector<uint8_t> gaps;
  uint64_t pos = 0;
  for (const auto& t : f.tensors) {
    gaps.insert(gaps.end(), bytes.begin() + pos, bytes.begin() + t.offset);
    pos = t.offset + t.nbytes;
  }
  gaps.insert(gaps.end(), bytes.begin() + pos, bytes.end());
  return gaps;
}

Result<std::vector<uint8_t>> ReadExtraFile(const SourceLayout& layout, size_t index, const std::string& input) {
  OWF_ASSIGN_OR_RETURN(auto map, MappedFile::Open((SourceDir(input) / layout.extra_files.at(index)).string()));
  return std::vector<uint8_t>(map->bytes().begin(), map->bytes().end());
}

struct LikeSourceWriter::Impl {
  SourceLayout layout;
  fs::path output, temp;
  std::vector<int> fds;
  std::map<std::string, std::pair<size_t, const SourceTensor*>> tensors;
  std::vector<bool> gaps_done, extras_done;
  size_t tensors_done = 0;
  bool finished = false;

  Status Write(int fd, std::span<const uint8_t> bytes, uint64_t offset, const std::string& what) {
    size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = pwrite(fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return IoError("writing " + what + " to '" + temp.string() + "': " + Errno());
      done += static_cast<size_t>(n);
    }
    return Status::Ok();
  }
  ~Impl() {
    for (int fd : fds)
      if (fd >= 0) close(fd);
    if (!finished && !temp.empty()) {
      std::error_code ec;
      fs::remove_all(temp, ec);
    }
  }
};

LikeSourceWriter::LikeSourceWriter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LikeSourceWriter::~LikeSourceWriter() = default;

Result<std::unique_ptr<LikeSourceWriter>> LikeSourceWriter::Create(const SourceLayout& layout,
                                                                   const std::string& output) {
  if (layout.format == "npy") return Unsupported("npy sources are written with WriteNpy");
  auto impl = std::make_unique<Impl>();
  impl->layout = layout;
  impl->output = output;
  impl->temp = output + ".tmp-" + std::to_string(getpid());
  std::error_code ec;
  if (layout.directory) {
    if (fs::exists(impl->output)) return IoError("output directory '" + output + "' already exists");
    fs::create_directory(impl->temp, ec);
    if (ec) return IoError("cannot create '" + impl->temp.string() + "': " + ec.message());
  } else if (layout.files.size() != 1) {
    return InvalidData("a single-file source must have exactly one file");
  }
  for (size_t i = 0; i < layout.files.size(); ++i) {
    const SourceFile& f = layout.files[i];
    const fs::path path = layout.directory ? impl->temp / f.name : impl->temp;
    const int fd = open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) return IoError("cannot create '" + path.string() + "': " + Errno());
    impl->fds.push_back(fd);
    if (ftruncate(fd, static_cast<off_t>(f.size)) != 0) return IoError("cannot size '" + path.string() + "': " + Errno());
    for (const auto& t : f.tensors) {
      if (!impl->tensors.emplace(t.name, std::make_pair(i, &t)).second)
        return InvalidData("tensor '" + t.name + "' appears twice in the source");
    }
  }
  impl->gaps_done.assign(layout.files.size(), false);
  impl->extras_done.assign(layout.extra_files.size(), false);
  return std::unique_ptr<LikeSourceWriter>(new LikeSourceWriter(std::move(impl)));
}

Status LikeSourceWriter::PutGaps(size_t i, std::span<const uint8_t> gaps) {
  if (i >= impl_->layout.files.size()) return InvalidArgument("no source file " + std::to_string(i));
  const SourceFile& f = impl_->layout.files[i];
  uint64_t expected = f.size;
  for (const auto& t : f.tensors) expected -= t.nbytes;
  if (gaps.size() != expected)
    return InvalidData("'" + f.name + "': " + std::to_string(gaps.size()) + " bytes outside tensors, expected " +
                       std::to_string(expected));
  uint64_t pos = 0, taken = 0;
  auto put = [&](uint64_t end) -> Status {
    const uint64_t len = end - pos;
    OWF_RETURN_IF_ERROR(impl_->Write(impl_->fds[i], gaps.subspan(taken, len), pos, "file header"));
    taken += len;
    return Status::Ok();
  };
  for (const auto& t : f.tensors) {
    OWF_RETURN_IF_ERROR(put(t.offset));
    pos = t.offset + t.nbytes;
  }
  OWF_RETURN_IF_ERROR(put(f.size));
  impl_->gaps_done[i] = true;
  return Status::Ok();
}

Status LikeSourceWriter::PutExtra(size_t i, std::span<const uint8_t> contents) {
  if (i >= impl_->layout.extra_files.size()) return InvalidArgument("no extra file " + std::to_string(i));
  const fs::path path = impl_->temp / impl_->layout.extra_files[i];
  const int fd = open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) return IoError("cannot create '" + path.string() + "': " + Errno());
  Status st = impl_->Write(fd, contents, 0, "file");
  close(fd);
  if (st.ok()) impl_->extras_done[i] = true;
  return st;
}

Status LikeSourceWriter::PutTensor(const std::string& name, std::span<const uint8_t> bytes) {
  auto it = impl_->tensors.find(name);
  if (it == impl_->tensors.end()) return InvalidArgument("tensor '" + name + "' is not in the source layout");
  const auto [file, t] = it->second;
  if (bytes.size() != t->nbytes)
    return InvalidData("tensor '" + name + "': " + std::to_string(bytes.size()) + " bytes, the source has " +
                       std::to_string(t->nbytes));
  OWF_RETURN_IF_ERROR(impl_->Write(impl_->fds[file], bytes, t->offset, "tensor '" + name + "'"));
  ++impl_->tensors_done;
  return Status::Ok();
}

Status LikeSourceWriter::Finish() {
  Impl& m = *impl_;
  if (m.tensors_done != m.tensors.size()) return Internal("not every tensor was written");
  if (std::find(m.gaps_done.begin(), m.gaps_done.end(), false) != m.gaps_done.end() ||
      std::find(m.extras_done.begin(), m.extras_done.end(), false) != m.extras_done.end())
    return Internal("not every file part was written");
  for (int& fd : m.fds) {
    if (fsync(fd) != 0 || close(fd) != 0) {
      fd = -1;
      return IoError("cannot finish writing '" + m.temp.string() + "': " + Errno());
    }
    fd = -1;
  }
  std::error_code ec;
  fs::rename(m.temp, m.output, ec);
  if (ec) return IoError("cannot rename '" + m.temp.string() + "' to '" + m.output.string() + "': " + ec.message());
  m.finished = true;
  return Status::Ok();
}

}  // namespace owf
