// Remote interfaces: an abstract class declared once, served by Server::expose() and called
// through Client::remote().
//
//   struct Calculator {
//     virtual ~Calculator() = default;
//     virtual int add(int a, int b) = 0;
//     virtual void reset() = 0;
//     virtual brine::Ref<Session> open(std::string user) = 0;   // a factory: see Ref
//   };
//   BRINE_INTERFACE(Calculator, add, reset, open);
//
// BRINE_INTERFACE(Type, methods...) goes at namespace scope in the namespace of Type, naming
// Type unqualified, and lists the methods that are remote (any others stay local). Methods must
// not be overloaded (a name is one method on the wire), and take at most 8 parameters: values
// or const references to types the chosen codecs carry. The result is void, such a type, or
// Ref<U> for an interface U.
//
// A method may stream (brine/stream.hpp): its last parameters are the stream's ends,
// brine::Writer<Out>& (items to the caller), brine::Reader<In>& (items from it), or both, in
// that order: Reader, then Writer. It returns void (or, reading only, a response), or a
// brine::Task of that to be a coroutine. The caller's proxy method takes the other parameters
// and returns brine::Stream<Out>, brine::Upload<In, Resp> or brine::Bidi<In, Out>:
//
//   virtual void tail(std::string file, brine::Writer<Line>& out) = 0;
//   brine::Stream<Line> lines = log.tail("app.log"); The interface's name on the wire is not
//   needed: calls name the object
// and the method ("calc.add"), see docs/wire-format.md, "Remote objects".
#pragma once

#include <concepts>
#include <memory>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include "brine/codec.hpp"
#include "brine/fingerprint.hpp"
#include "brine/stream.hpp"
#include "brine/task.hpp"

namespace brine {

// What a factory method returns on the server: a new object that the server keeps for the
// calling connection only. The client receives a Remote<T> for it; the server frees the object
// when the client drops its last Remote<T> copy, or when the connection ends, whichever comes
// first. (Not through a broker: a reference names an object in one server process.)
template <class T>
class Ref {
 public:
  Ref(std::shared_ptr<T> object) : object_(std::move(object)) {}  // NOLINT: implicit by design
  template <class D>
  requires(std::derived_from<D, T> && !std::is_same_v<D, T>)
      Ref(std::shared_ptr<D> object)  // NOLINT
      : object_(std::move(object)) {}
  const std::shared_ptr<T>& get() const noexcept { return object_; }

