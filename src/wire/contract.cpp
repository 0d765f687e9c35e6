#include "wire/contract.hpp"

#include <cstdint>
#include <vector>

namespace brine::wire {
namespace {

enum class Kind {
  prim,
  vec,
  arr,
  set,
  map,
  opt,
  var,
  tup,
  aggregate,
  versioned,
  named,
  enumeration,
  ref,
  object,  // an object passed as an argument ("obj'Name'")
  in,      // items of a stream from the client ("in<T>")
  out      // items of a stream to the client ("out<T>")
};

// One type of a parsed contract (include/brine/fingerprint.hpp has the grammar).
struct Node {
  Kind kind = Kind::prim;
  std::string tag;           // "i32" for a primitive, "pb" or "o" for a named type
  std::string name;          // the quoted name, when the shape has one
  std::uint64_t number = 0;  // an array's size, a version
  std::vector<Node> items;
};

struct Signature {
  std::vector<Node> args;
  Node result;
};

constexpr std::string_view kPrimitives[] = {"bool", "char", "i8",   "i16", "i32",
                                            "i64",  "u8",   "u16",  "u32", "u64",
                                            "f32",  "f64",  "f128", "str", "void"};

// A recursive-descent parser of hostile text: every step consumes a character or fails, and the
// depth is bounded, so any input ends quickly.
class Parser {
 public:
  explicit Parser(std::string_view text) : t_(text) {}

  bool signature(Signature& out) {
    if (t_.size() > kMaxContractText || !eat('(')) return false;
    if (!at(')') && !list(out.args, 1)) return false;
    return eat(')') && eat('-') && eat('>') && shape(out.result, 1) && pos_ == t_.size();
  }

 private:
  bool at(char c) const { return pos_ < t_.size() && t_[pos_] == c; }
  bool eat(char c) {
    if (!at(c)) return false;
    ++pos_;
    return true;
  }
  std::string_view ident() {
    const std::size_t start = pos_;
    while (pos_ < t_.size() &&
           ((t_[pos_] >= 'a' && t_[pos_] <= 'z') || (t_[pos_] >= '0' && t_[pos_] <= '9'))) {
      ++pos_;
    }
    return t_.substr(start, pos_ - start);
  }
  bool quoted(std::string& out) {
    if (!eat('\'')) return false;
    const std::size_t end = t_.find('\'', pos_);
    if (end == std::string_view::npos) return false;
    out.assign(t_.substr(pos_, end - pos_));
    pos_ = end + 1;
    return true;
  }
  bool number(std::uint64_t& out) {
    const std::size_t start = pos_;
    out = 0;
    while (pos_ < t_.size() && t_[pos_] >= '0' && t_[pos_] <= '9' && pos_ - start < 19) {
      out = out * 10 + std::uint64_t(t_[pos_++] - '0');
    }
    return pos_ != start;
  }
  bool list(std::vector<Node>& out, std::size_t depth) {
    do {
      out.emplace_back();
      if (!shape(out.back(), depth)) return false;
    } while (eat(','));
    return true;
  }
  bool items(Node& n, std::size_t depth, std::size_t count, char open, char close) {
    if (!eat(open)) return false;
    if (count == 0) {  // any number, none included
      if (!at(close) && !list(n.items, depth + 1)) return false;
    } else {
      if (!list(n.items, depth + 1) || n.items.size() != count) return false;
    }
    return eat(close);
  }

  bool shape(Node& n, std::size_t depth) {
    if (depth > kMaxContractDepth) return false;
    const std::string_view id = ident();
    if (id.empty()) return false;
    n.tag.assign(id);
    if (id == "vec" || id == "set" || id == "opt") {
      n.kind = id == "vec" ? Kind::vec : id == "set" ? Kind::set : Kind::opt;
      return items(n, depth, 1, '<', '>');
    }
    if (id == "in" || id == "out") {
      n.kind = id == "in" ? Kind::in : Kind::out;
      return items(n, depth, 1, '<', '>');
    }
    if (id == "map") {
      n.kind = Kind::map;
      return items(n, depth, 2, '<', '>');
    }
    if (id == "var" || id == "tup") {
      n.kind = id == "var" ? Kind::var : Kind::tup;
      return items(n, depth, 0, '<', '>');
    }
    if (id == "arr") {
      n.kind = Kind::arr;
      n.items.emplace_back();
      return eat('<') && shape(n.items.back(), depth + 1) && eat(',') && number(n.number) &&
             eat('>');
    }
    if (id == "s") {
      n.kind = Kind::aggregate;
      if (at('\'') && !quoted(n.name)) return false;
      return items(n, depth, 0, '{', '}');
    }
    if (id == "v") {
      n.kind = Kind::versioned;
      return quoted(n.name) && eat('@') && number(n.number);
    }
    if (id == "e") {
      n.kind = Kind::enumeration;
      return quoted(n.name) && items(n, depth, 1, '<', '>');
    }
    if (id == "ref" || id == "obj") {
      n.kind = id == "ref" ? Kind::ref : Kind::object;
      return quoted(n.name);
    }
    for (std::string_view p : kPrimitives) {
      if (id == p) {
        n.kind = Kind::prim;
        return true;
      }
    }
    n.kind = Kind::named;  // pb'name', o'name', or a tag of a codec this build lacks
    return quoted(n.name);
  }

