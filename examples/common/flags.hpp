// Command-line flags of the example programs: each flag is "--name VALUE" (a repeatable one
// collects every value), and --help (or -h) lists them all. A wrong command line is refused with
// a reason and the usage, exit status 2; --help prints the usage on stdout and exits 0.
//
//   examples::Flags flags("calculator_server", "Serves the calculator until SIGINT or SIGTERM.");
//   flags.text("--config", "FILE", "configuration file (brine/config.hpp)", &config_path)
//       .count("--workers", "handler threads; 0 runs handlers on the I/O threads", 0, 1024,
//              &workers);
//   flags.parse(argc, argv);
#pragma once

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace examples {

class Flags {
 public:
  Flags(std::string program, std::string summary)
      : program_(std::move(program)), summary_(std::move(summary)) {}

  // --name VALUE, stored in *out (the last one given wins).
  Flags& text(std::string name, std::string value_name, std::string help, std::string* out) {
    return add(std::move(name), std::move(value_name), std::move(help), false,
               [out](const std::string& v) {
                 *out = v;
                 return std::string();
               });
  }
  // --name VALUE, repeatable: every value is appended to *out.
  Flags& texts(std::string name, std::string value_name, std::string help,
               std::vector<std::string>* out) {
    return add(std::move(name), std::move(value_name), std::move(help), true,
               [out](const std::string& v) {
                 out->push_back(v);
                 return std::string();
               });
  }
  // --name N: a whole number in [min, max].
  Flags& count(std::string name, std::string help, long min, long max, long* out) {
    return add(std::move(name), "N", std::move(help), false, [out, min, max](const std::string& v) {
      char* end = nullptr;
      errno = 0;
      const long n = std::strtol(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || errno != 0 || n < min || n > max) {
        return "'" + v + "' is not a whole number in [" + std::to_string(min) + ", " +
               std::to_string(max) + "]";
      }
      *out = n;
      return std::string();
    });
  }

  void parse(int argc, char** argv) const {
    for (int i = 1; i < argc; ++i) {
      const std::string arg = argv[i];
      if (arg == "--help" || arg == "-h") {
        std::fputs(usage().c_str(), stdout);
        std::exit(0);
      }
      const Flag* flag = find(arg);
      if (flag == nullptr) fail("unknown option " + arg);
      if (i + 1 >= argc) fail("missing " + flag->value_name + " after " + arg);
      const std::string why = flag->set(argv[++i]);
      if (!why.empty()) fail(arg + ": " + why);
    }
  }

  // Refuses the command line (for checks made after parse()).
  [[noreturn]] void fail(const std::string& why) const {
    std::fprintf(stderr, "%s: %s\n%s", program_.c_str(), why.c_str(), usage().c_str());
    std::exit(2);
  }

  std::string usage() const {
    std::string out = "usage: " + program_;
    for (const Flag& f : flags_) {
      out += " [" + f.name + " " + f.value_name + (f.repeatable ? " ...]" : "]");
    }
    out += "\n" + summary_ + "\n\n";
    for (const Flag& f : flags_) {
      std::string left = "  " + f.name + " " + f.value_name;
      left.resize(std::max<std::size_t>(left.size() + 2, 24), ' ');
      out += left + f.help + (f.repeatable ? " (repeatable)" : "") + "\n";
    }
    out += "  --help                show this help\n";
    return out;
  }

 private:
  struct Flag {
    std::string name;
    std::string value_name;
    std::string help;
    bool repeatable;
    std::function<std::string(const std::string&)> set;  // "" or why the value is refused
  };

  Flags& add(std::string name, std::string value_name, std::string help, bool repeatable,
             std::function<std::string(const std::string&)> set) {
    flags_.push_back(
        {std::move(name), std::move(value_name), std::move(help), repeatable, std::move(set)});
    return *this;
  }
  const Flag* find(const std::string& name) const {
    for (const Flag& f : flags_) {
      if (f.name == name) return &f;
    }
    return nullptr;
  }

  std::string program_;
  std::string summary_;
  std::vector<Flag> flags_;
};

}  // namespace examples
