// Contracts: what a method's argument and result types look like, as a canonical text and a
// 64-bit fingerprint, both computed at compile time. A client sends a method's contract with its
// first call of that method on each connection; the server compares it with its own and refuses
// a mismatch with FAILED_PRECONDITION instead of decoding garbage (docs/wire-format.md,
// "Contracts"; the compatibility rule is in docs/design.md, "Contracts").
//
// The shape of a type follows its structure, not its C++ spelling:
//   bool char i8 i16 i32 i64 u8 u16 u32 u64 f32 f64 f128 str   fundamental types, std::string
//   vec<T>  arr<T,N>  set<T>  map<K,V>  opt<T>  var<T,...>  tup<T,...>
//                                  sequences, std::array, sets, maps, std::optional,
//                                  std::variant, std::pair and std::tuple
//   s'Name'{T,...}                 an aggregate struct, by its fields' types in order
//   v'Name'@N                      a type declared with BRINE_VERSION(Name, N)
//   pb'pkg.Message'                a protobuf message, by its full name
//   json'brine.JsonText'           JSON text, compatible with every shape
//   e'Name'<T>                     an enum, by its name and underlying type
//   o'Name'                        any other class, by its qualified name
//   ref'Name'                      Ref<Name>, a remote reference
//   obj'Name'                      Remote<Name>, an object passed as an argument
//   void
// and a method's contract is "(A,B)->R". The fingerprint is FNV-1a (64 bits) of the contract
// with the display names of aggregates left out (s{T,...}), so it does not depend on how a
// compiler spells a struct's name, nor on which namespace a client declared its copy in.
//
// A class that the reflection cannot see through (private members, base classes with members,
// C array members) is compared by its name (o'Name'); declare BRINE_VERSION(Type, N) to compare
// it by a name and version of your own:
//
//   struct Account { ... template <class A> void serialize(A& ar, std::uint32_t version); };
//   BRINE_VERSION(Account, 2);   // at namespace scope, in Account's namespace
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