  std::string_view t_;
  std::size_t pos_ = 0;
};

std::string display(const Node& n);

std::string display_list(const std::vector<Node>& items) {
  std::string s;
  for (const Node& item : items) {
    if (!s.empty()) s += ", ";
    s += display(item);
  }
  return s;
}

std::string display(const Node& n) {
  switch (n.kind) {
    case Kind::prim: {
      static constexpr std::pair<std::string_view, std::string_view> kNames[] = {
          {"i8", "std::int8_t"},   {"i16", "short"},         {"i32", "int"},
          {"i64", "std::int64_t"}, {"u8", "std::uint8_t"},   {"u16", "unsigned short"},
          {"u32", "unsigned"},     {"u64", "std::uint64_t"}, {"f32", "float"},
          {"f64", "double"},       {"f128", "long double"},  {"str", "std::string"}};
      for (const auto& [tag, cpp] : kNames) {
        if (n.tag == tag) return std::string(cpp);
      }
      return n.tag;  // bool, char, void
    }
    case Kind::vec:
      return "std::vector<" + display(n.items[0]) + ">";
    case Kind::in:
      return "brine::Reader<" + display(n.items[0]) + ">&";
    case Kind::out:
      return "brine::Writer<" + display(n.items[0]) + ">&";
    case Kind::set:
      return "std::set<" + display(n.items[0]) + ">";
    case Kind::opt:
      return "std::optional<" + display(n.items[0]) + ">";
    case Kind::map:
      return "std::map<" + display_list(n.items) + ">";
    case Kind::var:
      return "std::variant<" + display_list(n.items) + ">";
    case Kind::tup:
      return "std::tuple<" + display_list(n.items) + ">";
    case Kind::arr:
      return "std::array<" + display(n.items[0]) + ", " + std::to_string(n.number) + ">";
    case Kind::aggregate:
      return n.name.empty() ? "struct {" + display_list(n.items) + "}" : n.name;
    case Kind::versioned:
      return n.name + " (version " + std::to_string(n.number) + ")";
    case Kind::enumeration:
      return n.name;
    case Kind::ref:
      return "brine::Ref<" + n.name + ">";
    case Kind::object:
      return "brine::Remote<" + n.name + ">";
    case Kind::named: {
      if (n.tag == "json") return "brine::JsonText";
      if (n.tag != "pb") return n.name;
      std::string s;  // protobuf's full name, as the C++ class
      for (char c : n.name) s += c == '.' ? std::string("::") : std::string(1, c);
      return s;
    }
  }
  return n.tag;
}

std::string declaration(std::string_view name, const Signature& sig) {
  return display(sig.result) + " " + std::string(name) + "(" + display_list(sig.args) + ")";
}

// The last component of a method field: "add" of "calc.add" or "@17.add".
std::string_view short_name(std::string_view method) {
  const std::size_t dot = method.rfind('.');
  return dot == std::string_view::npos ? method : method.substr(dot + 1);
}

// Whether what `client` and `server` describe are compatible, in the direction `client_writes`
// (arguments) or not (the result). On a mismatch `where` says where, innermost last.
bool compatible(const Node& client, const Node& server, bool client_writes, std::string& where);

bool compatible_items(const Node& client, const Node& server, bool client_writes,
                      std::string& where, const char* part) {
  if (client.items.size() != server.items.size()) {
    where = std::to_string(client.items.size()) + " " + part + "s on the client, " +
            std::to_string(server.items.size()) + " on the server";
    return false;
  }
  for (std::size_t i = 0; i < client.items.size(); ++i) {
    if (!compatible(client.items[i], server.items[i], client_writes, where)) {
      where = std::string(part) + " " + std::to_string(i + 1) + ": " + where;
      return false;
    }
  }
  return true;
}

bool compatible(const Node& client, const Node& server, bool client_writes, std::string& where) {
  const auto differ = [&] {
    where = display(client) + " on the client, " + display(server) + " on the server";
    return false;
  };
  // JSON text (brine::JsonText) fits anything: the side that holds the types decodes it.
  if ((client.kind == Kind::named && client.tag == "json") ||
      (server.kind == Kind::named && server.tag == "json")) {
    return true;
  }
  if (client.kind != server.kind) return differ();
  switch (client.kind) {
    case Kind::prim:
      return client.tag == server.tag || differ();
    case Kind::ref:  // the object's own methods are checked when they are called
    case Kind::object:
      return true;
    case Kind::named:
    case Kind::enumeration:
      if (client.tag != server.tag || client.name != server.name) return differ();
      return compatible_items(client, server, client_writes, where, "underlying type");
    case Kind::versioned: {
      if (client.name != server.name) return differ();
      const std::uint64_t writer = client_writes ? client.number : server.number;
      const std::uint64_t reader = client_writes ? server.number : client.number;
      if (writer <= reader) return true;
      where = display(client) + " on the client, " + display(server) +
              " on the server: the reader is older than the writer";
      return false;
    }
    case Kind::arr:
      if (client.number != server.number) return differ();
      return compatible_items(client, server, client_writes, where, "element");
    case Kind::vec:
    case Kind::set:
    case Kind::opt:
      return compatible_items(client, server, client_writes, where, "element");
    case Kind::map:
      return compatible_items(client, server, client_writes, where, "key/value");
    case Kind::in:  // the client writes these items
      return compatible_items(client, server, true, where, "stream item");
    case Kind::out:  // and reads these
      return compatible_items(client, server, false, where, "stream item");
    case Kind::var:
      return compatible_items(client, server, client_writes, where, "alternative");
    case Kind::tup:
      return compatible_items(client, server, client_writes, where, "element");
    case Kind::aggregate:
      return compatible_items(client, server, client_writes, where, "field");
  }
  return differ();
}

}  // namespace

std::string display_signature(std::string_view name, std::string_view contract) {
  Signature sig;
  if (!Parser(contract).signature(sig)) return std::string(contract);
  return declaration(name, sig);
}

StreamEnds stream_ends(std::string_view contract) {
  StreamEnds ends;
  Signature sig;
  if (!Parser(contract).signature(sig)) return ends;
  for (const Node& arg : sig.args) {
    ends.in = ends.in || arg.kind == Kind::in;
    ends.out = ends.out || arg.kind == Kind::out;
  }
  return ends;
}

Status check_contract(std::string_view method, std::uint64_t client_fingerprint,
                      std::string_view client, const Contract& server, bool oneway) {
  if (client_fingerprint == server.fingerprint) return {};
  Signature theirs;
  if (!Parser(client).signature(theirs)) {
    return {StatusCode::invalid_argument,
            "the contract the client sent for '" + std::string(method) + "' does not parse"};
  }
  Signature ours;
  (void)Parser(server.text).signature(ours);  // our own: built by fingerprint.hpp
  std::string where;
  bool ok = true;
  if (theirs.args.size() != ours.args.size()) {
    ok = false;
    where = std::to_string(theirs.args.size()) + " arguments on the client, " +
            std::to_string(ours.args.size()) + " on the server";
  }
  for (std::size_t i = 0; ok && i < ours.args.size(); ++i) {
    if (!compatible(theirs.args[i], ours.args[i], true, where)) {
      where = "argument " + std::to_string(i + 1) + ": " + where;
      ok = false;
    }
  }
  if (ok && !oneway && !compatible(theirs.result, ours.result, false, where)) {
    where = "the result: " + where;
    ok = false;
  }
  if (ok) return {};
  const std::string_view name = short_name(method);
  return {StatusCode::failed_precondition,
          "method '" + std::string(method) + "': the client's `" + declaration(name, theirs) +
              "` does not match the server's `" + declaration(name, ours) + "` (" + where + ")"};
}

}  // namespace brine::wire