 private:
  std::shared_ptr<T> object_;
};

// Ref<T> holding a new Impl (derived from T) built from `args`.
template <class T, class Impl = T, class... A>
Ref<T> make_ref(A&&... args) {
  return Ref<T>(std::make_shared<Impl>(std::forward<A>(args)...));
}

// A proxy for an object that lives elsewhere (brine/client.hpp). As a parameter of an interface
// method it is an object passed by reference: the caller passes one of its own objects
// (Remote<T> converts from Ref<T> and from std::shared_ptr<Derived>) or a Remote<T> it holds of
// the callee's, and the callee calls it back over the same connection (see Remote).
template <class T>
class Remote;

namespace detail {

template <class T>
struct is_remote : std::false_type {};
template <class T>
struct is_remote<Remote<T>> : std::true_type {
  using interface = T;
};

// What a request carries for a parameter of type T: T itself, or the object's name for a
// Remote<U> (docs/wire-format.md, "Objects passed as arguments").
template <class T>
using wire_arg_t = std::conditional_t<is_remote<T>::value, ObjectName, T>;

template <class T>
struct is_ref : std::false_type {};
template <class T>
struct is_ref<Ref<T>> : std::true_type {
  using interface = T;
};

// A parameter slot a method does not have: the proxy's overload for that arity is disabled.
template <std::size_t N>
struct Unused {};

template <std::size_t N, class Tuple, bool = (N < std::tuple_size_v<Tuple>)>
struct param_at {
  using type = Unused<N>;
};
template <std::size_t N, class Tuple>
struct param_at<N, Tuple, true> {
  using type = std::tuple_element_t<N, Tuple>;
};

// A stream end among a method's parameters: 1 for Reader<T>&, 2 for Writer<T>&, else 0.
template <class T>
struct stream_end {
  static constexpr int kind = 0;
  using item = void;
};
template <class T>
struct stream_end<Reader<T>&> {
  static constexpr int kind = 1;
  using item = T;
};
template <class T>
struct stream_end<Writer<T>&> {
  static constexpr int kind = 2;
  using item = T;
};

// The first K of a parameter list, as the ArgPack a request carries.
template <std::size_t K, class Tuple, class Idx = std::make_index_sequence<K>>
struct first_args;
template <std::size_t K, class... A, std::size_t... I>
struct first_args<K, std::tuple<A...>, std::index_sequence<I...>> {
  using type =
      ArgPack<wire_arg_t<std::remove_cvref_t<std::tuple_element_t<I, std::tuple<A...>>>>...>;
};

template <std::size_t K, class Tuple, class Idx = std::make_index_sequence<K>>
struct first_values;
template <std::size_t K, class... A, std::size_t... I>
struct first_values<K, std::tuple<A...>, std::index_sequence<I...>> {
  using type = std::tuple<std::remove_cvref_t<std::tuple_element_t<I, std::tuple<A...>>>...>;
};

// The contract of a stream method whose wire arguments are Pack: its ends are listed as
// in<In> and out<Out> after them (as Server::handle's stream handlers list theirs).
template <class Resp, class Pack, class In, class Out>
struct stream_method_contract;
template <class Resp, class... T, class In, class Out>
struct stream_method_contract<Resp, ArgPack<T...>, In, Out> {
  using type = ContractOf<Resp, T..., StreamIn<In>, StreamOut<Out>>;
};
template <class Resp, class... T, class Out>
struct stream_method_contract<Resp, ArgPack<T...>, void, Out> {
  using type = ContractOf<Resp, T..., StreamOut<Out>>;
};
template <class Resp, class... T, class In>
struct stream_method_contract<Resp, ArgPack<T...>, In, void> {
  using type = ContractOf<Resp, T..., StreamIn<In>>;
};
template <bool Stream, class R, class Resp, class Pack, class In, class Out, class... A>
struct contract_select {
  static constexpr const Contract& value = method_contract<Resp, std::remove_cvref_t<A>...>;
};
template <class R, class Resp, class Pack, class In, class Out, class... A>
struct contract_select<true, R, Resp, Pack, In, Out, A...> {
  static constexpr const Contract& value = stream_method_contract<Resp, Pack, In, Out>::type::value;
};

template <class M>
struct member_traits;
template <class C, class R, class... A>
struct member_traits<R (C::*)(A...)> {
  using object = C;
  using result = R;
  // Stream ends are the last parameters: Reader<In>&, then Writer<Out>&.
  static constexpr std::size_t streams = ((stream_end<A>::kind != 0 ? 1 : 0) + ... + 0);
  static constexpr bool is_stream = streams != 0;
  static constexpr std::size_t arity = sizeof...(A) - streams;
  using first_end = stream_end<typename param_at<arity, std::tuple<A...>>::type>;
  using last_end = stream_end<typename param_at<sizeof...(A) - 1, std::tuple<A...>>::type>;
  using In = std::conditional_t<first_end::kind == 1, typename first_end::item, void>;
  using Out = std::conditional_t<last_end::kind == 2, typename last_end::item, void>;
  // The response: R, or what a coroutine's Task gives.
  using response = typename task_value<R>::type;
  // What the request carries: the parameters before the stream ends.
  using args = typename first_args<arity, std::tuple<A...>>::type;
  // The values the method is called with (args, with each object's name made a Remote).
  using values = typename first_values<arity, std::tuple<A...>>::type;
  static constexpr bool passes_objects = !std::is_same_v<typename args::tuple, values>;
  template <std::size_t N>
  using param =
      std::conditional_t<(N < arity), typename param_at<N, std::tuple<A...>>::type, Unused<N>>;
  static constexpr bool ends_in_place() {
    constexpr int kinds[] = {stream_end<A>::kind..., 0};
    for (std::size_t i = 0; i < arity; ++i) {
      if (kinds[i] != 0) return false;
    }
    return streams < 2 || (kinds[arity] == 1 && kinds[arity + 1] == 2);
  }
  static constexpr bool params_ok =
      ends_in_place() && ((stream_end<A>::kind != 0 || !std::is_lvalue_reference_v<A> ||
                           std::is_const_v<std::remove_reference_t<A>>)&&...);
  static constexpr const Contract& contract =
      contract_select<is_stream, R, response, args, In, Out, A...>::value;
  // Whether some included codec carries every parameter and the result of Self (a pointer to
  // this member); one compile error (carried_type) for each one that none carries.
  template <auto Self>
  static constexpr bool carried() {
    constexpr bool params = []<std::size_t... I>(std::index_sequence<I...>) {
      return (true & ... &
              carried_type<
                  Self, I + 1,
                  wire_arg_t<std::remove_cvref_t<std::tuple_element_t<I, std::tuple<A...>>>>>());
    }
    (std::make_index_sequence<arity>{});
    bool items = true;
    if constexpr (!std::is_void_v<In>) items = items & carried_type<Self, arity + 1, In>();
    if constexpr (!std::is_void_v<Out>) items = items & carried_type<Self, sizeof...(A), Out>();
    if constexpr (std::is_void_v<response> || is_ref<std::remove_cvref_t<response>>::value) {
      return params & items;
    } else {
      return params & items & carried_type<Self, 0, std::remove_cvref_t<response>>();
    }
  }
};
template <class C, class R, class... A>
struct member_traits<R (C::*)(A...) const> : member_traits<R (C::*)(A...)> {};
template <class C, class R, class... A>
struct member_traits<R (C::*)(A...) noexcept> : member_traits<R (C::*)(A...)> {};
template <class C, class R, class... A>
struct member_traits<R (C::*)(A...) const noexcept> : member_traits<R (C::*)(A...)> {};

// What a reply carries for a method result R: R itself, an object name for Ref<U>, nothing for
// void.
template <class R>
using wire_result_t =
    std::conditional_t<std::is_void_v<R>, ArgPack<>,
                       std::conditional_t<is_ref<R>::value, ObjectName, std::remove_cvref_t<R>>>;

// A name in BRINE_INTERFACE's list, for the one error that a bad name gives.
template <std::size_t N>
struct MemberName {
  constexpr MemberName(const char (&s)[N]) noexcept {  // NOLINT: implicit by design
    for (std::size_t i = 0; i < N; ++i) chars[i] = s[i];
  }
  char chars[N];
};
template <MemberName Name, bool Names>
struct ListedMember {
  static_assert(Names,
                "BRINE_INTERFACE: the name shown as `Name` in the line above must be exactly one "
                "member function of the interface (it is misspelt, overloaded, or not a member; "
                "give overloads distinct names)");
  using checked = void;
};

// T, whatever D is: makes a use of T depend on a template parameter.
template <class D, class T>
struct dependent {
  using type = T;
};
template <class D, class T>
using dependent_t = typename dependent<D, T>::type;

template <auto M>
inline constexpr std::size_t arity_v = member_traits<decltype(M)>::arity;
template <auto M, std::size_t N>
using param_t = typename member_traits<decltype(M)>::template param<N>;

}  // namespace detail

// The BRINE_INTERFACE description of I, found by argument-dependent lookup.
template <class I>
using interface_traits = decltype(brine_interface_of(static_cast<I*>(nullptr)));

template <class I>
concept RemoteInterface = requires {
  typename interface_traits<I>;
};

}  // namespace brine