namespace brine {

template <class T>
class Ref;
template <class T>
class Remote;

// A method's contract: the fingerprint and the canonical text it was computed from.
struct Contract {
  std::uint64_t fingerprint = 0;
  std::string_view text;
};

// Specialised by codec headers for type families they know (the protobuf header: messages).
// A specialisation has `static constexpr std::string_view tag` ("pb"): the shape is then
// tag'Name' with the type's qualified name, "::" written ".".
template <class T>
struct ShapeTraits {};

namespace detail {

constexpr std::uint64_t fnv1a(std::string_view s) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (char c : s) {
    h ^= std::uint8_t(c);
    h *= 0x100000001b3ull;
  }
  return h;
}

// The name of T as the compiler spells it ("calc::Number"), at compile time.
template <class T>
constexpr std::string_view raw_type_name() noexcept {
  constexpr std::string_view f = __PRETTY_FUNCTION__;
  // g++: "... [with T = calc::Number; std::string_view = ...]"; clang: "... [T = calc::Number]"
  constexpr std::size_t start = f.find("T = ") + 4;
  constexpr std::size_t semi = f.find(';', start);
  constexpr std::size_t end = semi != std::string_view::npos ? semi : f.rfind(']');
  return f.substr(start, end - start);
}

template <class T, template <class...> class Tmpl>
inline constexpr bool is_specialisation = false;
template <template <class...> class Tmpl, class... A>
inline constexpr bool is_specialisation<Tmpl<A...>, Tmpl> = true;

template <class T>
struct ref_target;
template <class T>
struct ref_target<Ref<T>> {
  using type = T;
};
template <class T>
struct ref_target<Remote<T>> {
  using type = T;
};

template <class T>
inline constexpr bool is_std_array = false;
template <class T, std::size_t N>
inline constexpr bool is_std_array<std::array<T, N>> = true;

// --- aggregate reflection: the number and types of an aggregate's fields ----------------------

// Converts to anything but T itself: counts how many initialisers T{...} takes.
template <class T>
struct AnyField {
  template <class U>
  requires(!std::is_same_v<std::remove_cvref_t<U>, T>) operator U() const noexcept;
};

template <class T, std::size_t N>
constexpr bool braces_with() noexcept {
  return []<std::size_t... I>(std::index_sequence<I...>) {
    return requires {
      T{((void)I, AnyField<T>{})...};
    };
  }
  (std::make_index_sequence<N>{});
}

inline constexpr std::size_t kMaxReflectedFields = 16;

template <class T, std::size_t N = kMaxReflectedFields>
constexpr std::size_t field_count() noexcept {
  if constexpr (N == 0 || braces_with<T, N>()) {
    return N;
  } else {
    return field_count<T, N - 1>();
  }
}

template <class... A>
std::type_identity<std::tuple<std::remove_cvref_t<A>...>> types_of(A&...);

#define BRINE_DETAIL_BIND(n, ...)             \
  else if constexpr (count == n) {            \
    auto& [__VA_ARGS__] = t;                  \
    return decltype(types_of(__VA_ARGS__)){}; \
  }

// std::type_identity<std::tuple<field types...>> of an aggregate (unevaluated use only).
template <class T>
auto field_types(T& t) {
  constexpr std::size_t count = field_count<T>();
  if constexpr (count == 0) {
    (void)t;
    return std::type_identity<std::tuple<>>{};
  }
  BRINE_DETAIL_BIND(1, a)
  BRINE_DETAIL_BIND(2, a, b)
  BRINE_DETAIL_BIND(3, a, b, c)
  BRINE_DETAIL_BIND(4, a, b, c, d)
  BRINE_DETAIL_BIND(5, a, b, c, d, e)
  BRINE_DETAIL_BIND(6, a, b, c, d, e, f)
  BRINE_DETAIL_BIND(7, a, b, c, d, e, f, g)
  BRINE_DETAIL_BIND(8, a, b, c, d, e, f, g, h)
  BRINE_DETAIL_BIND(9, a, b, c, d, e, f, g, h, i)
  BRINE_DETAIL_BIND(10, a, b, c, d, e, f, g, h, i, j)
  BRINE_DETAIL_BIND(11, a, b, c, d, e, f, g, h, i, j, k)
  BRINE_DETAIL_BIND(12, a, b, c, d, e, f, g, h, i, j, k, l)
  BRINE_DETAIL_BIND(13, a, b, c, d, e, f, g, h, i, j, k, l, m)
  BRINE_DETAIL_BIND(14, a, b, c, d, e, f, g, h, i, j, k, l, m, n)
  BRINE_DETAIL_BIND(15, a, b, c, d, e, f, g, h, i, j, k, l, m, n, o)
  BRINE_DETAIL_BIND(16, a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p)
}
#undef BRINE_DETAIL_BIND

template <class T>
using fields_t = typename decltype(field_types(std::declval<T&>()))::type;

// The aggregates the reflection describes by their fields.
template <class T>
concept Reflectable =
    std::is_aggregate_v<T> && std::is_class_v<T> && !std::is_union_v<T> &&
    field_count<T>() <= kMaxReflectedFields && !braces_with<T, kMaxReflectedFields + 1>();

// BRINE_VERSION's declaration, found by argument-dependent lookup.
template <class T>
concept Versioned = requires {
  brine_version_of(static_cast<T*>(nullptr));
};

// --- the shape text -----------------------------------------------------------------------------

// Where the shape text goes: counted only (out == nullptr), or written to out. Not a constexpr
// std::string: clang (14) cannot evaluate libstdc++ 12's short-string constructor at compile
// time, so the text is built twice, once to measure it and once into an array of that size.
struct TextSink {
  char* out = nullptr;
  std::size_t size = 0;
  constexpr TextSink& operator+=(char c) noexcept {
    if (out != nullptr) out[size] = c;
    ++size;
    return *this;
  }
  constexpr TextSink& operator+=(std::string_view text) noexcept {
    for (char c : text) *this += c;
    return *this;
  }
};

// Appends `name` between quotes (a quote inside it, which no C++ type name has outside a
// character literal, becomes '?', so that the text always parses). An anonymous namespace is
// written "(anonymous)" whichever compiler named it (g++: "{anonymous}", clang: "(anonymous
// namespace)"), so that such a type's fingerprint does not depend on the compiler.
constexpr void put_name(TextSink& s, std::string_view name, bool dots) {
  constexpr std::string_view kGcc = "{anonymous}";
  constexpr std::string_view kClang = "(anonymous namespace)";
  s += '\'';
  for (std::size_t i = 0; i < name.size(); ++i) {
    const std::string_view rest = name.substr(i);
    if (rest.starts_with(kGcc) || rest.starts_with(kClang)) {
      s += "(anonymous)";
      i += (rest.starts_with(kGcc) ? kGcc.size() : kClang.size()) - 1;
    } else if (dots && name[i] == ':' && i + 1 < name.size() && name[i + 1] == ':') {
      s += '.';
      ++i;
    } else {
      s += name[i] == '\'' ? '?' : name[i];
    }
  }
  s += '\'';
}

constexpr void put_number(TextSink& s, std::size_t n) {
  char digits[20] = {};
  std::size_t k = 0;
  do {
    digits[k++] = char('0' + n % 10);
    n /= 10;
  } while (n != 0);
  while (k != 0) s += digits[--k];
}

template <class T>
constexpr void put_shape(TextSink& s, bool names);

template <class... T>
constexpr void put_list(TextSink& s, [[maybe_unused]] bool names) {
  bool first = true;
  ((s += first ? "" : ",", first = false, put_shape<T>(s, names)), ...);
}

template <class List>
struct list_of;
template <template <class...> class L, class... T>
struct list_of<L<T...>> {
  static constexpr void put(TextSink& s, bool names) { put_list<T...>(s, names); }
};

template <class T>
constexpr void put_shape(TextSink& s, bool names) {
  using U = std::remove_cvref_t<T>;
  if constexpr (requires {
                  U::brine_stream_direction;
                  typename U::item_type;
                }) {
    s += U::brine_stream_direction;  // "in<" or "out<": the items of a stream (brine/stream.hpp)
    put_shape<typename U::item_type>(s, names);
    s += '>';
  } else if constexpr (requires { ShapeTraits<U>::tag; }) {
    s += ShapeTraits<U>::tag;
    put_name(s, raw_type_name<U>(), true);
  } else if constexpr (Versioned<U>) {
    using V = decltype(brine_version_of(static_cast<U*>(nullptr)));
    s += 'v';
    put_name(s, V::name, false);
    s += '@';
    put_number(s, V::version);
  } else if constexpr (std::is_void_v<U>) {
    s += "void";
  } else if constexpr (std::is_same_v<U, bool>) {
    s += "bool";
  } else if constexpr (std::is_same_v<U, char>) {
    s += "char";
  } else if constexpr (std::is_enum_v<U>) {
    s += 'e';
    put_name(s, raw_type_name<U>(), false);
    s += '<';
    put_shape<std::underlying_type_t<U>>(s, names);
    s += '>';
  } else if constexpr (std::is_integral_v<U>) {
    s += std::is_signed_v<U> ? 'i' : 'u';
    put_number(s, sizeof(U) * 8);
  } else if constexpr (std::is_floating_point_v<U>) {
    s += sizeof(U) == 4 ? "f32" : sizeof(U) == 8 ? "f64" : "f128";
  } else if constexpr (std::is_same_v<U, std::string>) {
    s += "str";
  } else if constexpr (is_specialisation<U, Ref>) {
    s += "ref";
    put_name(s, raw_type_name<typename ref_target<U>::type>(), false);
  } else if constexpr (is_specialisation<U, Remote>) {
    s += "obj";
    put_name(s, raw_type_name<typename ref_target<U>::type>(), false);
  } else if constexpr (is_specialisation<U, std::optional>) {
    s += "opt<";
    put_shape<typename U::value_type>(s, names);
    s += '>';
  } else if constexpr (is_specialisation<U, std::variant>) {
    s += "var<";
    list_of<U>::put(s, names);
    s += '>';
  } else if constexpr (is_specialisation<U, std::pair>) {
    s += "tup<";
    put_list<typename U::first_type, typename U::second_type>(s, names);
    s += '>';
  } else if constexpr (is_specialisation<U, std::tuple>) {
    s += "tup<";
    list_of<U>::put(s, names);
    s += '>';
  } else if constexpr (is_std_array<U>) {
    s += "arr<";
    put_shape<typename U::value_type>(s, names);
    s += ',';
    put_number(s, std::tuple_size_v<U>);
    s += '>';
  } else if constexpr (requires {
                         typename U::key_type;
                         typename U::mapped_type;
                       }) {
    s += "map<";
    put_list<typename U::key_type, typename U::mapped_type>(s, names);
    s += '>';
  } else if constexpr (requires { typename U::key_type; }) {
    s += "set<";
    put_shape<typename U::key_type>(s, names);
    s += '>';
  } else if constexpr (requires(const U& u) {
                         typename U::value_type;
                         u.begin();
                         u.end();
                       }) {
    s += "vec<";
    put_shape<typename U::value_type>(s, names);
    s += '>';
  } else if constexpr (Reflectable<U>) {
    s += 's';
    if (names) put_name(s, raw_type_name<U>(), false);
    s += '{';
    list_of<fields_t<U>>::put(s, names);
    s += '}';
  } else {
    s += 'o';
    put_name(s, raw_type_name<U>(), false);
  }
}

// The contract text "(A,B)->R" of a method, into `s`.
template <class Result, class... Args>
constexpr void put_contract(TextSink& s, bool names) {
  s += '(';
  put_list<Args...>(s, names);
  s += ")->";
  put_shape<Result>(s, names);
}

// A contract's text in static storage. Keyed on types only (no lambdas): g++ 12 numbers closures
// in a class template's member initialisers differently in different translation units, and the
// linker then discards the array that a reference elsewhere still names.
template <bool Names, class Result, class... Args>
struct ContractText {
  static constexpr std::size_t measure() {
    TextSink counter;
    put_contract<Result, Args...>(counter, Names);
    return counter.size;
  }
  static constexpr std::size_t size = measure();
  static constexpr std::array<char, size + 1> fill() {
    std::array<char, size + 1> a{};
    TextSink writer{a.data()};
    put_contract<Result, Args...>(writer, Names);
    return a;
  }
  static constexpr std::array<char, size + 1> chars = fill();
  static constexpr std::string_view view{chars.data(), size};
};

// The items of a stream in a contract: "in<T>" flow from client to server, "out<T>" back.
template <class T>
struct StreamIn {
  static constexpr std::string_view brine_stream_direction = "in<";
  using item_type = T;
};
template <class T>
struct StreamOut {
  static constexpr std::string_view brine_stream_direction = "out<";
  using item_type = T;
};

template <class Result, class... Args>
struct ContractOf {
  static constexpr Contract value{fnv1a(ContractText<false, Result, Args...>::view),
                                  ContractText<true, Result, Args...>::view};
};

template <class Req, class In, class Out, class Resp>
struct StreamContractOf {
  using type = ContractOf<Resp, Req, StreamIn<In>, StreamOut<Out>>;
};
template <class Req, class Out, class Resp>
struct StreamContractOf<Req, void, Out, Resp> {
  using type = ContractOf<Resp, Req, StreamOut<Out>>;
};
template <class Req, class In, class Resp>
struct StreamContractOf<Req, In, void, Resp> {
  using type = ContractOf<Resp, Req, StreamIn<In>>;
};

}  // namespace detail

