// Plain-text tables for the CLI: columns sized to their contents, numbers right-aligned.
#pragma once

#include <string>
#include <vector>

namespace owf::cli {

class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
  void AddRow(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  std::string Render() const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

std::string Fixed(double v, int decimals);  // "0.0889"

}  // namespace owf::cli