// --- the macro ----------------------------------------------------------------------------------
#define BRINE_DETAIL_PARENS ()
#define BRINE_DETAIL_EXPAND(...) \
  BRINE_DETAIL_EXPAND3(          \
      BRINE_DETAIL_EXPAND3(BRINE_DETAIL_EXPAND3(BRINE_DETAIL_EXPAND3(__VA_ARGS__))))
#define BRINE_DETAIL_EXPAND3(...) \
  BRINE_DETAIL_EXPAND2(           \
      BRINE_DETAIL_EXPAND2(BRINE_DETAIL_EXPAND2(BRINE_DETAIL_EXPAND2(__VA_ARGS__))))
#define BRINE_DETAIL_EXPAND2(...) \
  BRINE_DETAIL_EXPAND1(           \
      BRINE_DETAIL_EXPAND1(BRINE_DETAIL_EXPAND1(BRINE_DETAIL_EXPAND1(__VA_ARGS__))))
#define BRINE_DETAIL_EXPAND1(...) __VA_ARGS__
// Up to 64 methods per interface.
#define BRINE_DETAIL_FOR_EACH(macro, type, ...) \
  __VA_OPT__(BRINE_DETAIL_EXPAND(BRINE_DETAIL_FOR_EACH_HELPER(macro, type, __VA_ARGS__)))
#define BRINE_DETAIL_FOR_EACH_HELPER(macro, type, first, ...) \
  macro(type, first)                                          \
      __VA_OPT__(BRINE_DETAIL_FOR_EACH_AGAIN BRINE_DETAIL_PARENS(macro, type, __VA_ARGS__))
#define BRINE_DETAIL_FOR_EACH_AGAIN() BRINE_DETAIL_FOR_EACH_HELPER