// The contract of a typed call (one request, one response) and of a method taking Args...
template <class Req, class Resp>
inline constexpr const Contract& call_contract = detail::ContractOf<Resp, Req>::value;
template <class Result, class... Args>
inline constexpr const Contract& method_contract = detail::ContractOf<Result, Args...>::value;
// The contract of a stream call: one request, items In from the client and Out from the server
// (void: none that way), and a final response. Text "(Req,in<In>,out<Out>)->Resp".
template <class Req, class In, class Out, class Resp>
inline constexpr const Contract& stream_contract =
    detail::StreamContractOf<Req, In, Out, Resp>::type::value;

}  // namespace brine

// Declares that Type is compared by this name and version, not by its fields: clients and
// servers whose Type has the same name are compatible when the reader's version is at least the
// writer's (a newer server reads what an older client sends; a reply is read by a client at least
// as new). Type's serialisation must read the older versions (cereal: CEREAL_CLASS_VERSION with
// the same number and a versioned serialize()). At namespace scope, in Type's namespace.
#define BRINE_VERSION(Type, N)                                                       \
  struct brine_version_##Type {                                                      \
    static constexpr std::string_view name = #Type;                                  \
    static constexpr std::uint32_t version = (N);                                    \
  };                                                                                 \
  [[maybe_unused]] constexpr brine_version_##Type brine_version_of(Type*) noexcept { \
    return {};                                                                       \
  }                                                                                  \
  static_assert(true, "")