// Every use of &type::m is made dependent on a template parameter (D), so that a misspelt or
// overloaded name is diagnosed once, by BRINE_DETAIL_CHECK's static_assert, and not again at each
// use (which gave tens of thousands of lines of errors).
#define BRINE_DETAIL_DEP(T, type) ::brine::detail::dependent_t<T, type>
#define BRINE_DETAIL_CHECK(type, m)                  \
  template <class T>                                 \
  static constexpr bool brine_names_##m = requires { \
    &T::m;                                           \
  };                                                 \
  using brine_check_##m = ::brine::detail::ListedMember<#m, brine_names_##m<type>>::checked;
#define BRINE_DETAIL_VISIT(type, m)                                             \
  if constexpr (brine_names_##m<BRINE_DETAIL_DEP(F, type)>) {                   \
    f.template operator()<&BRINE_DETAIL_DEP(F, type)::m>(std::string_view(#m)); \
  }
// Each proxy method takes exactly the interface method's parameter types (so braced
// initialisers and conversions work as in a local call): one overload per possible arity, all
// but the method's own disabled. Up to 8 parameters.
// Each is a template on D (defaulted, never deduced: the parameters are a non-deduced context, so
// braced initialisers still work), so that a bad name removes the overload instead of breaking
// the class.
#define BRINE_DETAIL_P(type, m, n) ::brine::detail::param_t<&BRINE_DETAIL_DEP(D, type)::m, n>
#define BRINE_DETAIL_F(type, m, n, a) std::forward<BRINE_DETAIL_P(type, m, n)>(a)
#define BRINE_DETAIL_ARITY(type, m, n) \
  requires(::brine::detail::arity_v<&BRINE_DETAIL_DEP(D, type)::m> == n)
#define BRINE_DETAIL_CALL(type, m, ...)                                                 \
  {                                                                                     \
    return this->template brine_invoke<&BRINE_DETAIL_DEP(D, type)::m>(#m __VA_OPT__(, ) \
                                                                          __VA_ARGS__); \
  }
#define BRINE_DETAIL_PROXY(type, m)                                                                \
  template <class D = type>                                                                        \
  decltype(auto) m() const BRINE_DETAIL_ARITY(type, m, 0) BRINE_DETAIL_CALL(                       \
      type, m) template <class D = type>                                                           \
  decltype(auto) m(BRINE_DETAIL_P(type, m, 0) a0) const BRINE_DETAIL_ARITY(                        \
      type, m, 1) BRINE_DETAIL_CALL(type, m,                                                       \
                                    BRINE_DETAIL_F(type, m, 0, a0)) template <class D = type>      \
  decltype(auto) m(BRINE_DETAIL_P(type, m, 0) a0, BRINE_DETAIL_P(type, m, 1) a1)                   \
      const BRINE_DETAIL_ARITY(type, m, 2) BRINE_DETAIL_CALL(                                      \
          type, m, BRINE_DETAIL_F(type, m, 0, a0),                                                 \
          BRINE_DETAIL_F(type, m, 1, a1)) template <class D = type>                                \
      decltype(auto) m(BRINE_DETAIL_P(type, m, 0) a0, BRINE_DETAIL_P(type, m, 1) a1,               \
                       BRINE_DETAIL_P(type, m, 2) a2) const BRINE_DETAIL_ARITY(type, m, 3)         \
          BRINE_DETAIL_CALL(type, m, BRINE_DETAIL_F(type, m, 0, a0),                               \
                            BRINE_DETAIL_F(type, m, 1, a1),                                        \
                            BRINE_DETAIL_F(type, m, 2, a2)) template <class D = type>              \
          decltype(auto) m(BRINE_DETAIL_P(type, m, 0) a0, BRINE_DETAIL_P(type, m, 1) a1,           \
                           BRINE_DETAIL_P(type, m, 2) a2,                                          \
                           BRINE_DETAIL_P(type, m, 3) a3) const BRINE_DETAIL_ARITY(type, m, 4)     \
              BRINE_DETAIL_CALL(type, m, BRINE_DETAIL_F(type, m, 0, a0),                           \
                                BRINE_DETAIL_F(type, m, 1, a1), BRINE_DETAIL_F(type, m, 2, a2),    \
                                BRINE_DETAIL_F(type, m, 3, a3)) template <class D = type>          \
              decltype(auto) m(BRINE_DETAIL_P(type, m, 0) a0, BRINE_DETAIL_P(type, m, 1) a1,       \
                               BRINE_DETAIL_P(type, m, 2) a2, BRINE_DETAIL_P(type, m, 3) a3,       \
                               BRINE_DETAIL_P(type, m, 4) a4) const BRINE_DETAIL_ARITY(type, m, 5) \
                  BRINE_DETAIL_CALL(                                                               \
                      type, m, BRINE_DETAIL_F(type, m, 0, a0), BRINE_DETAIL_F(type, m, 1, a1),     \
                      BRINE_DETAIL_F(type, m, 2, a2), BRINE_DETAIL_F(type, m, 3, a3),              \
                      BRINE_DETAIL_F(type, m, 4, a4)) template <class D = type>                    \
                  decltype(auto) m(BRINE_DETAIL_P(type, m, 0) a0, BRINE_DETAIL_P(type, m, 1) a1,   \
                                   BRINE_DETAIL_P(type, m, 2) a2, BRINE_DETAIL_P(type, m, 3) a3,   \
                                   BRINE_DETAIL_P(type, m, 4) a4, BRINE_DETAIL_P(type, m, 5) a5)   \
                      const BRINE_DETAIL_ARITY(type, m, 6) BRINE_DETAIL_CALL(                      \
                          type, m, BRINE_DETAIL_F(type, m, 0, a0), BRINE_DETAIL_F(type, m, 1, a1), \
                          BRINE_DETAIL_F(type, m, 2, a2), BRINE_DETAIL_F(type, m, 3, a3),          \
                          BRINE_DETAIL_F(type, m, 4, a4),                                          \
                          BRINE_DETAIL_F(type, m, 5, a5)) template <class D = type>                \
                      decltype(auto) m(                                                            \
                          BRINE_DETAIL_P(type, m, 0) a0, BRINE_DETAIL_P(type, m, 1) a1,            \
                          BRINE_DETAIL_P(type, m, 2) a2, BRINE_DETAIL_P(type, m, 3) a3,            \
                          BRINE_DETAIL_P(type, m, 4) a4, BRINE_DETAIL_P(type, m, 5) a5,            \
                          BRINE_DETAIL_P(type, m, 6) a6) const BRINE_DETAIL_ARITY(type, m, 7)      \
                          BRINE_DETAIL_CALL(                                                       \
                              type, m, BRINE_DETAIL_F(type, m, 0, a0),                             \
                              BRINE_DETAIL_F(type, m, 1, a1), BRINE_DETAIL_F(type, m, 2, a2),      \
                              BRINE_DETAIL_F(type, m, 3, a3), BRINE_DETAIL_F(type, m, 4, a4),      \
                              BRINE_DETAIL_F(type, m, 5, a5),                                      \
                              BRINE_DETAIL_F(type, m, 6, a6)) template <class D = type>            \
                          decltype(auto) m(                                                        \
                              BRINE_DETAIL_P(type, m, 0) a0, BRINE_DETAIL_P(type, m, 1) a1,        \
                              BRINE_DETAIL_P(type, m, 2) a2, BRINE_DETAIL_P(type, m, 3) a3,        \
                              BRINE_DETAIL_P(type, m, 4) a4, BRINE_DETAIL_P(type, m, 5) a5,        \
                              BRINE_DETAIL_P(type, m, 6) a6, BRINE_DETAIL_P(type, m, 7) a7)        \
                              const BRINE_DETAIL_ARITY(type, m, 8) BRINE_DETAIL_CALL(              \
                                  type, m, BRINE_DETAIL_F(type, m, 0, a0),                         \
                                  BRINE_DETAIL_F(type, m, 1, a1), BRINE_DETAIL_F(type, m, 2, a2),  \
                                  BRINE_DETAIL_F(type, m, 3, a3), BRINE_DETAIL_F(type, m, 4, a4),  \
                                  BRINE_DETAIL_F(type, m, 5, a5), BRINE_DETAIL_F(type, m, 6, a6),  \
                                  BRINE_DETAIL_F(type, m, 7, a7))

#define BRINE_INTERFACE(Type, ...)                                  \
  struct brine_interface_##Type {                                   \
    static_assert(std::has_virtual_destructor_v<Type>,              \
                  "a remote interface needs a virtual destructor"); \
    using type = Type;                                              \
    static constexpr std::string_view name = #Type;                 \
    BRINE_DETAIL_FOR_EACH(BRINE_DETAIL_CHECK, Type, __VA_ARGS__)    \
    template <class F>                                              \
    static constexpr void for_each_method(F&& f) {                  \
      BRINE_DETAIL_FOR_EACH(BRINE_DETAIL_VISIT, Type, __VA_ARGS__)  \
    }                                                               \
    template <class Base>                                           \
    struct proxy : Base {                                           \
      using Base::Base;                                             \
      BRINE_DETAIL_FOR_EACH(BRINE_DETAIL_PROXY, Type, __VA_ARGS__)  \
    };                                                              \
  };                                                                \
  [[maybe_unused]] brine_interface_##Type brine_interface_of(Type*)
